"""python-pachyderm 7.6.0 (its own venv) over TLS with auth on: the root token and a robot
user's token in the client, the server's certificate as its root_certs."""
from __future__ import annotations

import subprocess
import textwrap

import pytest

from pachd.server import Pachd
from tests.tlscerts import make_cert

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    import sys, grpc, python_pachyderm
    port, cert, root = int(sys.argv[1]), open(sys.argv[2], "rb").read(), sys.argv[3]
    c = python_pachyderm.Client(host="localhost", port=port, auth_token=root, root_certs=cert, tls=True)
    assert c.who_am_i().username == "pach:root"
    c.create_repo("tls")
    with c.commit("tls", "master") as commit:
        c.put_file_bytes(commit, "/a.txt", b"over tls")
    assert c.get_file(("tls", "master"), "/a.txt").read() == b"over tls"
    bot = c.get_robot_token("reader")  # python-pachyderm returns the token string
    c.modify_role_binding(python_pachyderm.service.auth_proto.Resource(
        type=python_pachyderm.service.auth_proto.ResourceType.REPO, name="default/tls"), "robot:reader",
        roles=["repoReader"])
    r = python_pachyderm.Client(host="localhost", port=port, auth_token=bot, root_certs=cert, tls=True)
    assert r.who_am_i().username == "robot:reader"
    assert r.get_file(("tls", "master"), "/a.txt").read() == b"over tls"
    try:
        r.delete_repo("tls")
        raise SystemExit("a reader deleted the repo")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
    # the token and the CA from a pachctl config file, as `pachctl auth login` leaves them
    import base64, json, tempfile
    cfg = {"v2": {"active_context": "tls", "contexts": {"tls": {
        "pachd_address": "grpcs://localhost:%d" % port, "session_token": bot,
        "server_cas": base64.b64encode(cert).decode()}}}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    with open(f.name) as cf:  # python-pachyderm takes an open file
        fc = python_pachyderm.Client.new_from_config(cf)
    assert fc.who_am_i().username == "robot:reader"
    assert fc.get_file(("tls", "master"), "/a.txt").read() == b"over tls"
    print("ok")
''')


def test_python_pachyderm_over_tls_with_auth(pp_python, tmp_path):  # noqa: F811
    cert, key = make_cert(tmp_path / "tls")
    pd = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", s3_gateway_port=None, enable_pps=False,
               tls_cert=str(cert), tls_key=str(key)).start()
    try:
        from pachyderm_sdk import Client
        c = Client(host="localhost", port=pd.port, tls=True, root_certs=cert.read_bytes())
        try:
            root = c.auth.activate().pach_token
        finally:
            c._channel.close()
        r = subprocess.run([str(pp_python), "-c", SCRIPT, str(pd.port), str(cert), root],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    finally:
        pd.stop(grace=1.0)
