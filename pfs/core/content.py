"""File content: content-defined chunks, deduplicated by hash, packed into large objects.

Invariants:
- A file's content is a list of `ChunkRef`s; each names the chunk's BLAKE3 hash and where
  its bytes live (pack object, offset, length). Chunk boundaries come from FastCDC over the
  file's bytes, so an insertion in the middle of a big file changes only the chunks around it.
- Identical chunks are stored once across files, commits, branches and repos: the chunk
  index (metadata key `chunk_key(hash)`) maps a hash to its stored location and is consulted
  before anything is written.
- Chunks are appended to an in-memory pack (several MiB) and written as one object, so a
  hundred thousand tiny files become a few dozen objects.
- A pack object is fully written (atomically, by the chunk store) BEFORE its chunk index
  entries are committed, and callers must `flush()` before they persist anything that refers
  to the chunks. A crash therefore leaves, at worst, an unreferenced pack (garbage), never a
  reference to missing bytes.
- Memory is bounded by the pack size plus the chunker's window, whatever the file size.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple, Optional

import blake3
import msgpack
from fastcdc.fastcdc_cy import fastcdc_cy

from pfs.core import keys

CDC_MIN = 256 * 1024
CDC_AVG = 512 * 1024
CDC_MAX = 2 * 1024 * 1024
PACK_TARGET = 8 * 1024 * 1024
EMPTY_HASH = blake3.blake3(b"").digest()


class ChunkRef(NamedTuple):
    hash: bytes  # 32-byte BLAKE3 of the chunk's bytes
    pack: bytes  # 16-byte pack id
    offset: int
    length: int


@dataclass
class FileContent:
    size: int = 0
    refs: list = field(default_factory=list)  # list[ChunkRef]

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

    def __init__(self, chunks, meta, pack_target: int = PACK_TARGET,
                 cdc_min: int = CDC_MIN, cdc_avg: int = CDC_AVG, cdc_max: int = CDC_MAX):
        self.chunks = chunks
        self.meta = meta
        self.pack_target = pack_target
        self.cdc = (cdc_min, cdc_avg, cdc_max)
        self._flush_lock = threading.Lock()

    def writer(self) -> "ContentWriter":
        return ContentWriter(self)

    def lookup(self, chunk_hash: bytes) -> Optional[ChunkRef]:
        raw = self.meta.get(keys.chunk_key(chunk_hash))
        if raw is None:
            return None
        pack, off, length = msgpack.unpackb(raw)
        return ChunkRef(chunk_hash, pack, off, length)

    def read(self, refs: Iterable[ChunkRef], offset: int = 0,
             length: Optional[int] = None) -> Iterator[bytes]:
        """Stream a file's bytes from `offset`, at most `length` bytes (None = to the end)."""
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
            data = self.chunks.get_range(pack_key(r.pack), r.offset + offset, take)
            offset = 0
            if remaining is not None:
                remaining -= len(data)
            yield data


class ContentWriter:
    """Turns byte streams into FileContent. One writer per upload session; not thread-safe.

    Usage: `begin()`, `feed(bytes)` any number of times, `end() -> FileContent`; `flush()`
    before persisting anything that refers to the returned refs.
    """

    def __init__(self, store: ContentStore):
        self.store = store
        self._buf = bytearray()
        self._file: Optional[FileContent] = None
        self._pack = bytearray()
        self._pack_id = os.urandom(16)
        self._pending: dict[bytes, ChunkRef] = {}  # hash -> ref, chunks in the unflushed pack
        self._pending_order: list[ChunkRef] = []
        self.bytes_written = 0  # new bytes stored (after dedup), for accounting and benchmarks
        self.bytes_seen = 0

    # ---- one file at a time ----------------------------------------------------------
    def begin(self) -> None:
        self._file = FileContent()
        self._buf.clear()

    def feed(self, data: bytes) -> None:
        self._buf += data
        self.bytes_seen += len(data)
        if len(self._buf) >= 4 * self.store.cdc[2]:
            self._cut(final=False)

    def end(self) -> FileContent:
        self._cut(final=True)
        f, self._file = self._file, None
        return f

    def write_bytes(self, data: bytes) -> FileContent:
        self.begin()
        self.feed(data)
        return self.end()

    def _cut(self, final: bool) -> None:
        buf = self._buf
        n = len(buf)
        if n == 0:
            return
        lo, avg, hi = self.store.cdc
        if n <= lo:
            if final:
                self._add_chunk(bytes(buf))
                buf.clear()
            return
        view = memoryview(buf)
        consumed = 0
        gen = fastcdc_cy(view, lo, avg, hi)
        try:
            for c in gen:
                end = c.offset + c.length
                # A cut is final only when the chunker saw a full window behind it.
                if not final and c.offset + hi > n:
                    break
                self._add_chunk(bytes(view[c.offset:end]))
                consumed = end
        finally:
            gen.close()
            view.release()
        del buf[:consumed]

    def _add_chunk(self, data: bytes) -> None:
        h = blake3.blake3(data).digest()
        ref = self._pending.get(h) or self.store.lookup(h)
        if ref is None:
            ref = ChunkRef(h, self._pack_id, len(self._pack), len(data))
            self._pack += data
            self._pending[h] = ref
            self._pending_order.append(ref)
            self.bytes_written += len(data)
        self._file.refs.append(ref)
        self._file.size += len(data)
        if len(self._pack) >= self.store.pack_target:
            self.flush()

    # ---- durability ------------------------------------------------------------------
    def flush(self) -> None:
        """Write the current pack and index its chunks. Idempotent; cheap when empty."""
        if not self._pack:
            return
        self.store.chunks.put(pack_key(self._pack_id), bytes(self._pack))
        with self.store.meta.batch() as b:
            for r in self._pending_order:
                b.put(keys.chunk_key(r.hash), msgpack.packb([r.pack, r.offset, r.length]))
        self._pack = bytearray()
        self._pack_id = os.urandom(16)
        self._pending.clear()
        self._pending_order.clear()
