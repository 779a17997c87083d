"""Fixtures for the S3 storage backend's end-to-end checks (issue 5 §4).

Everything here is real: SeaweedFS `weed mini` on loopback (the session's `seaweed_server`,
from tests/conftest.py), a `FaultProxy` (a real HTTP proxy in front of it that injects
throttling, 5xx and dropped connections), and pachd processes started the way a user
starts them: ``pachd --storage s3://bucket/prefix`` with AWS_* variables.

- `bucket`: a fresh, empty bucket on SeaweedFS.
- `proxy`: a `FaultProxy` in front of SeaweedFS, closed at the end.
- `start_pachd(storage, endpoint=None, root=None, **env)`: a `PachdProc` (tests/s3pachd.py)
  on SeaweedFS's credentials, with AWS_ENDPOINT_URL = `endpoint` (default: SeaweedFS
  itself), on a new root (or `root`, to restart on the same metadata); stopped at the end
  (it must exit 0).
- `sdk(pachd)`: a pachyderm_sdk Client on it, channel closed at the end.
- `raw`: a boto3 client straight to SeaweedFS (no proxy), closed at the end.
- `procs`: a list the test appends the `PachdProc`s it starts to (`tests.s3pachd.start_in`);
  each is stopped at the end.
"""
from __future__ import annotations

import pytest

from tests.s3backend.faultproxy import FaultProxy
from tests.s3pachd import PachdProc, s3_env
from tests.sdk_clients import sdk_clients


@pytest.fixture
def procs():
    started: list[PachdProc] = []
    try:
        yield started
    finally:
        for p in started:
            p.stop()


@pytest.fixture
def bucket(seaweed_server) -> str:
    return seaweed_server.new_bucket()


@pytest.fixture
def proxy(seaweed_server):
    p = FaultProxy(seaweed_server.endpoint_url)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def start_pachd(seaweed_server, tmp_path):
    procs: list[PachdProc] = []

    def start(storage: str, endpoint: str | None = None, root=None, **env: str) -> PachdProc:
        root = root or tmp_path / f"pachd{len(procs)}"
        p = PachdProc(root, storage, s3_env(seaweed_server, endpoint, **env))
        procs.append(p)
        return p

    try:
        yield start
    finally:
        codes = [(p, p.stop()) for p in procs]
        bad = [f"pachd exited with {c}:\n{p.log_tail()}" for p, c in codes if c != 0]
        assert not bad, "\n".join(bad)


@pytest.fixture
def sdk():
    with sdk_clients() as make:
        yield lambda pachd, **kw: make(pachd.port, **kw)


@pytest.fixture
def raw(seaweed_server):
    c = seaweed_server.client()
    try:
        yield c
    finally:
        c.close()
