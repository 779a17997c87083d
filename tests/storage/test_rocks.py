"""RocksMetadataStore specifics: persistence, crash durability, releasing the DB, speed."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pfs.errors import StorageError
from pfs.storage.rocks import RocksMetadataStore

ROOT = Path(__file__).resolve().parents[2]


def test_reopen_keeps_data(tmp_path):
    m = RocksMetadataStore(tmp_path / "db")
    m.put(b"a", b"1")
    with m.batch() as b:
        b.put(b"b", b"2").put(b"c", b"3")
    m.close()
    m = RocksMetadataStore(tmp_path / "db")
    try:
        assert [(k, v) for k, v in m.scan()] == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    finally:
        m.close()


def test_close_releases_db_even_with_unfinished_scan(tmp_path):
    m = RocksMetadataStore(tmp_path / "db")
    with m.batch() as b:
        for i in range(1000):
            b.put(b"k%04d" % i, b"v")
    s1 = m.scan()
    next(s1)                       # a scan suspended mid-page ...
    s2 = m.scan(reverse=True)
    next(s2)
    m.close()                      # ... must not keep the LOCK
    m2 = RocksMetadataStore(tmp_path / "db")
    try:
        assert m2.get(b"k0999") == b"v"
    finally:
        m2.close()
    with pytest.raises(RuntimeError):
        list(s1)                   # the old scan cannot read a closed store
    m.close()                      # idempotent
    with pytest.raises(RuntimeError):
        m.get(b"k")


def test_second_open_of_same_path_is_a_clear_error(tmp_path):
    m = RocksMetadataStore(tmp_path / "db")
    try:
        with pytest.raises(StorageError, match="holds it"):
            RocksMetadataStore(tmp_path / "db")
    finally:
        m.close()


CRASHER = r"""
import os, signal, sys
from pfs.storage.rocks import RocksMetadataStore
m = RocksMetadataStore(sys.argv[1])
with m.batch(durable=False) as b:  # made durable by the synced writes after it
    b.put(b"chunk/h1", b"pack-a").expect(b"chunk/h1", None)
with m.batch() as b:
    b.put(b"head", b"c2").put(b"commit/c2", b"info").expect(b"head", None)
m.put(b"single", b"x")
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)   # crash right after commit: no close, no flush
"""


def test_commit_survives_a_crash(tmp_path):
    p = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path / "db")], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.stdout.strip() == "committed", p.stderr
    assert p.returncode == -9
    m = RocksMetadataStore(tmp_path / "db")
    try:
        assert m.get(b"head") == b"c2" and m.get(b"commit/c2") == b"info" and m.get(b"single") == b"x"
        assert m.get(b"chunk/h1") == b"pack-a"
    finally:
        m.close()


def test_prefix_scan_seeks(tmp_path):
    m = RocksMetadataStore(tmp_path / "db", sync=False)
    try:
        for j in range(200):
            with m.batch() as b:
                for i in range(1000):
                    b.put(b"commit/%03d/%04d" % (j, i), b"x" * 20)
        t = time.perf_counter()
        for j in range(0, 200, 10):
            got = list(m.scan(prefix=b"commit/%03d/000" % j))
            assert len(got) == 10
        per_scan = (time.perf_counter() - t) / 20
        assert per_scan < 0.01, f"prefix scan over 200k keys took {per_scan * 1e3:.1f} ms"
        assert len(list(m.scan(prefix=b"commit/199/", reverse=True, limit=5))) == 5
    finally:
        m.close()


def test_sync_puts_are_not_terribly_slow(tmp_path):
    m = RocksMetadataStore(tmp_path / "db")
    try:
        t = time.perf_counter()
        for i in range(1000):
            m.put(b"k%05d" % i, b"v")
        dt = time.perf_counter() - t
        assert dt < 10, f"1,000 synced puts took {dt:.1f} s"
    finally:
        m.close()


def test_snapshot_directories_are_removed_and_the_store_reopens(tmp_path):
    s = RocksMetadataStore(tmp_path / "meta")
    s.put(b"k", b"v")
    snap = s.snapshot()
    d = snap.path
    assert d.is_dir() and snap.get(b"k") == b"v"
    snap.close()
    assert not d.exists()
    leftover = s.snapshot()  # left open, as a crash would: removed at the next open
    s.close()
    leftover.close()
    (tmp_path / "meta.snapshots" / "stale").mkdir(parents=True)
    s2 = RocksMetadataStore(tmp_path / "meta")
    try:
        assert not (tmp_path / "meta.snapshots").exists()
        assert s2.get(b"k") == b"v"
    finally:
        s2.close()
