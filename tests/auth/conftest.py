"""A pachd with pipelines registered but no workers (PACHD_EXECUTOR=none), auth activated
through the real auth_v2 API, and pachyderm_sdk clients holding a chosen token."""
from __future__ import annotations

import grpc
import pytest

from pachd.server import Pachd
from tests.sdk_clients import sdk_clients


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("PACHD_EXECUTOR", "none")
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1").start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


@pytest.fixture
def clients(server):
    with sdk_clients() as make:
        yield lambda token=None: make(server.port, auth_token=token)


def strip_default_grants(admin) -> None:
    """Activate gives allClusterUsers Pachyderm's defaults (projectCreator on the cluster,
    projectWriter on `default`); tests of one role alone take them away first."""
    from pachyderm_sdk.api import auth
    admin.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.CLUSTER),
                                   principal="allClusterUsers", roles=[])
    admin.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.PROJECT, name="default"),
                                   principal="allClusterUsers", roles=[])


@pytest.fixture
def root(clients):
    """The root token, from a real Activate, without the default grants to allClusterUsers
    (test_defaults checks those)."""
    token = clients().auth.activate().pach_token
    strip_default_grants(clients(token))
    return token


@pytest.fixture
def channel(server):
    ch = grpc.insecure_channel(f"localhost:{server.port}")
    yield ch
    ch.close()
