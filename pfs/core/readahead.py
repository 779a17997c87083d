"""Parallel read-ahead of a file's content, for chunk stores where each read is a round trip.

`ContentStore.read` fetches one chunk range at a time; over S3 every range is a request,
so a single-stream read is bounded by one request's latency per chunk. `read_ahead` yields
exactly the same bytes in the same order, but keeps up to `window` chunk ranges in flight
on `workers` threads.

Invariants:
- Output is byte-for-byte `ContentStore.read(refs, offset, length)`.
- Memory is bounded by `window` chunk ranges (each ≤ the chunker's max chunk size),
  whatever the file's size.
- Closing the generator early (a client went away) cancels queued fetches and waits for
  the running ones: no thread outlives the read.
- One range or `workers <= 1` reads inline, without threads.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Optional

from pfs.core.content import ChunkRef, ContentStore, pack_key


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


def read_ahead(store: ContentStore, refs: Iterable[ChunkRef], offset: int = 0,
               length: Optional[int] = None, workers: int = 4, window: int = 8) -> Iterator[bytes]:
    todo = list(ranges(refs, offset, length))
    get = store.chunks.get_range
    if len(todo) <= 1 or workers <= 1:
        for key, off, n in todo:
            yield get(key, off, n)
        return
    ex = ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix="readahead")
    try:
        it = iter(todo)
        inflight: deque = deque()
        for key, off, n in it:
            inflight.append(ex.submit(get, key, off, n))
            if len(inflight) >= window:
                break
        while inflight:
            data = inflight.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                inflight.append(ex.submit(get, *nxt))
            yield data
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
