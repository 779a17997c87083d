"""pps.worker.sandbox and pps.worker.usercode on their own: images, path rewriting, the sandbox
command line (run for real, by bwrap and by pps/worker/userns.py), user processes (timeouts,
process groups, logs)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from pps.worker import sandbox as sb
from pps.worker.usercode import UserProcess, stdin_bytes
from tests.tools import SANDBOXES


def test_image_names_map_to_local_dirs(tmp_path):
    assert sb.image_name("lbliii/video_mp4_converter:1.0.14") == "video_mp4_converter"
    assert sb.image_name("registry:5000/a/b/python-opencv:1.0@sha256:abc") == "python-opencv"
    assert sb.image_name("ubuntu") == "ubuntu"
    (tmp_path / "two" / "tool").mkdir(parents=True)
    (tmp_path / "one").mkdir()
    dirs = [tmp_path / "one", tmp_path / "two", tmp_path / "missing"]
    assert sb.resolve_image("x/tool:3", dirs) == (tmp_path / "two" / "tool").resolve()
    assert sb.resolve_image("ubuntu:20.04", dirs) is None


def test_image_entries_skip_reserved_names(tmp_path):
    for name in ("run.py", "etc", "tmp", "pfs", "lib", "data"):
        (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("")
    assert sb.image_entries(tmp_path, ["/opt/venv"]) == ["data", "run.py"]
    (tmp_path / "opt").mkdir()
    assert "opt" not in sb.image_entries(tmp_path, ["/opt/venv"])


def test_path_rewriter_replaces_whole_components(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "tool.py").write_text("")
    rw = sb.PathRewriter("/scratch/w0/pfs", tmp_path / "img")
    assert rw.active
    assert rw("/pfs/out/") == "/scratch/w0/pfs/out/"
    assert rw("--input=/pfs/in") == "--input=/scratch/w0/pfs/in"
    assert rw("cp /pfs/a/x /pfs/out") == "cp /scratch/w0/pfs/a/x /scratch/w0/pfs/out"
    assert rw("/pfsx /a/pfs pfs") == "/pfsx /a/pfs pfs"
    assert rw("python3 /tool.py") == f"python3 {tmp_path}/img/tool.py"
    assert rw.env({"in": "/pfs/in/a"}) == {"in": "/scratch/w0/pfs/in/a"}
    ident = sb.PathRewriter("/pfs")
    assert not ident.active and ident("/pfs/out") == "/pfs/out"


def test_worker_env_puts_the_venv_first():
    env = sb.worker_env({"X": "1"})
    assert env["PATH"].split(":")[0] == f"{sys.prefix}/bin"
    assert env["X"] == "1" and env["PACH_IN_WORKER"] == "true"
    assert str(sb.PROJECT_DIR) in env["PYTHONPATH"]


@pytest.mark.parametrize("mode", SANDBOXES)
def test_sandbox_sees_pfs_image_and_python(tmp_path, mode):
    pfs = tmp_path / "pfs"
    (pfs / "in").mkdir(parents=True)
    (pfs / "in" / "a.txt").write_text("hello")
    img = tmp_path / "img"
    img.mkdir()
    (img / "tool.py").write_text("import yaml, grpc\nprint('tool ok')\n")
    script = ("cat /pfs/in/a.txt; echo; python3 /tool.py; echo x > /pfs/out.txt; "
              "ls / | tr '\\n' ' '; echo; test -w /usr && echo usr-writable || echo usr-ro; "
              f"test -e {tmp_path} && echo host-visible || echo host-hidden")
    cmd = sb.sandbox_command(mode, ["sh", "-c", script], pfs, img)
    out = subprocess.run(cmd, env=sb.worker_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "hello" and lines[1] == "tool ok"
    assert {"pfs", "tool.py", "usr", "tmp", "proc", "dev"} <= set(lines[2].split())
    assert lines[3] == "usr-ro" and lines[4] == "host-hidden"
    assert (pfs / "out.txt").read_text() == "x\n"  # /pfs is the scratch dir, read-write


@pytest.mark.parametrize("mode", SANDBOXES)
def test_python_and_project_under_tmp_stay_visible(tmp_path, monkeypatch, mode):
    """A CI clone keeps its venv under /tmp; the sandbox's fresh /tmp must not hide it."""
    under_tmp = tmp_path / "clone" / ".venv"
    under_tmp.mkdir(parents=True)
    (under_tmp / "marker").write_text("venv here")
    assert str(under_tmp).startswith("/tmp/")
    real = sb.python_paths()
    monkeypatch.setattr(sb, "python_paths", lambda: real + [str(under_tmp)])
    pfs = tmp_path / "pfs"
    pfs.mkdir()
    cmd = sb.sandbox_command(mode, ["cat", str(under_tmp / "marker")], pfs)
    out = subprocess.run(cmd, env=sb.worker_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "venv here"


def test_user_process_streams_lines_and_stdin():
    lines: list[str] = []
    p = UserProcess(["sh", "-c", "cat; echo err >&2; printf 'no newline'"], {"PATH": os.environ["PATH"]},
                    None, stdin_bytes(["a", "b"]), lines.append)
    assert p.run(10) == 0
    assert lines == ["a", "b", "err", "no newline"]
    assert stdin_bytes([]) == b"\n"


def test_user_process_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child"
    p = UserProcess(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], {"PATH": os.environ["PATH"]},
                    None, None, lambda s: None)
    t0 = time.monotonic()
    code = p.run(0.5)
    assert code < 0 and "timed out" in p.killed
    assert time.monotonic() - t0 < 5
    child = int(pidfile.read_text())
    time.sleep(0.1)
    assert not _alive(child)


def test_user_process_kill_from_another_thread():
    p = UserProcess(["sleep", "60"], {"PATH": os.environ["PATH"]}, None, None, lambda s: None)
    threading.Timer(0.3, p.kill, ("datum restarted",)).start()
    assert p.run(None) < 0 and p.killed == "datum restarted"


def test_user_process_missing_command():
    p = UserProcess(["/no/such/binary"], {}, None, None, lambda s: None)
    with pytest.raises(OSError):
        p.run(1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
