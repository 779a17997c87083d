"""Fixtures for the client-compatibility tests: a pachd on a loopback port (pfs + pps with
local workers, or pfs only) and unmodified pachyderm-sdk 2.12.2 clients on it.

python-pachyderm 7.6.0 cannot share a venv with pachyderm-sdk (grpc-interceptor, protobuf
pins); `pp_python` (session) builds its own venv once and the tests run scripts in it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pachd.server import Pachd  # noqa: E402
from tests.sdk_clients import sdk_clients  # noqa: E402


@pytest.fixture
def pachd(tmp_path):
    """pfs only (no pipeline system): fast to start and stop."""
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", enable_pps=False).start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


@pytest.fixture
def pachd_pps(tmp_path):
    """pfs + pps with local worker processes."""
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1").start()
    try:
        yield p
    finally:
        p.stop(grace=1.0)


@pytest.fixture
def client(pachd):
    with sdk_clients() as make:
        yield make(pachd.port)


@pytest.fixture
def pps_client(pachd_pps):
    with sdk_clients() as make:
        yield make(pachd_pps.port)


@pytest.fixture(scope="session")
def pp_python():
    """The python of a venv holding python-pachyderm 7.6.0 (see tests/compat/venvs.py)."""
    from tests.compat.venvs import client_python
    return client_python("python-pachyderm-7.6.0", "python-pachyderm==7.6.0", "PP_PYTHON")
