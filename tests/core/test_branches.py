"""Branches: heads, provenance, propagation of commit sets, cycles, deletion."""
from __future__ import annotations

import pytest

from pfs.errors import (BranchNotFound, CommitNotFound, FailedPrecondition, HasDependents,
                        InvalidArgument, InvalidName, RepoNotFound)
from pfs.model import AUTO, USER, CommitRef
from tests.core.helpers import B, R, put_files, tree_of


@pytest.fixture
def repos(pfs):
    for n in ["a", "b", "c", "d"]:
        pfs.create_repo(R(n))
    return pfs


def test_create_empty_branch_gets_finished_auto_head(pfs):
    pfs.create_repo(R("a"))
    pfs.create_branch(B("a"))
    bi = pfs.inspect_branch(B("a"))
    assert bi.head
    ci = pfs.inspect_commit(R("a"), bi.head)
    assert ci.origin == AUTO
    assert ci.finished is not None and ci.parent is None
    assert ci.size == 0 and ci.root is None
    assert tree_of(pfs, R("a"), "master") == {}
    assert [b.branch.name for b in pfs.list_branches(R("a"))] == ["master"]
    assert pfs.inspect_repo(R("a")).branches == [B("a")]


def test_create_branch_at_commit_and_at_branch(pfs):
    pfs.create_repo(R("a"))
    c1 = put_files(pfs, R("a"), "master", {"/1": b"1"})
    c2 = put_files(pfs, R("a"), "master", {"/2": b"2"})
    pfs.create_branch(B("a", "old"), head=(R("a"), c1.commit.id, ""))
    assert pfs.inspect_branch(B("a", "old")).head == c1.commit.id
    assert tree_of(pfs, R("a"), "old") == {"/1": b"1"}
    pfs.create_branch(B("a", "copy"), head=(R("a"), "", "master"))
    assert pfs.inspect_branch(B("a", "copy")).head == c2.commit.id
    pfs.create_branch(B("a", "anc"), head=(R("a"), "master^", ""))
    assert pfs.inspect_branch(B("a", "anc")).head == c1.commit.id
    # no new commit was made for any of them
    assert len(pfs.list_commits(R("a"))) == 2
    # moving an existing branch
    pfs.create_branch(B("a", "old"), head=(R("a"), c2.commit.id, ""))
    assert pfs.inspect_branch(B("a", "old")).head == c2.commit.id
    # a new commit on the copied branch does not move master
    c3 = put_files(pfs, R("a"), "copy", {"/3": b"3"})
    assert c3.parent == c2.commit.id
    assert pfs.inspect_branch(B("a")).head == c2.commit.id


def test_create_branch_head_errors(pfs):
    pfs.create_repo(R("a"))
    pfs.create_repo(R("b"))
    c = put_files(pfs, R("b"), "master", {"/x": b"x"})
    with pytest.raises(InvalidArgument):
        pfs.create_branch(B("a"), head=(R("b"), c.commit.id, ""))
    with pytest.raises(CommitNotFound):
        pfs.create_branch(B("a"), head=(R("a"), "0" * 32, ""))
    with pytest.raises(BranchNotFound):
        pfs.create_branch(B("a", "x"), head=(R("a"), "", "nosuch"))
    assert pfs.list_branches(R("a")) == []
    with pytest.raises(RepoNotFound):
        pfs.create_branch(B("nosuch"))


@pytest.mark.parametrize("name", ["a.b", "a^", "a b", "x/y", "", "a~1"])
def test_branch_name_rules(pfs, name):
    pfs.create_repo(R("a"))
    with pytest.raises(InvalidName):
        pfs.create_branch(B("a", name))
    assert pfs.list_branches(R("a")) == []


def test_branch_with_provenance_gets_open_auto_head(repos):
    p = repos
    up = put_files(p, R("a"), "master", {"/x": b"1"})
    p.create_branch(B("b"), provenance=(B("a"),))
    bi = p.inspect_branch(B("b"))
    assert bi.direct_provenance == [B("a")] and bi.provenance == [B("a")]
    assert p.inspect_branch(B("a")).subvenance == [B("b")]
    ci = p.inspect_commit(R("b"), bi.head)
    assert ci.origin == AUTO and ci.finished is None
    assert ci.direct_provenance == [CommitRef(R("a"), up.commit.id, "master")]
    # users cannot start commits on it
    with pytest.raises(FailedPrecondition, match="cannot start a commit on an output branch"):
        p.start_commit(B("b"))


def test_provenance_on_missing_upstream_branch_creates_it(repos):
    p = repos
    p.create_branch(B("b"), provenance=(B("a", "dev"),))
    up = p.inspect_branch(B("a", "dev"))
    assert p.inspect_commit(R("a"), up.head).finished is not None
    with pytest.raises(RepoNotFound):
        p.create_branch(B("c"), provenance=(B("zzz"),))


def test_propagation_same_id_downstream(repos):
    p = repos
    put_files(p, R("a"), "master", {"/x": b"0"})
    p.create_branch(B("b"), provenance=(B("a"),))
    p.create_branch(B("c"), provenance=(B("b"),))
    old_b = p.inspect_branch(B("b")).head
    old_c = p.inspect_branch(B("c")).head
    new = put_files(p, R("a"), "master", {"/y": b"1"})
    cid = new.commit.id
    bc = p.inspect_commit(R("b"), "master")
    cc = p.inspect_commit(R("c"), "master")
    assert bc.commit.id == cid and cc.commit.id == cid
    assert bc.parent == old_b and cc.parent == old_c
    assert bc.origin == AUTO and bc.finished is None
    assert bc.direct_provenance == [CommitRef(R("a"), cid, "master")]
    assert cc.direct_provenance == [CommitRef(R("b"), cid, "master")]
    assert [CommitRef(R("b"), cid, "master")] == p.inspect_commit(R("a"), cid).direct_subvenance
    assert sorted(c.commit.repo.name for c in p.inspect_commit_set(cid)) == ["a", "b", "c"]
    assert p.inspect_commit(R("a"), cid).origin == USER


def test_propagation_diamond_one_commit_per_repo(repos):
    p = repos
    put_files(p, R("a"), "master", {"/x": b"0"})
    p.create_branch(B("b"), provenance=(B("a"),))
    p.create_branch(B("c"), provenance=(B("a"),))
    p.create_branch(B("d"), provenance=(B("b"), B("c")))
    assert sorted(p.inspect_branch(B("d")).provenance) == [B("a"), B("b"), B("c")]
    assert sorted(p.inspect_branch(B("a")).subvenance) == [B("b"), B("c"), B("d")]
    new = put_files(p, R("a"), "master", {"/y": b"1"})
    cid = new.commit.id
    cis = p.inspect_commit_set(cid)
    assert sorted(c.commit.repo.name for c in cis) == ["a", "b", "c", "d"]
    d = p.inspect_commit(R("d"), "master")
    assert d.commit.id == cid
    assert sorted(d.direct_provenance) == sorted([CommitRef(R("b"), cid, "master"),
                                                  CommitRef(R("c"), cid, "master")])
    # exactly one new commit in d
    assert len([c for c in p.list_commits(R("d")) if c.commit.id == cid]) == 1


def test_propagation_other_input_uses_its_head(repos):
    p = repos
    ca = put_files(p, R("a"), "master", {"/x": b"0"})
    cb = put_files(p, R("b"), "master", {"/x": b"0"})
    p.create_branch(B("c"), provenance=(B("a"), B("b")))
    new = put_files(p, R("a"), "master", {"/y": b"1"})
    cc = p.inspect_commit(R("c"), "master")
    assert cc.commit.id == new.commit.id
    assert sorted(cc.direct_provenance) == sorted([CommitRef(R("a"), new.commit.id, "master"),
                                                   CommitRef(R("b"), cb.commit.id, "master")])
    assert ca.commit.id != new.commit.id
    # b's commit is not part of the new commit set
    assert sorted(c.commit.repo.name for c in p.inspect_commit_set(new.commit.id)) == ["a", "c"]


def test_propagation_from_start_commit(repos):
    p = repos
    p.create_branch(B("b"), provenance=(B("a"),))
    ci = p.start_commit(B("a"))
    down = p.inspect_commit(R("b"), "master")
    assert down.commit.id == ci.commit.id and down.finished is None
    p.finish_commit(R("a"), ci.commit.id)
    assert p.inspect_commit(R("b"), "master").finished is None  # a pipeline would finish it


def test_cycles_refused(repos):
    p = repos
    p.create_branch(B("b"), provenance=(B("a"),))
    p.create_branch(B("c"), provenance=(B("b"),))
    before = {n: p.inspect_branch(B(n)) for n in "abc"}
    with pytest.raises(InvalidArgument, match="own provenance"):
        p.create_branch(B("a"), provenance=(B("c"),))
    with pytest.raises(InvalidArgument):
        p.create_branch(B("a"), provenance=(B("b"),))
    # nothing changed
    for n in "abc":
        assert p.inspect_branch(B(n)) == before[n]
    with pytest.raises(InvalidArgument, match="cannot be in the provenance of its own branch"):
        p.create_branch(B("a", "x"), provenance=(B("a"),))


def test_delete_branch(repos):
    p = repos
    put_files(p, R("a"), "dev", {"/x": b"1"})
    p.delete_branch(B("a", "dev"))
    with pytest.raises(BranchNotFound):
        p.inspect_branch(B("a", "dev"))
    with pytest.raises(BranchNotFound):
        p.delete_branch(B("a", "dev"))
    p.delete_branch(B("a", "dev"), force=True)  # missing + force: fine
    # its commits survive (reachable by id)
    assert len(p.list_commits(R("a"))) == 1


def test_delete_branch_with_subvenance_needs_force(repos):
    p = repos
    p.create_branch(B("b"), provenance=(B("a"),))
    p.create_branch(B("c"), provenance=(B("b"),))
    with pytest.raises(HasDependents):
        p.delete_branch(B("a"))
    with pytest.raises(HasDependents):
        p.delete_branch(B("b"))
    assert p.inspect_branch(B("a")).subvenance == [B("b"), B("c")]
    p.delete_branch(B("b"), force=True)
    assert p.inspect_branch(B("a")).subvenance == []
    c = p.inspect_branch(B("c"))
    assert c.direct_provenance == [] and c.provenance == []
    # deleting the leaf is always fine
    p.delete_branch(B("c"))
    p.delete_branch(B("a"))


def test_list_branches(repos):
    p = repos
    for n in ["one", "two", "three"]:
        p.create_branch(B("a", n))
    assert [b.branch.name for b in p.list_branches(R("a"))] == ["three", "two", "one"]
    assert [b.branch.name for b in p.list_branches(R("a"), reverse=True)] == ["one", "two", "three"]
    p.create_branch(B("b"))
    assert len(p.list_branches()) == 4
    with pytest.raises(RepoNotFound):
        p.list_branches(R("zzz"))


def test_changing_provenance_starts_new_commit(repos):
    p = repos
    put_files(p, R("a"), "master", {"/x": b"1"})
    put_files(p, R("c"), "master", {"/x": b"1"})
    p.create_branch(B("b"), provenance=(B("a"),))
    h1 = p.inspect_branch(B("b")).head
    p.create_branch(B("b"), provenance=(B("a"), B("c")))
    bi = p.inspect_branch(B("b"))
    assert bi.head != h1
    assert bi.direct_provenance == [B("a"), B("c")]
    assert p.inspect_branch(B("c")).subvenance == [B("b")]
    # removing an input updates the upstream's subvenance
    p.create_branch(B("b"), provenance=(B("a"),))
    assert p.inspect_branch(B("c")).subvenance == []
