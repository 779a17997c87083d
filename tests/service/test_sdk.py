"""The unmodified pachyderm-sdk 2.12.2 client drives our pachd (the issue's "Must show")."""
from __future__ import annotations

import io
import os
import random
import tarfile
import threading
import time

import grpc
import pytest
from pachyderm_sdk.api import pfs

from tests.service.helpers import at, branch_of, expect_error, get_bytes, head, is_set, repo_of

BYTES = 1024 * 1024


@pytest.fixture
def repo(client):
    r = repo_of("data")
    client.pfs.create_repo(repo=r)
    return r


# ---- basics ---------------------------------------------------------------------------------
def test_version(client):
    v = client.get_version()
    assert (v.major, v.minor) == (2, 12)


def test_project_and_repo(client):
    client.pfs.create_project(project=pfs.Project(name="proj"), description="mine")
    assert client.pfs.project_exists(pfs.Project(name="proj"))
    assert not client.pfs.project_exists(pfs.Project(name="nope"))
    info = client.pfs.inspect_project(project=pfs.Project(name="proj"))
    assert info.project.name == "proj" and info.description == "mine"
    assert sorted(p.project.name for p in client.pfs.list_project()) == ["default", "proj"]
    r = repo_of("images", "proj")
    client.pfs.create_repo(repo=r, description="pictures")
    assert client.pfs.repo_exists(r)
    assert not client.pfs.repo_exists(repo_of("images"))  # other project
    ri = client.pfs.inspect_repo(repo=r)
    assert ri.repo.name == "images" and ri.repo.project.name == "proj"
    assert ri.description == "pictures" and ri.repo.type == "user"
    listed = list(client.pfs.list_repo(projects=[pfs.Project(name="proj")]))
    assert [x.repo.name for x in listed] == ["images"]
    assert list(client.pfs.list_repo(projects=[pfs.Project(name="default")])) == []
    details = expect_error(grpc.StatusCode.ALREADY_EXISTS, client.pfs.create_repo, repo=r)
    assert details == "repo proj/images already exists"
    expect_error(grpc.StatusCode.ALREADY_EXISTS, client.pfs.create_project, project=pfs.Project(name="proj"))
    # an empty project means default
    client.pfs.create_repo(repo=pfs.Repo(name="plain"))
    assert client.pfs.inspect_repo(repo=repo_of("plain")).repo.project.name == "default"


def test_put_get_list_in_commit_context(client, repo):
    with client.pfs.commit(branch=branch_of(repo), description="first") as c:
        c.put_file_from_bytes("/a.txt", b"hello")
        c.put_file_from_bytes("/dir/b.txt", b"world!")
        c.put_file_from_bytes("/dir/c.txt", b"x")
        c.put_file_from_bytes("/dir/c.txt", b"-more", append=True)
    ci = c.wait()
    assert is_set(ci.finished) and ci.description == "first"
    assert ci.size_bytes_upper_bound == 5 + 6 + 6
    assert get_bytes(client, pfs.File(commit=head(repo), path="/a.txt")) == b"hello"
    assert get_bytes(client, pfs.File(commit=at(repo, c.id), path="dir/c.txt")) == b"x-more"
    top = list(client.pfs.list_file(file=pfs.File(commit=head(repo), path="/")))
    assert [(f.file.path, f.file_type, f.size_bytes) for f in top] == [
        ("/a.txt", pfs.FileType.FILE, 5), ("/dir/", pfs.FileType.DIR, 12)]
    assert [f.file.path for f in client.pfs.walk_file(file=pfs.File(commit=head(repo), path="/dir"))] == [
        "/dir/", "/dir/b.txt", "/dir/c.txt"]
    info = client.pfs.inspect_file(file=pfs.File(commit=head(repo), path="/dir/b.txt"))
    assert info.size_bytes == 6 and info.file_type == pfs.FileType.FILE and info.hash
    assert info.file.commit.id == c.id
    assert [b.branch.name for b in client.pfs.list_branch(repo=repo)] == ["master"]
    commits = list(client.pfs.list_commit(repo=repo))
    assert [x.commit.id for x in commits] == [c.id]
    assert client.pfs.inspect_repo(repo=repo).details.size_bytes == 17
    assert client.pfs.path_exists(pfs.File(commit=head(repo), path="/dir"))
    assert not client.pfs.path_exists(pfs.File(commit=head(repo), path="/zzz"))
    assert client.pfs.branch_exists(branch_of(repo))
    assert not client.pfs.branch_exists(branch_of(repo, "dev"))
    assert client.pfs.commit_exists(at(repo, c.id))
    assert not client.pfs.commit_exists(at(repo, "0" * 32))


def test_delete_and_copy_file(client, repo):
    with client.pfs.commit(branch=branch_of(repo)) as c:
        c.put_file_from_bytes("/a", b"A")
        c.put_file_from_bytes("/d/x", b"X")
    with client.pfs.commit(branch=branch_of(repo)) as c2:
        c2.copy_file(src=pfs.File(commit=at(repo, c.id), path="/d"), dst="/e")
        c2.copy_file(src=pfs.File(commit=at(repo, c.id), path="/a"), dst="/b")
        c2.delete_file(path="/a")
    paths = [f.file.path for f in client.pfs.walk_file(file=pfs.File(commit=head(repo), path="/"))]
    assert paths == ["/", "/b", "/d/", "/d/x", "/e/", "/e/x"]
    assert get_bytes(client, pfs.File(commit=head(repo), path="/e/x")) == b"X"


def test_put_file_on_branch_makes_one_off_commit(client, repo):
    # set_commit naming only a branch: a one-off commit per ModifyFile stream
    client.pfs.put_file_from_bytes(commit=head(repo), path="/one", data=b"1")
    client.pfs.put_file_from_bytes(commit=head(repo), path="/two", data=b"2")
    commits = list(client.pfs.list_commit(repo=repo))
    assert len(commits) == 2 and all(is_set(x.finished) for x in commits)
    # a branch name in Commit.id works too (what python-pachyderm sends)
    client.pfs.put_file_from_bytes(commit=pfs.Commit(repo=repo, id="master"), path="/three", data=b"3")
    assert len(list(client.pfs.list_commit(repo=repo))) == 3
    assert get_bytes(client, pfs.File(commit=head(repo), path="/two")) == b"2"


def test_put_file_from_file_multi_mib(client, repo, tmp_path):
    rng = random.Random(7)
    data = rng.randbytes(21 * BYTES + 12345)  # > the SDK's 19 MB message size: several messages
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    with client.pfs.commit(branch=branch_of(repo)) as c:
        with open(src, "rb") as fh:
            c.put_file_from_file(path="/big.bin", file=fh)
    f = pfs.File(commit=head(repo), path="/big.bin")
    assert client.pfs.inspect_file(file=f).size_bytes == len(data)
    assert get_bytes(client, f) == data
    # offset reads
    tail = b"".join(m.value for m in client.pfs.get_file(file=f, offset=len(data) - 1000))
    assert tail == data[-1000:]
    # many messages arrive, none above the server's chunking size
    sizes = [len(m.value) for m in client.pfs.get_file(file=f)]
    assert len(sizes) > 1 and max(sizes) <= 4 * BYTES


def test_get_file_tar(client, repo):
    with client.pfs.commit(branch=branch_of(repo)) as c:
        c.put_file_from_bytes("/d/a", b"alpha")
        c.put_file_from_bytes("/d/sub/b", b"beta")
    data = b"".join(m.value for m in client.pfs.get_file_tar(file=pfs.File(commit=head(repo), path="/d")))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    assert got == {"d/a": b"alpha", "d/sub/b": b"beta"}
    details = expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.get_file,
                           file=pfs.File(commit=head(repo), path="/d"))
    assert "GetFileTAR" in details


def test_glob_and_diff(client, repo):
    with client.pfs.commit(branch=branch_of(repo)) as c1:
        c1.put_file_from_bytes("/a.txt", b"1")
        c1.put_file_from_bytes("/b.csv", b"2")
        c1.put_file_from_bytes("/d/c.txt", b"3")
    with client.pfs.commit(branch=branch_of(repo)) as c2:
        c2.put_file_from_bytes("/a.txt", b"changed")
        c2.delete_file(path="/b.csv")
        c2.put_file_from_bytes("/new.txt", b"n")
    globbed = [f.file.path for f in client.pfs.glob_file(commit=head(repo), pattern="/**.txt")]
    assert globbed == ["/a.txt", "/d/c.txt", "/new.txt"]
    assert [f.file.path for f in client.pfs.glob_file(commit=head(repo), pattern="/*")] == [
        "/a.txt", "/d/", "/new.txt"]
    diff = list(client.pfs.diff_file(new_file=pfs.File(commit=at(repo, c2.id), path="/"),
                                     old_file=pfs.File(commit=at(repo, c1.id), path="/")))
    pairs = {(d.new_file.file.path or None, d.old_file.file.path or None) for d in diff}
    assert ("/a.txt", "/a.txt") in pairs
    assert (None, "/b.csv") in pairs
    assert ("/new.txt", None) in pairs
    assert not any("/d/c.txt" in p for p in pairs)
    # without old_file: against the parent
    diff2 = list(client.pfs.diff_file(new_file=pfs.File(commit=at(repo, c2.id), path="/")))
    assert {(d.new_file.file.path or None, d.old_file.file.path or None) for d in diff2} == pairs


def test_list_commit_options_and_ancestry(client, repo):
    ids = []
    for i in range(4):
        with client.pfs.commit(branch=branch_of(repo)) as c:
            c.put_file_from_bytes(f"/{i}", b"x")
        ids.append(c.id)
    assert [x.commit.id for x in client.pfs.list_commit(repo=repo)] == ids[::-1]
    assert [x.commit.id for x in client.pfs.list_commit(repo=repo, number=2)] == ids[:1:-1]
    assert [x.commit.id for x in client.pfs.list_commit(repo=repo, reverse=True)] == ids
    assert [x.commit.id for x in client.pfs.list_commit(repo=repo, to=head(repo), from_=at(repo, ids[1]))] == [
        ids[3], ids[2]]
    # ancestry references arrive as commit ids
    assert client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id="master^")).commit.id == ids[2]
    assert client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id="master.1")).commit.id == ids[0]
    assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri("data@master~3")).commit.id == ids[0]
    info = client.pfs.inspect_commit(commit=at(repo, ids[2]))
    assert info.parent_commit.id == ids[1] and [c.id for c in info.child_commits] == [ids[3]]
    assert info.origin.kind == pfs.OriginKind.USER
    expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_commit, commit=pfs.Commit(repo=repo, id="master^9"))


def test_inspect_commit_wait_from_another_thread(client, repo):
    commit = client.pfs.start_commit(branch=branch_of(repo))
    assert not is_set(client.pfs.inspect_commit(commit=commit).finished)
    box = {}

    def waiter():
        try:
            box["info"] = client.pfs.wait_commit(commit)
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert t.is_alive() and not box
    client.pfs.put_file_from_bytes(commit=commit, path="/x", data=b"abc")
    client.pfs.finish_commit(commit=commit)
    t.join(10)
    assert not t.is_alive()
    assert "error" not in box, box.get("error")
    assert is_set(box["info"].finished) and box["info"].size_bytes_upper_bound == 3
    infos = list(client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=commit.id), wait=True))
    assert [i.commit.id for i in infos] == [commit.id]


def test_subscribe_commit(client, repo):
    with client.pfs.commit(branch=branch_of(repo)) as first:
        first.put_file_from_bytes("/1", b"1")
    stream = client.pfs.subscribe_commit(repo=repo, branch="master", state=pfs.CommitState.FINISHED)
    assert next(stream).commit.id == first.id

    def later():
        time.sleep(0.3)
        with client.pfs.commit(branch=branch_of(repo)) as c:
            c.put_file_from_bytes("/2", b"2")
        box["id"] = c.id

    box = {}
    t = threading.Thread(target=later)
    t.start()
    nxt = next(stream)  # blocks until the new commit finishes
    t.join(10)
    assert nxt.commit.id == box["id"]
    assert is_set(nxt.finished)
    stream.close()


def test_delete_repo(client, repo):
    client.pfs.put_file_from_bytes(commit=head(repo), path="/x", data=b"x")
    resp = client.pfs.delete_repo(repo=repo)
    assert resp.deleted
    assert not client.pfs.repo_exists(repo)
    assert list(client.pfs.list_repo()) == []
    assert not client.pfs.delete_repo(repo=repo, force=True).deleted
    assert not client.pfs.delete_repo(repo=repo).deleted  # a missing repo: no error, as in Pachyderm


def test_branches_and_provenance(client, repo):
    down = repo_of("down")
    client.pfs.create_repo(repo=down)
    client.pfs.create_branch(branch=branch_of(down), provenance=[branch_of(repo)])
    bi = client.pfs.inspect_branch(branch=branch_of(down))
    assert [b.repo.name for b in bi.direct_provenance] == ["data"]
    client.pfs.put_file_from_bytes(commit=head(repo), path="/x", data=b"x")
    up_head = client.pfs.inspect_commit(commit=head(repo)).commit.id
    down_info = client.pfs.inspect_commit(commit=head(down))
    assert down_info.commit.id == up_head
    assert down_info.origin.kind == pfs.OriginKind.AUTO
    assert [c.commit.repo.name for c in client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=up_head))] == [
        "data", "down"]
    sets = list(client.pfs.list_commit_set())
    assert sets[0].commit_set.id == up_head
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pfs.delete_branch, branch=branch_of(repo))
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pfs.start_commit, branch=branch_of(down))
    client.pfs.create_branch(branch=branch_of(repo, "copy"), head=head(repo))
    assert client.pfs.inspect_branch(branch=branch_of(repo, "copy")).head.id == up_head


def test_squash_and_drop_commit_sets(client, repo):
    ids = []
    for i in range(3):
        with client.pfs.commit(branch=branch_of(repo)) as c:
            c.put_file_from_bytes(f"/{i}", b"x")
        ids.append(c.id)
    client.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=ids[1]))
    client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=ids[2]))
    assert [x.commit.id for x in client.pfs.list_commit(repo=repo)] == [ids[0]]
    assert client.pfs.inspect_branch(branch=branch_of(repo)).head.id == ids[0]
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pfs.squash_commit_set,
                 commit_set=pfs.CommitSet(id=ids[0]))


# ---- errors -------------------------------------------------------------------------------
def test_not_found_texts(client, repo):
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_repo, repo=repo_of("x"))
    assert d == "repo default/x not found"
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_branch, branch=branch_of(repo, "nope"))
    assert d == 'branch "nope" not found in repo default/data'
    client.pfs.put_file_from_bytes(commit=head(repo), path="/x", data=b"x")
    cid = client.pfs.inspect_commit(commit=head(repo)).commit.id
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_file,
                     file=pfs.File(commit=head(repo), path="/missing"))
    assert d == f"file /missing not found in repo default/data at commit {cid}"
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.get_file,
                     file=pfs.File(commit=head(repo), path="/missing"))
    assert d == f"file /missing not found in repo default/data at commit {cid}"
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_project, project=pfs.Project(name="q"))
    assert d == 'project "q" not found'
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_commit, commit=at(repo, "a" * 32))
    assert d == f"commit default/data@{'a' * 32} not found"
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.inspect_commit_set,
                     commit_set=pfs.CommitSet(id="b" * 32))
    assert d == f"no commits found for commitset {'b' * 32}"
    # a put into a missing repo
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.put_file_from_bytes,
                     commit=head(repo_of("ghost")), path="/x", data=b"x")
    assert d == "repo default/ghost not found"
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.list_file,
                     file=pfs.File(commit=head(repo, "nob"), path="/"))
    assert d == 'branch "nob" not found in repo default/data'


def test_invalid_argument(client, repo):
    d = expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.create_repo, repo=repo_of("bad.name"))
    assert "only alphanumeric characters, underscores, and dashes are allowed" in d
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.create_project, project=pfs.Project(name="-x"))
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.create_branch, branch=branch_of(repo, "a b"))
    # one ModifyFile stream is atomic: a bad path anywhere in it writes nothing of it
    commit = client.pfs.start_commit(branch=branch_of(repo))
    for bad in ["/a/../b", "/x\x00y", "/star*", "/caf\u00e9"]:
        reqs = [pfs.ModifyFileRequest(set_commit=commit),
                pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/ok", raw=b"fine")),
                pfs.ModifyFileRequest(add_file=pfs.AddFile(path=bad, raw=b"x"))]
        d = expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.modify_file, iter(reqs))
        assert "invalid" in d
    client.pfs.finish_commit(commit=commit)
    assert list(client.pfs.list_file(file=pfs.File(commit=at(repo, commit.id), path="/"))) == []


def test_failed_precondition_for_finished_commit(client, repo):
    with client.pfs.commit(branch=branch_of(repo)) as c:
        c.put_file_from_bytes("/x", b"1")
    d = expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pfs.put_file_from_bytes,
                     commit=at(repo, c.id), path="/y", data=b"2")
    assert "has already finished" in d
    d = expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pfs.finish_commit, commit=at(repo, c.id))
    assert "has already finished" in d
    assert [f.file.path for f in client.pfs.list_file(file=pfs.File(commit=head(repo), path="/"))] == ["/x"]


def test_auth_not_activated(client):
    """(Activate is the one auth call that works with auth off: tests/auth covers it.)"""
    from pachyderm_sdk.api import auth
    from pachyderm_sdk.errors import AuthServiceNotActivated
    for call in (lambda: client.auth.who_am_i(),
                 lambda: client.auth.get_configuration(),
                 lambda: client.auth.get_permissions(resource=auth.Resource(type=auth.ResourceType.REPO, name="r"))):
        with pytest.raises((grpc.RpcError, AuthServiceNotActivated)) as ei:
            call()
        e = ei.value
        if isinstance(e, grpc.RpcError):
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED
            assert e.details() == "the auth service is not activated"
        else:
            assert "the auth service is not activated" in str(e)


def test_large_listing_streams(client, repo):
    def reqs():
        yield pfs.ModifyFileRequest(set_commit=head(repo))
        for i in range(1000):
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=f"/many/f{i:04d}", raw=b"%d" % i))

    client.pfs.modify_file(reqs())  # one stream, one one-off commit
    assert len(list(client.pfs.list_commit(repo=repo))) == 1
    listed = list(client.pfs.list_file(file=pfs.File(commit=head(repo), path="/many")))
    assert len(listed) == 1000
    page = list(client.pfs.list_file(file=pfs.File(commit=head(repo), path="/many"), number=10,
                                     pagination_marker=pfs.File(commit=head(repo), path="/many/f0100")))
    assert [f.file.path for f in page] == [f"/many/f{i:04d}" for i in range(101, 111)]
    assert get_bytes(client, pfs.File(commit=head(repo), path="/many/f0999")) == b"999"


def test_env_has_no_stray_token():
    assert not os.environ.get("PACH_PYTHON_AUTH_TOKEN")
