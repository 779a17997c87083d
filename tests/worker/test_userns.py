"""pps/worker/userns.py, the sandbox used where bubblewrap is not installed (issue 19): the same
view as bwrap, read-only binds, no privileges, exit statuses, clear errors, nothing left behind;
and `auto` choosing it when bwrap is not on PATH."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pps.worker import sandbox as sb
from tests.tools import needs_bwrap, needs_userns, path_without

pytestmark = needs_userns

# What a process sees of its sandbox; bwrap and userns.py must print the same.
VIEW = ("echo pid=$$ uid=$(id -u) gid=$(id -g) cwd=$(pwd); ls -A / | sort | tr '\\n' ' '; echo; "
        "ls -A /dev | sort | tr '\\n' ' '; echo; ls -A /pfs | sort | tr '\\n' ' '; echo; "
        "for d in / /usr /etc /tmp /dev/shm /pfs /pfs/in; do test -w $d && echo $d rw || echo $d ro; done; "
        "grep NoNewPrivs /proc/self/status; env | sort; cat /pfs/in/a.txt; echo made > /pfs/out/made")


def _pfs(tmp_path):
    pfs = tmp_path / "pfs"
    (pfs / "in").mkdir(parents=True)
    (pfs / "out").mkdir()
    (pfs / "in" / "a.txt").write_text("hello\n")
    return pfs


def _run(cmd, **kw):
    return subprocess.run(cmd, env=sb.worker_env({"X": "1"}), capture_output=True, text=True, timeout=30, **kw)


@needs_bwrap
def test_the_same_view_as_bwrap(tmp_path):
    seen = {}
    for mode in ("bwrap", "userns"):
        pfs = _pfs(tmp_path / mode)
        out = _run(sb.sandbox_command(mode, ["sh", "-c", VIEW], pfs))
        assert out.returncode == 0, out.stderr
        seen[mode] = out.stdout
        assert (pfs / "out" / "made").read_text() == "made\n"
    assert seen["userns"] == seen["bwrap"]
    assert "pid=2 " in seen["userns"] and "/usr ro" in seen["userns"] and "X=1\n" in seen["userns"]


def test_read_only_below_no_privileges_and_files_owned_by_the_caller(tmp_path):
    pfs = _pfs(tmp_path)
    script = ("touch /usr/x 2>/dev/null && echo usr-written; touch /etc/x 2>/dev/null && echo etc-written; "
              "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; echo out > /pfs/out/f")
    out = _run(sb.userns_command(["sh", "-c", script], pfs))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000"]
    assert "usr-written" not in lines and "etc-written" not in lines
    st = (pfs / "out" / "f").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_exit_status_is_the_commands(tmp_path):
    pfs = _pfs(tmp_path)
    assert _run(sb.userns_command(["sh", "-c", "exit 7"], pfs)).returncode == 7
    assert _run(sb.userns_command(["sh", "-c", "kill -TERM $$"], pfs)).returncode == 128 + signal.SIGTERM


def test_clear_errors(tmp_path):
    pfs = _pfs(tmp_path)
    launcher = [sys.executable, "-I", "-S", str(sb.USERNS_LAUNCHER)]
    bad = _run([*launcher, "--cap-add", "ALL", "--", "true"])
    assert (bad.returncode, bad.stderr) == (2, "userns sandbox: unsupported or incomplete option '--cap-add' "
                                                "(this is not bwrap)\n")
    missing = _run([*launcher, "--tmpfs", "/", "--ro-bind", str(tmp_path / "nope"), "/x", "--", "true"])
    assert missing.returncode == 1
    assert missing.stderr == f"userns sandbox: --ro-bind {tmp_path / 'nope'}: No such file or directory\n"
    noexec = _run(sb.userns_command(["no-such-program"], pfs))
    assert noexec.returncode == 1
    assert noexec.stderr == "userns sandbox: exec no-such-program: No such file or directory\n"


def _marked(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"MARK={marker}".encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def _wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_killing_the_launcher_or_its_parent_leaves_nothing(tmp_path):
    pfs = _pfs(tmp_path)
    cmd = sb.userns_command(["sh", "-c", "sleep 60 & sleep 60 & wait"], pfs)
    # the launcher itself killed
    mark = uuid.uuid4().hex
    p = subprocess.Popen(cmd, env=sb.worker_env({"MARK": mark}), stdin=subprocess.DEVNULL)
    assert _wait_until(lambda: len(_marked(mark)) >= 5)  # launcher, PID 1, sh, two sleeps
    p.kill()
    p.wait()
    assert _wait_until(lambda: not _marked(mark)), _marked(mark)
    # the launcher's parent killed (--die-with-parent)
    mark = uuid.uuid4().hex
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])", *cmd],
                              env=sb.worker_env({"MARK": mark}), stdin=subprocess.DEVNULL)
    assert _wait_until(lambda: len(_marked(mark)) >= 6)
    parent.kill()
    parent.wait()
    assert _wait_until(lambda: not _marked(mark)), _marked(mark)


def test_auto_uses_it_when_bwrap_is_not_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", path_without(["bwrap"], tmp_path / "bin"))
    sb.bwrap_usable.cache_clear()
    try:
        assert sb.choose_sandbox("auto") == "userns"
        with pytest.raises(RuntimeError, match=r"apt-get install bubblewrap"):
            sb.choose_sandbox("bwrap")
    finally:
        sb.bwrap_usable.cache_clear()
