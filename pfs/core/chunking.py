"""Content-defined chunking: where a run of bytes is cut into chunks (FastCDC 2020, pyfastcdc).

Invariants:
- `cuts(view, lo, avg, hi)` yields `(offset, length)` pairs that cover `view` exactly, in
  order; every chunk is `lo`..`hi` bytes long except possibly the last.
- A cut depends only on the bytes from its chunk's start up to `hi` bytes on, so cutting
  resumes identically from any earlier cut point given at least `hi` bytes ahead (callers
  rely on this to cut a stream block by block, and a local file and a streamed upload of
  the same bytes get the same chunks).
- The scanning loop runs without the GIL, so other threads hash and write meanwhile.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterator

from pyfastcdc import FastCDC


@lru_cache(maxsize=8)
def _chunker(lo: int, avg: int, hi: int) -> FastCDC:
    return FastCDC(avg, min_size=lo, max_size=hi)


def cuts(view, lo: int, avg: int, hi: int) -> Iterator[tuple[int, int]]:
    """Chunk boundaries of `view` (bytes-like)."""
    for c in _chunker(lo, avg, hi).cut_buf(view):
        yield c.offset, c.length

