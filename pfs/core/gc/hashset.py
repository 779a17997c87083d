"""A compact set of content hashes for the garbage collector's mark: 8 bytes per hash.

The mark of a 1,000,000-chunk store held a Python dict (hash bytes -> pack), ~117 bytes a
chunk; this set keeps the first 8 bytes of each hash as an unsigned 64-bit integer, in 256
buckets by the hash's first byte, and once frozen answers membership by binary search in one
sorted array.

Invariants:
- No false negatives: every added hash is found. A hash whose first 8 bytes equal an added
  hash's is reported present too (a false positive). The collector only ever uses "present"
  to KEEP something (a chunk, a pack), so a false positive can keep a little garbage for a
  run, never delete live data; for blake3 hashes its chance is about n_live * n_dead / 2**64.
- Memory while adding: 8 bytes per distinct hash plus at most as many again for adds not yet
  deduplicated (a bucket is sorted and deduplicated when its new adds reach its deduplicated
  size, or `RUN` entries), plus one bucket's sort (a few MiB at 10,000,000 hashes).
- `freeze` builds the sorted array bucket by bucket, dropping each bucket as it is copied,
  so the peak stays ~8 bytes per distinct hash (merging whole-set runs, as before, held two
  copies: 160 MiB for 10,000,000 chunks). Lookups before `freeze` are refused.
- A cursor gives the same answers as `index` whatever order it is asked in (a hash smaller
  than the previous one is searched for); ascending order only makes it fast.
"""
from __future__ import annotations

import sys
from array import array
from bisect import bisect_left

RUN = 1 << 8  # new adds a bucket takes before it is deduplicated, at least
_LITTLE = sys.byteorder == "little"


def prefix(h: bytes) -> int:
    return int.from_bytes(h[:8], "big")


def _ints(raw: bytearray) -> array:
    a = array("Q")
    a.frombytes(raw)
    if _LITTLE:
        a.byteswap()  # big-endian: integer order is the hashes' byte order
    return a


class HashPrefixSet:
    def __init__(self):
        self._done: list[array] = [array("Q") for _ in range(256)]  # sorted, deduplicated
        self._new: list[bytearray] = [bytearray() for _ in range(256)]  # raw 8-byte prefixes
        self._sorted: array | None = None

    def add(self, h: bytes) -> None:
        b = h[0]
        new = self._new[b]
        new += h[:8]
        if len(new) >= 8 * RUN and len(new) >= 8 * len(self._done[b]):
            self._settle(b)

    def _settle(self, b: int) -> None:
        new = self._new[b]
        if new:
            merged = set(self._done[b])
            merged.update(_ints(new))
            self._done[b] = array("Q", sorted(merged))
            self._new[b] = bytearray()

    def freeze(self) -> "HashPrefixSet":
        """Merge everything added into one sorted array without duplicates; returns self."""
        if self._sorted is not None:
            return self
        out = array("Q")
        for b in range(256):
            self._settle(b)
            out.extend(self._done[b])
            self._done[b] = array("Q")
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
