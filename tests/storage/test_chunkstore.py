"""ChunkStore conformance: every test runs against every backend (`any_chunkstore`)."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pfs.errors import ObjectNotFound
from pfs.storage.chunkstore import ChunkStore

KEY = "packs/ab/abcdef0123"


def test_is_a_chunkstore(any_chunkstore):
    assert isinstance(any_chunkstore, ChunkStore)


def test_put_get_roundtrip(any_chunkstore):
    data = bytes(range(256)) * 10
    any_chunkstore.put(KEY, data)
    assert any_chunkstore.get(KEY) == data
    assert any_chunkstore.exists(KEY)


def test_put_accepts_bytes_like(any_chunkstore):
    any_chunkstore.put("a/bytearray", bytearray(b"xyz"))
    any_chunkstore.put("a/memoryview", memoryview(b"0123456789")[2:5])
    assert any_chunkstore.get("a/bytearray") == b"xyz"
    assert any_chunkstore.get("a/memoryview") == b"234"


def test_empty_object(any_chunkstore):
    any_chunkstore.put("e/empty", b"")
    assert any_chunkstore.exists("e/empty")
    assert any_chunkstore.get("e/empty") == b""
    assert any_chunkstore.get_range("e/empty", 0, 10) == b""
    assert list(any_chunkstore.iterate("e/")) == ["e/empty"]


def test_missing_key_errors_name_key_and_store(any_chunkstore):
    with pytest.raises(ObjectNotFound) as ei:
        any_chunkstore.get("packs/zz/missing")
    assert "packs/zz/missing" in str(ei.value)
    assert ("local chunk store" in str(ei.value)) or ("s3://" in str(ei.value))
    with pytest.raises(ObjectNotFound, match="packs/zz/missing"):
        any_chunkstore.get_range("packs/zz/missing", 0, 10)
    with pytest.raises(ObjectNotFound):
        any_chunkstore.get_range("packs/zz/missing", 0, 0)
    assert not any_chunkstore.exists("packs/zz/missing")


def test_get_range(any_chunkstore):
    data = bytes(range(100))
    any_chunkstore.put(KEY, data)
    g = any_chunkstore.get_range
    assert g(KEY, 0, 10) == data[:10]
    assert g(KEY, 42, 7) == data[42:49]
    assert g(KEY, 90, 10) == data[90:]
    assert g(KEY, 95, 50) == data[95:], "clipped at the end"
    assert g(KEY, 99, 1) == data[99:]
    assert g(KEY, 100, 5) == b"", "offset at the end"
    assert g(KEY, 1000, 5) == b"", "offset past the end"
    assert g(KEY, 10, 0) == b""
    with pytest.raises(ValueError):
        g(KEY, -1, 5)
    with pytest.raises(ValueError):
        g(KEY, 0, -5)


def test_overwrite_idempotent_and_replacing(any_chunkstore):
    any_chunkstore.put(KEY, b"one")
    any_chunkstore.put(KEY, b"one")
    assert any_chunkstore.get(KEY) == b"one"
    assert list(any_chunkstore.iterate()) == [KEY]
    any_chunkstore.put(KEY, b"two-longer")
    assert any_chunkstore.get(KEY) == b"two-longer"
    any_chunkstore.put(KEY, b"3")
    assert any_chunkstore.get(KEY) == b"3", "a shorter overwrite leaves no tail"


def test_delete(any_chunkstore):
    any_chunkstore.put(KEY, b"x")
    any_chunkstore.delete(KEY)
    assert not any_chunkstore.exists(KEY)
    with pytest.raises(ObjectNotFound):
        any_chunkstore.get(KEY)
    any_chunkstore.delete(KEY)  # missing is fine
    any_chunkstore.delete("never/existed")
    assert list(any_chunkstore.iterate()) == []
    any_chunkstore.put(KEY, b"back")
    assert any_chunkstore.get(KEY) == b"back"


def test_iterate_sorted_with_prefixes(any_chunkstore):
    keys = ["a-c", "a/b", "a/b0", "a/b/c", "a/ba", "a0", "b/x/y/z", "packs/00/1", "packs/ab/ab1",
            "packs/ab/ab2", "packs/ab0/x", "packs/ff/f", "z"]
    # "a/b" and "a/b/c" cannot coexist (file vs directory); drop the directory one.
    keys.remove("a/b/c")
    for k in reversed(keys):
        any_chunkstore.put(k, k.encode())
    it = any_chunkstore.iterate
    assert list(it()) == sorted(keys)
    assert list(it("")) == sorted(keys)
    assert list(it("a")) == ["a-c", "a/b", "a/b0", "a/ba", "a0"]
    assert list(it("a/")) == ["a/b", "a/b0", "a/ba"]
    assert list(it("a/b")) == ["a/b", "a/b0", "a/ba"]
    assert list(it("packs/ab")) == ["packs/ab/ab1", "packs/ab/ab2", "packs/ab0/x"]
    assert list(it("packs/ab/")) == ["packs/ab/ab1", "packs/ab/ab2"]
    assert list(it("packs/ab/ab2")) == ["packs/ab/ab2"]
    assert list(it("b/x/")) == ["b/x/y/z"]
    assert list(it("nope")) == []
    assert list(it("packs/zz/")) == []


@pytest.mark.parametrize("bad", ["", "/abs", "trail/", "a//b", ".hidden", "a/.tmp-x", "a/../b",
                                 "a/./b", "nul\x00"])
def test_invalid_keys_rejected(any_chunkstore, bad):
    with pytest.raises(ValueError):
        any_chunkstore.put(bad, b"x")
    with pytest.raises(ValueError):
        any_chunkstore.get(bad)


def test_large_object(any_chunkstore):
    data = os.urandom(1 << 20) * 16  # 16 MiB
    any_chunkstore.put("big/one", data)
    assert any_chunkstore.get("big/one") == data
    assert any_chunkstore.get_range("big/one", len(data) - 100, 1000) == data[-100:]
    assert any_chunkstore.get_range("big/one", 5 << 20, 3 << 20) == data[5 << 20: 8 << 20]


def test_concurrent_puts_distinct_keys(any_chunkstore):
    def work(i):
        k = f"packs/{i % 4:02x}/obj{i:04d}"
        any_chunkstore.put(k, k.encode() * 100)
        return k
    with ThreadPoolExecutor(8) as ex:
        keys = list(ex.map(work, range(64)))
    assert list(any_chunkstore.iterate("packs/")) == sorted(keys)
    for k in keys[::7]:
        assert any_chunkstore.get(k) == k.encode() * 100


def test_concurrent_puts_same_key_and_readers_see_whole_objects(any_chunkstore):
    size = 256 << 10
    versions = [bytes([v]) * size for v in range(8)]
    any_chunkstore.put(KEY, versions[0])
    stop = threading.Event()
    bad: list[str] = []

    def reader():
        while not stop.is_set():
            got = any_chunkstore.get(KEY)
            if got not in versions:
                bad.append(f"torn object: {len(got)} bytes, first {got[:1]!r} last {got[-1:]!r}")
                return

    def writer(v):
        for _ in range(3):
            any_chunkstore.put(KEY, versions[v])

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(writer, range(8)))
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not bad, bad[0]
    assert any_chunkstore.get(KEY) in versions
    assert list(any_chunkstore.iterate()) == [KEY], "no temp or partial objects visible"


def test_close_is_idempotent(any_chunkstore):
    any_chunkstore.close()
    any_chunkstore.close()


def test_iterate_info_gives_size_and_write_time(any_chunkstore):
    import time
    before = time.time()
    any_chunkstore.put("info/b", b"12345")
    any_chunkstore.put("info/a", b"")
    any_chunkstore.put("info/sub/c", b"x" * 1000)
    infos = list(any_chunkstore.iterate_info("info/"))
    assert [i.key for i in infos] == list(any_chunkstore.iterate("info/")) == ["info/a", "info/b", "info/sub/c"]
    assert [i.size for i in infos] == [0, 5, 1000]
    for i in infos:  # servers stamp whole seconds: allow for the rounding and a little skew
        assert before - 2 <= i.mtime <= time.time() + 2, i
    assert list(any_chunkstore.iterate_info("nothing/")) == []
