"""`pachctl fsck`, `check storage`, `garbage-collect`, `extract` and `pachd restore` against a real
in-process pachd (local chunk store), with damage made by hand in its chunk directory."""
from __future__ import annotations

import random
import subprocess
import sys

from pachd.server import Pachd
from tests.cli.conftest import ROOT

KiB = 1024


def _packs(pachd):
    return sorted(pachd.chunks.root.glob("packs/**/*"), key=lambda p: str(p))


def _pack_files(pachd):
    return [p for p in _packs(pachd) if p.is_file()]


def test_fsck_on_a_healthy_pachd(ok, pachctl):
    ok("create", "repo", "images")
    ok("put", "file", "images@master:/a.txt", input=b"aaa")
    r = pachctl("fsck")
    assert r.exit_code == 0, r
    assert r.stdout == "No errors found.\n"
    assert pachctl("fsck", "--fix").stdout == "No errors found.\n"


def test_fsck_reports_and_fixes_a_broken_child_link(ok, pachctl, pachd):
    ok("create", "repo", "r")
    ok("put", "file", "r@master:/a", input=b"1")
    ok("put", "file", "r@master:/b", input=b"2")
    head = pachd.pfs.list_commits(pachd.pfs.list_repos()[0].repo)
    child, parent = head[0], head[1]
    with pachd.pfs.txn() as t:  # damage: the parent forgets its child
        ci = t.commit_info(parent.commit.repo, parent.commit.id)
        ci.children.remove(child.commit.id)
        t.put_commit(ci)
    r = pachctl("fsck")
    assert r.exit_code == 1, r
    assert f"Error: consistency error: parent commit {parent.commit} and child commit {child.commit}" in r.stdout
    fixed = pachctl("fsck", "--fix")
    assert f"Fix applied: added {child.commit.id} to the children of {parent.commit}" in fixed.stdout
    assert pachctl("fsck").stdout == "No errors found.\n"


def test_check_storage_finds_missing_and_corrupt_chunks_naming_the_file(ok, pachctl, pachd):
    ok("create", "repo", "data")
    blob = random.Random(3).randbytes(300 * KiB)
    ok("put", "file", "data@master:/dir/blob.bin", input=blob)
    r = pachctl("check", "storage")
    assert r.exit_code == 0, r
    assert "storage OK" in r.stdout
    r = pachctl("check", "storage", "--read-chunk-data")
    assert r.exit_code == 0 and "read and re-hashed: storage OK" in r.stdout, r
    head = pachd.pfs.list_commits(pachd.pfs.list_repos()[0].repo)[0].commit.id

    [pack] = _pack_files(pachd)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # flip one byte: same size, wrong content
    pack.write_bytes(bytes(raw))
    assert pachctl("check", "storage").exit_code == 0, "without reading, a flipped byte is invisible"
    r = pachctl("check", "storage", "--read-chunk-data")
    assert r.exit_code == 1, r
    assert f"repo default/data commit {head} path /dir/blob.bin" in r.stdout and "corrupt" in r.stdout
    got = pachctl("get", "file", "data@master:/dir/blob.bin")
    assert got.exit_code != 0, "a corrupt chunk is never served"
    assert "/dir/blob.bin" in got.stderr and "corrupt" in got.stderr

    pack.unlink()
    r = pachctl("check", "storage")
    assert r.exit_code == 1, r
    assert f"repo default/data commit {head} path /dir/blob.bin" in r.stdout and "missing" in r.stdout


def test_garbage_collect_prints_what_it_reclaimed(ok, pachctl, pachd):
    ok("create", "repo", "keep")
    ok("put", "file", "keep@master:/k", input=b"keep me")
    ok("create", "repo", "gone")
    ok("put", "file", "gone@master:/big", input=random.Random(1).randbytes(200 * KiB))
    before = sum(p.stat().st_size for p in _pack_files(pachd))
    r = pachctl("garbage-collect")
    assert r.exit_code == 0 and r.stdout.startswith("reclaimed 0 object(s)"), r
    ok("delete", "repo", "gone")
    r = pachctl("garbage-collect")
    assert r.exit_code == 0, r
    assert r.stdout.startswith("reclaimed ") and not r.stdout.startswith("reclaimed 0 "), r
    after = sum(p.stat().st_size for p in _pack_files(pachd))
    assert before - after >= 200 * KiB
    assert ok("get", "file", "keep@master:/k") == "keep me"


def test_extract_then_pachd_restore_into_an_empty_root(ok, pachctl, pachd, tmp_path):
    ok("create", "repo", "r")
    blob = random.Random(9).randbytes(150 * KiB)
    ok("put", "file", "r@master:/blob", input=blob)
    ok("put", "file", "r@master:/small", input=b"small")
    commits = pachd.pfs.list_commits(pachd.pfs.list_repos()[0].repo)
    dest = tmp_path / "backup"
    r = pachctl("extract", "--output", dest)
    assert r.exit_code == 0 and "backed up" in r.stdout, r
    again = pachctl("extract", "--output", dest)
    assert again.exit_code == 1 and "not empty" in again.stderr, again

    new_root = tmp_path / "restored"
    res = subprocess.run([sys.executable, "-m", "pachd", "restore", "--from", str(dest), "--root", str(new_root)],
                         cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "restored" in res.stdout
    p2 = Pachd(new_root, port=0, host="127.0.0.1", enable_pps=False).start()
    try:
        repo = p2.pfs.list_repos()[0].repo
        assert [c.commit.id for c in p2.pfs.list_commits(repo)] == [c.commit.id for c in commits]
        ci = p2.pfs.list_commits(repo)[0]
        _fi, it = p2.pfs.read_file(ci, "/blob")
        assert b"".join(it) == blob
    finally:
        p2.stop(grace=0.5)
    res = subprocess.run([sys.executable, "-m", "pachd", "restore", "--from", str(dest), "--root", str(new_root)],
                         cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "already holds a metadata store" in res.stderr
