"""pachctl.refs: `repo[@ref[:path]]` / `pipeline@job` parsing with pachctl's exact errors."""
import re

import pytest
from hypothesis import given, strategies as st

from pachctl.refs import (
    BranchRef,
    CommitRef,
    FileRef,
    JobRef,
    RepoRef,
    commit_in_repo,
    is_commit_set_id,
    new_id,
    parse_branch,
    parse_commit,
    parse_file,
    parse_head,
    parse_job,
    parse_repo,
    validate_name,
)
from pfs.errors import InvalidName

CID = "0123456789ab4def0123456789abcdef"
USER = RepoRef("repo", "user", "default")


@pytest.mark.parametrize("arg,repo,branch,cid,path", [
    ("repo", USER, "", "", ""),
    ("repo@master", USER, "master", "", ""),
    ("repo@master:/a/b", USER, "master", "", "/a/b"),
    ("repo@master:a/b", USER, "master", "", "a/b"),          # path kept verbatim
    ("repo@master:", USER, "master", "", ""),
    ("repo@master:/a:b", USER, "master", "", "/a:b"),        # split on the first ':'
    ("repo@" + CID, USER, "", CID, ""),
    ("repo@" + CID + ":/f", USER, "", CID, "/f"),
    ("repo@master=" + CID, USER, "master", CID, ""),
    ("repo@master=" + CID + ":/x", USER, "master", CID, "/x"),
    ("repo@master^", USER, "", "master^", ""),               # not a valid name -> commit id
    ("repo@master~2:/f", USER, "", "master~2", "/f"),
    ("repo@master.1", USER, "", "master.1", ""),
    ("repo@" + CID + "^2", USER, "", CID + "^2", ""),
    ("repo@", USER, "", "", ""),
    ("repo@:/p", USER, "", "", "/p"),
    ("repo@=abc", USER, "", "abc", ""),
    ("repo@a=b=c", USER, "a", "b=c", ""),
    ("repo@x@y", USER, "", "x@y", ""),                       # split on the first '@'
    ("repo@0123456789abcdef0123456789abcdef", USER, "0123456789abcdef0123456789abcdef", "", ""),
    ("edges.meta@master", RepoRef("edges", "meta", "default"), "master", "", ""),
    ("edges.spec", RepoRef("edges", "spec", "default"), "", "", ""),
    ("a.b.c@m", RepoRef("a", "b.c", "default"), "m", "", ""),
    ("proj/repo@m", RepoRef("proj/repo", "user", "default"), "m", "", ""),  # no project syntax
])
def test_parse_file_table(arg, repo, branch, cid, path):
    f = parse_file(arg)
    assert f == FileRef(CommitRef(repo, branch, cid), path)


def test_project_comes_from_parameter():
    f = parse_file("repo@master:/x", project="p1")
    assert f.commit.repo == RepoRef("repo", "user", "p1")
    assert parse_commit("r@b", "p2").repo.project == "p2"
    assert parse_branch("r@b", "p3").repo.project == "p3"
    assert parse_job("pipe@" + CID, "p4") == JobRef("pipe", CID, "p4")


@pytest.mark.parametrize("fn", [parse_file, parse_commit, parse_branch])
@pytest.mark.parametrize("arg", ["", "@master", "@master:/x", "@"])
def test_repo_cannot_be_empty(fn, arg):
    with pytest.raises(ValueError) as e:
        fn(arg)
    assert str(e.value) == f'invalid format "{arg}": repo cannot be empty'


@pytest.mark.parametrize("arg", ["repo@master:/x", "repo@master:", "repo@" + CID + ":/f", "r@:"])
def test_commit_rejects_path(arg):
    with pytest.raises(ValueError) as e:
        parse_commit(arg)
    assert str(e.value) == f'invalid format "{arg}": cannot specify a file path'


@pytest.mark.parametrize("arg,expected", [
    ("repo", CommitRef(USER)),
    ("repo@master", CommitRef(USER, "master")),
    ("repo@master^", CommitRef(USER, "", "master^")),
    ("repo@b=" + CID, CommitRef(USER, "b", CID)),
])
def test_parse_commit(arg, expected):
    assert parse_commit(arg) == expected


@pytest.mark.parametrize("arg,expected", [
    ("repo", BranchRef(USER, "")),
    ("repo@master", BranchRef(USER, "master")),
    ("repo@feature-1_x", BranchRef(USER, "feature-1_x")),
])
def test_parse_branch(arg, expected):
    assert parse_branch(arg) == expected


@pytest.mark.parametrize("arg", ["repo@master^", "repo@" + CID, "repo@master=" + CID, "repo@m.1"])
def test_branch_rejects_commit_or_ancestry(arg):
    with pytest.raises(ValueError) as e:
        parse_branch(arg)
    assert str(e.value) == f'invalid branch "{arg}": cannot specify a commit or ancestry'


def test_branch_with_path_reports_path_error_first():
    with pytest.raises(ValueError, match="cannot specify a file path"):
        parse_branch("repo@master:/x")


@pytest.mark.parametrize("arg,expected", [
    ("edges@" + CID, JobRef("edges", CID, "default")),
    ("edges@", JobRef("edges", "", "default")),
    ("a@b@c", JobRef("a", "b@c", "default")),
])
def test_parse_job(arg, expected):
    assert parse_job(arg) == expected


@pytest.mark.parametrize("arg,text", [
    ("@" + CID, 'invalid format "@{}": pipeline must be specified'.format(CID)),
    ("", 'invalid format "": pipeline must be specified'),
    ("edges", 'invalid format "edges": expected pipeline@job-id'),
])
def test_parse_job_errors(arg, text):
    with pytest.raises(ValueError) as e:
        parse_job(arg)
    assert str(e.value) == text


def test_parse_repo():
    assert parse_repo("r") == RepoRef("r", "user", "default")
    assert parse_repo("r.meta", "p") == RepoRef("r", "meta", "p")


def test_string_forms():
    assert str(USER) == "default/repo"
    assert str(RepoRef("edges", "meta", "p")) == "p/edges.meta"
    assert RepoRef("edges", "meta").compact == "edges.meta"
    assert USER.compact == "repo"
    assert str(CommitRef(USER, "master")) == "default/repo@master"
    assert str(CommitRef(USER, "master", CID)) == f"default/repo@{CID}"
    assert str(BranchRef(USER, "master")) == "default/repo@master"
    assert str(JobRef("pipe", CID)) == f"default/pipe@{CID}"
    assert CommitRef(USER, "master").ref == "master"


def test_refs_are_frozen_and_hashable():
    c = parse_commit("repo@master")
    with pytest.raises(Exception):
        c.branch = "x"  # type: ignore[misc]
    assert len({c, parse_commit("repo@master")}) == 1


def test_head_and_commit_in_repo():
    assert commit_in_repo(USER, "master") == CommitRef(USER, "master")
    assert commit_in_repo(USER, CID) == CommitRef(USER, "", CID)
    assert commit_in_repo(USER, "master^") == CommitRef(USER, "", "master^")
    assert commit_in_repo(USER, "b=" + CID) == CommitRef(USER, "b", CID)
    other = RepoRef("other", "user", "p")
    assert parse_head("other@master", RepoRef("repo", "user", "p")) == CommitRef(other, "master")
    assert parse_head("dev", USER) == CommitRef(USER, "dev")


# ---- ids -----------------------------------------------------------------------------------
@pytest.mark.parametrize("s,ok", [
    (CID, True),
    ("0123456789abcdef0123456789abcdef", False),  # version nibble not 4
    ("0123456789AB4DEF0123456789ABCDEF", False),  # uppercase
    (CID[:-1], False),
    (CID + "0", False),
    ("0123456789ab-4def-0123-456789abcdef", False),
    ("master", False),
])
def test_is_commit_set_id(s, ok):
    assert is_commit_set_id(s) is ok


def test_new_id():
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(is_commit_set_id(i) for i in ids)


def test_validators_reexported():
    with pytest.raises(InvalidName):
        validate_name("a.b")


# ---- properties ------------------------------------------------------------------------------
names = st.from_regex(r"[a-zA-Z0-9_-]{1,12}", fullmatch=True)
paths = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)


@given(names, names, paths)
def test_round_trip_branch_path(repo, branch, path):
    f = parse_file(f"{repo}@{branch}:{path}")
    if is_commit_set_id(branch):
        assert f.commit == CommitRef(RepoRef(repo), "", branch)
    else:
        assert f.commit == CommitRef(RepoRef(repo), branch, "")
    assert f.path == path


@given(names, st.from_regex(r"[0-9a-f]{12}4[0-9a-f]{19}", fullmatch=True),
       st.sampled_from(["", "^", "~3", ".1", "^^"]))
def test_round_trip_commit(repo, cid, suffix):
    c = parse_commit(f"{repo}@{cid}{suffix}")
    assert c == CommitRef(RepoRef(repo), "", cid + suffix)


@given(st.text(max_size=30))
def test_parse_file_never_crashes(arg):
    try:
        f = parse_file(arg)
    except ValueError as e:
        assert re.fullmatch(r'invalid format ".*": repo cannot be empty', str(e), re.S)
    else:  # like Go, only the text before '@' must be non-empty (".x" gives name "")
        assert arg.partition("@")[0] != ""
        assert f.commit.repo.compact == arg.partition("@")[0] or "." in arg.partition("@")[0]
