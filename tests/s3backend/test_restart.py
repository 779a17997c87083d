"""A pachd whose chunks are in S3 keeps everything across a restart (SIGTERM, then the same
command again on the same root and bucket): metadata from RocksDB, bytes from the bucket."""
from __future__ import annotations

import random

import pytest
from pachyderm_sdk.api import pfs

pytestmark = pytest.mark.s3
MiB = 1 << 20


def test_restart_reads_chunks_back_from_s3(bucket, start_pachd, sdk):
    data = random.Random(5).randbytes(12 * MiB + 3)
    storage = f"s3://{bucket}/restart"
    p = start_pachd(storage)
    c = sdk(p)
    c.pfs.create_repo(repo=pfs.Repo(name="keep"))
    with c.pfs.commit(branch=pfs.Branch.from_uri("keep@master")) as commit:
        commit.put_file_from_bytes("/big.bin", data)
        commit.put_file_from_bytes("/small.txt", b"small")
    assert p.stop() == 0

    again = start_pachd(storage, root=p.root)
    c2 = sdk(again)
    with c2.pfs.pfs_file(pfs.File.from_uri("keep@master:/big.bin")) as f:
        assert f.read() == data
    with c2.pfs.pfs_file(pfs.File.from_uri("keep@master:/small.txt")) as f:
        assert f.read() == b"small"
    assert c2.pfs.inspect_commit(commit=pfs.Commit.from_uri("keep@master")).commit.id == commit.id
