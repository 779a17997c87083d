"""Fixtures for the service tests: an in-process pachd on a loopback port, driven by the
unmodified `pachyderm_sdk` 2.12.2 client.

- `pachd`: a fresh in-process `Pachd` (pfs only) on a free port, stopped at the end. Its
  second parameter, ``s3`` (marked `s3`), is a pachd *process* started as a user would, with
  ``--storage s3://<bucket>/<prefix>`` and the AWS_* variables pointing at SeaweedFS (it has
  `.port` and `.address` like the in-process one); see tests/s3variant.py for which tests run
  it by default and how to run all of them.
- `client`: a `pachyderm_sdk.Client` on it; its channel is closed at the end.
- `make_client(**kw)`: more clients (other tokens); all closed at the end.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pachyderm_sdk import Client  # noqa: E402

from pachd.server import Pachd  # noqa: E402
from tests.sdk_clients import sdk_clients  # noqa: E402


@pytest.fixture(scope="session")
def s3_pachd_bucket(seaweed_server) -> str:
    """One bucket for the S3 variant's pachds; each test's pachd gets its own prefix in it."""
    return seaweed_server.new_bucket()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def pachd(request, tmp_path):
    if request.param == "s3":
        from tests.s3pachd import PachdProc, s3_env
        server = request.getfixturevalue("seaweed_server")
        bucket = request.getfixturevalue("s3_pachd_bucket")
        proc = PachdProc(tmp_path / "pachd", f"s3://{bucket}/service/{uuid.uuid4().hex}", s3_env(server))
        try:
            yield proc
        finally:
            code = proc.stop()
            assert code == 0, f"pachd exited with {code}:\n{proc.log_tail()}"
        return
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", enable_pps=False).start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


@pytest.fixture
def make_client(pachd):
    with sdk_clients() as make:
        yield lambda **kw: make(pachd.port, **kw)


@pytest.fixture
def client(make_client) -> Client:
    return make_client()
