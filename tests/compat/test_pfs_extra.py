"""The rest of pfs_v2 and storage.Fileset through pachyderm-sdk 2.12.2: file sets, provenance
walks, ForgetCommit, the cache, ListTask, Egress; DeleteRepo of a missing repo; DiffFile
with different old and new paths."""
from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pfs, storage

from tests.service.helpers import branch_of, expect_error, get_bytes, repo_of


@pytest.fixture
def repo(client):
    r = repo_of("data")
    client.pfs.create_repo(repo=r)
    return r


def _commit_files(client, repo, files: dict, branch="master"):
    with client.pfs.commit(branch=pfs.Branch(repo=repo, name=branch)) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path, data)
    return c.commit if hasattr(c, "commit") else c


def _ops(files: dict):
    for path, data in files.items():
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=data))


def _fileset_files(client, fs_id):
    commit = pfs.Commit(repo=pfs.Repo(name="__filesets__", type="user",
                                      project=pfs.Project(name="default")), id=fs_id)
    return {f.file.path: get_bytes(client, f.file) for f in client.pfs.walk_file(file=pfs.File(commit=commit, path="/"))
            if f.file_type == pfs.FileType.FILE}


def test_file_sets_create_compose_shard_add(client, repo):
    a = client.pfs.create_file_set(_ops({"/a": b"A", "/x/b": b"BB"})).file_set_id
    b = client.pfs.create_file_set(_ops({"/a": b"A2", "/c": b"C"})).file_set_id
    assert len(a) == 32 and a != b
    assert _fileset_files(client, a) == {"/a": b"A", "/x/b": b"BB"}
    both = client.pfs.compose_file_set(file_set_ids=[a, b], ttl_seconds=60).file_set_id
    assert _fileset_files(client, both) == {"/a": b"A2", "/c": b"C", "/x/b": b"BB"}  # later set wins
    shards = client.pfs.shard_file_set(file_set_id=both, num_files=2).shards
    assert [(s.lower, s.upper) for s in shards] == [("", "/x/b"), ("/x/b", "")]
    client.pfs.renew_file_set(file_set_id=both, ttl_seconds=120)
    code = expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.renew_file_set, file_set_id=both,
                        ttl_seconds=3600)
    assert "exceeds max ttl" in code
    expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.renew_file_set, file_set_id="0" * 32, ttl_seconds=60)
    # add it to an open commit
    c = client.pfs.start_commit(branch=branch_of(repo))
    client.pfs.add_file_set(commit=c, file_set_id=both)
    client.pfs.finish_commit(commit=c)
    listed = sorted(f.file.path for f in client.pfs.walk_file(file=pfs.File(commit=c, path="/"))
                    if f.file_type == pfs.FileType.FILE)
    assert listed == ["/a", "/c", "/x/b"]
    assert get_bytes(client, pfs.File(commit=c, path="/a")) == b"A2"


def test_get_file_set_total_and_diff(client, repo):
    c1 = client.pfs.start_commit(branch=branch_of(repo))
    client.pfs.put_file_from_bytes(commit=c1, path="/old", data=b"1")
    client.pfs.finish_commit(commit=c1)
    c2 = client.pfs.start_commit(branch=branch_of(repo))
    client.pfs.put_file_from_bytes(commit=c2, path="/new", data=b"2")
    client.pfs.finish_commit(commit=c2)
    total = client.pfs.get_file_set(commit=c2).file_set_id
    diff = client.pfs.get_file_set(commit=c2, type=pfs.GetFileSetRequestFileSetType.DIFF).file_set_id
    assert _fileset_files(client, total) == {"/old": b"1", "/new": b"2"}
    assert _fileset_files(client, diff) == {"/new": b"2"}


def test_storage_fileset_api(client):
    def ops():
        yield storage.CreateFilesetRequest(append_file=storage.AppendFile(path="/a", data=b"hello "))
        yield storage.CreateFilesetRequest(append_file=storage.AppendFile(path="/a", data=b"world"))
        yield storage.CreateFilesetRequest(append_file=storage.AppendFile(path="/b/c", data=b"C"))
        yield storage.CreateFilesetRequest(append_file=storage.AppendFile(path="/gone", data=b"x"))
        yield storage.CreateFilesetRequest(delete_file=storage.DeleteFile(path="/gone"))
    fs1 = client.storage.create_fileset(ops()).fileset_id

    def read(fs_id, *filters):
        out = {}
        for r in client.storage.read_fileset(fileset_id=fs_id, filters=list(filters)):
            out[r.path] = out.get(r.path, b"") + r.data
        return out
    assert read(fs1) == {"/a": b"hello world", "/b/c": b"C"}
    assert read(fs1, storage.FileFilter(path_regex="^/b/")) == {"/b/c": b"C"}
    assert read(fs1, storage.FileFilter(path_range=storage.PathRange(lower="/b", upper=""))) == {"/b/c": b"C"}

    def copy():
        yield storage.CreateFilesetRequest(copy_file=storage.CopyFile(fileset_id=fs1, src="/b", dst="/d"))
    fs2 = client.storage.create_fileset(copy()).fileset_id
    assert read(fs2) == {"/d/c": b"C"}
    both = client.storage.compose_fileset(fileset_ids=[fs1, fs2], ttl_seconds=60).fileset_id
    assert sorted(read(both)) == ["/a", "/b/c", "/d/c"]
    assert [(s.lower, s.upper) for s in client.storage.shard_fileset(fileset_id=both, num_files=1).shards] == \
        [("", "/b/c"), ("/b/c", "/d/c"), ("/d/c", "")]
    client.storage.renew_fileset(fileset_id=both, ttl_seconds=60)
    with pytest.raises(grpc.RpcError) as ei:
        list(client.storage.read_fileset_cdr(fileset_id=both))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "ReadFileset" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        list(client.storage.read_fileset(fileset_id="nothex"))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_walk_provenance_and_subvenance(client):
    for name in ("a", "b", "c"):
        client.pfs.create_repo(repo=repo_of(name))
    client.pfs.create_branch(branch=branch_of(repo_of("b")), provenance=[branch_of(repo_of("a"))])
    client.pfs.create_branch(branch=branch_of(repo_of("c")), provenance=[branch_of(repo_of("b"))])

    def picker(name):
        return pfs.BranchPicker(name=pfs.BranchPickerBranchName(
            name="master", repo=pfs.RepoPicker(name=pfs.RepoPickerRepoName(
                name=name, type="user", project=pfs.ProjectPicker(name="default")))))
    up = [b.branch.repo.name for b in client.pfs.walk_branch_provenance(start=[picker("c")])]
    assert up == ["c", "b", "a"]
    assert [b.branch.repo.name for b in client.pfs.walk_branch_provenance(start=[picker("c")], max_depth=1)] == ["c", "b"]
    down = [b.branch.repo.name for b in client.pfs.walk_branch_subvenance(start=[picker("a")])]
    assert down == ["a", "b", "c"]
    with client.pfs.commit(branch=branch_of(repo_of("a"))) as c:
        c.put_file_from_bytes("/f", b"x")
    head_c = pfs.CommitPicker(branch_head=picker("c"))
    ups = [(ci.commit.repo.name, ci.commit.id) for ci in client.pfs.walk_commit_provenance(start=[head_c])]
    assert [r for r, _ in ups] == ["c", "b", "a"]
    assert len({i for _, i in ups}) == 1  # one commit set
    head_a = pfs.CommitPicker(branch_head=picker("a"))
    assert [ci.commit.repo.name for ci in client.pfs.walk_commit_subvenance(start=[head_a], max_commits=2)] == ["a", "b"]


def test_forget_commit(client, repo):
    c = client.pfs.start_commit(branch=branch_of(repo))
    client.pfs.put_file_from_bytes(commit=c, path="/f", data=b"x")
    picker = pfs.CommitPicker(id=pfs.CommitPickerCommitByGlobalId(
        id=c.id, repo=pfs.RepoPicker(name=pfs.RepoPickerRepoName(name=repo.name, type="user",
                                                                 project=pfs.ProjectPicker(name="default")))))
    msg = expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pfs.forget_commit, commit=picker)
    assert "not finished" in msg
    client.pfs.finish_commit(commit=c)
    client.pfs.forget_commit(commit=picker)
    assert client.pfs.inspect_commit(commit=c).commit.id == c.id  # the record stays
    msg = expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pfs.inspect_file, file=pfs.File(commit=c, path="/f"))
    assert "forgotten" in msg


def test_cache_and_tasks(client):
    from betterproto.lib.google.protobuf import Any
    fs_id = client.pfs.create_file_set(_ops({"/a": b"A"})).file_set_id
    client.pfs.put_cache(key="k1", value=Any(type_url="t/x", value=b"v1"), file_set_ids=[fs_id], tag="job-1")
    client.pfs.put_cache(key="k2", value=Any(type_url="t/x", value=b"v2"), tag="other")
    assert client.pfs.get_cache(key="k1").value.value == b"v1"
    client.pfs.clear_cache(tag_prefix="job-")
    expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.get_cache, key="k1")
    assert client.pfs.get_cache(key="k2").value.value == b"v2"
    expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.put_cache, key="k3", value=Any(), file_set_ids=["1" * 32])
    assert list(client.pfs.list_task()) == []


def test_egress_to_a_local_directory(client, repo, tmp_path):
    c = client.pfs.start_commit(branch=branch_of(repo))
    client.pfs.put_file_from_bytes(commit=c, path="/a/b.txt", data=b"bee")
    client.pfs.put_file_from_bytes(commit=c, path="/top", data=b"t" * 1000)
    client.pfs.finish_commit(commit=c)
    out = tmp_path / "egress"
    r = client.pfs.egress(commit=c, object_storage=pfs.ObjectStorageEgress(url=f"file://{out}"))
    assert r.object_storage.bytes_written == 1003
    assert (out / "a" / "b.txt").read_bytes() == b"bee" and (out / "top").read_bytes() == b"t" * 1000
    msg = expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.egress, commit=c,
                       object_storage=pfs.ObjectStorageEgress(url="gopher://x/y"))
    assert "gopher" in msg
    msg = expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pfs.egress, commit=c,
                       sql_database=pfs.SqlDatabaseEgress(url="postgres://db/x"))
    assert "database" in msg


def test_delete_missing_repo_is_not_an_error(client):
    assert not client.pfs.delete_repo(repo=repo_of("never")).deleted


def test_diff_file_with_different_old_and_new_paths(client, repo):
    c1 = client.pfs.start_commit(branch=branch_of(repo))
    for p, d in {"/old/same": b"s", "/old/changed": b"1", "/old/only_old": b"o"}.items():
        client.pfs.put_file_from_bytes(commit=c1, path=p, data=d)
    client.pfs.finish_commit(commit=c1)
    c2 = client.pfs.start_commit(branch=branch_of(repo))
    for p, d in {"/new/same": b"s", "/new/changed": b"2", "/new/only_new": b"n"}.items():
        client.pfs.put_file_from_bytes(commit=c2, path=p, data=d)
    client.pfs.finish_commit(commit=c2)
    diffs = list(client.pfs.diff_file(new_file=pfs.File(commit=c2, path="/new"),
                                      old_file=pfs.File(commit=c1, path="/old")))
    pairs = [(d.new_file.file.path or None, d.old_file.file.path or None) for d in diffs]
    # Pachyderm's differ matches by full path: nothing under /new exists under /old
    assert ("/new/changed", None) in pairs and ("/new/only_new", None) in pairs
    assert (None, "/old/only_old") in pairs and (None, "/old/changed") in pairs


def test_pfs_load_test_runs_a_spec_and_reports_errors_in_the_answer(pachd):
    """pfs_v2.API/RunLoadTest (in our proto; neither client wraps it): raw stub."""
    from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
    spec = """
count: 2
modifications:
  - count: 2
    putFile: {count: 3, source: random}
validator: {}
fileSources:
  - name: random
    random:
      directory: {depth: {min: 1, max: 2}, run: 2}
      sizes: [{min: 10, max: 100, prob: 100}]
"""
    with grpc.insecure_channel(f"127.0.0.1:{pachd.port}") as ch:
        stub = pfs_pb2_grpc.APIStub(ch)
        r = stub.RunLoadTest(pfs_pb2.RunLoadTestRequest(spec=spec, seed=7))
        assert r.error == "" and r.seed == 7 and r.branch.repo.name == "load_test"
        commits = list(stub.ListCommit(pfs_pb2.ListCommitRequest(repo=r.branch.repo)))
        assert len(commits) == 2
        files = [f for f in stub.WalkFile(pfs_pb2.WalkFileRequest(file=pfs_pb2.File(
            commit=pfs_pb2.Commit(repo=r.branch.repo, branch=r.branch), path="/"))) if f.file_type == pfs_pb2.FILE]
        assert len(files) == 2 * 2 * 3
        bad = stub.RunLoadTest(pfs_pb2.RunLoadTestRequest(spec="count: 1\nmodifications: [{putFile: {source: nope}}]"))
        assert "no file source named 'nope'" in bad.error
        bad = stub.RunLoadTest(pfs_pb2.RunLoadTestRequest(spec="bogus: 1"))
        assert "unknown field(s) ['bogus']" in bad.error
