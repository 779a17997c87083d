"""`pachctl mount --recover`: the staged changes of a mount killed with kill -9 (real FUSE,
a real pachd) are committed once, as one commit, and never twice; a running mount's staged
changes are left to it; a commit that had landed before the kill is not repeated."""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests.mount.conftest import pytestmark, repo_msg  # noqa: F401
from tests.mount.test_write import commits, staging_dirs, tree


def _kill(m) -> None:
    m.proc.kill()  # SIGKILL: no chance to commit or clean up
    m.proc.wait(timeout=30)


def _journals(home: Path) -> list[Path]:
    return sorted(p for d in staging_dirs(home) for p in d.glob("*/journal-*.jsonl"))


def test_recover_commits_a_killed_mounts_changes_exactly_once(mounter, put, client, env, tmp_path):
    put("r", {"/f": b"old", "/keep": b"k", "/dir/a": b"A"})
    before = commits(client, "r")
    m = mounter.mount(tmp_path / "mnt", "-r", "r+w")
    (m.path / "r/new").write_bytes(b"new bytes")
    (m.path / "r/f").write_bytes(b"overwritten")
    os.mkdir(m.path / "r/made")
    (m.path / "r/made/x").write_bytes(b"x")
    os.rename(m.path / "r/dir", m.path / "r/moved")
    os.unlink(m.path / "r/keep")
    (m.path / "r/tmp").write_bytes(b"created then removed")
    os.unlink(m.path / "r/tmp")
    _kill(m)
    assert commits(client, "r") == before
    r = mounter.pachctl("unmount", m.path)
    assert r.returncode == 0 and "pachctl mount --recover" in r.stderr, r.stderr

    r = mounter.pachctl("mount", "--recover")
    assert r.returncode == 0, r.stderr
    after = commits(client, "r")
    assert len(after) == len(before) + 1, (before, after)
    assert f"committed r@master: {after[0]}" in r.stderr, r.stderr
    assert tree(client, "r") == {"/f": b"overwritten", "/new": b"new bytes", "/made/x": b"x", "/moved/a": b"A"}
    assert staging_dirs(Path(env["HOME"])) == []  # nothing left staged

    again = mounter.pachctl("mount", "--recover")
    assert again.returncode == 0 and "no staged changes left by a stopped mount" in again.stderr, again.stderr
    assert commits(client, "r") == after


def test_recover_leaves_a_running_mount_alone(mounter, put, client, env, tmp_path):
    put("r", {"/f": b"1"})
    before = commits(client, "r")
    m = mounter.mount(tmp_path / "mnt", "-r", "r+w")
    (m.path / "r/live").write_bytes(b"still mounted")
    r = mounter.pachctl("mount", "--recover")
    assert r.returncode == 0 and "still running" in r.stderr, r.stderr
    assert commits(client, "r") == before
    u = mounter.unmount(m)
    assert u.returncode == 0, u.stderr
    assert len(commits(client, "r")) == len(before) + 1
    assert tree(client, "r") == {"/f": b"1", "/live": b"still mounted"}


def test_a_commit_that_landed_before_the_kill_is_not_repeated(mounter, put, client, env, tmp_path):
    """A mount killed between its commit reaching pachd and writing it down: the journal
    ends with `begin <old head>` and the branch has moved, so recovery commits nothing."""
    put("r", {"/f": b"1"})
    m = mounter.mount(tmp_path / "mnt", "-r", "r+w")
    (m.path / "r/g").write_bytes(b"2")
    _kill(m)
    [journal] = _journals(Path(env["HOME"]))
    head = commits(client, "r")[0]
    with open(journal, "a") as f:  # as the mount writes it right before its ModifyFile
        f.write(json.dumps(["begin", head]) + "\n")
    landed = put("r", {"/g": b"2"})  # what that ModifyFile did
    mounter.pachctl("unmount", m.path)
    r = mounter.pachctl("mount", "--recover", m.path)
    assert r.returncode == 0, r.stderr
    assert f"already landed ({landed})" in r.stderr, r.stderr
    assert commits(client, "r")[0] == landed
    assert staging_dirs(Path(env["HOME"])) == []


def test_recover_only_takes_the_mountpoint_asked_for(mounter, put, client, env, tmp_path):
    put("r", {"/f": b"1"})
    m = mounter.mount(tmp_path / "one", "-r", "r+w")
    (m.path / "r/x").write_bytes(b"x")
    _kill(m)
    mounter.pachctl("unmount", m.path)
    before = commits(client, "r")
    r = mounter.pachctl("mount", "--recover", tmp_path / "other")
    assert r.returncode == 0 and "no staged changes left by a stopped mount at" in r.stderr, r.stderr
    assert commits(client, "r") == before
    r = mounter.pachctl("mount", "--recover", "-r", "r")
    assert r.returncode == 1 and "--recover mounts nothing" in r.stderr, r.stderr
    r = mounter.pachctl("mount", "--recover", m.path)
    assert r.returncode == 0 and "committed r@master" in r.stderr, r.stderr
    assert tree(client, "r") == {"/f": b"1", "/x": b"x"}
