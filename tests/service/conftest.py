"""Fixtures for the service tests: an in-process pachd on a loopback port, driven by the
unmodified `pachyderm_sdk` 2.12.2 client.

- `pachd`: a fresh in-process `Pachd` (pfs only) on a free port, stopped at the end.
- `client`: a `pachyderm_sdk.Client` on it; its channel is closed at the end.
- `make_client(**kw)`: more clients (other tokens); all closed at the end.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pachyderm_sdk import Client  # noqa: E402

from pfs.service.pachd import Pachd  # noqa: E402


@pytest.fixture
def pachd(tmp_path):
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", enable_pps=False).start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


@pytest.fixture
def make_client(pachd):
    clients: list = []

    def make(**kw) -> Client:
        c = Client(host="localhost", port=pachd.port, **kw)
        clients.append(c)
        return c

    try:
        yield make
    finally:
        for c in clients:
            c._channel.close()


@pytest.fixture
def client(make_client) -> Client:
    return make_client()
