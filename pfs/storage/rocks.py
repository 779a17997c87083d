"""RocksMetadataStore: the metadata store on RocksDB (via rocksdict, raw byte mode).

Invariants (on top of those of `pfs.storage.metadata`):
- One process owns a database directory (RocksDB's LOCK file enforces it); inside the
  process, one `threading.Lock` serialises every write, so a batch's `expect` checks and its
  writes are one atomic step (a RocksDB WriteBatch), linearizable against all other writes.
- Durability: with ``sync=True`` (the default) every write fsyncs the WAL before returning,
  so a commit that returned survives a crash or power cut. Measured on the dev machine:
  10,000 single-key sync puts ≈ 2.0-2.4 s (≈ 0.2 ms each, one WAL fsync per write);
  100,000 puts in batches of 1,000 ≈ 0.13 s. Callers that write many keys should batch. ``sync=False`` keeps atomicity and survives a process
  crash (the WAL is in the OS page cache) but may lose the last writes on a power cut.
- ``batch(durable=False)`` writes without that fsync even when ``sync=True``: the WAL is one
  ordered log and a synced write syncs every record before it, so such a batch is durable
  once any later durable write returns. It matters beyond the fsync's own cost: rocksdict
  keeps the GIL through a write, so a synced write under heavy disk load (a big put writing
  packs) froze every Python thread of pachd for up to ~50 ms at a time.
- Scans never keep a RocksDB iterator alive between pages: each page opens an iterator,
  seeks (O(log N), bounded above by ``iterate_upper_bound``), reads at most `PAGE` items and
  deletes the iterator before yielding. A live iterator would pin the database and keep its
  LOCK after `close()` -- so `close()` really releases the DB and the same path can be
  reopened in the same process.
- `snapshot()` is a RocksDB checkpoint (hard links to the live files, taken under the write
  lock so no batch is half in it) opened read-only in ``<path>.snapshots/<id>``; closing
  the snapshot closes that database and removes the directory. Directories left by a crash
  are removed when the store opens. (rocksdict's own `Snapshot` answers point reads from
  the snapshot but iterates the live database, so it cannot serve a consistent scan.)
- `close()` is idempotent; using the store after it raises RuntimeError. A failure of
  RocksDB's own close is logged, not raised (pachd must still shut down cleanly).
- A failed write (disk full, I/O error) raises `DiskFull` (RESOURCE_EXHAUSTED) or
  `StorageError` naming the store and saying what to do, and writes nothing (a WriteBatch is
  all or nothing). RocksDB then refuses every later write ("Writer has previous error") until
  the database is reopened, so the next write first reopens it (replaying its WAL; reads keep
  working meanwhile): once space is freed, writes work again without a restart of pachd.
"""
from __future__ import annotations

import logging
import secrets
import shutil
import os
import threading
import time
from pathlib import Path
from typing import Iterator

from rocksdict import (AccessType, BlockBasedOptions, Cache, Checkpoint, Options, ReadOptions, Rdict,
                       WriteBatch as RocksBatch, WriteOptions)

from pfs.errors import Conflict, DiskFull, StorageError
from pfs.storage.metadata import PAGE, WriteBatch, _check, conflict_message, scan_bounds

__all__ = ["RocksMetadataStore"]
log = logging.getLogger("pfs.storage")

MiB = 1 << 20
# RocksDB's memory is bounded here, not left to its defaults: a 64 MiB write buffer (two of
# them while one flushes), a default block cache, and table index/filter blocks held outside
# any cache (growing with the data) made ~half of pachd's resident size in a
# multi-million-file commit; the collector's snapshot view had a second such cache.
WRITE_BUFFER = 16 * MiB
BLOCK_CACHE = 16 * MiB  # the store's; index and filter blocks are charged to it
SNAPSHOT_BLOCK_CACHE = 8 * MiB  # a snapshot view's (the collector scans it once)


def _bounded_options(block_cache: int) -> Options:
    opts = Options(raw_mode=True)
    opts.set_write_buffer_size(WRITE_BUFFER)
    opts.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(block_cache))
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    opts.set_block_based_table_factory(table)
    return opts


class RocksMetadataStore:
    """Ordered byte key/value store in a RocksDB directory (created if missing)."""

    def __init__(self, path: Path | str, *, sync: bool = True):
        self.path = Path(path).absolute()
        self.sync = sync
        opts = _bounded_options(BLOCK_CACHE)
        opts.create_if_missing(True)
        opts.set_keep_log_file_num(4)
        self._opts = opts
        self._failed: str = ""  # the write error RocksDB is stuck on, until a reopen
        try:
            os.makedirs(self.path.parent, exist_ok=True)
            self._db = Rdict(str(self.path), opts)
        except Exception as e:  # rocksdict raises plain Exception on open failures
            hint = ("another process (or an unclosed store in this one) holds it"
                    if "lock" in str(e).lower() else "check the path and its permissions")
            raise StorageError(f"cannot open metadata store at {self.path}: {e}; {hint}") from e
        self._wo = WriteOptions()
        self._wo.sync = sync
        self._db.set_write_options(self._wo)
        self._wo_deferred = WriteOptions()  # batch(durable=False)
        self._wo_deferred.sync = False
        self._lock = threading.Lock()
        self._closed = False
        self._snapshots_dir = self.path.parent / (self.path.name + ".snapshots")
        shutil.rmtree(self._snapshots_dir, ignore_errors=True)  # left by a crash
        # reads run without _lock; a reopen (after a failed write) waits until none is inside
        # the handle and holds new ones back (rocksdict: closing a handle in use raises
        # "Already mutably borrowed" in the reader)
        # (a plain lock, taken directly, and a notify only while a reopen waits: a read's own
        # cost is two uncontended lock round trips, which matters for the dedup lookup of
        # every chunk of a many-small-files put)
        self._readers = 0
        self._reopening = False
        self._rlock = threading.Lock()
        self._rcond = threading.Condition(self._rlock)

    def __repr__(self) -> str:
        return f"RocksMetadataStore({str(self.path)!r})"

    def _alive(self) -> Rdict:
        if self._closed:
            raise RuntimeError(f"metadata store {self.path} is closed")
        return self._db

    def _enter_read(self) -> Rdict:
        with self._rlock:
            while self._reopening:
                self._rcond.wait()
            db = self._alive()
            self._readers += 1
        return db

    def _exit_read(self) -> None:
        with self._rlock:
            self._readers -= 1
            if self._reopening and not self._readers:
                self._rcond.notify_all()

    def _read(self, fn):
        db = self._enter_read()
        try:
            return fn(db)
        finally:
            self._exit_read()

    def get(self, key: bytes) -> bytes | None:
        if type(key) is not bytes:
            key = _check(key)
        db = self._enter_read()
        try:
            return db.get(key)
        finally:
            self._exit_read()

    def put(self, key: bytes, value: bytes) -> None:
        key, value = _check(key), _check(value, "value")
        with self._lock:
            self._write(lambda db: db.put(key, value, self._wo))

    def delete(self, key: bytes) -> None:
        key = _check(key)
        with self._lock:
            self._write(lambda db: db.delete(key, self._wo))

    # ---- write errors (called with self._lock held) ---------------------------------------------
    def _write(self, fn) -> None:
        db = self._writable()
        try:
            fn(db)
        except Exception as e:  # rocksdict raises plain Exception("IO error: ...")
            self._failed = str(e)
            raise self._write_error(str(e)) from None

    def _write_error(self, text: str) -> StorageError:
        if "No space left on device" in text or "ENOSPC" in text:
            return DiskFull(f"the disk of the metadata store at {self.path} is full; nothing was written. "
                            f"Free space on it and retry (what is stored stays readable) [{text}]")
        return StorageError(f"writing to the metadata store at {self.path} failed; nothing was written "
                            f"[{text}]")

    def _writable(self) -> Rdict:
        """The database, reopened first if an earlier write failed (RocksDB keeps refusing
        writes after a write error until it is reopened)."""
        db = self._alive()
        if not self._failed:
            return db
        with self._rcond:
            self._reopening = True
            while self._readers:
                self._rcond.wait()
        try:
            try:
                db.close()
            except Exception:  # noqa: BLE001 - it is in its error state; the reopen decides
                pass
            for attempt in range(3):
                try:
                    self._db = Rdict(str(self.path), self._opts)
                    break
                except Exception as e:  # noqa: BLE001 - e.g. still no space for a new WAL
                    if attempt == 2:
                        self._reopen_for_reads()
                        raise self._write_error(f"{self._failed}; reopening it failed: {e}") from None
                    time.sleep(0.05)
        finally:
            with self._rcond:
                self._reopening = False
                self._rcond.notify_all()
        self._db.set_write_options(self._wo)
        log.warning("metadata store %s reopened after a failed write (%s)", self.path, self._failed)
        self._failed = ""
        return self._db

    def _reopen_for_reads(self) -> None:
        """After a failed reopen, keep serving reads from a read-only handle (it needs no
        new files); `_failed` stays set, so the next write tries a writable reopen again."""
        try:
            self._db = Rdict(str(self.path), self._opts, access_type=AccessType.read_only())
        except Exception as e:  # noqa: BLE001 - nothing left to serve from: say so on use
            log.error("metadata store %s cannot be reopened even read-only: %s", self.path, e)

    def batch(self, *, durable: bool = True) -> WriteBatch:
        self._alive()
        if durable:
            return WriteBatch(self._apply)
        return WriteBatch(lambda writes, expects: self._apply(writes, expects, self._wo_deferred))

    def _apply(self, writes: dict, expects: list, wo: WriteOptions | None = None) -> None:
        with self._lock:
            db = self._writable() if writes else self._alive()
            for k, v in expects:
                actual = db.get(k)
                if actual != v:
                    raise Conflict(conflict_message(k, v, actual))
            if not writes:
                return
            wb = RocksBatch(raw_mode=True)
            for k, v in writes.items():
                if v is None:
                    wb.delete(k)
                else:
                    wb.put(k, v)
            self._write(lambda d: d.write(wb, self._wo if wo is None else wo))

    def put_if(self, key: bytes, expected: bytes | None, new: bytes | None) -> bool:
        b = self.batch().expect(key, expected)
        b.delete(key) if new is None else b.put(key, new)
        try:
            b.commit()
            return True
        except Conflict:
            return False

    def _page(self, lo: bytes, hi: bytes | None, cursor: bytes | None, reverse: bool,
              n: int) -> list[tuple[bytes, bytes]]:
        """Read up to n items after `cursor` (exclusive) in [lo, hi); no iterator survives."""
        return self._read(lambda db: _page(db, lo, hi, cursor, reverse, n))

    def scan(self, prefix: bytes = b"", start: bytes | None = None, end: bytes | None = None,
             reverse: bool = False, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        self._alive()
        return _scan(self._page, prefix, start, end, reverse, limit)

    def snapshot(self) -> "RocksSnapshot":
        d = self._snapshots_dir / secrets.token_hex(8)
        d.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            db = self._alive()
            try:
                Checkpoint(db).create_checkpoint(str(d))
            except Exception as e:  # rocksdict raises plain Exception
                shutil.rmtree(d, ignore_errors=True)
                raise StorageError(f"cannot take a snapshot of the metadata store at {self.path}: {e}") from e
        try:
            view = Rdict(str(d), _bounded_options(SNAPSHOT_BLOCK_CACHE), access_type=AccessType.read_only())
        except Exception as e:
            shutil.rmtree(d, ignore_errors=True)
            raise StorageError(f"cannot open the snapshot {d} of the metadata store: {e}") from e
        return RocksSnapshot(view, d)

    def checkpoint(self, dest: Path | str) -> None:
        """A consistent copy of the database in the new directory `dest` (hard links to the
        live table files where the file system allows; the memtable is flushed first)."""
        with self._lock:
            db = self._alive()
            try:
                Checkpoint(db).create_checkpoint(str(dest))
            except Exception as e:  # rocksdict raises plain Exception
                shutil.rmtree(dest, ignore_errors=True)
                raise StorageError(f"cannot checkpoint the metadata store at {self.path}: {e}") from e

    def sequence(self) -> int:
        """RocksDB's latest sequence number: it moves on every write."""
        return self._read(lambda db: db.latest_sequence_number())

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            db, self._db = self._db, None
        try:
            db.close()
        except Exception as e:  # noqa: BLE001 - e.g. "Writer has previous error" after a full disk
            log.warning("closing the metadata store at %s: %s", self.path, e)
        del db


class RocksSnapshot:
    """A read-only checkpoint of a RocksMetadataStore (see the module docstring)."""

    def __init__(self, db: Rdict, path: Path):
        self._db, self.path = db, path

    def _alive(self) -> Rdict:
        if self._db is None:
            raise RuntimeError(f"metadata snapshot {self.path} is closed")
        return self._db

    def get(self, key: bytes) -> bytes | None:
        return self._alive().get(_check(key))

    def scan(self, prefix: bytes = b"", start: bytes | None = None, end: bytes | None = None,
             reverse: bool = False, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        self._alive()
        return _scan(lambda *a: _page(self._alive(), *a), prefix, start, end, reverse, limit)

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
            del db
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "RocksSnapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _page(db: Rdict, lo: bytes, hi: bytes | None, cursor: bytes | None, reverse: bool,
          n: int) -> list[tuple[bytes, bytes]]:
    """Read up to n items after `cursor` (exclusive) in [lo, hi); no iterator survives."""
    ro = ReadOptions()
    if hi is not None:
        ro.set_iterate_upper_bound(hi)
    it = db.iter(ro)
    try:
        out: list[tuple[bytes, bytes]] = []
        if not reverse:
            it.seek(lo if cursor is None else cursor + b"\x00")
            while it.valid() and len(out) < n:
                k = it.key()
                if hi is not None and k >= hi:
                    break
                out.append((k, it.value()))
                it.next()
        else:
            top = hi if cursor is None else cursor
            if top is None:
                it.seek_to_last()
            else:
                it.seek_for_prev(top)
                if it.valid() and it.key() >= top:
                    it.prev()
            while it.valid() and len(out) < n:
                k = it.key()
                if k < lo:
                    break
                out.append((k, it.value()))
                it.prev()
        return out
    finally:
        del it  # never let an iterator outlive the page: it would pin the DB


def _scan(page, prefix: bytes, start: bytes | None, end: bytes | None, reverse: bool,
          limit: int | None) -> Iterator[tuple[bytes, bytes]]:
    lo, hi = scan_bounds(_check(prefix), start, end)
    if hi is not None and lo >= hi:
        return
    left = limit
    cursor: bytes | None = None
    while left is None or left > 0:
        n = PAGE if left is None else min(PAGE, left)
        items = page(lo, hi, cursor, reverse, n)
        if not items:
            return
        yield from items
        if left is not None:
            left -= len(items)
        cursor = items[-1][0]
        if len(items) < n:
            return
