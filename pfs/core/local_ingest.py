"""Ingesting a big local file: segments read, cut and hashed in parallel; packs written around the page cache.

`ContentWriter.ingest_local` hands a big regular file here (pachd reading a file on its own
disk, e.g. a `file://` put from a local pachctl). Invariants:

- The chunks are exactly those the streaming path (`ContentWriter.feed`) cuts from the same
  bytes: the same chunker, and a cut is taken only with a full `cdc_max` window behind it or
  at the end of the file. So local and streamed puts of the same bytes deduplicate.
- The file is read in segments at fixed offsets, each a little longer than the step between
  them (the overlap, two `cdc_max` windows). Worker threads each read a whole segment, cut it
  as if a chunk began at its start, and hash those chunks, while the data is still in that
  core's cache; the caller's thread stitches segments in file order. A segment's cuts are the
  true ones from the first point where a true cut ends on one of them (a cut depends only
  on the bytes from its chunk's start); the stitcher moves to the next segment at such a
  point inside the overlap, and where there is none it cuts and hashes on from the true
  position itself. So the result never depends on where segments begin.
- The bytes stored are the bytes hashed: a chunk's bytes and its hash come from one private
  buffer, never from the file again, so a file changing during the put cannot make a chunk
  disagree with its hash.
- Read buffers are page-aligned anonymous mappings, reused through a `BlockPool`: a buffer
  goes back to the pool only when its segment is stitched and every pack pointing into it
  has been written, so no buffer is overwritten under a pending write.
- New chunks go into packs as views of the read buffers, widened to page boundaries (each
  part starts and ends on a page), so the local chunk store can write them with O_DIRECT: no
  copy, and no page-cache pages to find for a gigabyte of packs. A chunk's ref points inside
  its widened part. A segment starts on a page, so widening reads only the file's own bytes,
  or zeros written past the end of what was read; a pack never holds another file's stale
  bytes. The waste is under two pages per run of new chunks.
- Memory: `AHEAD` segments being read or stitched, plus the buffers of at most
  `ContentWriter.MAX_INFLIGHT` packs being written.
- Errors: any failure (read, pack write) is raised from here, and the caller poisons the
  writer (`ContentWriter._fail`); segments still being read are waited for, and every
  buffer hold is released, on the way out.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

import blake3

from pfs.core.buffers import BlockPool, page_down, page_up
from pfs.core.chunking import cuts as chunk_cuts
from pfs.core.content import PACK_MAX_CHUNKS, ChunkRef, FileContent

if TYPE_CHECKING:
    from pfs.core.content import ContentWriter

_workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-segment")
AHEAD = 3  # segments read (or being read) ahead of the one being stitched


def _fill_at(fd: int, view: memoryview, offset: int) -> int:
    """pread into `view` until it is full or the file ends; how many bytes came."""
    n = 0
    while n < len(view):  # short reads: network filesystems
        k = os.preadv(fd, [view[n:]], offset + n)
        if not k:
            break
        n += k
    return n


class _Segment:
    """File bytes `[start, start + n)` in `buf`, with the chunks a worker cut from `start`.

    `chunks` are `(offset in buf, length, hash)`: the cuts as if a chunk began at `start`,
    each taken only with a full `cdc_max` window behind it (or at the end of the file:
    `final`). `starts` maps a chunk's offset to its index, to find where the true cuts meet.
    """
    __slots__ = ("start", "buf", "view", "n", "final", "chunks", "starts")

    def __init__(self, start: int, buf):
        self.start, self.buf, self.view = start, buf, memoryview(buf)
        self.n, self.final, self.chunks, self.starts = 0, False, [], {}

    def read_and_cut(self, fd: int, lo: int, avg: int, hi: int) -> "_Segment":
        view = self.view
        n = self.n = _fill_at(fd, view, self.start)
        self.final = n < len(view)
        view[n:page_up(n)] = bytes(page_up(n) - n)  # widening past the end reads zeros
        chunks = self.chunks
        for off, length in chunk_cuts(view[:n], lo, avg, hi):
            if not self.final and off + hi > n:  # not final until a full window follows
                break
            chunks.append((off, length, blake3.blake3(view[off:off + length]).digest()))
        self.starts = {c[0]: i for i, c in enumerate(chunks)}
        return self


class _Packer:
    """Turns chunks, in file order, into packs of page-widened parts (see the module invariants)."""

    def __init__(self, writer: "ContentWriter", pool: BlockPool, fc: FileContent):
        self.w, self.pool, self.fc = writer, pool, fc
        self.run_buf = None  # the current run of new chunks: its buffer, start and end in it
        self.run_lo = self.run_end = self.run_file_start = 0
        self._new_pack()

    def _new_pack(self) -> None:
        self.pack_id, self.parts, self.refs, self.used, self.held = os.urandom(16), [], [], 0, {}

    def add(self, buf, at: int, length: int, h: bytes) -> None:
        w = self.w
        ref = w.known(h)
        if ref is None:
            if self.run_buf is not None and (self.run_buf is not buf or self.run_end != at):
                self.close_run()
            if self.run_buf is None:
                self.run_buf, self.run_lo, self.run_file_start = buf, page_down(at), self.used
            ref = ChunkRef(h, self.pack_id, self.run_file_start + at - self.run_lo, length)
            self.run_end = at + length
            self.refs.append(ref)
            w.added(ref)
            if (self.run_file_start + page_up(self.run_end) - self.run_lo >= w.store.pack_target
                    or len(self.refs) >= PACK_MAX_CHUNKS):
                self.close_run()
                self.submit()
        else:
            self.close_run()
        self.fc.refs.append(ref)
        self.fc.size += length

    def close_run(self) -> None:
        """End the current run: its page-widened part joins the pack, which holds its buffer."""
        buf = self.run_buf
        if buf is None:
            return
        part = memoryview(buf)[self.run_lo:page_up(self.run_end)]
        self.parts.append(part)
        self.used += len(part)
        if id(buf) not in self.held:
            self.pool.hold(buf)
            self.held[id(buf)] = buf
        self.run_buf = None

    def submit(self) -> None:
        self.close_run()
        if not self.refs:
            return
        pack_id, parts, refs, held = self.pack_id, self.parts, self.refs, list(self.held.values())
        self.held = {}  # the write holds them now: reused once this pack is written
        self._new_pack()
        self.w.write_direct(pack_id, parts, refs, self.pool, held)

    def drop(self) -> None:
        """A pack never submitted (an error): its holds end here."""
        self.run_buf = None
        for b in self.held.values():
            self.pool.release(b)
        self.held = {}


def ingest_segments(writer: "ContentWriter", f: BinaryIO, block_size: int) -> FileContent:
    """The content of the open file `f`, read from its current position to its end."""
    lo, avg, hi = writer.store.cdc
    seg_size = page_up(max(block_size, 4 * hi))
    overlap = page_up(2 * hi)  # a segment reads this far into the next, where the cuts meet
    pool = writer.read_pool(seg_size + overlap)
    fd, base = f.fileno(), f.tell()
    fc = FileContent()
    packer = _Packer(writer, pool, fc)
    ahead: deque = deque()  # (segment, future) in file order; each holds its buffer
    next_start = base

    def fill_ahead() -> None:
        nonlocal next_start
        while len(ahead) < AHEAD:
            seg = _Segment(next_start, pool.take())
            ahead.append((seg, _workers.submit(seg.read_and_cut, fd, lo, avg, hi)))
            next_start += seg_size

    def done_with_first() -> None:
        packer.close_run()  # the pack holds the buffer now, if it points into it
        seg, _ = ahead.popleft()
        pool.release(seg.buf)

    pos = base  # where the next true chunk starts (a file offset)
    try:
        while True:
            fill_ahead()
            seg = ahead[0][1].result()
            at = pos - seg.start
            i = seg.starts.get(at)
            if i is None:  # the true cuts do not meet this segment's yet: cut on from `pos`
                for off, length in chunk_cuts(seg.view[at:seg.n], lo, avg, hi):
                    if not seg.final and at + off + hi > seg.n:
                        break
                    o = at + off
                    packer.add(seg.buf, o, length, blake3.blake3(seg.view[o:o + length]).digest())
                    pos = seg.start + o + length
                    i = seg.starts.get(o + length)
                    if i is not None:
                        break
            switched = False
            if i is not None:
                nxt = None
                for off, length, h in seg.chunks[i:]:
                    packer.add(seg.buf, off, length, h)
                    pos = seg.start + off + length
                    if seg.final or pos < seg.start + seg_size:
                        continue
                    if nxt is None:
                        nxt = ahead[1][1].result()  # AHEAD >= 2: the next segment is on its way
                    if (pos - nxt.start) in nxt.starts:  # the next segment's cuts are the true ones now
                        switched = True
                        break
            if seg.final and not switched and pos == seg.start + seg.n:
                break
            done_with_first()  # `pos` lies in the next segment (the overlap is wider than a window)
        packer.submit()
        writer.bytes_seen += pos - base
    finally:
        packer.drop()
        # an error: let running reads and cuts finish before their buffers are reused
        for seg, fut in ahead:
            fut.cancel() or fut.exception()
            pool.release(seg.buf)
        ahead.clear()
    return fc
