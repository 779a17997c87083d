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
- The bytes stored are the bytes hashed. Where the kernel grants a read lease on the file
  (`pfs.core.leased_file`), segments are windows of the file mapped in place: nobody can
  change the file until the lease ends, and it ends only when every pack pointing into a
  window has been written. A writer waiting on the lease is noticed after each segment;
  the ingest then stops, waits for its pack writes, lets the lease go and starts over by
  copying (chunks already stored are found again, not rewritten). Without a lease, a
  segment is copied into a private buffer and its chunks' bytes and hashes both come from
  there, so a file changing during the put cannot make a chunk disagree with its hash.
- Read buffers (copying) are page-aligned anonymous mappings, reused through a `BlockPool`:
  a buffer goes back to the pool only when its segment is stitched and every pack pointing
  into it has been written, so no buffer is overwritten under a pending write. Windows
  (leased) are unmapped at that point instead.
- New chunks go into packs as views of the segments' buffers, widened to page boundaries (each
  part starts and ends on a page), so the local chunk store can write them with O_DIRECT: no
  copy, and no page-cache pages to find for a gigabyte of packs (read in place, the file's
  last part ends mid-page: that one pack goes through the page cache). A chunk's ref points inside
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

import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

import blake3

from pfs.core.buffers import PAGE, BlockPool, page_down, page_up
from pfs.core.chunking import cuts as chunk_cuts
from pfs.core.content import PACK_MAX_CHUNKS, ChunkRef, FileContent
from pfs.core.leased_file import LeasedFile

if TYPE_CHECKING:
    from pfs.core.content import ContentWriter

_workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-segment")
AHEAD = 3  # segments read (or being read) ahead of the one being stitched
log = logging.getLogger(__name__)


def _fill_at(fd: int, view: memoryview, offset: int) -> int:
    """pread into `view` until it is full or the file ends; how many bytes came."""
    n = 0
    while n < len(view):  # short reads: network filesystems
        k = os.preadv(fd, [view[n:]], offset + n)
        if not k:
            break
        n += k
    return n


class _CopiedFile:
    """Segments copied (pread) into private pooled buffers; the same interface as `LeasedFile`."""

    def __init__(self, fd: int, pool: BlockPool):
        self.fd, self.pool = fd, pool
        self.hold, self.release, self.release_when_done = pool.hold, pool.release, pool.release_when_done

    def read(self, start: int, length: int):
        buf = self.pool.take()
        view = memoryview(buf)
        n = _fill_at(self.fd, view[:length], start)
        view[n:page_up(n)] = bytes(page_up(n) - n)  # widening past the end reads zeros
        return buf, n, n < length

    def intact(self) -> bool:
        return True

    def close(self) -> None:
        pass


class _LeaseBroken(Exception):
    """Someone is waiting to write the file being read in place."""


class _Segment:
    """File bytes `[start, start + n)` in `buf`, with the chunks a worker cut from `start`.

    `chunks` are `(offset in buf, length, hash)`: the cuts as if a chunk began at `start`,
    each taken only with a full `cdc_max` window behind it (or at the end of the file:
    `final`). `starts` maps a chunk's offset to its index, to find where the true cuts meet.
    """
    __slots__ = ("start", "length", "buf", "view", "n", "final", "chunks", "starts")

    def __init__(self, start: int, length: int):
        self.start, self.length, self.buf, self.view = start, length, None, None
        self.n, self.final, self.chunks, self.starts = 0, False, [], {}

    def read_and_cut(self, source, lo: int, avg: int, hi: int) -> "_Segment":
        self.buf, n, self.final = source.read(self.start, self.length)
        self.n = n
        view = self.view = memoryview(self.buf)
        chunks = self.chunks
        for off, length in chunk_cuts(view[:n], lo, avg, hi):
            if not self.final and off + hi > n:  # not final until a full window follows
                break
            chunks.append((off, length, blake3.blake3(view[off:off + length]).digest()))
        self.starts = {c[0]: i for i, c in enumerate(chunks)}
        return self


class _Packer:
    """Turns chunks, in file order, into packs of page-widened parts (see the module invariants)."""

    def __init__(self, writer: "ContentWriter", source, fc: FileContent):
        self.w, self.source, self.fc = writer, source, fc
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
            self.source.hold(buf)
            self.held[id(buf)] = buf
        self.run_buf = None

    def submit(self) -> None:
        self.close_run()
        if not self.refs:
            return
        pack_id, parts, refs, held = self.pack_id, self.parts, self.refs, list(self.held.values())
        self.held = {}  # the write holds them now: reused once this pack is written
        self._new_pack()
        self.w.write_direct(pack_id, parts, refs, self.source, held)

    def drop(self) -> None:
        """A pack never submitted (an error, a broken lease): its holds end here, and its
        chunks are not to be found in it (a second pass must store them again)."""
        self.w.dropped(self.refs)
        self.refs = []
        self.run_buf = None
        for b in self.held.values():
            self.source.release(b)
        self.held = {}


def ingest_segments(writer: "ContentWriter", f: BinaryIO, block_size: int) -> FileContent:
    """The content of the open file `f`, read from its current position to its end: in place
    under a read lease where the kernel grants one (and the position is on a page), else
    copied. A lease broken midway (a writer is waiting) ends the in-place read; the file is
    then read again from the start by copying."""
    fd, base = f.fileno(), f.tell()
    leased = LeasedFile.open(fd) if base % PAGE == 0 else None
    if leased is not None:
        try:
            return _ingest(writer, leased, base, block_size)
        except _LeaseBroken:
            log.info("a file being put was opened for writing; reading it again by copying")
        finally:
            leased.close()  # after every pack write from its windows: only then may it change
    return copied_ingest(writer, fd, base, block_size)


def copied_ingest(writer: "ContentWriter", fd: int, base: int, block_size: int) -> FileContent:
    """`ingest_segments` by copying segments into pooled private buffers."""
    lo, avg, hi = writer.store.cdc
    pool = writer.read_pool(_segment_size(block_size, hi) + _overlap(hi))
    return _ingest(writer, _CopiedFile(fd, pool), base, block_size)


def _segment_size(block_size: int, hi: int) -> int:
    return page_up(max(block_size, 4 * hi))


def _overlap(hi: int) -> int:
    return page_up(2 * hi)  # a segment reads this far into the next, where the cuts meet


def _ingest(writer: "ContentWriter", source, base: int, block_size: int) -> FileContent:
    lo, avg, hi = writer.store.cdc
    seg_size = _segment_size(block_size, hi)
    seg_len = seg_size + _overlap(hi)
    fc = FileContent()
    packer = _Packer(writer, source, fc)
    ahead: deque = deque()  # (segment, future) in file order; each holds its buffer once read
    next_start = base

    def fill_ahead() -> None:
        nonlocal next_start
        while len(ahead) < AHEAD:
            seg = _Segment(next_start, seg_len)
            ahead.append((seg, _workers.submit(seg.read_and_cut, source, lo, avg, hi)))
            next_start += seg_size

    def done_with_first() -> None:
        packer.close_run()  # the pack holds the buffer now, if it points into it
        seg, _ = ahead.popleft()
        source.release(seg.buf)

    pos = base  # where the next true chunk starts (a file offset)
    try:
        while True:
            fill_ahead()
            seg = ahead[0][1].result()
            if not source.intact():
                raise _LeaseBroken()
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
            if seg.buf is not None:
                source.release(seg.buf)
        ahead.clear()
    return fc
