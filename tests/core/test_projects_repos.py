"""Projects and repos: create, inspect, list, delete, names, sizes, dependents."""
from __future__ import annotations

import pytest

from pfs.errors import (BranchNotFound, HasDependents, InvalidName, ProjectExists,
                        ProjectNotFound, RepoExists, RepoNotFound)
from pfs.model import Repo
from tests.core.helpers import B, R, put_files


# ---- projects ---------------------------------------------------------------------------
def test_default_project_exists(pfs):
    assert [p.name for p in pfs.list_projects()] == ["default"]
    assert pfs.inspect_project("default").name == "default"
    assert pfs.inspect_project("").name == "default"  # empty means default


def test_create_inspect_list_delete_project(pfs):
    pfs.create_project("p1", description="first")
    info = pfs.inspect_project("p1")
    assert (info.name, info.description) == ("p1", "first")
    assert info.created_at > 0
    pfs.create_project("p2")
    assert sorted(p.name for p in pfs.list_projects()) == ["default", "p1", "p2"]
    with pytest.raises(ProjectExists, match="^project p1 already exists$"):
        pfs.create_project("p1")
    pfs.create_project("p1", description="changed", update=True)
    assert pfs.inspect_project("p1").description == "changed"
    pfs.delete_project("p2")
    assert sorted(p.name for p in pfs.list_projects()) == ["default", "p1"]
    with pytest.raises(ProjectNotFound, match='^project "p2" not found$'):
        pfs.inspect_project("p2")
    with pytest.raises(ProjectNotFound):
        pfs.delete_project("p2")


@pytest.mark.parametrize("name,msg", [
    ("a b", "only alphanumeric"),
    ("a.b", "only alphanumeric"),
    ("a/b", "only alphanumeric"),
    ("-lead", "must start with an alphanumeric"),
    ("x" * 52, "1 characters longer than the 51 max"),
])
def test_project_name_rules(pfs, name, msg):
    with pytest.raises(InvalidName, match=msg):
        pfs.create_project(name)
    assert [p.name for p in pfs.list_projects()] == ["default"]


def test_project_name_limits_accepted(pfs):
    pfs.create_project("x" * 51)
    pfs.create_project("a_b-C9")
    assert len(pfs.list_projects()) == 3


def test_delete_project_with_repos_needs_force(pfs):
    pfs.create_project("p")
    pfs.create_repo(R("r", "p"))
    put_files(pfs, R("r", "p"), "master", {"/f": b"x"})
    with pytest.raises(HasDependents):
        pfs.delete_project("p")
    assert pfs.inspect_repo(R("r", "p")).repo.name == "r"
    pfs.delete_project("p", force=True)
    with pytest.raises(ProjectNotFound):
        pfs.inspect_project("p")
    with pytest.raises(ProjectNotFound):
        pfs.inspect_repo(R("r", "p"))
    assert pfs.list_repos() == []


def test_repos_live_in_their_project(pfs):
    pfs.create_project("p")
    pfs.create_repo(R("same", "p"))
    pfs.create_repo(R("same"))
    put_files(pfs, R("same", "p"), "master", {"/only-in-p": b"1"})
    assert [r.repo for r in pfs.list_repos(["p"])] == [R("same", "p")]
    assert [r.repo for r in pfs.list_repos(["default"])] == [R("same")]
    assert [r.repo for r in pfs.list_repos([""])] == [R("same")]  # "" is default
    assert len(pfs.list_repos()) == 2
    assert pfs.inspect_repo(R("same")).size == 0
    assert pfs.inspect_repo(R("same", "p")).size == 1
    with pytest.raises(ProjectNotFound, match='project "nope" not found'):
        pfs.create_repo(R("x", "nope"))


# ---- repos ------------------------------------------------------------------------------
def test_create_inspect_repo(pfs):
    pfs.create_repo(R("images"), description="pictures")
    info = pfs.inspect_repo(R("images"))
    assert info.repo == Repo("default", "images", "user")
    assert info.description == "pictures"
    assert info.branches == []  # a new repo has no branches
    assert info.size == 0
    assert info.created > 0
    with pytest.raises(RepoExists, match="^repo default/images already exists$"):
        pfs.create_repo(R("images"))
    pfs.create_repo(R("images"), description="photos", update=True)
    assert pfs.inspect_repo(R("images")).description == "photos"


@pytest.mark.parametrize("name", ["a.b", "a b", "a/b", "", "ü", "a@b", "x:y"])
def test_repo_name_rules(pfs, name):
    with pytest.raises(InvalidName, match=r"only alphanumeric characters, underscores, and dashes are allowed"):
        pfs.create_repo(R(name))
    assert pfs.list_repos() == []


def test_inspect_missing_repo(pfs):
    with pytest.raises(RepoNotFound, match="^repo default/nope not found$"):
        pfs.inspect_repo(R("nope"))


def test_repo_size_is_master_head_size(pfs):
    pfs.create_repo(R("a"))
    put_files(pfs, R("a"), "master", {"/x": b"12345", "/d/y": b"123"})
    assert pfs.inspect_repo(R("a")).size == 8
    put_files(pfs, R("a"), "dev", {"/big": b"x" * 100})  # other branches do not count
    assert pfs.inspect_repo(R("a")).size == 8
    put_files(pfs, R("a"), "master", {"/x": None})
    assert pfs.inspect_repo(R("a")).size == 3
    assert sorted(b.name for b in pfs.inspect_repo(R("a")).branches) == ["dev", "master"]


def test_list_repos_newest_first(pfs):
    for n in ["one", "two", "three"]:
        pfs.create_repo(R(n))
    assert [r.repo.name for r in pfs.list_repos()] == ["three", "two", "one"]


def test_delete_repo(pfs):
    pfs.create_repo(R("a"))
    c = put_files(pfs, R("a"), "master", {"/x": b"1"})
    assert pfs.delete_repo(R("a")) is True
    assert pfs.list_repos() == []
    with pytest.raises(RepoNotFound):
        pfs.inspect_repo(R("a"))
    # its branches and commits are gone with it, with clear errors
    with pytest.raises(RepoNotFound, match="repo default/a not found"):
        pfs.inspect_branch(B("a"))
    with pytest.raises(RepoNotFound):
        pfs.inspect_commit(R("a"), c.commit.id)
    assert pfs.commit_set(c.commit.id) == []
    # deleting a missing repo is no error, as in Pachyderm 2.x (it answers deleted=false)
    assert pfs.delete_repo(R("a")) is False
    assert pfs.delete_repo(R("a"), force=True) is False
    # a repo of the same name starts from scratch
    pfs.create_repo(R("a"))
    assert pfs.inspect_repo(R("a")).branches == []
    assert pfs.list_commits(R("a")) == []


def test_delete_repo_with_downstream_needs_force(pfs):
    pfs.create_repo(R("up"))
    pfs.create_repo(R("down"))
    put_files(pfs, R("up"), "master", {"/x": b"1"})
    pfs.create_branch(B("down"), provenance=(B("up"),))
    with pytest.raises(HasDependents):
        pfs.delete_repo(R("up"))
    assert pfs.inspect_branch(B("up")).subvenance == [B("down")]
    assert pfs.delete_repo(R("up"), force=True)
    down = pfs.inspect_branch(B("down"))
    assert down.provenance == [] and down.direct_provenance == []
    # the downstream repo keeps working
    pfs.delete_repo(R("down"))
    assert pfs.list_repos() == []


def test_delete_downstream_repo_cleans_upstream_subvenance(pfs):
    pfs.create_repo(R("up"))
    pfs.create_repo(R("down"))
    pfs.create_branch(B("down"), provenance=(B("up"),))
    assert pfs.inspect_branch(B("up")).subvenance == [B("down")]
    pfs.delete_repo(R("down"))
    assert pfs.inspect_branch(B("up")).subvenance == []
    # and the upstream can now be deleted without force
    pfs.delete_repo(R("up"))


def test_branch_of_missing_repo(pfs):
    with pytest.raises(RepoNotFound, match="repo default/ghost not found"):
        pfs.inspect_branch(B("ghost"))
    pfs.create_repo(R("a"))
    with pytest.raises(BranchNotFound, match='^branch "master" not found in repo default/a$'):
        pfs.inspect_branch(B("a"))
