"""Who may mount, on real FUSE: a machine without /dev/fuse and a user without permission on
it each get one clear line (and nothing mounted); a normal (non-root) user mounts through the
setuid fusermount3, writes, unmounts with `pachctl unmount`, and the writes are one commit.

As root the tests make what they need: a private mount namespace (`unshare --mount`) whose
/dev has no fuse node, whose /dev/fuse is a root-only file, or (for the normal user: libfuse
opens /dev/fuse as the user and this machine's is root-only) a 0666 node of the FUSE device;
and a user (`useradd`) that runs pachctl with `setpriv`. Each skips naming what it lacks.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from pachctl.mount import unmount as um
from tests.mount.conftest import pytestmark, repo_msg  # noqa: F401
from tests.mount.test_write import commits, tree

ROOT = Path(__file__).resolve().parents[2]
USER = "pachmount"


def _need_root_and(*tools):
    if os.geteuid() != 0:
        pytest.skip("needs root (to make a mount namespace and a test user)")
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"needs `{t}` (util-linux / passwd) on PATH")


def _pachctl(*args) -> list[str]:
    return [sys.executable, "-m", "pachctl", *map(str, args)]


def _in_namespace(script: str, env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
                       env=env, capture_output=True, text=True, timeout=120)
    if "unshare failed" in r.stderr or "Operation not permitted" in r.stderr and "unshare" in r.stderr:
        pytest.skip(f"cannot make a mount namespace here: {r.stderr.strip()}")
    return r


def test_no_dev_fuse_is_one_clear_line(mounter, put, tmp_path):
    _need_root_and("unshare")
    put("r", {"/f": b"1"})
    mp = tmp_path / "mnt"
    mp.mkdir()
    keep = tmp_path / "realdev"
    keep.mkdir()
    # a /dev with null, zero and urandom but no fuse, in this process's mount namespace only
    script = f"""
mount --bind /dev {keep}
mount -t tmpfs tmpfs /dev
for n in null zero random urandom; do touch /dev/$n; mount --bind {keep}/$n /dev/$n; done
exec {' '.join(_pachctl('mount', mp, '-r', 'r'))}
"""
    r = _in_namespace(script, mounter.env)
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FUSE is not available: /dev/fuse does not exist"), r.stderr
    assert um.find(str(mp)) is None and os.listdir(mp) == []


@pytest.fixture
def test_user():
    """A normal user that can run this checkout's pachctl (created once, kept)."""
    _need_root_and("useradd", "setpriv")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot create a test user with useradd: {r.stderr.strip()}")
        pw = pwd.getpwnam(USER)
    python = _python_for(pw)
    base = Path(tempfile.mkdtemp(prefix="pach-nonroot-"))
    os.chmod(base, 0o755)
    home = base / "home"
    home.mkdir()
    os.chown(home, pw.pw_uid, pw.pw_gid)
    try:
        yield pw, python, home
    finally:
        for m in um.mounts():
            if m.mountpoint.startswith(str(base)):
                subprocess.run(["fusermount3", "-u", "-z", m.mountpoint], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _python_for(pw) -> str:
    """A Python the test user can run with this venv's packages on its path."""
    site = sysconfig.get_paths()["purelib"]
    probe = "import grpc, pyfuse3, trio, click, google.protobuf"
    for candidate in (sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        if not os.path.exists(candidate):
            continue
        r = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                            candidate, "-c", probe], env={"PYTHONPATH": f"{ROOT}:{site}", "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True)
        if r.returncode == 0:
            return candidate
    pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} that the user {USER} can run "
                f"with this venv's packages ({sys.executable} is not readable by other users, and "
                f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor} is missing or cannot "
                f"load them)")


def _as_user(pw, python, home, env, *args, path="/usr/bin:/bin"):
    e = {"HOME": str(home), "PATH": path, "PYTHONPATH": f"{ROOT}:{sysconfig.get_paths()['purelib']}",
         "PACH_CONFIG": str(home / "config.json"), "PACHD_ADDRESS": env["PACHD_ADDRESS"],
         "PACHCTL_NO_AUTOSTART": "1", "NO_COLOR": "1"}
    argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", python, "-m", "pachctl",
            *map(str, args)]
    return argv, e


def test_normal_user_mounts_through_fusermount3_and_commits(test_user, env, put, client):
    """libfuse opens /dev/fuse as the user, so the user needs access to it (distributions make
    it 0666); here it is root-only, so the test gives the user a 0666 node of the same device
    in a private mount namespace, and does everything (mount, I/O, unmount) in there."""
    _need_root_and("unshare", "mknod")
    pw, python, home = test_user
    put("r", {"/f": b"from root"})
    before = commits(client, "r")
    base = home.parent
    mp = home / "mnt"
    mp.mkdir()
    os.chown(mp, pw.pw_uid, pw.pw_gid)
    argv, e = _as_user(pw, python, home, env, "mount", mp, "-r", "r+w")
    uargv, _ = _as_user(pw, python, home, env, "unmount", mp)
    setpriv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    q = lambda argv: " ".join(f"'{a}'" for a in argv)  # noqa: E731
    exports = "".join(f"export {k}='{v}'\n" for k, v in e.items() if k != "PATH")
    io = f'cat {mp}/r/f; printf "by {USER}" > {mp}/r/mine; cat {mp}/r/mine'
    script = f"""
mknod -m 666 {base}/fuse c 10 229
mount --bind {base}/fuse /dev/fuse
{exports}
{q(argv)} > {base}/mount.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; fusermount3 -u -z {mp} 2>/dev/null; true' EXIT
n=0
until grep -q "mounted " {base}/mount.log; do
  kill -0 $pid 2>/dev/null || {{ echo "mount exited: $(cat {base}/mount.log)"; exit 3; }}
  n=$((n+1)); [ $n -lt 1200 ] || {{ echo "mount did not come up: $(cat {base}/mount.log)"; kill $pid; exit 4; }}
  sleep 0.1
done
grep " {mp} " /proc/self/mountinfo > {base}/mountinfo
{q(setpriv)} sh -ec {q([io])} > {base}/io.out
{q(uargv)} > {base}/unmount.log 2>&1
rc=0
wait $pid || rc=$?
trap - EXIT
echo "exit $rc" >> {base}/mount.log
"""
    r = _in_namespace(script, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if "mknod:" in r.stderr:
        pytest.skip(f"cannot make a FUSE device node for the test user here: {r.stderr.strip()}")
    assert r.returncode == 0, (r.stdout, r.stderr, (base / "mount.log").read_text() if (base / "mount.log").exists() else "")
    mountinfo = (base / "mountinfo").read_text()
    assert "fuse.pfs" in mountinfo and f"user_id={pw.pw_uid}" in mountinfo, mountinfo  # mounted as the user
    assert (base / "io.out").read_text() == f"from rootby {USER}"
    assert (base / "mount.log").read_text().rstrip().endswith("exit 0"), (base / "mount.log").read_text()
    assert len(commits(client, "r")) == len(before) + 1
    assert tree(client, "r") == {"/f": b"from root", "/mine": f"by {USER}".encode()}


def test_no_permission_on_dev_fuse_is_one_clear_line(test_user, env, put, tmp_path):
    """A user who cannot open /dev/fuse (a root-only file bound over it; libfuse opens it as
    the user, fusermount3 only mounts)."""
    _need_root_and("unshare")
    pw, python, home = test_user
    put("r", {"/f": b"1"})
    mp = home / "mnt2"
    mp.mkdir()
    os.chown(mp, pw.pw_uid, pw.pw_gid)
    locked = home.parent / "fuse-root-only"
    locked.write_bytes(b"")
    os.chmod(locked, 0o600)
    argv, e = _as_user(pw, python, home, env, "mount", mp, "-r", "r")
    exports = "".join(f"export {k}='{v}'\n" for k, v in e.items() if k != "PATH")
    script = f"mount --bind {locked} /dev/fuse\n{exports}exec " + " ".join(f"'{a}'" for a in argv)
    r = _in_namespace(script, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot open /dev/fuse: permission denied"), r.stderr
    assert um.find(str(mp)) is None
