"""A compact set of content hashes for the garbage collector's mark: 8 bytes per hash.

The mark of a 1,000,000-chunk store held a Python dict (hash bytes -> pack), ~117 bytes a
chunk; this set keeps the first 8 bytes of each hash as an unsigned 64-bit integer in sorted
`array('Q')` runs and answers membership by binary search.

Invariants:
- No false negatives: every added hash is found. A hash whose first 8 bytes equal an added
  hash's is reported present too (a false positive). The collector only ever uses "present"
  to KEEP something (a chunk, a pack), so a false positive can keep a little garbage for a
  run, never delete live data; for blake3 hashes its chance is about n_live * n_dead / 2**64.
- Memory while adding: 8 bytes per add (duplicates included) in sorted runs of at most
  `RUN` entries, plus one run being sorted (a list of `RUN` ints, ~3 MiB); `freeze` merges
  the runs into one deduplicated array. Lookups before `freeze` are refused.
- A cursor gives the same answers as `index` whatever order it is asked in (a hash smaller
  than the previous one is searched for); ascending order only makes it fast.
"""
from __future__ import annotations

import heapq
import sys
from array import array
from bisect import bisect_left

RUN = 1 << 16
_LITTLE = sys.byteorder == "little"


def prefix(h: bytes) -> int:
    return int.from_bytes(h[:8], "big")


class HashPrefixSet:
    def __init__(self):
        self._runs: list[array] = []
        self._pending = bytearray()  # first 8 bytes of each hash added since the last run
        self._sorted: array | None = None

    def add(self, h: bytes) -> None:
        self._pending += h[:8]
        if len(self._pending) >= 8 * RUN:
            self._seal()

    def _seal(self) -> None:
        if self._pending:
            a = array("Q")
            a.frombytes(self._pending)
            if _LITTLE:
                a.byteswap()  # big-endian: integer order is the hashes' byte order
            self._runs.append(array("Q", sorted(set(a))))
            self._pending = bytearray()

    def freeze(self) -> "HashPrefixSet":
        """Merge everything added into one sorted array without duplicates; returns self."""
        self._seal()
        runs, self._runs = self._runs, []
        if len(runs) == 1:
            self._sorted = runs[0]
            return self
        out = array("Q")
        last = -1
        for v in heapq.merge(*runs):
            if v != last:
                out.append(v)
                last = v
        self._sorted = out
        return self

    def __len__(self) -> int:
        return len(self._frozen())

    def _frozen(self) -> array:
        if self._sorted is None:
            raise RuntimeError("HashPrefixSet.freeze() must be called before lookups")
        return self._sorted

    def index(self, h: bytes) -> int:
        """Position of `h`'s prefix in the sorted array, or -1 when absent."""
        a = self._frozen()
        p = int.from_bytes(h[:8], "big")
        i = bisect_left(a, p)
        return i if i < len(a) and a[i] == p else -1

    def __contains__(self, h: bytes) -> bool:
        return self.index(h) >= 0

    def cursor(self) -> "Cursor":
        return Cursor(self._frozen())


class Cursor:
    """`index` for hashes asked in ascending order: one walk along the sorted array."""

    def __init__(self, a: array):
        self._a = a
        self._i = 0
        self._last = -1

    def index(self, h: bytes) -> int:
        a = self._a
        p = int.from_bytes(h[:8], "big")
        i = bisect_left(a, p) if p < self._last else self._i
        self._last = p
        n = len(a)
        while i < n and a[i] < p:
            i += 1
        self._i = i
        return i if i < n and a[i] == p else -1
