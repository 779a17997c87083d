"""Commits: start/finish, ancestry references, listing, waiting, subscribing, commit sets,
squash and drop, origin kinds."""
from __future__ import annotations

import threading
import time

import pytest

from pfs.core import FINISHED
from pfs.errors import (CommitFinished, CommitNotFound, CommitSetNotFound, FailedPrecondition,
                        InvalidArgument, RepoNotFound)
from pfs.model import AUTO, USER
from tests.core.helpers import B, R, put_files, read, tree_of


@pytest.fixture
def repo(pfs):
    pfs.create_repo(R("a"))
    return R("a")


def chain(p, repo, n, branch="master"):
    """n one-off commits, file /i holding str(i); returns their ids oldest first."""
    return [put_files(p, repo, branch, {f"/{i}": str(i).encode()}).commit.id for i in range(n)]


# ---- start / finish ---------------------------------------------------------------------
def test_start_finish(pfs, repo):
    ci = pfs.start_commit(B(repo), description="first")
    assert ci.origin == USER and ci.finished is None and ci.parent is None
    assert ci.description == "first"
    assert pfs.inspect_branch(B(repo)).head == ci.commit.id  # the branch was created
    put_files(pfs, repo, ci.commit.id, {"/x": b"hello"})
    done = pfs.finish_commit(repo, ci.commit.id, description="changed")
    assert done.finished is not None and done.finishing is not None
    assert done.description == "changed" and done.size == 5
    info = pfs.inspect_commit(repo, ci.commit.id)
    assert info.description == "changed" and info.size == 5 and info.error == ""
    with pytest.raises(CommitFinished, match="has already finished"):
        pfs.finish_commit(repo, ci.commit.id)
    # the next commit's parent is the head
    c2 = pfs.start_commit(B(repo))
    assert c2.parent == ci.commit.id
    assert pfs.inspect_commit(repo, ci.commit.id).children == [c2.commit.id]
    # a new commit starts with its parent's content
    assert tree_of(pfs, repo, c2.commit.id) == {"/x": b"hello"}


def test_finish_by_branch_and_error(pfs, repo):
    ci = pfs.start_commit(B(repo))
    pfs.finish_commit(repo, branch="master", error="it broke")
    info = pfs.inspect_commit(repo, ci.commit.id)
    assert info.error == "it broke" and info.finished is not None


def test_parent_must_be_finished(pfs, repo):
    pfs.start_commit(B(repo))
    with pytest.raises(FailedPrecondition, match="has not been finished"):
        pfs.start_commit(B(repo))
    assert len(pfs.list_commits(repo)) == 1


def test_start_with_explicit_parent(pfs, repo):
    ids = chain(pfs, repo, 3)
    ci = pfs.start_commit(B(repo, "dev"), parent=(repo, ids[0], ""))
    assert ci.parent == ids[0]
    pfs.finish_commit(repo, ci.commit.id)
    assert tree_of(pfs, repo, "dev") == {"/0": b"0"}
    ci = pfs.start_commit(B(repo, "dev2"), parent=(repo, "", "master"))
    assert ci.parent == ids[2]
    with pytest.raises(CommitNotFound):
        pfs.start_commit(B(repo, "dev3"), parent=(repo, "f" * 32, ""))


def test_start_commit_errors(pfs, repo):
    with pytest.raises(RepoNotFound):
        pfs.start_commit(B("nope"))
    with pytest.raises(CommitNotFound):
        pfs.finish_commit(repo, "0" * 32)


def test_one_off_commits(pfs, repo):
    c1 = put_files(pfs, repo, "master", {"/a": b"1"})
    c2 = put_files(pfs, repo, "master", {"/b": b"2"})
    assert c1.finished is not None and c2.finished is not None
    assert c2.parent == c1.commit.id and c1.origin == USER
    assert pfs.inspect_branch(B(repo)).head == c2.commit.id
    # writing through a branch whose head is open goes into that commit
    open_ = pfs.start_commit(B(repo))
    put_files(pfs, repo, "master", {"/c": b"3"})
    assert pfs.inspect_branch(B(repo)).head == open_.commit.id
    assert pfs.inspect_commit(repo, open_.commit.id).finished is None
    pfs.finish_commit(repo, open_.commit.id)
    assert tree_of(pfs, repo, "master") == {"/a": b"1", "/b": b"2", "/c": b"3"}


# ---- ancestry -----------------------------------------------------------------------------
def test_ancestry_references(pfs, repo):
    ids = chain(pfs, repo, 4)

    def rid(ref):
        return pfs.inspect_commit(repo, ref).commit.id

    assert rid("master") == ids[3]
    assert rid("master^") == ids[2]
    assert rid("master~") == ids[2]
    assert rid("master^^") == ids[1]
    assert rid("master~2") == ids[1]
    assert rid("master^3") == ids[0]
    assert rid("master.1") == ids[0]
    assert rid("master.2") == ids[1]
    assert rid("master.4") == ids[3]
    assert rid("master.-1") == ids[2]
    assert rid(f"{ids[3]}^") == ids[2]
    assert rid(f"{ids[3]}~3") == ids[0]
    assert rid(f"{ids[2]}.1") == ids[0]
    assert pfs.inspect_commit(repo, branch="master").commit.id == ids[3]
    for bad in ["master^4", "master~9", "master.5", f"{ids[0]}^"]:
        with pytest.raises(CommitNotFound):
            pfs.inspect_commit(repo, bad)
    with pytest.raises(InvalidArgument, match="cannot mix"):
        pfs.inspect_commit(repo, "master^~")
    # ancestry works for reads and writes alike
    assert read(pfs, repo, "master^", "/2") == b"2"
    with pytest.raises(Exception):
        read(pfs, repo, "master^", "/3")


def test_missing_commit_texts(pfs, repo):
    chain(pfs, repo, 1)
    with pytest.raises(CommitNotFound, match=f"^commit default/a@{'0' * 32} not found$"):
        pfs.inspect_commit(repo, "0" * 32)
    with pytest.raises(CommitNotFound, match=r"^commit default/a@master\^5 not found$"):
        pfs.inspect_commit(repo, "master^5")


# ---- listing ------------------------------------------------------------------------------
def test_list_commits(pfs, repo):
    ids = chain(pfs, repo, 5)
    chain(pfs, repo, 1, branch="dev")
    newest_first = [c.commit.id for c in pfs.list_commits(repo)]
    assert newest_first[1:] == ids[::-1]
    assert len(newest_first) == 6
    assert [c.commit.id for c in pfs.list_commits(repo, number=2)][1:] == [ids[4]]
    rev = [c.commit.id for c in pfs.list_commits(repo, reverse=True)]
    assert rev == newest_first[::-1]
    # to/from: the ancestry of `to`, stopping before `from`
    to = [c.commit.id for c in pfs.list_commits(repo, to=(repo, "", "master"))]
    assert to == ids[::-1]
    ft = [c.commit.id for c in pfs.list_commits(repo, to=(repo, "", "master"), from_=(repo, ids[1], ""))]
    assert ft == [ids[4], ids[3], ids[2]]
    assert [c.commit.id for c in pfs.list_commits(repo, to=(repo, ids[3], ""), number=2)] == [ids[3], ids[2]]
    with pytest.raises(RepoNotFound):
        pfs.list_commits(R("zzz"))


def test_list_commits_origin(pfs, repo):
    pfs.create_branch(B(repo))  # an AUTO commit
    chain(pfs, repo, 2)
    assert [c.origin for c in pfs.list_commits(repo)] == [USER, USER, AUTO]
    assert [c.origin for c in pfs.list_commits(repo, origin=AUTO)] == [AUTO]
    assert len(pfs.list_commits(repo, origin=USER)) == 2
    assert len(pfs.list_commits(repo, origin=AUTO, all=True)) == 3


# ---- waiting and subscribing -----------------------------------------------------------------
def _in_thread(fn):
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_inspect_commit_wait_finished_blocks(pfs, repo):
    ci = pfs.start_commit(B(repo))
    t, box = _in_thread(lambda: pfs.inspect_commit(repo, ci.commit.id, wait=FINISHED, timeout=20))
    time.sleep(0.2)
    assert t.is_alive() and not box  # still waiting
    put_files(pfs, repo, ci.commit.id, {"/x": b"1"})
    assert t.is_alive()
    pfs.finish_commit(repo, ci.commit.id)
    t.join(10)
    assert not t.is_alive()
    assert "error" not in box
    assert box["value"].finished is not None and box["value"].size == 1


def test_wait_on_finished_commit_returns_at_once(pfs, repo):
    ids = chain(pfs, repo, 1)
    assert pfs.inspect_commit(repo, ids[0], wait=FINISHED).commit.id == ids[0]


def test_wait_times_out_and_wait_on_deleted(pfs, repo):
    ci = pfs.start_commit(B(repo))
    with pytest.raises(FailedPrecondition, match="timed out"):
        pfs.inspect_commit(repo, ci.commit.id, wait=FINISHED, timeout=0.2)
    t, box = _in_thread(lambda: pfs.inspect_commit(repo, ci.commit.id, wait=FINISHED, timeout=20))
    time.sleep(0.1)
    pfs.drop_commit(repo, ci.commit.id)
    t.join(10)
    assert isinstance(box.get("error"), CommitNotFound)


def test_subscribe_yields_existing_then_new(pfs, repo):
    ids = chain(pfs, repo, 2)
    stop = threading.Event()
    seen = []
    got_three = threading.Event()

    def consume():
        for ci in pfs.subscribe_commits(repo, "master", state=FINISHED, cancelled=stop.is_set):
            seen.append(ci.commit.id)
            if len(seen) == 3:
                got_three.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == ids
    # an open commit is not yielded with state=FINISHED until it finishes
    ci = pfs.start_commit(B(repo))
    time.sleep(0.2)
    assert seen == ids
    put_files(pfs, repo, "dev", {"/other-branch": b"x"})  # filtered out by branch
    pfs.finish_commit(repo, ci.commit.id)
    assert got_three.wait(10)
    stop.set()
    t.join(10)
    assert not t.is_alive()
    assert seen == ids + [ci.commit.id]


def test_subscribe_from_and_started_state(pfs, repo):
    ids = chain(pfs, repo, 3)
    it = pfs.subscribe_commits(repo, "master", from_id=ids[0])
    assert next(it).commit.id == ids[1]
    assert next(it).commit.id == ids[2]
    ci = pfs.start_commit(B(repo))
    assert next(it).commit.id == ci.commit.id  # state STARTED: open commits too
    it.close()


# ---- commit sets ----------------------------------------------------------------------------
def test_commit_sets(pfs, repo):
    pfs.create_repo(R("b"))
    pfs.create_branch(B("b"), provenance=(B(repo),))
    c = put_files(pfs, repo, "master", {"/x": b"1"})
    cis = pfs.inspect_commit_set(c.commit.id)
    assert [ci.commit.repo.name for ci in cis] == ["a", "b"]
    sets = pfs.list_commit_sets()
    assert sets[0][0] == c.commit.id  # newest first
    assert {s for s, _ in sets} >= {c.commit.id}
    with pytest.raises(CommitSetNotFound, match=f"no commits found for commitset {'0' * 32}"):
        pfs.inspect_commit_set("0" * 32)
    pfs.create_project("other")
    assert pfs.list_commit_sets("other") == []


def test_inspect_commit_set_wait(pfs, repo):
    pfs.create_repo(R("b"))
    pfs.create_branch(B("b"), provenance=(B(repo),))
    c = put_files(pfs, repo, "master", {"/x": b"1"})
    t, box = _in_thread(lambda: pfs.inspect_commit_set(c.commit.id, wait=True, timeout=20))
    time.sleep(0.2)
    assert t.is_alive()
    pfs.finish_commit(R("b"), c.commit.id, force=True)
    t.join(10)
    assert [ci.finished is not None for ci in box["value"]] == [True, True]


# ---- squash and drop ------------------------------------------------------------------------
def test_squash_keeps_content_in_child(pfs, repo):
    ids = chain(pfs, repo, 3)
    pfs.squash_commit_set(ids[1])
    with pytest.raises(CommitNotFound):
        pfs.inspect_commit(repo, ids[1])
    c2 = pfs.inspect_commit(repo, ids[2])
    assert c2.parent == ids[0]
    assert pfs.inspect_commit(repo, ids[0]).children == [ids[2]]
    assert tree_of(pfs, repo, "master") == {"/0": b"0", "/1": b"1", "/2": b"2"}
    assert [c.commit.id for c in pfs.list_commits(repo)] == [ids[2], ids[0]]
    assert pfs.inspect_commit(repo, "master^").commit.id == ids[0]


def test_squash_needs_children(pfs, repo):
    ids = chain(pfs, repo, 2)
    with pytest.raises(FailedPrecondition, match="no children"):
        pfs.squash_commit_set(ids[1])
    with pytest.raises(FailedPrecondition):
        pfs.squash_commit(repo, ids[1])
    assert pfs.inspect_commit(repo, ids[1]).commit.id == ids[1]


def test_drop_head_falls_back(pfs, repo):
    ids = chain(pfs, repo, 3)
    pfs.create_branch(B(repo, "other"), head=(repo, ids[2], ""))
    pfs.drop_commit_set(ids[2])
    assert pfs.inspect_branch(B(repo)).head == ids[1]
    assert pfs.inspect_branch(B(repo, "other")).head == ids[1]
    assert pfs.inspect_commit(repo, ids[1]).children == []
    assert tree_of(pfs, repo, "master") == {"/0": b"0", "/1": b"1"}
    with pytest.raises(FailedPrecondition, match="has children"):
        pfs.drop_commit_set(ids[0])
    pfs.drop_commit(repo, "master")
    pfs.drop_commit(repo, "master")
    # the last commit dropped: the branch gets an empty commit
    bi = pfs.inspect_branch(B(repo))
    assert bi.head not in ids
    assert tree_of(pfs, repo, "master") == {}
    assert pfs.inspect_commit(repo, bi.head).origin == AUTO


def test_drop_commit_set_across_repos(pfs, repo):
    pfs.create_repo(R("b"))
    pfs.create_branch(B("b"), provenance=(B(repo),))
    first = put_files(pfs, repo, "master", {"/x": b"1"}).commit.id
    b_before = pfs.inspect_branch(B("b")).head
    c = put_files(pfs, repo, "master", {"/y": b"2"}).commit.id
    assert pfs.inspect_branch(B("b")).head == c
    with pytest.raises(FailedPrecondition, match="subvenance"):
        pfs.drop_commit(repo, c)
    pfs.drop_commit_set(c)
    assert pfs.inspect_branch(B(repo)).head == first
    assert pfs.inspect_branch(B("b")).head == b_before
    with pytest.raises(CommitSetNotFound):
        pfs.inspect_commit_set(c)
    assert all(s.id != c for s in pfs.inspect_commit(repo, first).direct_subvenance)


def test_drop_commit_recursive(pfs, repo):
    pfs.create_repo(R("b"))
    pfs.create_branch(B("b"), provenance=(B(repo),))
    put_files(pfs, repo, "master", {"/x": b"1"})
    c = put_files(pfs, repo, "master", {"/y": b"2"}).commit.id
    pfs.drop_commit(repo, c, recursive=True)
    with pytest.raises(CommitSetNotFound):
        pfs.inspect_commit_set(c)


def test_origin_kinds(pfs, repo):
    pfs.create_branch(B(repo))
    auto = pfs.inspect_branch(B(repo)).head
    user = put_files(pfs, repo, "master", {"/x": b"1"}).commit.id
    assert pfs.inspect_commit(repo, auto).origin == AUTO
    assert pfs.inspect_commit(repo, user).origin == USER


def test_per_commit_write_locks_do_not_accumulate(pfs, repo):
    """Each commit written gets a lock while it is written; finished commits leave none."""
    import gc
    for i in range(50):
        ci = pfs.start_commit(B(repo))
        put_files(pfs, repo, ci.commit.id, {f"/f{i}": b"x"})
        pfs.finish_commit(repo, ci.commit.id)
    assert read(pfs, repo, "master", "/f49") == b"x"
    gc.collect()
    assert len(pfs._write_locks) <= 2, len(pfs._write_locks)
