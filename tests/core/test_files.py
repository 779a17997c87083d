"""Files: put/overwrite/append, delete, copy, get, tar, inspect, list, walk, glob, diff,
path validation, finished commits, file/directory collisions."""
from __future__ import annotations

import io
import tarfile

import pytest

from pfs.errors import (CommitFinished, FileNotFound, InvalidArgument, InvalidPath)
from tests.core.helpers import B, R, put_files, read, tree_of


@pytest.fixture
def repo(pfs):
    pfs.create_repo(R("a"))
    return R("a")


def paths(fis):
    return [f.path for f in fis]


# ---- put / append / overwrite -----------------------------------------------------------------
def test_put_overwrite_append(pfs, repo):
    put_files(pfs, repo, "master", {"/f": b"one"})
    assert read(pfs, repo, "master", "/f") == b"one"
    put_files(pfs, repo, "master", {"/f": b"two"})  # overwrite
    assert read(pfs, repo, "master", "/f") == b"two"
    put_files(pfs, repo, "master", {"/f": b"+three"}, append=True)
    assert read(pfs, repo, "master", "/f") == b"two+three"
    assert read(pfs, repo, "master^", "/f") == b"two"  # history intact
    assert read(pfs, repo, "master^^", "/f") == b"one"


def test_writer_streaming_adds_and_ordering(pfs, repo):
    with pfs.open_writer(repo, "master") as w:
        w.add("/f", b"a")
        w.add("/f", b"b")  # consecutive adds to one path stream into one file
        w.add("/g", b"x")
        w.add("/f", b"c")  # a later add appends again
        w.delete("/g")
        w.add("/g", b"y")  # delete then add: the add wins
        w.put("/h", [b"1", b"2", b"3"])
        w.put("/h", [b"4"], append=True)
        w.add("rel/path", b"r")  # relative paths are made absolute
        w.add("/empty", b"")
    assert tree_of(pfs, repo, "master") == {"/f": b"abc", "/g": b"y", "/h": b"1234",
                                             "/rel/path": b"r", "/empty": b""}
    assert pfs.inspect_file(pfs.commit_for_read(repo, "master"), "/empty").size == 0


def test_big_file_streams_in_pieces(pfs, repo):
    data = bytes(range(256)) * (12 * 1024)  # 3 MiB, several chunks
    with pfs.open_writer(repo, "master") as w:
        for i in range(0, len(data), 100_000):
            w.add("/big", data[i:i + 100_000])
    assert read(pfs, repo, "master", "/big") == data
    assert read(pfs, repo, "master", "/big", offset=1_000_001) == data[1_000_001:]
    ci = pfs.commit_for_read(repo, "master")
    _, it = pfs.read_file(ci, "/big", 5, 10)
    assert b"".join(it) == data[5:15]
    _, it = pfs.read_file(ci, "/big", len(data) + 10)
    assert b"".join(it) == b""


# ---- delete ----------------------------------------------------------------------------------
def test_delete_file_and_directory(pfs, repo):
    put_files(pfs, repo, "master", {"/d/1": b"1", "/d/e/2": b"2", "/d2/3": b"3", "/top": b"t"})
    put_files(pfs, repo, "master", {"/d/1": None})
    assert tree_of(pfs, repo, "master") == {"/d/e/2": b"2", "/d2/3": b"3", "/top": b"t"}
    put_files(pfs, repo, "master", {"/d": None})  # a directory with everything below it
    assert tree_of(pfs, repo, "master") == {"/d2/3": b"3", "/top": b"t"}
    ci = pfs.commit_for_read(repo, "master")
    with pytest.raises(FileNotFound):
        pfs.inspect_file(ci, "/d")
    assert paths(pfs.list_file(ci, "/")) == ["/d2/", "/top"]
    put_files(pfs, repo, "master", {"/d2/": None})  # trailing slash names the dir too
    assert tree_of(pfs, repo, "master") == {"/top": b"t"}
    put_files(pfs, repo, "master", {"/missing": None})  # deleting nothing is fine
    put_files(pfs, repo, "master", {"/": None})  # the root: everything
    assert tree_of(pfs, repo, "master") == {}
    assert pfs.inspect_commit(repo, "master").size == 0


def test_delete_then_recreate_in_one_session(pfs, repo):
    put_files(pfs, repo, "master", {"/d/a": b"1", "/d/b": b"2"})
    with pfs.open_writer(repo, "master") as w:
        w.put("/d/c", [b"3"])
        w.delete("/d")  # removes the pending /d/c too
        w.put("/d/z", [b"z"])
    assert tree_of(pfs, repo, "master") == {"/d/z": b"z"}


# ---- copy ------------------------------------------------------------------------------------
def test_copy_within_and_across(pfs, repo):
    c1 = put_files(pfs, repo, "master", {"/src/a": b"A", "/src/sub/b": b"B", "/f": b"F"})
    with pfs.open_writer(repo, "master") as w:
        w.copy(repo, c1.commit.id, "", "/f", "/f-copy")
        w.copy(repo, "", "master", "/src", "/dst")
        w.copy(repo, "", "master", "/f", "/src/a", append=True)
    assert tree_of(pfs, repo, "master") == {
        "/src/a": b"AF", "/src/sub/b": b"B", "/f": b"F", "/f-copy": b"F",
        "/dst/a": b"A", "/dst/sub/b": b"B"}
    pfs.create_repo(R("other"))
    with pfs.open_writer(R("other"), "master") as w:
        w.copy(repo, "master^", "", "/src", "/")
    assert tree_of(pfs, R("other"), "master") == {"/a": b"A", "/sub/b": b"B"}
    with pytest.raises(FileNotFound, match=f"file /nope not found in repo default/a at commit {c1.commit.id}"):
        with pfs.open_writer(R("other"), "master") as w:
            w.copy(repo, c1.commit.id, "", "/nope", "/x")


def test_copy_directory_overwrites_file_by_file(pfs, repo):
    put_files(pfs, repo, "master", {"/src/a": b"new-a", "/src/s/b": b"new-b"})
    pfs.create_repo(R("dst"))
    put_files(pfs, R("dst"), "master", {"/keep": b"k", "/a": b"old-a", "/s/c": b"c"})
    with pfs.open_writer(R("dst"), "master") as w:
        w.copy(repo, "", "master", "/src", "/")
    assert tree_of(pfs, R("dst"), "master") == {
        "/keep": b"k", "/a": b"new-a", "/s/b": b"new-b", "/s/c": b"c"}
    with pfs.open_writer(R("dst"), "master") as w:
        w.copy(repo, "", "master", "/src/a", "/keep")
    assert read(pfs, R("dst"), "master", "/keep") == b"new-a"


def test_copy_shares_content(pfs, repo):
    data = b"x" * 300_000
    put_files(pfs, repo, "master", {"/f": data})
    before = len(list(pfs.chunks.iterate("packs/")))
    with pfs.open_writer(repo, "master") as w:
        w.copy(repo, "", "master", "/f", "/g")
    assert len(list(pfs.chunks.iterate("packs/"))) == before
    ci = pfs.commit_for_read(repo, "master")
    assert pfs.inspect_file(ci, "/f").hash == pfs.inspect_file(ci, "/g").hash


# ---- reads -----------------------------------------------------------------------------------
def test_inspect_file(pfs, repo):
    c = put_files(pfs, repo, "master", {"/d/x": b"hello", "/d/y": b"hello", "/z": b"other"})
    ci = pfs.commit_for_read(repo, "master")
    x = pfs.inspect_file(ci, "/d/x")
    assert (x.path, x.is_dir, x.size) == ("/d/x", False, 5)
    assert x.commit.id == c.commit.id and x.committed == c.finished
    assert x.hash == pfs.inspect_file(ci, "d/y").hash  # identical content, identical hash
    assert x.hash != pfs.inspect_file(ci, "/z").hash
    d = pfs.inspect_file(ci, "/d")
    assert (d.path, d.is_dir, d.size) == ("/d/", True, 10)
    assert pfs.inspect_file(ci, "/d/").path == "/d/"
    root = pfs.inspect_file(ci, "/")
    assert (root.path, root.is_dir, root.size) == ("/", True, 15)
    # the hash is stable: rewriting the same content in a later commit keeps it
    put_files(pfs, repo, "master", {"/d/x": b"hello"})
    assert pfs.inspect_file(pfs.commit_for_read(repo, "master"), "/d/x").hash == x.hash
    assert pfs.inspect_file(pfs.commit_for_read(repo, "master"), "/d").hash == d.hash
    with pytest.raises(FileNotFound, match=f"^file /nope not found in repo default/a at commit {c.commit.id}$"):
        pfs.inspect_file(ci, "/nope")


def test_get_directory_as_file_refused(pfs, repo):
    put_files(pfs, repo, "master", {"/d/x": b"1"})
    ci = pfs.commit_for_read(repo, "master")
    with pytest.raises(InvalidArgument, match="GetFileTAR"):
        pfs.read_file(ci, "/d")
    with pytest.raises(FileNotFound):
        pfs.read_file(ci, "/zz")


def test_list_dir_direct_children(pfs, repo):
    put_files(pfs, repo, "master", {
        "/a": b"1", "/b/c": b"22", "/b/d/e": b"333", "/b/d/f": b"4444", "/b2": b"5", "/c/x": b"6"})
    ci = pfs.commit_for_read(repo, "master")
    top = list(pfs.list_file(ci, "/"))
    assert paths(top) == ["/a", "/b/", "/b2", "/c/"]
    sizes = {f.path: f.size for f in top}
    assert sizes == {"/a": 1, "/b/": 9, "/b2": 1, "/c/": 1}
    assert [f.is_dir for f in top] == [False, True, False, True]
    assert paths(pfs.list_file(ci, "/b")) == ["/b/c", "/b/d/"]
    assert paths(pfs.list_file(ci, "b/d/")) == ["/b/d/e", "/b/d/f"]
    assert paths(pfs.list_file(ci, "/a")) == ["/a"]  # a file lists itself
    assert paths(pfs.list_file(ci, "/", number=2)) == ["/a", "/b/"]
    assert paths(pfs.list_file(ci, "/", reverse=True)) == ["/c/", "/b2", "/b/", "/a"]
    assert paths(pfs.list_file(ci, "/", start_after="/b/")) == ["/b2", "/c/"]
    with pytest.raises(FileNotFound):
        list(pfs.list_file(ci, "/nope"))


def test_listed_entries_are_what_inspect_says(pfs, repo):
    """list_file decodes entries without their chunk refs; every field it shows is inspect's."""
    put_files(pfs, repo, "master", {"/a": b"1" * 3000, "/b/c": b"22", "/b/d/e": b"333", "/z": b""})
    ci = pfs.commit_for_read(repo, "master")
    for d in ("/", "/b", "/b/d"):
        listed = list(pfs.list_file(ci, d))
        assert listed
        for fi in listed:
            assert fi == pfs.inspect_file(ci, fi.path.rstrip("/") or "/")


def test_list_empty_commit(pfs, repo):
    pfs.create_branch(B(repo))
    ci = pfs.commit_for_read(repo, "master")
    assert list(pfs.list_file(ci, "/")) == []
    assert list(pfs.walk_file(ci, "/")) == []
    assert list(pfs.glob_file(ci, "/*")) == []


def test_walk(pfs, repo):
    put_files(pfs, repo, "master", {"/a": b"1", "/b/c": b"2", "/b/d/e": b"3", "/z": b"4"})
    ci = pfs.commit_for_read(repo, "master")
    assert paths(pfs.walk_file(ci, "/")) == ["/", "/a", "/b/", "/b/c", "/b/d/", "/b/d/e", "/z"]
    assert paths(pfs.walk_file(ci, "/b")) == ["/b/", "/b/c", "/b/d/", "/b/d/e"]
    assert paths(pfs.walk_file(ci, "/a")) == ["/a"]
    assert paths(pfs.walk_file(ci, "/", number=3)) == ["/", "/a", "/b/"]
    assert paths(pfs.walk_file(ci, "/b", reverse=True)) == ["/b/d/e", "/b/d/", "/b/c", "/b/"]
    assert paths(pfs.walk_file(ci, "/", start_after="/b/d/")) == ["/b/d/e", "/z"]


@pytest.mark.parametrize("pattern,expected", [
    ("/*", ["/a.txt", "/b/", "/c/"]),
    ("*", ["/a.txt", "/b/", "/c/"]),
    ("/*/*", ["/b/x.txt", "/b/y.csv", "/c/d/", "/c/z.txt"]),
    ("/b/*", ["/b/x.txt", "/b/y.csv"]),
    ("/**", ["/a.txt", "/b/", "/b/x.txt", "/b/y.csv", "/c/", "/c/d/", "/c/d/deep.txt", "/c/z.txt"]),
    ("/**.txt", ["/a.txt", "/b/x.txt", "/c/d/deep.txt", "/c/z.txt"]),
    ("/{b,c}", ["/b/", "/c/"]),
    ("/{b,c}/*.txt", ["/b/x.txt", "/c/z.txt"]),
    ("/?.txt", ["/a.txt"]),
    ("/b/[xy].*", ["/b/x.txt", "/b/y.csv"]),
    ("/", ["/"]),
    ("/nope/*", []),
    ("/c/d/deep.txt", ["/c/d/deep.txt"]),
])
def test_glob(pfs, repo, pattern, expected):
    put_files(pfs, repo, "master", {
        "/a.txt": b"1", "/b/x.txt": b"2", "/b/y.csv": b"3", "/c/z.txt": b"4", "/c/d/deep.txt": b"5"})
    ci = pfs.commit_for_read(repo, "master")
    assert paths(pfs.glob_file(ci, pattern)) == expected


def test_glob_dir_sizes_and_range(pfs, repo):
    put_files(pfs, repo, "master", {"/a/1": b"12", "/a/2": b"345", "/b/1": b"6"})
    ci = pfs.commit_for_read(repo, "master")
    assert [(f.path, f.size, f.is_dir) for f in pfs.glob_file(ci, "/*")] == [("/a/", 5, True), ("/b/", 1, True)]
    assert paths(pfs.glob_file(ci, "/**", lower="/a/2", upper="/b/1")) == ["/a/2", "/b/"]


def test_diff(pfs, repo):
    put_files(pfs, repo, "master", {"/same": b"s", "/changed": b"old", "/gone": b"g", "/d/x": b"1"})
    put_files(pfs, repo, "master", {"/changed": b"new!", "/gone": None, "/added": b"a", "/d/y": b"2"})
    new = pfs.commit_for_read(repo, "master")
    old = pfs.commit_for_read(repo, "master^")
    pairs = [(n.path if n else None, o.path if o else None)
             for n, o in pfs.diff_file(new, "/", old)]
    assert ("/changed", "/changed") in pairs
    assert ("/added", None) in pairs
    assert (None, "/gone") in pairs
    assert ("/d/y", None) in pairs
    assert all("/same" not in (n, o) for n, o in pairs)
    assert all("/d/x" not in (n, o) for n, o in pairs)
    # without an old commit the parent is used
    assert [(n.path if n else None, o.path if o else None) for n, o in pfs.diff_file(new, "/", None)] == pairs
    # sizes of both sides
    d = {(n.path if n else o.path): (n.size if n else None, o.size if o else None)
         for n, o in pfs.diff_file(new, "/", old)}
    assert d["/changed"] == (4, 3)
    # a sub path only
    assert [(n.path if n else None, o.path if o else None)
            for n, o in pfs.diff_file(new, "/d", old)] == [("/d/", "/d/"), ("/d/y", None)]
    # identical commits: no difference
    assert list(pfs.diff_file(new, "/", new)) == []
    # the first commit against nothing: every entry is new
    first = pfs.commit_for_read(repo, "master^")
    assert all(o is None for _, o in pfs.diff_file(first, "/", None))


def test_diff_of_deleted_or_new_directory(pfs, repo):
    put_files(pfs, repo, "master", {"/d/x": b"1", "/d/y": b"2", "/e": b"3"})
    put_files(pfs, repo, "master", {"/d": None, "/n/z": b"4"})
    new = pfs.commit_for_read(repo, "master")
    old = pfs.commit_for_read(repo, "master^")
    assert [(n.path if n else None, o.path if o else None) for n, o in pfs.diff_file(new, "/d", old)] == [
        (None, "/d/"), (None, "/d/x"), (None, "/d/y")]
    assert [(n.path if n else None, o.path if o else None) for n, o in pfs.diff_file(new, "/n", old)] == [
        ("/n/", None), ("/n/z", None)]
    shallow = [(n.path if n else None, o.path if o else None) for n, o in pfs.diff_file(new, "/", old, shallow=True)]
    assert (None, "/d/") in shallow and (None, "/d/x") not in shallow


def test_tar_stream(pfs, repo):
    big = bytes(range(256)) * 5000
    put_files(pfs, repo, "master", {"/d/a.txt": b"alpha", "/d/e/b.bin": big, "/top": b"t", "/d/empty": b""})
    ci = pfs.commit_for_read(repo, "master")

    def members(path):
        data = b"".join(pfs.tar_stream(ci, path))
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            out = {}
            for m in tf.getmembers():
                out[m.name] = tf.extractfile(m).read() if m.isfile() else None
            return out

    assert members("/d") == {"d": None, "d/a.txt": b"alpha", "d/e": None, "d/e/b.bin": big, "d/empty": b""}
    assert members("/top") == {"top": b"t"}
    assert members("/") == {"d": None, "d/a.txt": b"alpha", "d/e": None, "d/e/b.bin": big,
                            "d/empty": b"", "top": b"t"}
    with pytest.raises(FileNotFound):
        list(pfs.tar_stream(ci, "/zz"))


# ---- validation and refusals -----------------------------------------------------------------------
@pytest.mark.parametrize("bad,msg", [
    ("/a/../b", "relative file paths are not allowed"),
    ("/./a", "relative file paths are not allowed"),
    ("..", "relative file paths are not allowed"),
    ("/a\x00b", "only printable ASCII"),
    ("/caf\u00e9", "only printable ASCII"),
    ("/a\nb", "only printable ASCII"),
    ("/a*b", r"globbing character \(\*\) not allowed"),
    ("/a?", r"globbing character \(\?\)"),
    ("/[x]", "globbing character"),
    ("/{a,b}", "globbing character"),
    ("/a@b", "globbing character"),
    ("/a^", "globbing character"),
])
def test_invalid_paths_write_nothing(pfs, repo, bad, msg):
    c = put_files(pfs, repo, "master", {"/keep": b"k"})
    with pytest.raises(InvalidPath, match=msg):
        with pfs.open_writer(repo, "master") as w:
            w.put("/fine", [b"written before the bad path"])
            w.put(bad, [b"x"])
    assert pfs.inspect_branch(B(repo)).head == c.commit.id
    assert tree_of(pfs, repo, "master") == {"/keep": b"k"}
    # the same on an open commit
    ci = pfs.start_commit(B(repo))
    with pytest.raises(InvalidPath):
        with pfs.open_writer(repo, ci.commit.id) as w:
            w.put("/fine", [b"x"])
            w.delete(bad)
    assert tree_of(pfs, repo, ci.commit.id) == {"/keep": b"k"}


def test_writes_to_finished_commit_refused(pfs, repo):
    c = put_files(pfs, repo, "master", {"/x": b"1"})
    with pytest.raises(CommitFinished, match="has already finished"):
        pfs.open_writer(repo, c.commit.id)
    with pytest.raises(CommitFinished):
        pfs.open_writer(repo, c.commit.id + "^0")
    # finishing while a writer is open waits for the writer to publish
    ci = pfs.start_commit(B(repo))
    w = pfs.open_writer(repo, ci.commit.id)
    w.put("/late", [b"x"])
    import threading
    t = threading.Thread(target=pfs.finish_commit, args=(repo, ci.commit.id))
    t.start()  # waits for the writer's lock
    w.close()
    t.join(10)
    info = pfs.inspect_commit(repo, ci.commit.id)
    assert info.finished is not None
    assert tree_of(pfs, repo, ci.commit.id) == {"/x": b"1", "/late": b"x"}


@pytest.mark.parametrize("first,second", [
    ({"/a": b"file"}, {"/a/b": b"under a file"}),
    ({"/a/b": b"dir"}, {"/a": b"over a dir"}),
])
def test_file_dir_collision(pfs, repo, first, second):
    c = put_files(pfs, repo, "master", first)
    with pytest.raises(InvalidArgument, match="file / directory path collision"):
        put_files(pfs, repo, "master", second, append=True)
    assert pfs.inspect_branch(B(repo)).head == c.commit.id
    assert tree_of(pfs, repo, "master") == first
    # within one session too
    with pytest.raises(InvalidArgument, match="collision"):
        with pfs.open_writer(repo, "dev") as w:
            w.put("/x", [b"1"])
            w.put("/x/y", [b"2"])
    with pytest.raises(Exception):
        pfs.inspect_branch(B(repo, "dev"))


def test_overwrite_replaces_a_directory(pfs, repo):
    """Overwriting is delete-then-add, and deleting a path deletes the directory there
    (what Pachyderm's clients send for a put without append)."""
    put_files(pfs, repo, "master", {"/a/b": b"1", "/a/c": b"2"})
    put_files(pfs, repo, "master", {"/a": b"now a file"})
    assert tree_of(pfs, repo, "master") == {"/a": b"now a file"}


def test_root_is_not_a_file(pfs, repo):
    with pytest.raises(InvalidPath):
        put_files(pfs, repo, "master", {"/": b"x"})
    with pytest.raises(InvalidPath):
        put_files(pfs, repo, "master", {"": b"x"})
