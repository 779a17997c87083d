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
  boundaries), so callers' message sizes do not change. With `views=True` the pieces are
  memoryviews into the request's buffer (no copy per chunk: the copy of each chunk into
  its own bytes was a quarter of a warm read's CPU in a py-spy profile); without, bytes.
- Memory is bounded by `window` requests of at most max(`max_span`, one chunk) bytes each,
  whatever the file's size.
- Fetches run on the store's shared pool (`ContentStore.read_pool`: threads started once,
  not per read; starting 4 threads per read was most of a GetFile-at-an-offset's time in a
  py-spy profile on the loaded machine), at most `window` of them per read. Closing the
  generator early (a client went away) cancels its queued fetches and waits for its running
  ones: no fetch of a read runs after the read is closed.
- The first chunk is read inline, by itself, and read-ahead starts only when the caller
  asks for more (a read cancelled after its first bytes costs one chunk); a single further
  request is read inline too, without threads; `workers <= 1` reads inline one chunk range
  at a time (exactly the sequential read).
- Whole chunks are read, even for a read that starts or ends inside one, so each can be
  checked against its hash (`ContentStore.chunk_bytes`, which also finds a chunk whose pack
  is gone); only then is the requested part of it yielded.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Iterable, Iterator, Optional

from pfs.core.content import ChunkRef, ContentStore, pack_key
from pfs.errors import ObjectNotFound

MAX_SPAN = 4 * 1024 * 1024


def ranges(refs: Iterable[ChunkRef], offset: int = 0,
           length: Optional[int] = None) -> Iterator[tuple[ChunkRef, int, int]]:
    """(chunk ref, bytes to skip at its start, bytes to take) covering [offset, offset+length)."""
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
        yield r, offset, take
        offset = 0


def spans(pieces: Iterable[tuple[ChunkRef, int, int]],
          max_span: int) -> Iterator[tuple[str, int, list]]:
    """Merge whole chunks lying back to back in one pack: (key, offset, [(ref, skip, take)]),
    each span at most `max_span` bytes unless a single chunk is bigger."""
    key, start, parts, total = None, 0, [], 0
    for piece in pieces:
        r = piece[0]
        k = pack_key(r.pack)
        if parts and k == key and r.offset == start + total and total + r.length <= max_span:
            parts.append(piece)
            total += r.length
            continue
        if parts:
            yield key, start, parts
        key, start, parts, total = k, r.offset, [piece], r.length
    if parts:
        yield key, start, parts


def _fetch(store: ContentStore, key: str, off: int, parts: list, views: bool = False) -> list:
    get = getattr(store.chunks, "get_range_view", None) if views else None  # mapped: no copy
    try:
        data = (get or store.chunks.get_range)(key, off, sum(r.length for r, _, _ in parts))
    except ObjectNotFound:
        data = None  # the pack is gone: each chunk is looked up where the index says
    whole = None if data is None else memoryview(data)
    out, pos = [], 0
    for r, skip, take in parts:
        piece = store.chunk_bytes(r, None if whole is None else whole[pos:pos + r.length])
        pos += r.length
        if not (skip == 0 and take == len(piece)):
            piece = memoryview(piece)[skip:skip + take]
        out.append(piece if views or type(piece) is bytes else bytes(piece))
    return out


def read_ahead(store: ContentStore, refs: Iterable[ChunkRef], offset: int = 0,
               length: Optional[int] = None, workers: int = 4, window: int = 8,
               max_span: Optional[int] = None, views: bool = False) -> Iterator:
    max_span = MAX_SPAN if max_span is None else max_span
    if workers <= 1:
        yield from store.read_sequential(refs, offset, length)
        return
    pieces = list(ranges(refs, offset, length))
    if not pieces:
        return
    # The first chunk alone, inline: a read at an offset that is cancelled after its first
    # bytes (a random read through the mount) costs one chunk, not a window of 4 MiB spans
    # on threads started for it. Read-ahead starts once the caller asks for more.
    for span in spans(pieces[:1], max_span):
        yield from _fetch(store, *span, views)
    todo = [(*span, views) for span in spans(pieces[1:], max_span)]
    if len(todo) <= 1:
        for span in todo:
            yield from _fetch(store, *span)
        return
    shared = getattr(store, "read_pool", None)
    ex = shared() if shared is not None else ThreadPoolExecutor(max_workers=min(workers, len(todo)),
                                                                thread_name_prefix="readahead")
    inflight: deque = deque()
    try:
        it = iter(todo)
        for span in it:
            inflight.append(ex.submit(_fetch, store, *span))
            if len(inflight) >= window:
                break
        while inflight:
            pieces = inflight.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                inflight.append(ex.submit(_fetch, store, *nxt))
            yield from pieces
    finally:
        if shared is None:
            ex.shutdown(wait=True, cancel_futures=True)
        else:  # the store's pool lives on: cancel this read's queued fetches, wait out its running ones
            for f in inflight:
                f.cancel()
            wait([f for f in inflight if not f.cancelled()])
