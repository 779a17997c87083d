"""Fixtures for the core unit tests: a real `Pfs` over real stores.

- `pfs`: a fresh `Pfs` over each metadata backend (in-memory and RocksDB) with a local chunk
  store in tmp; closed (stores too) at the end of the test. Its third parameter, ``s3``
  (marked `s3`), is RocksDB with the chunks in SeaweedFS: see tests/s3variant.py for which
  tests run it by default and how to run all of them.
- `make_pfs`: the factory behind it, for tests that need tuning (pack size, clock) or that
  reopen the same stores (`reopen(p)`: close `p`, open a new `Pfs` on the same data).
Helpers (`put_files`, `read`, `tree_of`, `R`, `B`) live in tests/core/helpers.py.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pfs.core import Pfs  # noqa: E402
from pfs.storage.local import LocalChunkStore  # noqa: E402
from pfs.storage.metadata import MemoryMetadataStore  # noqa: E402
from pfs.storage.rocks import RocksMetadataStore  # noqa: E402


class Factory:
    def __init__(self, tmp: Path, kind: str, s3=None):
        self.tmp = tmp
        self.kind = kind
        self.s3 = s3  # (S3Server, bucket, prefix) for kind "s3"
        self.open: list = []  # (pfs, meta, chunks)
        self._memory_meta = None

    def _meta(self):
        if self.kind == "memory":
            if self._memory_meta is None:
                self._memory_meta = MemoryMetadataStore()
            return self._memory_meta
        return RocksMetadataStore(self.tmp / "meta", sync=False)

    def __call__(self, **content_opts) -> Pfs:
        meta = self._meta()
        if self.kind == "s3":
            server, bucket, prefix = self.s3
            try:
                chunks = server.store(bucket, prefix)
            except BaseException:
                meta.close()
                raise
        else:
            chunks = LocalChunkStore(self.tmp / "chunks", durable=False)
        p = Pfs(meta, chunks)
        if content_opts:
            for k, v in content_opts.items():
                if k == "pack_target":
                    p.content.pack_target = v
                elif k == "cdc":
                    p.content.cdc = v
                else:
                    raise TypeError(k)
        self.open.append((p, meta, chunks))
        return p

    def close(self, p: Pfs) -> None:
        for i, (q, meta, chunks) in enumerate(self.open):
            if q is p:
                del self.open[i]
                q.close()
                if self.kind != "memory":
                    meta.close()
                chunks.close()
                return

    def reopen(self, p: Pfs) -> Pfs:
        """Close `p` (and, for RocksDB, its database) and open a new Pfs on the same data."""
        self.close(p)
        return self()

    def close_all(self) -> None:
        for p, _, _ in list(self.open):
            self.close(p)
        if self._memory_meta is not None:
            self._memory_meta.close()


@pytest.fixture(scope="session")
def s3_chunk_bucket(seaweed_server) -> str:
    """One bucket for the S3 variant's chunks; each test gets its own prefix in it."""
    return seaweed_server.new_bucket()


@pytest.fixture(params=["memory", "rocks", pytest.param("s3", marks=pytest.mark.s3)])
def make_pfs(request, tmp_path):
    s3 = None
    if request.param == "s3":
        s3 = (request.getfixturevalue("seaweed_server"), request.getfixturevalue("s3_chunk_bucket"),
              f"core/{uuid.uuid4().hex}")
    f = Factory(tmp_path, request.param, s3)
    try:
        yield f
    finally:
        f.close_all()


@pytest.fixture
def pfs(make_pfs) -> Pfs:
    return make_pfs()
