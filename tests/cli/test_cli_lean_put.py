"""`put file` through pachctl.lean_put and pachd.local_put: pachd's local put socket, the
client's descriptor, the same result and the same messages as the full CLI, and a fallback
to the full CLI for everything it does not cover."""
from __future__ import annotations

import array
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pachctl import lean_put
from pachd import local_put
from tests.cli.conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def lean(env, *args, stdout=None):
    out, err = stdout or io.StringIO(), io.StringIO()
    e = {k: v for k, v in env.items() if v is not None}
    code = lean_put.run([str(a) for a in args], env=e, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def stored(client, repo, path) -> bytes:
    from proto.pfs_v2 import pfs_pb2 as pfs
    r = pfs.Repo(name=repo, type="user", project=pfs.Project(name="default"))
    req = pfs.GetFileRequest(file=pfs.File(commit=pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name="master")),
                                           path=path))
    return b"".join(m.value for m in client.pfs.GetFile(req))


@pytest.fixture
def repo(ok):
    ok("create", "repo", "r")
    return "r"


@pytest.fixture
def src(tmp_path):
    p = tmp_path / "src.bin"
    p.write_bytes(os.urandom(3 * MiB + 17))
    return p


def test_the_names_match_pachd():
    assert lean_put.SOCKET_PREFIX == local_put.SOCKET_PREFIX
    assert lean_put.PROTOCOL_VERSION == local_put.PROTOCOL_VERSION
    from pachctl import transfer
    assert lean_put.LOCAL_UPLOAD_ENV == transfer.LOCAL_UPLOAD_ENV


def test_put_goes_through_pachds_socket_and_stores_the_file(pachd, env, repo, src, client, ok):
    assert lean(env, "put", "file", "r@master:/a.bin", "-f", src) == (0, "", "")
    assert pachd.local_puts.served == 1
    assert stored(client, "r", "/a.bin") == src.read_bytes()
    ok("put", "file", "r@master:/b.bin", "-f", src)  # the full CLI, for comparison
    listing = ok("list", "file", "r@master").splitlines()
    assert listing[1].split()[0] == listing[2].split()[0]  # the same size either way
    assert lean(env, "put", "file", "r@master", "-f", src) == (0, "", "")  # no path: the base name
    assert stored(client, "r", "/src.bin") == src.read_bytes()
    assert len(ok("list", "commit", "r").splitlines()) == 1 + 3  # one commit a put, as the full CLI


def test_overwrite_append_and_directory_targets(pachd, env, repo, src, client):
    small = src.parent / "small.txt"
    small.write_bytes(b"hello\n")
    assert lean(env, "put", "file", "r@master:/x", "-f", src)[0] == 0
    assert lean(env, "put", "file", "r@master:/x", "-f", small)[0] == 0  # overwrites
    assert stored(client, "r", "/x") == b"hello\n"
    assert lean(env, "put", "file", "r@master:/x", "--append", "-f", small)[0] == 0
    assert lean(env, "put", "file", "-a", "r@master:/x", "--file=" + str(small))[0] == 0
    assert stored(client, "r", "/x") == b"hello\n" * 3
    assert lean(env, "put", "file", "r@master:/dir/", "-f", small, "-p", "4", "-c", "--no-progress")[0] == 0
    assert stored(client, "r", "/dir/small.txt") == b"hello\n"
    assert pachd.local_puts.served == 5


@pytest.mark.parametrize("args", [
    ["nope@master:/a"],  # no such repo (InspectRepo)
    ["r@master:/a*b"],  # a path pachd refuses (ModifyFile)
    ["r@0123456789ab4def8123456789abcdef:/a"],  # no such commit
    ["r@master:/a", "--project", "nope"],  # no such project
    ["r.spec@master:/a"],  # a repo type with no such repo
], ids=["repo", "path", "commit", "project", "type"])
def test_errors_are_the_full_clis(pachd, env, repo, src, pachctl, args):
    full = pachctl("put", "file", *args, "-f", src)
    assert full.exit_code == 1 and full.stderr
    assert lean(env, "put", "file", *args, "-f", src) == (1, "", full.stderr)


@pytest.mark.parametrize("args", [
    ["put", "file", "r@master:/a"],  # stdin
    ["put", "file", "r@master:/a", "-f", "-"],
    ["put", "file", "r@master:/a", "-f", "{src}", "-f", "{src}"],
    ["put", "file", "-r", "r@master:/a", "-f", "{dir}"],
    ["put", "file", "r@master:/a", "-f", "{dir}"],  # a directory without -r: the full CLI's error
    ["put", "file", "r@master:/a", "-f", "{missing}"],  # its error too
    ["put", "file", "r@master:/a", "-f", "http://127.0.0.1:1/x"],
    ["put", "file", "r@master:/a", "-f", "{src}", "--progress"],
    ["put", "file", "r@master:/a", "-f", "{src}", "--untar"],
    ["put", "file", "r@master:/a", "-f", "{src}", "-i", "list.txt"],
    ["put", "file", "r@master:/a", "-f", "{src}", "-p", "many"],
    ["put", "file", "r@master:/a", "-f", "{src}", "--help"],
    ["put", "file", "r@master:/a", "-f", "{src}", "--bogus"],
    ["put", "file", "r@master:/a", "r@master:/b", "-f", "{src}"],
    ["put", "file", "-f", "{src}"],
    ["put", "file", "r@master:/a", "-f"],
    ["-v", "put", "file", "r@master:/a", "-f", "{src}"],
    ["--rpc-timeout", "5s", "put", "file", "r@master:/a", "-f", "{src}"],
    ["put", "commit", "r@master:/a", "-f", "{src}"],
    ["get", "file", "r@master:/a"],
])
def test_what_it_does_not_cover_is_left_to_the_full_cli(pachd, env, repo, src, tmp_path, args):
    (tmp_path / "d").mkdir(exist_ok=True)
    subst = {"src": str(src), "dir": str(tmp_path / "d"), "missing": str(tmp_path / "missing")}
    assert lean(env, *[a.format(**subst) for a in args]) == (None, "", "")
    assert pachd.local_puts.served == 0


def test_turned_off_or_a_terminal_bar_or_a_remote_address_is_left_to_the_full_cli(pachd, env, repo, src):
    args = ("put", "file", "r@master:/a", "-f", src)
    assert lean({**env, "PACHCTL_LOCAL_UPLOAD": "0"}, *args)[0] is None
    assert lean({**env, "PACHD_ADDRESS": f"grpcs://localhost:{pachd.port}"}, *args)[0] is None
    assert lean({**env, "PACHD_ADDRESS": f"192.0.2.1:{pachd.port}"}, *args)[0] is None

    class Tty(io.StringIO):
        def isatty(self):
            return True
    assert lean(env, *args, stdout=Tty())[0] is None  # the full CLI draws the bar
    assert lean(env, *args, "--no-progress", stdout=Tty())[0] == 0
    assert pachd.local_puts.served == 1


def test_no_socket_means_the_full_cli(pachd, env, repo, src):
    pachd.local_puts.stop()
    assert lean(env, "put", "file", "r@master:/a", "-f", src) == (None, "", "")


def test_the_socket_is_owned_by_pachds_user(pachd):
    assert os.geteuid() in lean_put._listener_uids(pachd.port)
    conn = lean_put._connect(pachd.port)
    assert conn is not None
    conn.close()
    assert lean_put._connect(1) is None  # nobody serves port 1


def _raw(pachd, body: bytes, fd=None) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect("\0" + local_put.socket_name(pachd.port))
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
        s.sendmsg([body], anc)
        data = b""
        while not data.endswith(b"\n"):
            more = s.recv(4096)
            assert more, data
            data += more
    return json.loads(data)


def _request(path="/a", repo="r") -> dict:
    r = {"name": repo, "type": "user", "project": {"name": "default"}}
    return {"v": 1, "metadata": [], "repo": r, "commit": {"repo": r, "branch": {"repo": r, "name": "master"}},
            "path": path, "append": False}


def test_pachd_refuses_bad_requests_before_doing_anything(pachd, repo, src, client):
    with open(src, "rb") as f:
        assert "fallback" in _raw(pachd, json.dumps(_request()).encode() + b"\n")  # no descriptor
        assert "fallback" in _raw(pachd, b"{not json\n", f.fileno())
        assert "fallback" in _raw(pachd, json.dumps({**_request(), "v": 99}).encode() + b"\n", f.fileno())
        assert "fallback" in _raw(pachd, json.dumps({**_request(), "repo": {"nme": 1}}).encode() + b"\n", f.fileno())
    r, w = os.pipe()
    try:
        reply = _raw(pachd, json.dumps(_request()).encode() + b"\n", r)
    finally:
        os.close(r)
        os.close(w)
    assert reply["code"] == "INVALID_ARGUMENT" and "regular file" in reply["details"], reply
    with open(src, "wb") as f:  # open for writing only: pachd cannot read it
        reply = _raw(pachd, json.dumps(_request()).encode() + b"\n", f.fileno())
    assert reply["code"] == "INVALID_ARGUMENT" and "cannot read the file for /a" in reply["details"], reply
    from proto.pfs_v2 import pfs_pb2 as pfs
    listed = list(client.pfs.ListCommit(pfs.ListCommitRequest(
        repo=pfs.Repo(name="r", type="user", project=pfs.Project(name="default")))))
    assert listed == []  # nothing was written by any of them
    assert len(os.listdir(f"/proc/{os.getpid()}/fd")) < 200  # and no descriptor was kept


def test_the_lean_path_loads_neither_grpc_nor_click_nor_protobuf(pachd, env, repo, src):
    code = ("import sys\nfrom pachctl import lean_put\n"
            f"rc = lean_put.run(['put', 'file', 'r@master:/a', '-f', {str(src)!r}])\n"
            "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'grpc', 'click', 'google', 'rich'}))")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(env), capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.stdout.split(None, 1) == ["0", "[]\n"], out.stderr
    assert pachd.local_puts.served == 1


def test_the_console_script_takes_the_lean_path_and_falls_back(console_script, pachd, env, repo, src, client):
    e = subprocess_env(env)
    r = subprocess.run(console_script + ["put", "file", "r@master:/a", "-f", str(src)], env=e, capture_output=True,
                       text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert pachd.local_puts.served == 1 and stored(client, "r", "/a") == src.read_bytes()
    r = subprocess.run(console_script + ["put", "file", "r@master:/b"], env=e, input="from stdin",
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert pachd.local_puts.served == 1 and stored(client, "r", "/b") == b"from stdin"
    r = subprocess.run(console_script + ["put", "file", "nope@master:/a", "-f", str(src)], env=e,
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "repo default/nope not found\n")
