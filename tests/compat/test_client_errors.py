"""The answers clients match on, through both official clients: InspectFile's not-found
texts (python-pachyderm's `path_exists` parses them), DeleteRepo of a missing repo (no
error, as Pachyderm 2.x), InspectCommit's `commit.branch`, DiffFile with different paths."""
from __future__ import annotations

import textwrap

import grpc
from pachyderm_sdk.api import pfs

from tests.compat.helpers import run_pp
from tests.service.helpers import expect_error


def test_sdk_not_found_texts_and_commit_fields(client):
    client.pfs.create_repo(repo=pfs.Repo(name="r"))
    with client.pfs.commit(branch=pfs.Branch.from_uri("r@master")) as c:
        c.put_file_from_bytes(path="/a", data=b"x")
    cid = c.id
    assert client.pfs.path_exists(pfs.File.from_uri("r@master:/a"))
    assert not client.pfs.path_exists(pfs.File.from_uri("r@master:/nope"))
    msg = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_file, file=pfs.File.from_uri("r@master:/nope"))
    assert msg == f"file /nope not found in repo default/r at commit {cid}"
    msg = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_file, file=pfs.File.from_uri("r@dev:/a"))
    assert msg == 'branch "dev" not found in repo default/r'
    msg = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_commit,
                       commit=pfs.Commit(repo=pfs.Repo(name="r"), id="0" * 32))
    assert msg == f"commit default/r@{'0' * 32} not found"
    ci = client.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo(name="r"), id=cid))
    assert ci.commit.branch.name == "master" and ci.commit.branch.repo.name == "r"
    assert ci.origin.kind == pfs.OriginKind.USER and ci.details.size_bytes == 1
    assert not client.pfs.delete_repo(repo=pfs.Repo(name="never")).deleted


PP_SCRIPT = textwrap.dedent('''
    import sys, grpc, python_pachyderm
    c = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
    c.create_repo("r")
    with c.commit("r", "master") as c1:
        c.put_file_bytes(c1, "/old/same", b"s")
        c.put_file_bytes(c1, "/old/changed", b"1")
    with c.commit("r", "master") as c2:
        c.put_file_bytes(c2, "/new/same", b"s")
        c.put_file_bytes(c2, "/new/changed", b"22")
    assert c.path_exists(("r", "master"), "/new/same")
    assert not c.path_exists(("r", "master"), "/nope")
    try:
        c.path_exists(("r", "nobranch"), "/nope")
        raise SystemExit("path_exists on a missing branch did not raise")
    except ValueError as e:
        assert "nonexistent commit" in str(e), e
    ci = c.inspect_commit(("r", c2.id))
    ci = list(ci)[0] if not hasattr(ci, "commit") else ci
    assert ci.commit.branch.name == "master", ci
    c.delete_repo("never-existed")   # no error, as in Pachyderm 2.x
    diffs = list(c.diff_file(("r", c2.id), "/new", ("r", c1.id), "/old"))
    news = sorted(d.new_file.file.path for d in diffs if d.new_file.file.path)
    olds = sorted(d.old_file.file.path for d in diffs if d.old_file.file.path)
    assert "/new/changed" in news and "/new/same" in news, news
    assert "/old/changed" in olds and "/old/same" in olds, olds
    print("ok")
''')


def test_python_pachyderm_path_exists_delete_repo_diff(pp_python, pachd):
    run_pp(pp_python, PP_SCRIPT, pachd.port)
