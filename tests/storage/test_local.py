"""LocalChunkStore specifics: crash safety (temp files), fsync discipline, odd paths."""
from __future__ import annotations

import mmap
import os
import time

import pytest

from pfs.errors import StorageError
from pfs.storage import LocalChunkStore, open_chunkstore


@pytest.fixture
def store(tmp_path):
    s = LocalChunkStore(tmp_path / "chunks")
    yield s
    s.close()


def test_layout_is_key_path(store, tmp_path):
    store.put("packs/ab/abc", b"data")
    assert (tmp_path / "chunks" / "packs" / "ab" / "abc").read_bytes() == b"data"


def test_leftover_temp_files_are_invisible_and_swept(store, tmp_path):
    store.put("packs/ab/abc", b"data")
    d = tmp_path / "chunks" / "packs" / "ab"
    stale = d / ".tmp-deadbeef"          # what a crash mid-put leaves behind
    stale.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = d / ".tmp-cafebabe"          # a put in flight right now
    fresh.write_bytes(b"in flight")
    assert list(store.iterate()) == ["packs/ab/abc"]
    assert list(store.iterate("packs/ab/")) == ["packs/ab/abc"]
    assert store.sweep_temp_files(max_age_seconds=3600) == 1
    assert not stale.exists() and fresh.exists()


def test_failed_put_leaves_nothing(store, tmp_path, monkeypatch):
    store.put("packs/ab/abc", b"old")

    def boom(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(StorageError, match="No space left"):
        store.put("packs/ab/abc", b"new")
    with pytest.raises(StorageError):
        store.put("packs/cd/new", b"new")
    monkeypatch.undo()
    assert store.get("packs/ab/abc") == b"old", "old object intact"
    assert not store.exists("packs/cd/new")
    names = [n for _, _, fs in os.walk(tmp_path / "chunks") for n in fs]
    assert names == ["abc"], f"no temp files left: {names}"


def test_put_fsyncs_file_and_directories(store, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    store.put("new/dir/obj", b"x")  # creates two directories
    assert len(calls) == 4, "root (for new/), new/ (for dir/), the file, dir/"
    calls.clear()
    store.put("new/dir/obj2", b"y")
    assert len(calls) == 2, "the file and its directory"


def test_put_parts_stores_the_concatenation_atomically(store, tmp_path, monkeypatch):
    parts = [os.urandom(i % 5) for i in range(3000)]  # more buffers than one writev takes
    parts.append(memoryview(bytearray(b"tail")))
    store.put_parts("packs/ab/parts", parts)
    assert store.get("packs/ab/parts") == b"".join(bytes(p) for p in parts)
    real = os.writev
    sizes = []

    def short_writes(fd, bufs):  # the kernel may take less than asked: the rest must follow
        sizes.append(sum(len(b) for b in bufs))
        return real(fd, [memoryview(bufs[0])[:3]])
    monkeypatch.setattr(os, "writev", short_writes)
    store.put_parts("packs/ab/short", [b"hello ", b"", b"world", b"!"])
    assert store.get("packs/ab/short") == b"hello world!" and sizes == [12, 9, 6, 3, 1]

    def boom(fd, bufs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "writev", boom)
    with pytest.raises(StorageError, match="No space left"):
        store.put_parts("packs/ab/parts", [b"new"])
    monkeypatch.undo()
    assert store.get("packs/ab/parts") == b"".join(bytes(p) for p in parts), "old object intact"
    names = [n for _, _, fs in os.walk(tmp_path / "chunks") for n in fs]
    assert sorted(names) == ["parts", "short"], f"no temp files left: {names}"


def test_not_durable_skips_fsync(tmp_path, monkeypatch):
    s = LocalChunkStore(tmp_path / "c", durable=False)
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("fsync called"))
    s.put("a/b", b"x")
    assert s.get("a/b") == b"x"


def test_file_where_a_directory_is_needed(store):
    store.put("a", b"file")
    with pytest.raises(StorageError, match="'a/b'"):
        store.put("a/b", b"x")
    assert not store.exists("a/b")
    assert list(store.iterate("a/")) == []


def test_directory_is_not_an_object(store):
    store.put("d/x", b"1")
    assert not store.exists("d")
    with pytest.raises(Exception) as ei:
        store.get("d")
    assert type(ei.value).__name__ == "ObjectNotFound"


def test_root_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageError):
        LocalChunkStore(tmp_path / "f")


def test_prefix_cannot_escape_root(store, tmp_path):
    (tmp_path / "outside").write_text("secret")
    assert list(store.iterate("../")) == []
    assert list(store.iterate("..")) == []


def test_open_chunkstore_paths(tmp_path):
    a = open_chunkstore(tmp_path / "x")
    b = open_chunkstore(f"file://{tmp_path}/y")
    assert isinstance(a, LocalChunkStore) and isinstance(b, LocalChunkStore)
    assert b.root == tmp_path / "y"


def _open_flags(fd: int) -> int:
    """The flags the kernel keeps for an open file (what it will honour, O_DIRECT included)."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return next(int(line.split()[1], 8) for line in f if line.startswith("flags:"))


def test_put_parts_direct_writes_page_aligned_parts_around_the_cache(store, tmp_path, monkeypatch):
    """The pack goes out through a file the kernel holds open with O_DIRECT, so its pages
    skip the page cache. (Whether a page ends up cached afterwards is the file system's
    business and varied between machines; the open file's flags are what the store decides.)"""
    pages = [mmap.mmap(-1, 4096 * k) for k in (1, 3, 2)]
    for p in pages:
        p.write(os.urandom(len(p)))
    flags_seen = []
    real_writev = os.writev

    def writev(fd, bufs):  # the real write, after noting how its file is open
        flags_seen.append(_open_flags(fd))
        return real_writev(fd, bufs)

    monkeypatch.setattr(os, "writev", writev)
    store.put_parts("packs/ab/direct", [memoryview(p) for p in pages], direct=True)
    monkeypatch.undo()
    assert flags_seen, "put_parts wrote nothing"
    if store._direct_io:
        assert all(f & os.O_DIRECT for f in flags_seen), [oct(f) for f in flags_seen]
    else:  # this file system refused O_DIRECT at open: the same bytes through the cache
        assert not any(f & os.O_DIRECT for f in flags_seen)
    want = b"".join(bytes(p) for p in pages)
    assert store.get("packs/ab/direct") == want
    assert store.get_range("packs/ab/direct", 4095, 4098) == want[4095:8193]


def test_put_parts_without_direct_goes_through_the_cache(store, monkeypatch):
    flags_seen = []
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, bufs: (flags_seen.append(_open_flags(fd)), real_writev(fd, bufs))[1])
    store.put_parts("packs/ab/cached", [b"x" * 4096])
    monkeypatch.undo()
    assert flags_seen and not any(f & os.O_DIRECT for f in flags_seen)
    assert store.get("packs/ab/cached") == b"x" * 4096


def test_put_parts_direct_with_unaligned_parts_falls_back_to_the_cache(store, tmp_path):
    """`direct` is a promise the caller may break (an odd buffer): the kernel refuses the
    O_DIRECT write and the same bytes go through the page cache instead."""
    big = mmap.mmap(-1, 3 * 4096)
    big.write(os.urandom(len(big)))
    parts = [memoryview(big)[1:4097], b"not aligned at all", memoryview(big)[4096:]]
    store.put_parts("packs/ab/odd", parts, direct=True)
    assert store.get("packs/ab/odd") == b"".join(bytes(p) for p in parts)
    assert store._direct_io, "a refused write is about that write, not the file system"
    names = [n for _, _, fs in os.walk(tmp_path / "chunks") for n in fs]
    assert names == ["odd"], f"no temp files left: {names}"
