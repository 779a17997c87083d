"""enterprise_v2, license_v2, identity_v2 and auth_v2 answer as an unlicensed Pachyderm with
auth off does, through both official clients; python-pachyderm's `delete_all` (which probes
identity, auth and license first) resets the cluster."""
from __future__ import annotations

import textwrap

import grpc
import pytest
from pachyderm_sdk.api import enterprise
from pachyderm_sdk.errors import AuthServiceNotActivated

from pachd.server import Pachd
from tests.compat.helpers import run_pp


def _err(fn, **kw):
    with pytest.raises(grpc.RpcError) as ei:
        fn(**kw)
    return ei.value.code(), ei.value.details()


def test_enterprise_state_is_none_and_heartbeat_says_not_enabled(client):
    assert client.enterprise.get_state().state == enterprise.State.NONE
    assert client.enterprise.get_activation_code().state == enterprise.State.NONE
    assert client.enterprise.pause_status().status == enterprise.PauseStatusResponsePauseStatus.UNPAUSED
    assert _err(client.enterprise.heartbeat) == (grpc.StatusCode.UNIMPLEMENTED,
                                                 "cluster does not have enterprise features enabled")
    client.enterprise.deactivate()  # nothing to deactivate: succeeds, as in Pachyderm
    assert _err(client.enterprise.pause) == (grpc.StatusCode.UNKNOWN, "this pachd instance is not in a pausable mode")
    assert _err(client.enterprise.unpause)[1] == "this pachd instance is not in an unpausable mode"


def test_enterprise_activate_asks_the_license_server(client, pachd):
    # the license server (this very pachd) knows no cluster "c1"
    code, msg = _err(client.enterprise.activate, license_server=f"grpc://localhost:{pachd.port}", id="c1", secret="s")
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert msg == 'got 0, want 1 for cluster id "c1": cluster ID or secret is not valid'
    # an unreachable license server: its connection error comes back
    code, msg = _err(client.enterprise.activate, license_server="grpc://127.0.0.1:1", id="c1", secret="s")
    assert (code, msg) == (grpc.StatusCode.UNAVAILABLE, "cannot reach the license server grpc://127.0.0.1:1")
    assert client.enterprise.get_state().state == enterprise.State.NONE  # nothing stored


def test_license_server_without_a_license(client):
    assert client.license.get_activation_code().state == enterprise.State.NONE
    assert client.license.list_clusters().clusters == []
    assert client.license.list_user_clusters().clusters == []
    client.license.delete_all()
    client.license.delete_cluster(id="nope")
    assert _err(client.license.add_cluster, id="c", address="grpc://x:1") == (
        grpc.StatusCode.UNKNOWN, "enterprise license is not valid - NONE")
    assert _err(client.license.update_cluster, id="c")[1] == "No cluster fields were provided to the UpdateCluster RPC"
    client.license.update_cluster(id="c", address="grpc://x:1")
    assert _err(client.license.activate, activation_code="not base64!") == (
        grpc.StatusCode.UNKNOWN, "error validating activation code: activation code is not base64 encoded")
    assert _err(client.license.activate, activation_code="bm90IGpzb24=")[1] == (
        "error validating activation code: activation code is not valid JSON")
    code, msg = _err(client.license.activate, activation_code="eyJ0b2tlbiI6IngiLCJzaWduYXR1cmUiOiJhYmNkIn0=")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "does not implement Pachyderm Enterprise" in msg
    assert client.license.get_activation_code().state == enterprise.State.NONE


def test_identity_and_auth_say_not_activated(client):
    for fn in (client.identity.delete_all, client.identity.list_idp_connectors, client.identity.get_identity_server_config,
               client.auth.who_am_i, client.auth.deactivate, client.auth.get_configuration):
        with pytest.raises(AuthServiceNotActivated):
            fn()
    # (auth Activate works without a license here: tests/auth covers it)


def test_with_the_shared_token_identity_names_why_and_activate_says_already(tmp_path):
    from tests.sdk_clients import sdk_clients
    p = Pachd(tmp_path / "p", port=0, host="127.0.0.1", enable_pps=False, auth_token="tok").start()
    try:
        with sdk_clients() as make:
            c = make(p.port, auth_token="tok")
            code, msg = _err(c.identity.list_oidc_clients)
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "--auth-token" in msg
            assert _err(c.auth.activate) == (grpc.StatusCode.UNIMPLEMENTED, "the auth service is already activated")
            # unauthenticated in Pachyderm too: enterprise state, cluster info
            anon = make(p.port)
            assert anon.enterprise.get_state().state == enterprise.State.NONE
            assert anon.admin.inspect_cluster().id
    finally:
        p.stop(grace=0.5)


PP_SCRIPT = textwrap.dedent('''
    import sys, grpc, python_pachyderm
    from python_pachyderm.errors import AuthServiceNotActivated
    from python_pachyderm.service import enterprise_proto
    c = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
    assert c.get_enterprise_state().state == enterprise_proto.State.NONE
    assert c.get_activation_code().state == enterprise_proto.State.NONE
    assert c.get_pause_status().status == 0
    assert list(c.list_clusters()) == [] and list(c.list_user_clusters()) == []
    c.delete_all_license()  # an empty license registry: nothing to delete, no error
    for fn in (c.delete_all_identity, c.deactivate_auth):
        try:
            fn()
            raise SystemExit(f"{fn.__name__} did not fail")
        except AuthServiceNotActivated:  # the client turns Pachyderm's answer into this
            pass
    for fn in (c.who_am_i, c.list_idp_connectors):  # these pass the gRPC error through
        try:
            fn()
            raise SystemExit(f"{fn.__name__} did not fail")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e.code()
            assert e.details() == "the auth service is not activated", e.details()
    try:
        c.activate_auth()
        raise SystemExit("activate_auth did not fail")
    except grpc.RpcError as e:
        assert "Pachyderm Enterprise is not active" in e.details(), e.details()
    c.create_repo("r")
    with c.commit("r", "master") as cm:
        c.put_file_bytes(cm, "/a", b"x")
    c.start_transaction()
    c.delete_all()   # identity, auth and license first, then pipelines, repos, transactions
    assert list(c.list_repo()) == [] and list(c.list_transaction()) == []
    print("ok")
''')


@pytest.mark.slow
def test_python_pachyderm_enterprise_license_identity_and_delete_all(pp_python, pachd_pps):
    run_pp(pp_python, PP_SCRIPT, pachd_pps.port)
