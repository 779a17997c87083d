"""File content: content-defined chunks, deduplicated by hash, packed into large objects.

Invariants:
- A file's content is a list of `ChunkRef`s; each names the chunk's BLAKE3 hash and where
  its bytes live (pack object, offset, length). Chunk boundaries come from FastCDC over the
  file's bytes (`pfs.core.chunking`), so an insertion in the middle of a big file changes
  only the chunks around it.
- Identical chunks are stored once across files, commits, branches and repos: the chunk
  index (metadata key `chunk_key(hash)`) maps a hash to its stored location and is consulted
  before anything is written.
- Chunks are appended to an in-memory pack (several MiB) and written as one object, so a
  hundred thousand tiny files become a few dozen objects. For the local chunk store the
  pack is a pooled page-aligned buffer (`pfs.core.buffers`), zero-padded to a whole page and
  written around the page cache (O_DIRECT); chunk refs never reach into the padding. For
  remote stores it is a plain bytearray.
- A pack object is fully written (atomically, by the chunk store) BEFORE its chunk index
  entries are committed, and callers must `flush()` before they persist anything that refers
  to the chunks. A crash therefore leaves, at worst, an unreferenced pack (garbage), never a
  reference to missing bytes. The index entries are written non-durably
  (`batch(durable=False)`): what refers to them is written durably after them, and that
  write makes them durable too.
- A failed pack write poisons its writer: the failure is raised (the store's own error,
  e.g. `StorageError` -> UNAVAILABLE) from the call that notices it -- `feed`, `end` or
  `flush` -- after the writer's other queued writes are cancelled and its running ones have
  finished, and again from every later call. So a session whose pack was lost can never
  flush successfully and publish references to it; the failed pack gets no chunk-index
  entries (a pack is indexed only after its own put returned).
- Memory is bounded by the pack size plus the chunker's window, whatever the file size:
  the pack being filled, at most `MAX_INFLIGHT` packs being written, and (local store) the
  store's idle pooled buffers (`ContentStore.buffer_pool`: at most `BUFFERS_KEPT` a size,
  let go after `BUFFERS_IDLE_SECONDS` without an upload).
  `ingest_local` of a big file (pachd reading its own disk) keeps no pack buffer: its packs
  are views of pooled read buffers (`pfs.core.local_ingest`, with its own invariants), so it
  holds the buffers of at most `MAX_INFLIGHT` packs plus the segments being read and stitched.
- Reads (`ContentStore.read`) go through `pfs.core.readahead`, which merges back-to-back
  chunk ranges into requests of up to 4 MiB and keeps a few in flight: on S3 every read is
  a request, and local packs are written around the page cache, so their first read comes
  from the disk. `read_sequential` fetches one chunk range at a time. The bytes, and the
  chunk-sized pieces they come in, are the same either way.
- Every chunk read is re-hashed (`verify_reads`): bytes that do not match their hash are
  never served. A ref's pack is a location hint: the chunk index (`chunk_key`) is where a
  chunk lives; when the hinted pack is gone (the garbage collector compacted it) or its
  bytes are wrong, the chunk is read from where the index says, else the read fails with
  `DataLoss` naming the chunk.
- Garbage collection (pfs.core.gc): every pack gets a record (`pack_record_key`) in one
  batch with its writer's lease entry BEFORE the pack object is stored; a chunk reused from
  an existing pack is used only after the writer's lease protects that pack
  (`Lease.protect_pack`), else it is written again.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple, Optional

import blake3
import msgpack

from pfs.core import keys
from pfs.core.buffers import BlockPool, page_up
from pfs.core.chunking import cuts as chunk_cuts
from pfs.core.gc.records import LIVE, PackRecord
from pfs.errors import Conflict, DataLoss, ObjectNotFound
from pfs.storage.local import LocalChunkStore

CDC_MIN = 256 * 1024
CDC_AVG = 512 * 1024
CDC_MAX = 2 * 1024 * 1024
PACK_TARGET = 8 * 1024 * 1024
PACK_MAX_CHUNKS = 20_000  # tiny files: close a pack by count too, so pending refs stay bounded
EMPTY_HASH = blake3.blake3(b"").digest()
_HASH_THREADS = blake3.blake3.AUTO  # a chunk read back is hashed on all cores (blake3 splits it)


class ChunkRef(NamedTuple):
    hash: bytes  # 32-byte BLAKE3 of the chunk's bytes
    pack: bytes  # 16-byte pack id
    offset: int
    length: int


@dataclass
class FileContent:
    size: int = 0
    refs: list = field(default_factory=list)  # list[ChunkRef]
    # keeps the writer's own lease (if it had no session's) alive while the content is held
    hold: object = field(default=None, compare=False, repr=False)

    @property
    def hash(self) -> bytes:
        """The file's content hash: BLAKE3 over its chunk hashes, in order."""
        if not self.refs:
            return EMPTY_HASH
        h = blake3.blake3()
        for r in self.refs:
            h.update(r.hash)
        return h.digest()


def pack_key(pack_id: bytes) -> str:
    hx = pack_id.hex()
    return f"packs/{hx[:2]}/{hx}"


class ContentStore:
    """Reads and writes chunked content over a ChunkStore (bytes) and a MetadataStore (index)."""

    # Reading ahead: threads per file read, and requests fetched or in
    # flight ahead of the reader, each at most readahead.MAX_SPAN (4 MiB): <= 24 MiB a read.
    READ_WORKERS = 4
    READ_WINDOW = 6

    def __init__(self, chunks, meta, pack_target: int = PACK_TARGET,
                 cdc_min: int = CDC_MIN, cdc_avg: int = CDC_AVG, cdc_max: int = CDC_MAX,
                 read_ahead: Optional[bool] = None):
        self.chunks = chunks
        self.meta = meta
        self.pack_target = pack_target
        self.cdc = (cdc_min, cdc_avg, cdc_max)
        # Read ahead: every range read is a round trip, to S3 or (packs are written around
        # the page cache) to the local disk. B9 (get of a 1 GiB file just put): 321-334 MiB/s
        # one range at a time, 447-594 MiB/s reading ahead.
        self.read_ahead = True if read_ahead is None else read_ahead
        self.verify_reads = True
        self.leases = None  # pfs.core.gc.leases.LeaseManager, set by the Pfs that owns this store
        self.clock = time.time
        self._flush_lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None
        self._read_pool: Optional[ThreadPoolExecutor] = None
        self._buffer_pools: dict[tuple[int, bool], BlockPool] = {}

    def writer(self, lease=None) -> "ContentWriter":
        return ContentWriter(self, lease)

    # Local ingest of a 1 GiB file has about 7 read buffers in use at its peak; a streamed
    # upload, MAX_INFLIGHT + 1 pack buffers.
    BUFFERS_KEPT = 8
    BUFFERS_IDLE_SECONDS = 30.0

    def buffer_pool(self, size: int, *, populate: bool) -> BlockPool:
        """The store's pool of page-aligned buffers of `size` bytes (local-ingest reads,
        pack buffers), shared by its uploads: an upload after another reuses filled-in
        buffers instead of mapping new ones (about 11 ms per 18 MiB buffer here). Idle
        buffers are let go after `BUFFERS_IDLE_SECONDS` without an upload."""
        key = (page_up(size), populate)
        with self._flush_lock:
            pool = self._buffer_pools.get(key)
            if pool is None:
                pool = self._buffer_pools[key] = BlockPool(size, self.BUFFERS_KEPT, populate=populate,
                                                           idle_seconds=self.BUFFERS_IDLE_SECONDS)
            return pool

    def submit(self, fn, *args):
        with self._flush_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="pack-writer")
        return self._pool.submit(fn, *args)

    def write_pack(self, pack_id: bytes, parts: list, refs: list, page_aligned: bool = False,
                   lease=None) -> list:
        """Store one pack -- the concatenation of `parts`, written with one gathered write where
        the chunk store can (LocalChunkStore.put_parts; `page_aligned` parts around the page
        cache) -- then index its chunks (in that order: see the module invariants). Its record
        (and `lease`'s entry for it) is written before the object."""
        size = sum(len(p) for p in parts)
        with self.meta.batch(durable=False) as b:
            b.put(keys.pack_record_key(pack_id), PackRecord(size, LIVE, self.clock()).encode())
            for k, v in (lease.own_pack(pack_id) if lease is not None else ()):
                b.put(k, v)
        put_parts = getattr(self.chunks, "put_parts", None)
        if put_parts is not None:
            put_parts(pack_key(pack_id), parts, direct=page_aligned)
        else:
            self.chunks.put(pack_key(pack_id), parts[0] if len(parts) == 1 else b"".join(parts))
        # Not synced on its own: a commit pointing at these chunks is written durably after
        # them, which syncs them too (and a lost entry only costs a duplicate chunk later).
        # Indexed only while the pack's record is LIVE, checked in the same batch: a pack whose
        # writer gave up may have been claimed by the collector meanwhile, and an index entry
        # must never point into a pack that is being (or has been) deleted.
        rk = keys.pack_record_key(pack_id)
        for _ in range(20):
            raw = self.meta.get(rk)
            if raw is None or PackRecord.decode(raw).state != LIVE:
                return refs
            try:
                with self.meta.batch(durable=False) as b:
                    b.expect(rk, raw)
                    for r in refs:
                        b.put(keys.chunk_key(r.hash), msgpack.packb([r.pack, r.offset, r.length]))
                return refs
            except Conflict:
                continue  # re-leased meanwhile (a fresh nonce): look again
        return refs  # kept changing: unindexed chunks only cost a duplicate later

    READ_POOL_THREADS = 16  # shared by every read of this store; each read has at most READ_WINDOW in flight

    def read_pool(self) -> ThreadPoolExecutor:
        """The threads that reads fetch ahead on (pfs.core.readahead), started once for the store."""
        with self._flush_lock:
            if self._read_pool is None:
                self._read_pool = ThreadPoolExecutor(max_workers=self.READ_POOL_THREADS,
                                                     thread_name_prefix="readahead")
            return self._read_pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=True, cancel_futures=True)
            self._read_pool = None

    def lookup(self, chunk_hash: bytes) -> Optional[ChunkRef]:
        raw = self.meta.get(keys.chunk_key(chunk_hash))
        if raw is None:
            return None
        pack, off, length = msgpack.unpackb(raw)
        return ChunkRef(chunk_hash, pack, off, length)

    def read(self, refs: Iterable[ChunkRef], offset: int = 0,
             length: Optional[int] = None, views: bool = False) -> Iterator[bytes]:
        """Stream a file's bytes from `offset`, at most `length` bytes (None = to the end);
        read ahead in parallel when `self.read_ahead` (see the module invariants). With
        `views`, pieces may be memoryviews (bytes-like, valid for as long as they are held):
        for callers that only write them somewhere, saving a copy of every chunk."""
        if self.read_ahead:
            from pfs.core.readahead import read_ahead  # it imports this module
            return read_ahead(self, refs, offset, length, self.READ_WORKERS, self.READ_WINDOW, views=views)
        return self.read_sequential(refs, offset, length)

    def read_sequential(self, refs: Iterable[ChunkRef], offset: int = 0,
                        length: Optional[int] = None) -> Iterator[bytes]:
        """`read`, one chunk range at a time on the caller's thread."""
        from pfs.core.readahead import ranges  # it imports this module
        for r, skip, take in ranges(refs, offset, length):
            data = self.chunk_bytes(r)
            yield data if (skip == 0 and take == len(data)) else data[skip:skip + take]

    def chunk_bytes(self, r: ChunkRef, data: Optional[bytes] = None) -> bytes:
        """A whole chunk's bytes, checked against its hash: read from its hinted pack (or
        `data`, already read from there), else from where the chunk index says it is."""
        if data is None:
            try:
                data = self.chunks.get_range(pack_key(r.pack), r.offset, r.length)
            except ObjectNotFound:
                data = None
        if data is not None and self.intact(r, data):
            return data
        where = self.lookup(r.hash)
        if where is not None and (where.pack, where.offset) != (r.pack, r.offset):
            try:
                moved = self.chunks.get_range(pack_key(where.pack), where.offset, where.length)
            except ObjectNotFound:
                moved = None
            if moved is not None and self.intact(r, moved):
                return moved
        what = "is missing" if data is None else "is corrupt (its bytes do not match its hash)"
        raise DataLoss(f"chunk {r.hash.hex()} ({r.length} bytes in pack {r.pack.hex()} at offset {r.offset}) {what}")

    def intact(self, r: ChunkRef, data: bytes) -> bool:
        if len(data) != r.length:
            return False
        return not self.verify_reads or blake3.blake3(data, max_threads=_HASH_THREADS).digest() == r.hash


class ContentWriter:
    """Turns byte streams into FileContent. One writer per upload session; not thread-safe.

    Usage: `begin()`, `feed(bytes)` any number of times, `end() -> FileContent`; `flush()`
    before persisting anything that refers to the returned refs; `abort()` to give up.

    Full packs are written by the store's writer threads while this thread keeps chunking
    (at most `MAX_INFLIGHT` packs in flight, so memory stays bounded); `flush()` waits for
    all of them. A pack's chunk-index entries are written only after the pack itself.
    The first failed pack write poisons the writer (see the module invariants).
    """

    MAX_INFLIGHT = 6
    LOCAL_BLOCK = 16 * 1024 * 1024  # ingest_local's segment step (see pfs.core.local_ingest)

    def __init__(self, store: ContentStore, lease=None):
        self.store = store
        self.lease = lease  # a session's lease; None: the writer takes its own (`_lease`)
        self._hold: Optional[_Hold] = None
        self._buf = bytearray()
        self._file: Optional[FileContent] = None
        self._direct = isinstance(store.chunks, LocalChunkStore)  # packs in pooled page-aligned buffers
        self._pack_pool: Optional[BlockPool] = None  # the pool the pack being filled came from
        self._pack = None  # the pack being filled: a pooled buffer (direct) or a bytearray, or None
        self._pack_len = 0
        self._pack_id = os.urandom(16)
        self._pack_refs: list[ChunkRef] = []
        self._pending: dict[bytes, ChunkRef] = {}  # hash -> ref for chunks not yet indexed
        self._inflight: list = []  # futures of pack writes
        self._error: Optional[BaseException] = None  # the first failed write (or the abort)
        self.bytes_written = 0  # new bytes stored (after dedup), for accounting and benchmarks
        self.bytes_seen = 0

    # ---- one file at a time ----------------------------------------------------------
    def begin(self) -> None:
        self._check()
        self._lease()
        self._file = FileContent()
        self._buf.clear()

    def feed(self, data: bytes) -> None:
        self._check()
        self.bytes_seen += len(data)
        if not data:
            return
        self._buf += data
        if len(self._buf) >= 4 * self.store.cdc[2]:
            self._cut(final=False)

    def end(self) -> FileContent:
        self._check()
        self._cut(final=True)
        f, self._file = self._file, None
        f.hold = self._hold
        return f

    def _lease(self):
        """The lease covering this writer's packs: its session's, or one of its own that is
        released once neither the writer nor any content it returned is referenced."""
        if self.lease is None and self.store.leases is not None:
            self.lease = self.store.leases.create("upload")
            self._hold = _Hold(self.lease)
        return self.lease

    def write_bytes(self, data: bytes) -> FileContent:
        self.begin()
        self.feed(data)
        return self.end()

    def ingest_local(self, path: str) -> FileContent:
        """A local file's content. A big one is read in large blocks straight into buffers
        that its new chunks' packs then reference (no copy into a pack buffer: each pack is
        written with one gathered write) and gets packs of its own; a small one joins the
        shared pack like any fed file. Either way the bytes stored are exactly the bytes
        hashed, even if the file changes meanwhile."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return self._ingest_fd(fd, fresh=True)
        finally:
            os.close(fd)

    def ingest_fd(self, fd: int) -> FileContent:
        """`ingest_local` of a regular file open for reading as `fd` (one a local client handed
        pachd: pfs.service.local_read), from its start, whatever the descriptor's position.
        The caller keeps (and closes) the descriptor."""
        return self._ingest_fd(fd, fresh=False)

    def _ingest_fd(self, fd: int, fresh: bool) -> FileContent:
        """`fresh`: `fd` was just opened here, so it is at its start: no seek needed."""
        self._check()
        self._lease()
        if not fresh:
            os.lseek(fd, 0, os.SEEK_SET)
        size = os.fstat(fd).st_size
        if size < 4 * self.store.cdc[2]:
            # small: the shared pack, so many small files still make few objects. One
            # read sized by the file (a fixed multi-MiB read allocates that much per file,
            # which dominated 100k-file puts); a file grown since fstat is read to its end.
            self.begin()
            piece = os.read(fd, size + 1)
            self.feed(piece)
            if len(piece) > size:
                while piece := os.read(fd, 4 * self.store.cdc[2]):
                    self.feed(piece)
            return self.end()
        from pfs.core.local_ingest import ingest_segments  # it imports this module
        with open(fd, "rb", buffering=0, closefd=False) as f:
            try:
                return ingest_segments(self, f, self.LOCAL_BLOCK)
            except BaseException as e:
                self._fail(e)
                raise

    def _cut(self, final: bool) -> None:
        buf = self._buf
        n = len(buf)
        if n == 0:
            return
        lo, avg, hi = self.store.cdc
        view = memoryview(buf)
        consumed = 0
        try:
            if n <= lo:
                if final:
                    self._add_chunk(view)
                    consumed = n
            else:
                gen = chunk_cuts(view, lo, avg, hi)
                try:
                    for off, length in gen:
                        # A cut is final only when the chunker saw a full window behind it.
                        if not final and off + hi > n:
                            break
                        self._add_chunk(view[off:off + length])
                        consumed = off + length
                finally:
                    gen.close()
        finally:
            view.release()
        del buf[:consumed]

    def _add_chunk(self, data: memoryview) -> None:
        h = blake3.blake3(data).digest()
        ref = self.known(h)
        size = len(data)
        if ref is None:
            if self._pack is None:
                self._pack = self._new_pack()
            at = self._pack_len
            ref = ChunkRef(h, self._pack_id, at, size)
            if self._direct:
                self._pack[at:at + size] = data
            else:
                self._pack += data
            self._pack_len = at + size
            self.added(ref)
            self._pack_refs.append(ref)
        self._file.refs.append(ref)
        self._file.size += size
        if self._pack_len >= self.store.pack_target or len(self._pack_refs) >= PACK_MAX_CHUNKS:
            self._submit_pack()

    def _new_pack(self):
        if not self._direct:
            return bytearray()
        # a pack ends below target + one chunk; not populated: a small pack touches few pages
        self._pack_pool = self.store.buffer_pool(self.store.pack_target + self.store.cdc[2], populate=False)
        return self._pack_pool.take()

    def _drop_pack(self) -> None:
        """Forget the pack being filled (its buffer goes back to the pool)."""
        pack, self._pack, self._pack_len, self._pack_refs = self._pack, None, 0, []
        if self._direct and pack is not None:
            self._pack_pool.release(pack)

    # ---- durability ------------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _submit_pack(self) -> None:
        if not self._pack_len:
            return
        pack, n, refs, pack_id = self._pack, self._pack_len, self._pack_refs, self._pack_id
        self._pack, self._pack_len, self._pack_refs, self._pack_id = None, 0, [], os.urandom(16)
        if not self._direct:
            self.track(self.store.submit(self.store.write_pack, pack_id, [pack], refs, False, self._lease()))
            return
        end = page_up(n)
        pack[n:end] = bytes(end - n)  # whole pages: no bytes of an earlier use of the buffer
        self.write_direct(pack_id, [memoryview(pack)[:end]], refs, self._pack_pool, [pack])

    def write_direct(self, pack_id: bytes, parts: list, refs: list, pool, bufs) -> None:
        """Write a pack of page-aligned whole-page `parts` (views of the buffers `bufs`, each
        held once for this pack in `pool`: a `BlockPool`, or a `LeasedFile` whose windows they
        are) around the page cache; the holds end when it is written."""
        fut = self.store.submit(self.store.write_pack, pack_id, parts, refs, True, self._lease())
        pool.release_when_done(bufs, fut)
        self.track(fut)

    def added(self, ref: ChunkRef) -> None:
        """A new chunk is in a pack being filled or written: later copies of it in this
        session point at it (`known`) until the pack's index entries are written."""
        self._pending[ref.hash] = ref
        self.bytes_written += ref.length
        if self.lease is not None:
            self.lease.reserve(ref.pack)

    def dropped(self, refs) -> None:
        """Chunks `added` to a pack that will never be written: not found there any more."""
        for r in refs:
            if self._pending.get(r.hash) is r:
                del self._pending[r.hash]

    def read_pool(self, size: int) -> BlockPool:
        """The pool of read buffers of `size` bytes for local ingest's segments (the store's)."""
        return self.store.buffer_pool(size, populate=True)

    def known(self, chunk_hash: bytes) -> Optional[ChunkRef]:
        """Where a chunk already is: stored and indexed (and leased for this writer), or in a
        pack of this writer's."""
        ref = self._pending.get(chunk_hash)
        if ref is not None:
            return ref
        ref = self.store.lookup(chunk_hash)
        if ref is None:
            return None
        lease = self._lease()
        if lease is not None and not lease.protect_pack(ref.pack):
            return None  # its pack is being collected: store the chunk again
        return ref

    def track(self, fut) -> None:
        """A pack write in flight; waits for the oldest beyond `MAX_INFLIGHT` (raising its error)."""
        self._inflight.append(fut)
        while len(self._inflight) > self.MAX_INFLIGHT:
            self._reap(self._inflight.pop(0))

    def _reap(self, fut) -> None:
        try:
            refs = fut.result()
        except BaseException as e:  # noqa: BLE001 - poison the writer, then re-raise
            self._fail(e)
            raise
        for r in refs:
            self._pending.pop(r.hash, None)

    def _fail(self, e: BaseException) -> None:
        """Record the first failure; cancel queued writes and wait out the running ones, so
        nothing of this writer is still being written when the caller sees the error."""
        if self._error is None:
            self._error = e
        inflight, self._inflight = self._inflight, []
        for fut in inflight:
            fut.cancel()
        for fut in inflight:
            if not fut.cancelled():
                try:
                    fut.result()
                except BaseException:  # noqa: BLE001 - the first error is the one reported
                    pass
        self._pending.clear()
        self._drop_pack()

    def flush(self) -> None:
        """Write every pack and index its chunks; returns when all of it is durable."""
        self._check()
        self._submit_pack()
        while self._inflight:
            self._reap(self._inflight.pop(0))  # raises the first failure, after _fail

    def abort(self, wait: bool = False) -> None:
        """Give up: drop the current pack, cancel queued pack writes (running ones finish
        in the background, or before this returns with `wait`: then the lease covering them
        can be released; their packs may be indexed, which is harmless). Idempotent."""
        if self._error is None:
            self._error = _Aborted("this upload was aborted")
        for fut in self._inflight:
            fut.cancel()
        if wait:
            for fut in self._inflight:
                if not fut.cancelled():
                    try:
                        fut.result()
                    except BaseException:  # noqa: BLE001 - giving up anyway
                        pass
        self._inflight = []
        self._pending.clear()
        self._drop_pack()
        self._buf = bytearray()  # rebound, not cleared: a traceback may still hold a view of it


class _Aborted(RuntimeError):
    """Using a ContentWriter after `abort()` (a programming error)."""


class _Hold:
    """Owns a writer's own lease; releases it when the last holder lets go of it."""

    def __init__(self, lease):
        self.lease = lease
        weakref.finalize(self, lease.release_quietly)
