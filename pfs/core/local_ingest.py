"""Ingesting a big local file: read, chunk and hash in a pipeline; packs written around the page cache.

`ContentWriter.ingest_local` hands a big regular file here (pachd reading a file on its own
disk, e.g. a `file://` put from a local pachctl). Invariants:

- The chunks are exactly those the streaming path (`ContentWriter.feed`) cuts from the same
  bytes: the same chunker, and a cut is taken only with a full `cdc_max` window behind it or
  at the end of the file. So local and streamed puts of the same bytes deduplicate.
- The bytes stored are the bytes hashed: both come from one private read buffer, never from
  the file again, so a file changing during the put cannot make a chunk disagree with its
  hash.
- Read buffers are page-aligned anonymous mappings, reused through a `BlockPool`: a buffer goes
  back to the pool only when the reader is done with it and every pack pointing into it has
  been written, so no buffer is overwritten under a pending write.
- A block's layout is `[room for the carry | BLOCK bytes read]`: the tail of the previous block
  that was not yet cut (shorter than `cdc_max`) is copied in front of the new bytes, so chunks
  never straddle buffers.
- New chunks go into packs as views of the read buffers, widened to page boundaries (each
  part starts and ends on a page), so the local chunk store can write them with O_DIRECT: no
  copy, and no page-cache pages to find for a gigabyte of packs. A chunk's ref points inside
  its widened part. Widening bytes that are not this file's (before the first byte placed in
  the buffer, after the last) are zeroed first, so a pack never holds another file's stale
  bytes. The waste is under two pages per run of new chunks.
- Three stages overlap, each releasing the GIL for its heavy part: a reader thread fills
  block k+1 while the caller's thread cuts block k and a hasher thread hashes the blocks
  already cut. Blocks are packed in file order, so refs come out in order. At most
  `LOOKAHEAD` blocks are cut but not yet packed, and one block is read ahead.
- Errors: any failure (read, hash, pack write) is raised from here, and the caller poisons
  the writer (`ContentWriter._fail`); reads and hashes still running are waited for, and
  every buffer hold is released, on the way out.
"""
from __future__ import annotations

import mmap
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

import blake3

from pfs.core.chunking import cuts as chunk_cuts
from pfs.core.content import PACK_MAX_CHUNKS, ChunkRef, FileContent

if TYPE_CHECKING:
    from pfs.core.content import ContentWriter

PAGE = 4096  # O_DIRECT alignment: a multiple of every common logical block size
LOOKAHEAD = 2


def page_down(n: int) -> int:
    return n & ~(PAGE - 1)


def page_up(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)


class BlockPool:
    """Reusable page-aligned buffers of one size.

    Fresh multi-MiB buffers cost a page fault per 4 KiB on every use; reused ones do not. A
    buffer is in use while the reader holds it (`take`..`release`) and while a pack whose
    parts point into it is being filled (`hold`) or written (`release_when_done(bufs,
    future)`); it returns to the pool only when all of those are done. At most `keep` idle
    buffers are kept. Thread-safe (futures complete on writer threads).
    """

    def __init__(self, size: int, keep: int = 4):
        self.size, self.keep = page_up(size), keep
        self._free: list[mmap.mmap] = []
        self._uses: dict[int, int] = {}
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            buf = self._free.pop() if self._free else mmap.mmap(-1, self.size)
            self._uses[id(buf)] = 1
        return buf

    def release(self, buf: mmap.mmap) -> None:
        with self._lock:
            left = self._uses[id(buf)] - 1
            if left:
                self._uses[id(buf)] = left
                return
            del self._uses[id(buf)]
            if len(self._free) < self.keep:
                self._free.append(buf)

    def hold(self, buf: mmap.mmap) -> None:
        """One more use of a buffer already taken (a pack being filled points into it)."""
        with self._lock:
            self._uses[id(buf)] += 1

    def release_when_done(self, bufs, fut) -> None:
        bufs = list(bufs)
        fut.add_done_callback(lambda _f: [self.release(b) for b in bufs])


_hashers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chunk-hasher")
_readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="block-reader")


def _hash_all(view: memoryview, cuts: list) -> list:
    return [blake3.blake3(view[off:off + length]).digest() for off, length in cuts]


class _Block:
    """One read buffer: file bytes at `buf[start:end]`, cut into `cuts` (offsets from start)."""
    __slots__ = ("buf", "start", "end", "cuts", "hashes")

    def __init__(self, buf, start: int, end: int, cuts: list, hashes):
        self.buf, self.start, self.end, self.cuts, self.hashes = buf, start, end, cuts, hashes


class _Packer:
    """Turns hashed blocks into packs of page-widened parts (see the module invariants)."""

    def __init__(self, writer: "ContentWriter", pool: BlockPool, fc: "FileContent"):
        self.w, self.pool, self.fc = writer, pool, fc
        self._new_pack()

    def _new_pack(self) -> None:
        self.pack_id, self.parts, self.refs, self.used, self.held = os.urandom(16), [], [], 0, {}

    def add(self, block: _Block) -> None:
        w, store, fc = self.w, self.w.store, self.fc
        view = memoryview(block.buf)
        run_lo = run_end = None  # the current run of new chunks: buffer offsets
        for (off, length), h in zip(block.cuts, block.hashes.result()):
            ref = w.known(h)
            if ref is None:
                at = block.start + off
                if run_lo is None:
                    run_lo = page_down(at)
                    run_file_start = self.used
                ref = ChunkRef(h, self.pack_id, run_file_start + at - run_lo, length)
                run_end = at + length
                self.refs.append(ref)
                w._pending[h] = ref
                w.bytes_written += length
            elif run_lo is not None:
                self._close_run(view, block.buf, run_lo, run_end)
                run_lo = None
            fc.refs.append(ref)
            fc.size += length
            if run_lo is not None and (run_file_start + page_up(run_end) - run_lo >= store.pack_target
                                       or len(self.refs) >= PACK_MAX_CHUNKS):
                self._close_run(view, block.buf, run_lo, run_end)
                run_lo = None
                self.submit()
        if run_lo is not None:
            self._close_run(view, block.buf, run_lo, run_end)

    def _close_run(self, view: memoryview, buf, lo: int, end: int) -> None:
        part = view[lo:page_up(end)]
        self.parts.append(part)
        self.used += len(part)
        if id(buf) not in self.held:
            self.pool.hold(buf)
            self.held[id(buf)] = buf

    def submit(self) -> None:
        if not self.refs:
            return
        w, store = self.w, self.w.store
        fut = store.submit(store.write_pack, self.pack_id, self.parts, self.refs, True)
        self.pool.release_when_done(self.held.values(), fut)  # reused once this pack is written
        self.held = {}
        self._new_pack()
        w.track(fut)

    def drop(self) -> None:
        """A pack never submitted (an error): its holds end here."""
        for b in self.held.values():
            self.pool.release(b)
        self.held = {}


def _fill(f: BinaryIO, buf, start: int, stop: int) -> int:
    """Read into `buf[start:stop]` until it is full or the file ends; where the bytes end."""
    view = memoryview(buf)
    end = start
    while end < stop:  # short reads: network filesystems
        k = f.readinto(view[end:stop])
        if not k:
            break
        end += k
    return end


def ingest_blocks(writer: "ContentWriter", f: BinaryIO, block_size: int) -> FileContent:
    """The content of the open file `f`, read from its current position to its end."""
    lo, avg, hi = writer.store.cdc
    block = page_up(max(block_size, 4 * hi))
    head = page_up(hi)  # room for the carry, which is shorter than cdc_max
    if writer._blocks is None or writer._blocks.size != head + block:
        writer._blocks = BlockPool(head + block)
    pool = writer._blocks
    fc = FileContent()
    packer = _Packer(writer, pool, fc)
    queued: deque[_Block] = deque()  # cut, being hashed, not yet packed; each holds its buffer
    carry_from = None  # (buffer, offset, length) of bytes not yet cut
    nxt = pool.take()
    reading = _readers.submit(_fill, f, nxt, head, head + block)  # block k+1 is read while k is cut
    try:
        while True:
            buf, end = nxt, reading.result()
            nxt = reading = None
            final = end < head + block
            if not final:
                nxt = pool.take()
                reading = _readers.submit(_fill, f, nxt, head, head + block)
            view = memoryview(buf)
            start = head
            if carry_from is not None:
                src, at, n = carry_from
                start = head - n
                view[start:head] = memoryview(src)[at:at + n]
            writer.bytes_seen += end - head
            view[page_down(start):start] = bytes(start - page_down(start))  # not this file's bytes
            view[end:page_up(end)] = bytes(page_up(end) - end)
            n = end - start
            cuts = []
            if n and (final or n > hi):
                if n <= lo:
                    cuts = [(0, n)]
                else:
                    for off, length in chunk_cuts(view[start:end], lo, avg, hi):
                        if not final and off + hi > n:  # not final until a full window follows
                            break
                        cuts.append((off, length))
            consumed = cuts[-1][0] + cuts[-1][1] if cuts else 0
            carry_from = (buf, start + consumed, n - consumed) if not final else None
            queued.append(_Block(buf, start, end, cuts,
                                 _hashers.submit(_hash_all, view[start:end], cuts)))
            while queued and (len(queued) > LOOKAHEAD or final):
                b = queued[0]
                packer.add(b)  # the next block's carry comes from the newest block, still queued
                queued.popleft()
                pool.release(b.buf)
            if final:
                break
        packer.submit()
    finally:
        packer.drop()
        # an error: let running reads and hashes finish before their buffers are reused
        if reading is not None:
            reading.cancel() or reading.exception()
            pool.release(nxt)
        for b in queued:
            b.hashes.cancel() or b.hashes.exception()
            pool.release(b.buf)
    return fc
