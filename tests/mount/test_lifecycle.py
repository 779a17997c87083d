"""How mounts end: `pachctl unmount`, `--all`, SIGINT, SIGTERM, `fusermount3 -u`, and a mount
whose process was killed (kill -9) cleared by `pachctl unmount`."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from pachctl.mount import unmount as um
from tests.mount.conftest import pytestmark  # noqa: F401


def _gone(m) -> None:
    assert um.find(str(m.path)) is None
    assert os.listdir(m.path) == []


def test_pachctl_unmount_ends_the_mount_process(mounter, put, tmp_path):
    put("r", {"/f": b"1"})
    m = mounter.mount(tmp_path / "mnt", "-r", "r")
    assert (m.path / "r/f").read_bytes() == b"1"
    r = mounter.unmount(m)
    assert r.returncode == 0, r.stderr
    assert m.proc.returncode == 0
    _gone(m)
    # a read-only mount says nothing about uploading or committing
    assert "commit" not in m.stderr().lower() and "upload" not in m.stderr().lower(), m.stderr()
    r = mounter.pachctl("unmount", m.path)
    assert r.returncode == 1 and "is not mounted" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_unmount_cleanly(mounter, put, tmp_path, sig):
    put("r", {"/f": b"1"})
    m = mounter.mount(tmp_path / "mnt", "-r", "r")
    m.proc.send_signal(sig)
    assert m.proc.wait(timeout=30) == 0, m.stderr()
    _gone(m)
    assert "commit" not in m.stderr().lower(), m.stderr()


def test_fusermount_u_ends_the_mount(mounter, put, tmp_path):
    put("r", {"/f": b"1"})
    m = mounter.mount(tmp_path / "mnt", "-r", "r")
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    subprocess.run([tool, "-u", str(m.path)], check=True)
    assert m.proc.wait(timeout=30) == 0, m.stderr()
    _gone(m)


def test_unmount_all(mounter, put, tmp_path):
    put("r", {"/f": b"1"})
    put("s", {"/g": b"2"})
    a = mounter.mount(tmp_path / "a", "-r", "r")
    b = mounter.mount(tmp_path / "b", "-r", "s")
    r = mounter.pachctl("unmount", "--all", input="n\n")
    assert r.returncode == 1
    assert str(a.path) in r.stdout and str(b.path) in r.stdout
    assert um.find(str(a.path)) is not None  # declined: still mounted
    r = mounter.pachctl("unmount", "--all", input="y\n")
    assert r.returncode == 0, r.stderr
    for m in (a, b):
        assert m.proc.wait(timeout=30) == 0
        _gone(m)
    # a mount made from another HOME (another user, another xdist worker) is not ours to clear
    other = tmp_path / "otherhome"
    other.mkdir()
    c = mounter.mount(tmp_path / "c", "-r", "r", extra_env={"HOME": str(other)})
    r = mounter.pachctl("unmount", "-a")
    assert r.returncode == 0 and "No mounts found" in r.stdout
    assert um.find(str(c.path)) is not None
    r = mounter.pachctl("unmount")
    assert r.returncode == 1 and "specify" in r.stderr


def test_unmount_refuses_other_file_systems(mounter, tmp_path):
    r = mounter.pachctl("unmount", "/proc")
    assert r.returncode == 1 and "not a pachctl mount" in r.stderr, r.stderr


def test_killed_mount_is_cleared_by_unmount(mounter, put, tmp_path):
    put("r", {"/f": b"1"})
    m = mounter.mount(tmp_path / "mnt", "-r", "r")
    m.proc.kill()
    m.proc.wait(timeout=30)
    with pytest.raises(OSError) as ei:
        os.listdir(m.path)
    assert ei.value.errno == 107  # ENOTCONN: Transport endpoint is not connected
    # mounting there again says what to do
    again = mounter.start(m.path, "-r", "r")
    assert again.proc.wait(timeout=60) == 1
    assert f"pachctl unmount {m.path}" in again.stderr(), again.stderr()
    r = mounter.pachctl("unmount", m.path)
    assert r.returncode == 0, r.stderr
    assert "stale" in r.stderr and "nothing was committed" in r.stderr, r.stderr
    _gone(m)
    # and the mountpoint is usable again
    m2 = mounter.mount(m.path, "-r", "r")
    assert (m2.path / "r/f").read_bytes() == b"1"


def test_killed_write_mount_commits_nothing_and_unmount_says_where_staged_files_are(mounter, put, client, tmp_path):
    from proto.pfs_v2 import pfs_pb2 as pfs
    from tests.mount.conftest import repo_msg
    put("r", {"/f": b"1"})
    r = repo_msg("r")
    head = pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name="master"))
    before = client.pfs.InspectCommit(pfs.InspectCommitRequest(commit=head)).commit.id
    m = mounter.mount(tmp_path / "mnt", "-r", "r+w")
    (m.path / "r/new").write_bytes(b"staged")
    m.proc.kill()
    m.proc.wait(timeout=30)
    res = mounter.pachctl("unmount", m.path)
    assert res.returncode == 0, res.stderr
    assert "nothing was committed" in res.stderr and "staged files, if any, are in" in res.stderr, res.stderr
    assert f"commit them with: pachctl mount --recover {m.path}" in res.stderr, res.stderr
    assert client.pfs.InspectCommit(pfs.InspectCommitRequest(commit=head)).commit.id == before
    staged = res.stderr.rsplit("are in ", 1)[1].split("; commit them")[0]
    assert [p.read_bytes() for p in Path(staged).rglob("*") if p.is_file() and p.name.isdigit()] == [b"staged"]
    _gone(m)
