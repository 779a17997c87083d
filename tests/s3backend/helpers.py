"""Checks on what a (stopped) pachd left behind: its RocksDB metadata and its S3 chunks."""
from __future__ import annotations

from pathlib import Path

import msgpack

from pfs.core.content import pack_key
from pfs.storage.rocks import RocksMetadataStore


def chunk_index(root: Path) -> dict:
    """chunk hash -> pack key, from a stopped pachd's metadata (`<root>/meta`)."""
    meta = RocksMetadataStore(Path(root) / "meta")
    try:
        return {k: pack_key(msgpack.unpackb(v)[0]) for k, v in meta.scan(prefix=b"K\x00")}
    finally:
        meta.close()


def stored_packs(server, bucket: str, prefix: str) -> set:
    store = server.store(bucket, prefix)
    try:
        return set(store.iterate("packs/"))
    finally:
        store.close()


def pack_refs_all_exist(root: Path, server, bucket: str, prefix: str) -> tuple[set, set]:
    """Assert every pack named by the chunk index exists in the bucket; returns
    (referenced packs, stored packs) -- stored but unreferenced ones are garbage."""
    referenced = set(chunk_index(root).values())
    stored = stored_packs(server, bucket, prefix)
    missing = referenced - stored
    assert not missing, f"the chunk index names packs that are not in s3://{bucket}/{prefix}: {sorted(missing)}"
    return referenced, stored
