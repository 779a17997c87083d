"""Fixtures for the S3 gateway tests: a core on a temp dir, a gateway on 127.0.0.1:0, clients.

Every test talks real HTTP to a real `S3Gateway`; clients are the real libraries (boto3,
minio-py, s3fs, the aws CLI), configured for path-style addressing.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from pfs.core import Pfs  # noqa: E402
from pfs.model import Branch, Repo  # noqa: E402
from pfs.s3gateway import S3Gateway  # noqa: E402
from pfs.storage import LocalChunkStore, MemoryMetadataStore  # noqa: E402
from tests.s3servers import moto_server  # noqa: E402,F401 - fixture for remote chunk stores

TOKEN = "pachyderm-test-token-0123456789abcdef"


def boto3_client(endpoint: str, key: str = "anything", secret: str = "anything", **config):
    import boto3
    from botocore.config import Config
    cfg = {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}}
    cfg.update(config)
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret, config=Config(**cfg))


@pytest.fixture
def pfs(tmp_path):
    chunks = LocalChunkStore(tmp_path / "chunks")
    meta = MemoryMetadataStore()
    p = Pfs(meta, chunks)
    try:
        yield p
    finally:
        p.close()
        chunks.close()
        meta.close()


@pytest.fixture
def gateway(pfs):
    gw = S3Gateway(pfs, "127.0.0.1", 0).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def auth_gateway(pfs):
    gw = S3Gateway(pfs, "127.0.0.1", 0, auth_token=TOKEN).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def s3(gateway):
    c = boto3_client(gateway.endpoint_url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def repo(pfs):
    """Repo `data` (project default) with branch master holding two files."""
    r = Repo("default", "data")
    pfs.create_repo(r)
    pfs.create_branch(Branch(r, "master"))
    with pfs.open_writer(r, "master") as w:
        w.put("/a.txt", [b"alpha"])
        w.put("/dir/b.csv", [b"x,y\n1,2\n3,4\n"])
    return r
