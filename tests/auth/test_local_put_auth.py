"""The lean `put file` (pachctl.lean_put through pachd.local_put) checks a caller exactly as
the full CLI's put does: the same refusals, the same messages, nothing written."""
from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from pachctl import lean_put
from pachctl.main import cli
from pfs.model import Repo


@pytest.fixture
def secret(server, root):
    server.pfs.create_repo(Repo("default", "secret"))
    server.pfs.put_bytes(Repo("default", "secret"), "master", "/a.txt", b"old\n")


def _env(server, tmp_path, token: str) -> dict:
    cfg = tmp_path / f"config-{len(token)}-{token[:6]}.json"
    ctx = {"pachd_address": f"grpc://127.0.0.1:{server.port}"}
    if token:
        ctx["session_token"] = token
    cfg.write_text(json.dumps({"user_id": "0" * 32, "v2": {"active_context": "default",
                                                           "contexts": {"default": ctx}, "metrics": False}}))
    return {"PACH_CONFIG": str(cfg), "PACHCTL_NO_AUTOSTART": "1", "HOME": str(tmp_path), "NO_COLOR": "1"}


def _both(server, tmp_path, token: str, src) -> tuple:
    env = _env(server, tmp_path, token)
    args = ["put", "file", "secret@master:/a.txt", "-f", str(src)]
    out, err = io.StringIO(), io.StringIO()
    code = lean_put.run(args, env=env, stdout=out, stderr=err)
    full = CliRunner().invoke(cli, args, env=env)
    return (code, out.getvalue(), err.getvalue()), (full.exit_code, full.stdout, full.stderr)


def _content(server) -> bytes:
    ci = server.pfs.commit_for_read(Repo("default", "secret"), "", "master")
    return b"".join(server.pfs.read_file(ci, "/a.txt")[1])


@pytest.mark.parametrize("who", ["nobody", "reader", "anonymous"])
def test_refused_callers_get_the_full_clis_message_and_nothing_is_written(server, clients, root, secret, tmp_path,
                                                                          who):
    admin = clients(root)
    token = ""
    if who != "anonymous":
        token = admin.auth.get_robot_token(robot=who).token
    if who == "reader":
        from pachyderm_sdk.api import auth
        admin.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name="default/secret"),
                                       principal=f"robot:{who}", roles=["repoReader"])
    src = tmp_path / "new.txt"
    src.write_bytes(b"new\n")
    lean, full = _both(server, tmp_path, token, src)
    assert lean[0] == full[0] == 1, (lean, full)
    assert lean[1:] == full[1:] and lean[2], (lean, full)
    if who == "reader":
        assert "REPO_WRITE" in lean[2]  # got past InspectRepo: refused by ModifyFile's check
    assert _content(server) == b"old\n"
    assert server.local_puts.served == (1 if who == "reader" else 0)


def test_a_writer_puts_through_the_lean_path(server, root, secret, tmp_path):
    src = tmp_path / "new.txt"
    src.write_bytes(b"new\n")
    out, err = io.StringIO(), io.StringIO()
    assert lean_put.run(["put", "file", "secret@master:/a.txt", "-f", str(src)], env=_env(server, tmp_path, root),
                        stdout=out, stderr=err) == 0, err.getvalue()
    assert _content(server) == b"new\n"
    assert server.local_puts.served == 1
