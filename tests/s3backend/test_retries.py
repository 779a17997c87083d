"""Retries with backoff on throttling and 5xx, end to end: pachd (its own process, chunks in
SeaweedFS) talks to S3 through a `FaultProxy` that answers a share of the object PUTs and
GETs with ``503 SlowDown`` or ``500 InternalError``; a 32 MiB put and get still succeed and
the bytes are intact."""
from __future__ import annotations

import hashlib
import io
import random

import pytest
from pachyderm_sdk.api import pfs

from tests.s3backend.helpers import pack_refs_all_exist

pytestmark = pytest.mark.s3
MiB = 1 << 20


def test_32mib_put_and_get_survive_503_slowdown_and_500(proxy, bucket, start_pachd, sdk, raw, seaweed_server):
    data = random.Random(32).randbytes(32 * MiB)
    want = hashlib.sha256(data).hexdigest()
    # every 2nd pack PUT and every 2nd range GET fails (some several times in a row)
    proxy.configure(fail_every={"PUT": 2, "GET": 2}, max_in_a_row=3)
    p = start_pachd(f"s3://{bucket}/pfs", endpoint=proxy.url)
    c = sdk(p)
    repo = pfs.Repo(name="flaky")
    c.pfs.create_repo(repo=repo)
    c.pfs.put_file_from_file(commit=pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master")),
                             path="/big.bin", file=io.BytesIO(data))
    puts_injected = proxy.stats()["injected"].get("PUT", 0)
    with c.pfs.pfs_file(pfs.File.from_uri("flaky@master:/big.bin")) as f:
        got = hashlib.sha256(f.read()).hexdigest()
    assert got == want
    st = proxy.stats()
    # the failures really happened, on both kinds of request, and were retried through
    assert puts_injected >= 1, st
    assert st["injected"].get("GET", 0) >= 3, st
    # 4 packs of 8 MiB; read-ahead reads them in requests of up to 4 MiB
    assert st["forwarded"]["PUT"] >= 4 and st["forwarded"]["GET"] >= 8, st
    info = c.pfs.inspect_file(file=pfs.File.from_uri("flaky@master:/big.bin"))
    assert info.size_bytes == len(data)
    # every pack the chunk index names is really in the bucket
    assert p.stop() == 0
    pack_refs_all_exist(p.root, seaweed_server, bucket, "pfs")


def test_retry_settings_come_from_the_standard_aws_variables(seaweed_server, bucket, monkeypatch):
    s = seaweed_server.store(bucket)
    try:  # defaults: 8 tries in all, standard mode (exponential backoff with jitter)
        assert s.max_attempts == 8
        assert s._client.meta.config.retries == {"total_max_attempts": 8, "mode": "standard"}
    finally:
        s.close()
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    s = seaweed_server.store(bucket)
    try:
        assert s.max_attempts == 3
        assert s._client.meta.config.retries == {"total_max_attempts": 3, "mode": "adaptive"}
    finally:
        s.close()
    s = seaweed_server.store(bucket, max_attempts=5, retry_mode="standard")  # arguments win
    try:
        assert s._client.meta.config.retries == {"total_max_attempts": 5, "mode": "standard"}
    finally:
        s.close()
