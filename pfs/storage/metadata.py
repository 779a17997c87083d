"""The metadata-store Protocol (an ordered byte key/value store) and an in-memory one.

Invariants every implementation keeps (checked by tests/storage/test_metadata.py):
- Keys and values are `bytes`; keys are ordered bytewise.
- `scan(prefix, start, end, reverse, limit)` yields ``(key, value)`` pairs with
  ``key.startswith(prefix)`` and ``start <= key < end`` (start inclusive, end exclusive),
  ascending (descending if `reverse`), at most `limit` of them. It seeks to the first key and
  reads in bounded pages: cost is O(log N + pages), never a full scan. A scan is *not* a
  snapshot across pages: each key is yielded at most once, in order, with the value it had
  when its page was read; writes made during a long scan may or may not be seen. No
  store-internal resource (iterator, lock) is held while the caller consumes the scan.
- A `WriteBatch` collects puts, deletes and `expect(key, value_or_None)` preconditions. Its
  commit is atomic and linearizable: under the store's write lock, every `expect` is checked
  against the *stored* value (None = absent); if all hold, all writes apply at once (later
  writes to the same key win), else `pfs.errors.Conflict` is raised and nothing is written.
  Leaving the ``with`` block normally commits; leaving it by an exception discards the batch.
  A batch commits at most once.
- `batch(durable=False)` makes a batch that is just as atomic but need not be on stable
  storage when `commit()` returns: it survives a crash of this process, and it is made
  durable by the next durable write (a store keeps one ordered log). For writes whose
  durability can wait for a later write that depends on them (the chunk index: a commit
  pointing at those chunks is written durably after them). Stores without a log ignore it.
- Every single-key write (`put`, `delete`) takes the same write lock, so a compare-and-swap
  can never interleave with another writer of this process. `put_if(key, expected, new)` is
  a one-key CAS (new=None deletes) returning whether it won.
- `snapshot()` returns a read-only, consistent point-in-time view (`get`, `scan` with the
  same semantics, `close()`): writes made after it are invisible to it. It is taken
  atomically with respect to every batch (none is half in it). It holds resources until
  closed (use it as a context manager); the garbage collector and backups read from one.
- `close()` releases everything (files, locks); the store must not be used after it.
"""
from __future__ import annotations

import bisect
import threading
from typing import Iterator, Protocol, runtime_checkable

from pfs.errors import Conflict

__all__ = ["MetadataStore", "MetadataSnapshot", "WriteBatch", "MemoryMetadataStore", "scan_bounds",
           "prefix_end"]

PAGE = 256  # items read per page by paged scans


@runtime_checkable
class MetadataStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def scan(self, prefix: bytes = b"", start: bytes | None = None, end: bytes | None = None,
             reverse: bool = False, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]: ...

    def batch(self, *, durable: bool = True) -> "WriteBatch": ...

    def put_if(self, key: bytes, expected: bytes | None, new: bytes | None) -> bool: ...

    def snapshot(self) -> "MetadataSnapshot": ...

    def close(self) -> None: ...


@runtime_checkable
class MetadataSnapshot(Protocol):
    """A read-only point-in-time view of a MetadataStore (a context manager)."""

    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, prefix: bytes = b"", start: bytes | None = None, end: bytes | None = None,
             reverse: bool = False, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "MetadataSnapshot": ...

    def __exit__(self, *exc) -> None: ...


def _check(key: bytes, what: str = "key") -> bytes:
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"metadata {what} must be bytes, got {type(key).__name__}")
    return bytes(key)


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with `prefix` (None: no such key)."""
    p = prefix.rstrip(b"\xff")
    return p[:-1] + bytes([p[-1] + 1]) if p else None


def scan_bounds(prefix: bytes, start: bytes | None, end: bytes | None) -> tuple[bytes, bytes | None]:
    """The half-open key range ``[lo, hi)`` (hi None = unbounded) a scan covers."""
    start = None if start is None else _check(start, "scan start")
    end = None if end is None else _check(end, "scan end")
    lo = max(prefix, start) if start is not None else prefix
    hi = prefix_end(prefix) if prefix else None
    if end is not None:
        hi = end if hi is None else min(hi, end)
    return lo, hi


class WriteBatch:
    """Puts, deletes and preconditions applied together by `commit()` (or by ``with``)."""

    def __init__(self, apply):
        self._apply = apply  # callable(writes: dict[bytes, bytes|None], expects: list)
        self._writes: dict[bytes, bytes | None] = {}
        self._expects: list[tuple[bytes, bytes | None]] = []
        self._done = False

    def put(self, key: bytes, value: bytes) -> "WriteBatch":
        self._open()
        self._writes[_check(key)] = _check(value, "value")
        return self

    def delete(self, key: bytes) -> "WriteBatch":
        self._open()
        self._writes[_check(key)] = None
        return self

    def expect(self, key: bytes, value: bytes | None) -> "WriteBatch":
        """At commit, the stored value of `key` must equal `value` (None = absent)."""
        self._open()
        self._expects.append((_check(key), None if value is None else _check(value, "value")))
        return self

    def _open(self) -> None:
        if self._done:
            raise RuntimeError("this WriteBatch was already committed or discarded")

    def commit(self) -> None:
        """Apply atomically, or raise Conflict (writing nothing) if an expect fails."""
        self._open()
        self._done = True
        self._apply(self._writes, self._expects)

    def discard(self) -> None:
        self._done = True

    def __len__(self) -> int:
        return len(self._writes)

    def __enter__(self) -> "WriteBatch":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
        elif not self._done:
            self.commit()


def conflict_message(key: bytes, expected: bytes | None, actual: bytes | None) -> str:
    def show(v: bytes | None) -> str:
        if v is None:
            return "absent"
        return repr(v if len(v) <= 40 else v[:40] + b"...")
    return (f"concurrent update of metadata key {key!r}: expected {show(expected)}, "
            f"found {show(actual)}; nothing was written, retry the operation")


class MemoryMetadataStore:
    """A dict plus a sorted key list; for tests and ephemeral runs. Thread-safe."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryMetadataStore({len(self._data)} keys)"

    def _alive(self) -> None:
        if self._closed:
            raise RuntimeError("metadata store is closed")

    def get(self, key: bytes) -> bytes | None:
        self._alive()
        return self._data.get(_check(key))

    def _set(self, key: bytes, value: bytes | None) -> None:  # caller holds the lock
        if value is None:
            if self._data.pop(key, None) is not None:
                del self._keys[bisect.bisect_left(self._keys, key)]
        else:
            if key not in self._data:
                bisect.insort(self._keys, key)
            self._data[key] = value

    def put(self, key: bytes, value: bytes) -> None:
        self._alive()
        key, value = _check(key), _check(value, "value")
        with self._lock:
            self._set(key, value)

    def delete(self, key: bytes) -> None:
        self._alive()
        key = _check(key)
        with self._lock:
            self._set(key, None)

    def batch(self, *, durable: bool = True) -> WriteBatch:
        self._alive()
        return WriteBatch(self._apply)

    def _apply(self, writes: dict, expects: list) -> None:
        self._alive()
        with self._lock:
            for k, v in expects:
                actual = self._data.get(k)
                if actual != v:
                    raise Conflict(conflict_message(k, v, actual))
            for k, v in writes.items():
                self._set(k, v)

    def put_if(self, key: bytes, expected: bytes | None, new: bytes | None) -> bool:
        b = self.batch().expect(key, expected)
        b.delete(key) if new is None else b.put(key, new)
        try:
            b.commit()
            return True
        except Conflict:
            return False

    def scan(self, prefix: bytes = b"", start: bytes | None = None, end: bytes | None = None,
             reverse: bool = False, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        self._alive()
        lo, hi = scan_bounds(_check(prefix), start, end)
        left = limit
        cursor: bytes | None = None
        while left is None or left > 0:
            n = PAGE if left is None else min(PAGE, left)
            with self._lock:
                keys = self._keys
                if not reverse:
                    i = bisect.bisect_left(keys, lo) if cursor is None else bisect.bisect_right(keys, cursor)
                    j = len(keys) if hi is None else bisect.bisect_left(keys, hi)
                    page = [(k, self._data[k]) for k in keys[i:min(j, i + n)]]
                else:
                    j = (len(keys) if hi is None else bisect.bisect_left(keys, hi)) if cursor is None \
                        else bisect.bisect_left(keys, cursor)
                    i = bisect.bisect_left(keys, lo)
                    page = [(k, self._data[k]) for k in reversed(keys[max(i, j - n):j])]
            if not page:
                return
            yield from page
            if left is not None:
                left -= len(page)
            cursor = page[-1][0]
            if len(page) < n:
                return

    def snapshot(self) -> "MemorySnapshot":
        self._alive()
        view = MemoryMetadataStore()
        with self._lock:
            view._data = dict(self._data)
            view._keys = list(self._keys)
        return MemorySnapshot(view)

    def close(self) -> None:
        self._closed = True


class MemorySnapshot:
    """A copy of a MemoryMetadataStore taken under its lock."""

    def __init__(self, view: MemoryMetadataStore):
        self._view = view

    def get(self, key: bytes) -> bytes | None:
        return self._view.get(key)

    def scan(self, prefix: bytes = b"", start: bytes | None = None, end: bytes | None = None,
             reverse: bool = False, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self._view.scan(prefix, start, end, reverse, limit)

    def close(self) -> None:
        self._view.close()

    def __enter__(self) -> "MemorySnapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
