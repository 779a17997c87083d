"""More of pfs_v2 through the SDK: URLs, clear/find commits, bulk deletes, summaries."""
from __future__ import annotations

import functools
import http.server
import threading

import grpc
import pytest
from pachyderm_sdk.api import pfs

from tests.service.helpers import at, branch_of, expect_error, get_bytes, head, repo_of


@pytest.fixture
def repo(client):
    r = repo_of("data")
    client.pfs.create_repo(repo=r)
    return r


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_put_file_from_http_url(client, repo, http_dir):
    root, base = http_dir
    data = bytes(range(256)) * 9000  # > 2 MiB: streamed in pieces
    (root / "blob.bin").write_bytes(data)
    with client.pfs.commit(branch=branch_of(repo)) as c:
        c.put_file_from_url(path="/fetched.bin", url=f"{base}/blob.bin")
    assert get_bytes(client, pfs.File(commit=head(repo), path="/fetched.bin")) == data
    # a failing URL fails the put and writes nothing of it
    with pytest.raises(grpc.RpcError):
        client.pfs.put_file_from_url(commit=head(repo), path="/missing", url=f"{base}/nope.bin")
    assert not client.pfs.path_exists(pfs.File(commit=head(repo), path="/missing"))
    d = expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.put_file_from_url,
                     commit=head(repo), path="/x", url="ftp://example.com/x")
    assert "unsupported URL scheme" in d


def test_put_file_from_local_file_url(client, repo, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"A")
    (src / "sub" / "b.txt").write_bytes(b"B")
    client.pfs.put_file_from_url(commit=head(repo), path="/imported", url=f"file://{src}", recursive=True)
    paths = [f.file.path for f in client.pfs.walk_file(file=pfs.File(commit=head(repo), path="/imported"))]
    assert paths == ["/imported/", "/imported/a.txt", "/imported/sub/", "/imported/sub/b.txt"]
    assert get_bytes(client, pfs.File(commit=head(repo), path="/imported/sub/b.txt")) == b"B"


def test_put_file_from_local_file_url_single_files(client, repo, tmp_path):
    """A file:// URL of one local file: a big one (read by pachd in blocks), a small one, a
    named pipe (streamed), and a missing file's error, which writes nothing."""
    import os
    import random
    big = random.Random(8).randbytes(20 * 1024 * 1024 + 3)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "small.txt").write_bytes(b"small\n")
    with client.pfs.commit(branch=branch_of(repo)) as c:
        c.put_file_from_url(path="/big.bin", url=f"file://{tmp_path}/big.bin")
        c.put_file_from_url(path="/small.txt", url=f"file://{tmp_path}/small.txt")
        c.put_file_from_url(path="/small.txt", url=f"file://{tmp_path}/small.txt")  # the SDK overwrites
    assert get_bytes(client, pfs.File(commit=head(repo), path="/big.bin")) == big
    assert get_bytes(client, pfs.File(commit=head(repo), path="/small.txt")) == b"small\n"
    d = expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.pfs.put_file_from_url,
                     commit=head(repo), path="/missing", url=f"file://{tmp_path}/nope.bin")
    assert "nope.bin" in d and "No such file" in d
    os.mkfifo(tmp_path / "pipe")
    writer = threading.Thread(target=lambda: (tmp_path / "pipe").write_bytes(b"through a pipe"))
    writer.start()
    client.pfs.put_file_from_url(commit=head(repo), path="/piped", url=f"file://{tmp_path}/pipe")
    writer.join(10)
    assert get_bytes(client, pfs.File(commit=head(repo), path="/piped")) == b"through a pipe"
    assert not client.pfs.path_exists(pfs.File(commit=head(repo), path="/missing"))


def test_clear_commit(client, repo):
    client.pfs.put_file_from_bytes(commit=head(repo), path="/base", data=b"b")
    commit = client.pfs.start_commit(branch=branch_of(repo))
    client.pfs.put_file_from_bytes(commit=commit, path="/new", data=b"n")
    client.pfs.clear_commit(commit=commit)
    client.pfs.finish_commit(commit=commit)
    assert [f.file.path for f in client.pfs.list_file(file=pfs.File(commit=head(repo), path="/"))] == ["/base"]


def test_find_commits(client, repo):
    ids = []
    for i, files in enumerate([{"/f": b"1", "/g": b"x"}, {"/g": b"y"}, {"/f": b"2"}, {"/h": b"z"}]):
        with client.pfs.commit(branch=branch_of(repo)) as c:
            for path, data in files.items():
                c.put_file_from_bytes(path, data)
        ids.append(c.id)
    found = [r.found_commit.id for r in client.pfs.find_commits(start=head(repo), file_path="/f")
             if r.found_commit.id]
    assert found == [ids[2], ids[0]]
    limited = [r.found_commit.id for r in client.pfs.find_commits(start=head(repo), file_path="/f", limit=1)
               if r.found_commit.id]
    assert limited == [ids[2]]


def test_delete_repos_and_all(client):
    client.pfs.create_project(project=pfs.Project(name="p"))
    for name, proj in [("a", "default"), ("b", "default"), ("c", "p")]:
        client.pfs.create_repo(repo=repo_of(name, proj))
    resp = client.pfs.delete_repos(projects=[pfs.Project(name="default")])
    assert sorted(r.name for r in resp.repos) == ["a", "b"]
    assert [r.repo.name for r in client.pfs.list_repo()] == ["c"]
    client.pfs.create_repo(repo=repo_of("d"))
    resp = client.pfs.delete_repos(all=True)
    assert sorted(r.name for r in resp.repos) == ["c", "d"]
    client.pfs.create_repo(repo=repo_of("e", "p"))
    client.pfs.delete_all()
    assert list(client.pfs.list_repo()) == []
    assert [p.project.name for p in client.pfs.list_project()] == ["default"]


def test_repos_summary_and_project_v2(client, repo):
    client.pfs.put_file_from_bytes(commit=head(repo), path="/x", data=b"12345")
    s = client.pfs.repos_summary(projects=[pfs.ProjectPicker(name="default")])
    assert [(x.project.name, x.user_repo_count, x.size_bytes) for x in s.summaries] == [("default", 1, 5)]
    v2 = client.pfs.inspect_project_v2(project=pfs.Project(name="default"))
    assert v2.info.project.name == "default"


def test_list_repo_type_filter(client, repo):
    assert [r.repo.name for r in client.pfs.list_repo(type="user")] == ["data"]
    assert [r.repo.name for r in client.pfs.list_repo(type="")] == ["data"]
    assert list(client.pfs.list_repo(type="spec")) == []


def test_walk_and_glob_ranges(client, repo):
    with client.pfs.commit(branch=branch_of(repo)) as c:
        for n in ["a", "b", "c", "d"]:
            c.put_file_from_bytes(f"/{n}", n.encode())
    walked = [f.file.path for f in client.pfs.walk_file(
        file=pfs.File(commit=head(repo), path="/"), number=2,
        pagination_marker=pfs.File(commit=head(repo), path="/a"))]
    assert walked == ["/b", "/c"]
    globbed = [f.file.path for f in client.pfs.glob_file(
        commit=head(repo), pattern="/*", path_range=pfs.PathRange(lower="/b", upper="/d"))]
    assert globbed == ["/b", "/c"]
    rev = [f.file.path for f in client.pfs.list_file(file=pfs.File(commit=head(repo), path="/"), reverse=True)]
    assert rev == ["/d", "/c", "/b", "/a"]


def test_start_commit_with_parent(client, repo):
    with client.pfs.commit(branch=branch_of(repo)) as c1:
        c1.put_file_from_bytes("/one", b"1")
    with client.pfs.commit(branch=branch_of(repo)) as c2:
        c2.put_file_from_bytes("/two", b"2")
    with client.pfs.commit(branch=branch_of(repo, "dev"), parent=at(repo, c1.id)) as c3:
        c3.put_file_from_bytes("/three", b"3")
    info = client.pfs.inspect_commit(commit=at(repo, c3.id))
    assert info.parent_commit.id == c1.id
    assert [f.file.path for f in client.pfs.list_file(file=pfs.File(commit=head(repo, "dev"), path="/"))] == [
        "/one", "/three"]
    assert c2.id != c3.id


def test_get_file_of_open_commit_shows_published_writes(client, repo):
    commit = client.pfs.start_commit(branch=branch_of(repo))
    client.pfs.put_file_from_bytes(commit=commit, path="/x", data=b"visible")
    assert get_bytes(client, pfs.File(commit=commit, path="/x")) == b"visible"
    client.pfs.finish_commit(commit=commit)
