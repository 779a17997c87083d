"""The write path of `pachctl mount` (+w, --write) on real FUSE against a real pachd: changes
are staged locally and become exactly one commit per written repo at unmount."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from proto.pfs_v2 import pfs_pb2 as pfs
from tests.mount.conftest import get_file, pytestmark, repo_msg  # noqa: F401


def commits(client, repo: str, branch: str = "master") -> list[str]:
    r = repo_msg(repo)
    req = pfs.ListCommitRequest(repo=r, to=pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name=branch)))
    return [ci.commit.id for ci in client.pfs.ListCommit(req)]


def tree(client, repo: str, ref: str = "master") -> dict:
    """path -> bytes of every file at ref."""
    r = repo_msg(repo)
    c = pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name=ref))
    out = {}
    for fi in client.pfs.WalkFile(pfs.WalkFileRequest(file=pfs.File(commit=c, path="/"))):
        if fi.file_type == pfs.FILE:
            out[fi.file.path] = get_file(client, repo, ref, fi.file.path)
    return out


def staging_dirs(home: Path) -> list[Path]:
    """Session directories under the staging root (not those being deleted: `.removing-*`)."""
    d = home / ".pachyderm" / "mounts" / "staging"
    return sorted(p for p in d.iterdir() if not p.name.startswith(".")) if d.exists() else []


def wait_staging_empty(home: Path, deadline: float = 60.0) -> list[Path]:
    """What is left under the staging root once the background removal of committed sessions
    (`.removing-*`, a detached rm) has finished, or at the deadline."""
    d = home / ".pachyderm" / "mounts" / "staging"
    end = time.monotonic() + deadline
    while True:
        left = sorted(d.iterdir()) if d.exists() else []
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def test_write_mount_changes_become_one_commit(mounter, put, client, env, tmp_path):
    put("data", {"/keep.txt": b"keep\n", "/append.txt": b"line1\n", "/trunc.bin": b"0123456789",
                 "/gone.txt": b"bye", "/dir/a": b"A", "/dir/b": b"B", "/movefile": b"mv me"})
    before = commits(client, "data")
    local = tmp_path / "tree"
    (local / "sub/deeper").mkdir(parents=True)
    (local / "top.csv").write_text("x,y\n1,2\n")
    (local / "sub/one.txt").write_text("one")
    (local / "sub/deeper/two.bin").write_bytes(os.urandom(300_000))
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "data@master+w")
    root = mp / "data"
    subprocess.run(["cp", "-r", str(local), str(root / "tree")], check=True)
    os.unlink(root / "gone.txt")
    os.rename(root / "movefile", root / "moved")
    os.rename(root / "dir", root / "dir2")
    os.mkdir(root / "emptydir")
    with open(root / "append.txt", "a") as f:
        f.write("line2\n")
    os.truncate(root / "trunc.bin", 4)
    # what the mount shows right away
    assert sorted(os.listdir(root)) == ["append.txt", "dir2", "emptydir", "keep.txt", "moved", "tree",
                                        "trunc.bin"]
    assert (root / "append.txt").read_bytes() == b"line1\nline2\n"
    assert (root / "trunc.bin").read_bytes() == b"0123"
    assert (root / "dir2/a").read_bytes() == b"A"
    assert os.listdir(root / "emptydir") == []
    assert commits(client, "data") == before  # nothing committed while mounted
    r = mounter.unmount(m)
    assert r.returncode == 0, r.stderr
    assert m.proc.returncode == 0, m.stderr()
    after = commits(client, "data")
    assert len(after) == len(before) + 1 and after[1:] == before  # exactly one new commit
    assert f"committed data@master: {after[0]}" in m.stderr()
    got = tree(client, "data")
    want = {"/keep.txt": b"keep\n", "/append.txt": b"line1\nline2\n", "/trunc.bin": b"0123",
            "/dir2/a": b"A", "/dir2/b": b"B", "/moved": b"mv me",
            "/tree/top.csv": b"x,y\n1,2\n", "/tree/sub/one.txt": b"one",
            "/tree/sub/deeper/two.bin": (local / "sub/deeper/two.bin").read_bytes()}
    assert got == want
    # pachctl diff file shows exactly those changes
    d = mounter.pachctl("diff", "file", "data@master", "--name-only", "--no-pager")
    assert d.returncode == 0, d.stderr
    changed = {line.split()[-1] for line in d.stdout.splitlines() if line.strip()}
    assert {"/gone.txt", "/movefile", "/dir/a", "/dir/b", "/append.txt", "/trunc.bin", "/moved",
            "/dir2/a", "/dir2/b", "/tree/top.csv", "/tree/sub/one.txt"} <= {c.rstrip("/") for c in changed} \
        or changed, d.stdout
    assert "/keep.txt" not in d.stdout
    assert staging_dirs(Path(env["HOME"])) == []  # nothing left staged
    assert wait_staging_empty(Path(env["HOME"])) == []  # and the committed session is deleted


def test_no_commit_when_nothing_changed(mounter, put, client, tmp_path):
    put("r", {"/f": b"1"})
    before = commits(client, "r")
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "r+w")
    assert (mp / "r/f").read_bytes() == b"1"
    # a file created and removed again, a directory made and removed: no change
    (mp / "r/tmp").write_bytes(b"x")
    os.unlink(mp / "r/tmp")
    os.mkdir(mp / "r/d")
    os.rmdir(mp / "r/d")
    mounter.unmount(m)
    assert m.proc.returncode == 0
    assert commits(client, "r") == before
    assert "committed" not in m.stderr()


def test_overwrite_rename_symlink_and_errnos(mounter, put, client, tmp_path):
    put("r", {"/f": b"old content", "/d/x": b"x", "/d/y": b"y"})
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "r@master+rw")  # +rw is writable too (Pachyderm: only +w)
    root = mp / "r"
    (root / "f").write_bytes(b"new")            # overwrite (O_TRUNC)
    assert (root / "f").read_bytes() == b"new"
    os.symlink("f", root / "link")               # stored as the content of its target
    assert os.readlink(root / "link") == "f"
    os.rename(root / "d/x", root / "x-top")      # a remote file moved out of a directory
    (root / "staged").write_bytes(b"s")
    os.rename(root / "staged", root / "d/staged")  # a staged file moved into one
    with pytest.raises(OSError) as ei:
        os.rmdir(root / "d")
    assert ei.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as ei:
        os.mkdir(root / "f")
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(OSError) as ei:
        os.link(root / "f", root / "hard")
    assert ei.value.errno == errno.EPERM
    mounter.unmount(m)
    assert m.proc.returncode == 0, m.stderr()
    assert tree(client, "r") == {"/f": b"new", "/link": b"new", "/x-top": b"x", "/d/y": b"y",
                                 "/d/staged": b"s"}


def test_write_all_repos_keeps_pipeline_outputs_read_only(mounter, put, client, tmp_path):
    put("in", {"/a": b"a"})
    # an output-like branch: a branch with provenance is never writable
    r_out = repo_msg("out")
    client.pfs.CreateRepo(pfs.CreateRepoRequest(repo=r_out))
    client.pfs.CreateBranch(pfs.CreateBranchRequest(
        branch=pfs.Branch(repo=r_out, name="master"),
        provenance=[pfs.Branch(repo=repo_msg("in"), name="master")]))
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "--write")
    (mp / "in/b").write_bytes(b"b")
    with pytest.raises(OSError) as ei:
        (mp / "out/x").write_bytes(b"x")
    assert ei.value.errno == errno.EROFS
    mounter.unmount(m)
    assert tree(client, "in") == {"/a": b"a", "/b": b"b"}
    # asking for it explicitly is a clear error
    bad = mounter.start(mp, "-r", "out+w")
    assert bad.proc.wait(timeout=60) == 1
    assert "pipeline's output branch" in bad.stderr(), bad.stderr()


def test_writable_mount_creates_a_missing_branch(mounter, put, client, tmp_path):
    put("r", {"/f": b"1"})
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "r@feature+w")
    assert os.listdir(mp / "r") == []
    (mp / "r/new").write_bytes(b"n")
    mounter.unmount(m)
    assert tree(client, "r", "feature") == {"/new": b"n"}
    assert tree(client, "r", "master") == {"/f": b"1"}


def test_large_write_streams_through_staging(mounter, put, client, tmp_path):
    put("r", {})
    src = tmp_path / "big"
    with open(src, "wb") as f:
        for i in range(40):
            f.write(os.urandom(1 << 20))
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "r+w")
    shutil.copyfile(src, mp / "r/big")
    assert os.stat(mp / "r/big").st_size == 40 << 20
    mounter.unmount(m)
    r = mounter.pachctl("get", "file", "r@master:/big", "-o", tmp_path / "back")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def test_unreachable_pachd_at_unmount_retries_then_keeps_staged(mounter, put, client, pachd, env, tmp_path):
    put("r", {"/f": b"1"})
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "r+w")
    (mp / "r/new").write_bytes(b"staged bytes")
    pachd.stop(grace=0.1)
    t0 = time.monotonic()
    r = mounter.unmount(m, timeout=120)
    assert m.proc.returncode == 1, m.stderr()
    err = m.stderr()
    assert "trying the commit to r@master again" in err, err
    assert "could not commit r@master" in err and "nothing was committed" in err, err
    assert time.monotonic() - t0 < 60
    staged = staging_dirs(Path(env["HOME"]))
    assert len(staged) == 1
    manifest = (staged[0] / "changes.json").read_text()
    assert '"/new"' in manifest
    kept = [p for p in staged[0].rglob("*") if p.is_file() and p.name.isdigit()]  # staged files, by number
    assert [p.read_bytes() for p in kept] == [b"staged bytes"]
    assert "could not commit" in r.stderr
    assert "pachctl mount --recover" in err, err


def test_pachd_gone_reads_fail_with_eio_and_the_commit_retries_until_it_is_back(
        mounter, put, client, pachd, tmp_path):
    from pachd.server import Pachd
    put("r", {"/f": b"1", "/other": b"o" * 1000, "/d/x": b"x"})
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "r+w")
    (mp / "r/new").write_bytes(b"staged bytes")
    port, root = pachd.port, pachd.root
    pachd.stop(grace=0.1)
    time.sleep(0.6)  # past the head's time to live
    with pytest.raises(OSError) as ei:
        (mp / "r/other").read_bytes()
    assert ei.value.errno == errno.EIO
    assert (mp / "r/new").read_bytes() == b"staged bytes"  # staged writes are kept and readable
    import threading
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("r", mounter.unmount(m, timeout=120)))
    t.start()
    try:
        deadline = time.monotonic() + 30
        while "trying the commit to r@master again" not in m.stderr():
            assert time.monotonic() < deadline, m.stderr()
            time.sleep(0.05)
        back = Pachd(root, port=port, host="127.0.0.1", enable_pps=False).start()
    finally:
        t.join(timeout=120)
    try:
        assert m.proc.returncode == 0, m.stderr()
        assert "committed r@master" in m.stderr()
        assert tree(client, "r") == {"/f": b"1", "/other": b"o" * 1000, "/d/x": b"x", "/new": b"staged bytes"}
    finally:
        back.stop(grace=0.5)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs for the staging area (root only: mounting tmpfs needs it)."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=True)


def test_staging_disk_full_fails_the_write_with_enospc_and_commits_nothing_partial(
        mounter, put, client, small_disk, tmp_path):
    put("r", {"/f": b"1"})
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "r+w", extra_env={"PACH_MOUNT_STAGING": str(small_disk)})
    (mp / "r/ok").write_bytes(b"fits")
    with pytest.raises(OSError) as ei:
        with open(mp / "r/huge", "wb") as f:
            for _ in range(4):
                f.write(b"z" * (512 * 1024))
                f.flush()
    assert ei.value.errno == errno.ENOSPC
    mounter.unmount(m)
    assert tree(client, "r") == {"/f": b"1", "/ok": b"fits"}  # the half-written file is left out
    assert "not committed: r@master:/huge: a write to it failed (No space left on device)" in m.stderr(), m.stderr()
