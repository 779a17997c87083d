"""Parallel read-ahead of a file's content, for chunk stores where each read is a round trip.

Reading one chunk range at a time over S3 costs one request (its latency and, in Python,
a few milliseconds of botocore CPU) per ~512 KiB chunk. `read_ahead` yields the same
bytes in the same order, but
- merges the ranges of consecutive chunks that lie back to back in one pack (a big file's
  new chunks are appended to packs in order) into one request of at most `max_span` bytes,
  and
- keeps up to `window` such requests in flight on `workers` threads.
`ContentStore.read` uses it on every chunk store (see pfs.core.content): local packs
are written around the page cache, so their reads are disk round trips too.

Invariants:
- Output is byte-for-byte `ContentStore.read_sequential(refs, offset, length)`, and still
  comes in pieces of at most one chunk (a merged request is split back at chunk
  boundaries), so callers' message sizes do not change.
- Memory is bounded by `window` requests of at most max(`max_span`, one chunk) bytes each,
  whatever the file's size.
- Closing the generator early (a client went away) cancels queued fetches and waits for
  the running ones: no thread outlives the read.
- A single request is read inline, without threads; `workers <= 1` reads inline one chunk
  range at a time (exactly the sequential read).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Optional

from pfs.core.content import ChunkRef, ContentStore, pack_key

MAX_SPAN = 4 * 1024 * 1024


def ranges(refs: Iterable[ChunkRef], offset: int = 0,
           length: Optional[int] = None) -> Iterator[tuple[str, int, int]]:
    """(object key, offset, length) reads covering [offset, offset+length) of the file."""
    remaining = length
    for r in refs:
        if remaining is not None and remaining <= 0:
            return
        if offset >= r.length:
            offset -= r.length
            continue
        take = r.length - offset
        if remaining is not None:
            take = min(take, remaining)
            remaining -= take
        yield pack_key(r.pack), r.offset + offset, take
        offset = 0


def spans(pieces: Iterable[tuple[str, int, int]],
          max_span: int) -> Iterator[tuple[str, int, list[int]]]:
    """Merge back-to-back pieces of one object: (key, offset, [piece lengths]), each span at
    most `max_span` bytes unless a single piece is bigger."""
    key, start, parts, total = None, 0, [], 0
    for k, off, n in pieces:
        if parts and k == key and off == start + total and total + n <= max_span:
            parts.append(n)
            total += n
            continue
        if parts:
            yield key, start, parts
        key, start, parts, total = k, off, [n], n
    if parts:
        yield key, start, parts


def _fetch(get, key: str, off: int, parts: list[int]) -> list[bytes]:
    data = get(key, off, sum(parts))
    if len(parts) == 1:
        return [data]
    out, pos = [], 0
    for n in parts:
        out.append(data[pos:pos + n])
        pos += n
    return out


def read_ahead(store: ContentStore, refs: Iterable[ChunkRef], offset: int = 0,
               length: Optional[int] = None, workers: int = 4, window: int = 8,
               max_span: Optional[int] = None) -> Iterator[bytes]:
    get = store.chunks.get_range
    max_span = MAX_SPAN if max_span is None else max_span
    if workers <= 1:
        for key, off, n in ranges(refs, offset, length):
            yield get(key, off, n)
        return
    todo = list(spans(ranges(refs, offset, length), max_span))
    if len(todo) <= 1:
        for key, off, parts in todo:
            yield from _fetch(get, key, off, parts)
        return
    ex = ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix="readahead")
    try:
        it = iter(todo)
        inflight: deque = deque()
        for key, off, parts in it:
            inflight.append(ex.submit(_fetch, get, key, off, parts))
            if len(inflight) >= window:
                break
        while inflight:
            pieces = inflight.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                inflight.append(ex.submit(_fetch, get, *nxt))
            yield from pieces
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
