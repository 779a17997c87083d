"""MetadataStore conformance: every test runs against every backend (`any_metadata`)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pfs.errors import Conflict
from pfs.storage.metadata import PAGE, MetadataStore, prefix_end, scan_bounds


def fill(store, keys):
    with store.batch() as b:
        for k in keys:
            b.put(k, b"v:" + k)


def test_is_a_metadata_store(any_metadata):
    assert isinstance(any_metadata, MetadataStore)


def test_get_put_delete(any_metadata):
    m = any_metadata
    assert m.get(b"k") is None
    m.put(b"k", b"v1")
    assert m.get(b"k") == b"v1"
    m.put(b"k", b"v2")
    assert m.get(b"k") == b"v2"
    m.put(b"empty", b"")
    assert m.get(b"empty") == b"", "empty value is not absent"
    m.delete(b"k")
    assert m.get(b"k") is None
    m.delete(b"k")  # missing is fine
    m.put(b"\x00\xff binary", b"\x00")
    assert m.get(b"\x00\xff binary") == b"\x00"


def test_keys_must_be_bytes(any_metadata):
    with pytest.raises(TypeError):
        any_metadata.put("str", b"v")
    with pytest.raises(TypeError):
        any_metadata.put(b"k", "str")
    with pytest.raises(TypeError):
        any_metadata.get("str")


KEYS = [b"", b"a", b"a\x00", b"a/1", b"a/2", b"a/3", b"a0", b"b", b"b\xff", b"b\xff\xff", b"c",
        b"\xff", b"\xff\xff\x01"]


def test_scan_ranges(any_metadata):
    m = any_metadata
    fill(m, reversed(KEYS))
    keys = lambda **kw: [k for k, _ in m.scan(**kw)]  # noqa: E731
    assert keys() == sorted(KEYS)
    assert [v for _, v in m.scan()] == [b"v:" + k for k in sorted(KEYS)]
    assert keys(prefix=b"a/") == [b"a/1", b"a/2", b"a/3"]
    assert keys(prefix=b"a") == [b"a", b"a\x00", b"a/1", b"a/2", b"a/3", b"a0"]
    assert keys(prefix=b"b\xff") == [b"b\xff", b"b\xff\xff"]
    assert keys(prefix=b"\xff") == [b"\xff", b"\xff\xff\x01"]
    assert keys(prefix=b"zz") == []
    assert keys(start=b"a/2", end=b"b") == [b"a/2", b"a/3", b"a0"], "start inclusive, end exclusive"
    assert keys(prefix=b"a/", start=b"a/2") == [b"a/2", b"a/3"]
    assert keys(prefix=b"a/", start=b"0") == [b"a/1", b"a/2", b"a/3"], "start before prefix"
    assert keys(prefix=b"a/", end=b"a/3") == [b"a/1", b"a/2"]
    assert keys(prefix=b"a/", end=b"z") == [b"a/1", b"a/2", b"a/3"]
    assert keys(start=b"c", end=b"c") == []
    assert keys(start=b"d", end=b"c") == []
    assert keys(reverse=True) == sorted(KEYS, reverse=True)
    assert keys(prefix=b"a/", reverse=True) == [b"a/3", b"a/2", b"a/1"]
    assert keys(start=b"a/2", end=b"b", reverse=True) == [b"a0", b"a/3", b"a/2"]
    assert keys(limit=2) == [b"", b"a"]
    assert keys(prefix=b"a/", reverse=True, limit=2) == [b"a/3", b"a/2"]
    assert keys(limit=0) == []


def test_scan_across_pages(any_metadata):
    m = any_metadata
    ks = [b"p/%06d" % i for i in range(3 * PAGE + 17)]
    fill(m, ks + [b"o", b"q"])
    assert [k for k, _ in m.scan(prefix=b"p/")] == ks
    assert [k for k, _ in m.scan(prefix=b"p/", reverse=True)] == ks[::-1]
    assert [k for k, _ in m.scan(prefix=b"p/", limit=PAGE + 1)] == ks[:PAGE + 1]
    assert [k for k, _ in m.scan(prefix=b"p/", reverse=True, limit=2 * PAGE)] == ks[::-1][:2 * PAGE]
    assert [k for k, _ in m.scan(start=ks[PAGE], end=ks[2 * PAGE + 3])] == ks[PAGE:2 * PAGE + 3]


def test_scan_while_writing_yields_each_key_once_in_order(any_metadata):
    m = any_metadata
    fill(m, [b"k%05d" % i for i in range(0, 2000, 2)])
    seen = []
    for i, (k, _) in enumerate(m.scan(prefix=b"k")):
        seen.append(k)
        if i % 50 == 0:  # writes in the middle of the scan, before and after the cursor
            m.put(b"k%05d" % (2 * i + 1), b"new")
            m.delete(b"k%05d" % (4 * i + 2))
    assert seen == sorted(set(seen))


def test_batch_is_atomic(any_metadata):
    m = any_metadata
    m.put(b"gone", b"x")
    with m.batch() as b:
        b.put(b"a", b"1").put(b"b", b"2")
        b.delete(b"gone")
        b.put(b"a", b"1-final")  # later write to the same key wins
        assert m.get(b"b") is None, "nothing visible before commit"
    assert (m.get(b"a"), m.get(b"b"), m.get(b"gone")) == (b"1-final", b"2", None)


def test_batch_exception_writes_nothing(any_metadata):
    m = any_metadata
    with pytest.raises(ZeroDivisionError):
        with m.batch() as b:
            b.put(b"a", b"1")
            1 / 0
    assert m.get(b"a") is None


def test_batch_conflict_writes_nothing(any_metadata):
    m = any_metadata
    m.put(b"head", b"c1")
    b = m.batch()
    b.put(b"commit/c2", b"info").put(b"head", b"c2").delete(b"other")
    b.expect(b"head", b"c1").expect(b"lock", None)
    m.put(b"head", b"c9")  # someone else moved the head
    with pytest.raises(Conflict) as ei:
        b.commit()
    assert b"head" in str(ei.value).encode() and "c9" in str(ei.value)
    assert m.get(b"commit/c2") is None and m.get(b"head") == b"c9"
    with pytest.raises(RuntimeError):
        b.commit()
    with pytest.raises(Conflict):
        with m.batch() as b2:
            b2.expect(b"head", None)  # expects absent, but present
            b2.put(b"x", b"y")
    assert m.get(b"x") is None


def test_deferred_batch_is_as_atomic_as_a_durable_one(any_metadata):
    m = any_metadata
    m.put(b"head", b"c1")
    with m.batch(durable=False) as b:
        b.put(b"chunk/a", b"1").put(b"chunk/b", b"2").expect(b"head", b"c1")
        assert m.get(b"chunk/a") is None, "nothing visible before commit"
    assert (m.get(b"chunk/a"), m.get(b"chunk/b")) == (b"1", b"2")
    with pytest.raises(Conflict):
        with m.batch(durable=False) as b:
            b.put(b"chunk/c", b"3").expect(b"head", b"c0")
    assert m.get(b"chunk/c") is None


def test_batch_expect_holds(any_metadata):
    m = any_metadata
    m.put(b"head", b"c1")
    with m.batch() as b:
        b.expect(b"head", b"c1").expect(b"absent", None)
        b.put(b"head", b"c2")
    assert m.get(b"head") == b"c2"
    b = m.batch().expect(b"head", b"c2")
    b.commit()  # expects only: a no-op that still checks
    with pytest.raises(RuntimeError):
        b.put(b"late", b"x")


def test_put_if(any_metadata):
    m = any_metadata
    assert m.put_if(b"k", None, b"v1")
    assert not m.put_if(b"k", None, b"v1-again")
    assert not m.put_if(b"k", b"wrong", b"v2")
    assert m.get(b"k") == b"v1"
    assert m.put_if(b"k", b"v1", b"v2")
    assert not m.put_if(b"k", b"v1", None)
    assert m.put_if(b"k", b"v2", None)
    assert m.get(b"k") is None


def test_concurrent_cas_counter_loses_no_update(any_metadata):
    m = any_metadata
    m.put(b"n", b"0")
    conflicts = []

    def incr(_):
        for _ in range(25):
            while True:
                cur = m.get(b"n")
                if m.put_if(b"n", cur, str(int(cur) + 1).encode()):
                    break
                conflicts.append(1)

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(incr, range(8)))
    assert m.get(b"n") == b"200"


def test_concurrent_batches_and_scans(any_metadata):
    m = any_metadata
    stop = threading.Event()
    errors = []

    def scanner():
        while not stop.is_set():
            ks = [k for k, _ in m.scan(prefix=b"t/")]
            if ks != sorted(ks):
                errors.append(ks)

    t = threading.Thread(target=scanner)
    t.start()
    try:
        def writer(i):
            for j in range(20):
                with m.batch() as b:
                    b.put(b"t/%d/%d" % (i, j), b"x")
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(writer, range(4)))
    finally:
        stop.set()
        t.join()
    assert not errors
    assert len(list(m.scan(prefix=b"t/"))) == 80


def test_prefix_end_and_bounds():
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None
    assert scan_bounds(b"a", b"0", None) == (b"a", b"b")
    assert scan_bounds(b"", None, b"m") == (b"", b"m")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sets(st.binary(max_size=4), max_size=40),
       prefix=st.binary(max_size=2), start=st.none() | st.binary(max_size=3),
       end=st.none() | st.binary(max_size=3), reverse=st.booleans(),
       limit=st.none() | st.integers(0, 50))
def test_scan_matches_model(any_metadata, keys, prefix, start, end, reverse, limit):
    m = any_metadata
    for k, _ in list(m.scan()):
        m.delete(k)
    fill(m, keys)
    want = sorted(k for k in keys if k.startswith(prefix)
                  and (start is None or k >= start) and (end is None or k < end))
    if reverse:
        want.reverse()
    if limit is not None:
        want = want[:limit]
    assert [k for k, _ in m.scan(prefix, start, end, reverse, limit)] == want


def test_snapshot_is_a_consistent_point_in_time_view(any_metadata):
    m = any_metadata
    fill(m, [b"s/%03d" % i for i in range(PAGE * 2 + 7)])
    with m.snapshot() as snap:
        with m.batch() as b:  # changes after the snapshot, in one batch
            b.delete(b"s/000")
            b.put(b"s/001", b"changed")
            b.put(b"s/zzz", b"new")
        m.put(b"s/002", b"changed too")
        assert snap.get(b"s/000") == b"v:s/000"
        assert snap.get(b"s/001") == b"v:s/001"
        assert snap.get(b"s/zzz") is None
        items = list(snap.scan(prefix=b"s/"))
        assert [k for k, _ in items] == [b"s/%03d" % i for i in range(PAGE * 2 + 7)]
        assert all(v == b"v:" + k for k, v in items)
        assert [k for k, _ in snap.scan(prefix=b"s/", reverse=True, limit=3)] == [
            b"s/%03d" % i for i in (PAGE * 2 + 6, PAGE * 2 + 5, PAGE * 2 + 4)]
        assert list(snap.scan(start=b"s/005", end=b"s/007")) == [(b"s/005", b"v:s/005"), (b"s/006", b"v:s/006")]
    # the live store has every change
    assert m.get(b"s/000") is None and m.get(b"s/zzz") == b"new" and m.get(b"s/002") == b"changed too"
    with pytest.raises(RuntimeError):
        snap.get(b"s/001")


def test_snapshot_never_sees_half_a_batch(any_metadata):
    m = any_metadata
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            with m.batch() as b:
                b.put(b"pair/a", b"%d" % i)
                b.put(b"pair/b", b"%d" % i)

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(20):
            with m.snapshot() as snap:
                a, b = snap.get(b"pair/a"), snap.get(b"pair/b")
                assert a == b
                assert dict(snap.scan(prefix=b"pair/")) == ({b"pair/a": a, b"pair/b": b} if a else {})
    finally:
        stop.set()
        t.join()
