"""Fixtures for the storage conformance suites: `any_chunkstore`, `any_metadata`."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # so `tests.s3servers` imports however pytest is invoked
    sys.path.insert(0, str(_ROOT))

from pfs.storage.local import LocalChunkStore  # noqa: E402
from pfs.storage.metadata import MemoryMetadataStore  # noqa: E402
from pfs.storage.rocks import RocksMetadataStore  # noqa: E402
from tests.s3servers import moto_server, seaweed_server  # noqa: E402,F401

CHUNKSTORES = [
    "local",
    pytest.param("s3-moto", marks=pytest.mark.s3),
    pytest.param("s3-seaweedfs", marks=pytest.mark.s3),
]


@pytest.fixture(params=CHUNKSTORES)
def any_chunkstore(request, tmp_path):
    """A fresh, empty chunk store of every kind (S3 ones get a new bucket each)."""
    kind = request.param
    if kind == "local":
        store = LocalChunkStore(tmp_path / "chunks")
    elif kind == "s3-moto":
        store = request.getfixturevalue("moto_server").store(prefix="pfs")
    else:
        store = request.getfixturevalue("seaweed_server").store(prefix="pfs")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["memory", "rocks"])
def any_metadata(request, tmp_path):
    """A fresh, empty metadata store of every kind."""
    store = MemoryMetadataStore() if request.param == "memory" else RocksMetadataStore(tmp_path / "meta")
    try:
        yield store
    finally:
        store.close()
