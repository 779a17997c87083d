"""pfs.storage: where bytes and metadata live. Two small Protocols and their backends.

- `ChunkStore` (chunkstore.py): put/get/get_range/exists/delete/iterate over str keys,
  atomic whole-object puts. Backends: `LocalChunkStore` (local.py, temp file + fsync +
  rename) and `S3ChunkStore` (s3.py, boto3; imported lazily so importing pfs.storage never
  imports boto3).
- `MetadataStore` (metadata.py): ordered bytes → bytes with paged scans and atomic
  compare-and-swap batches. Backends: `MemoryMetadataStore` (metadata.py) and
  `RocksMetadataStore` (rocks.py, rocksdict).

Each module's docstring states the invariants its backend keeps; tests/storage/ holds one
conformance suite per Protocol, run against every backend (S3 against real moto and
SeaweedFS servers).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfs.storage.chunkstore import ChunkStore, check_key
from pfs.storage.local import LocalChunkStore
from pfs.storage.metadata import MemoryMetadataStore, MetadataStore, WriteBatch

if TYPE_CHECKING:
    from pfs.storage.rocks import RocksMetadataStore
    from pfs.storage.s3 import S3ChunkStore

__all__ = [
    "ChunkStore", "check_key", "LocalChunkStore", "S3ChunkStore", "open_chunkstore",
    "MetadataStore", "WriteBatch", "MemoryMetadataStore", "RocksMetadataStore",
]


def __getattr__(name: str) -> Any:
    if name == "S3ChunkStore":
        from pfs.storage.s3 import S3ChunkStore
        return S3ChunkStore
    if name == "RocksMetadataStore":
        from pfs.storage.rocks import RocksMetadataStore
        return RocksMetadataStore
    raise AttributeError(f"module 'pfs.storage' has no attribute {name!r}")


def open_chunkstore(url: str | Path, **kwargs: Any) -> ChunkStore:
    """``s3://bucket/prefix`` → S3ChunkStore; ``file:///dir`` or a plain path → LocalChunkStore."""
    s = str(url)
    if s.startswith("s3://"):
        from pfs.storage.s3 import S3ChunkStore
        return S3ChunkStore.from_url(s, **kwargs)
    if s.startswith("file://"):
        s = s[len("file://"):]
    return LocalChunkStore(s, **kwargs)
