"""Leases: what keeps an in-flight write's objects alive until a commit refers to them.

Pachyderm's tracker model (`src/internal/storage/track`, `renew`): every object a writer
creates or reuses is covered by a lease with a TTL that the writer renews every ttl/3; the
collector deletes nothing a live lease covers.

Invariants:
- A lease is a header record (`keys.lease_key`: expiry, released flag, owner) plus write-once
  entries under it, each naming one thing it protects: an index root (with everything
  reachable from it) or a pack.
- An entry is written in the SAME atomic batch as what it protects: index nodes with the
  entry for the root they form (`root_writes`), a new pack's record with its entry
  (`own_pack`), before the pack object is stored. A pack found elsewhere (a dedup hit, a
  copied file, a multipart part) is protected by `protect_pack`: one compare-and-swap that
  re-writes the pack's record (a fresh nonce) and adds the entry, and fails -- so the pack is
  not used -- if the collector has already claimed the pack (record DELETING or gone).
- A session's base root is leased atomically with a check that the commit it came from is
  unchanged (`LeaseManager.create(guard=...)`).
- Every active lease is renewed every ttl/3 by one background thread (a CAS on the header).
  A lease whose renewal fails (the collector removed it after it expired) is *lost*: its
  publish fails (`pinned()` raises) and nothing it wrote becomes visible.
- `release()` marks the header released; the collector deletes released and expired
  headers with their entries. A writer that dies (pachd killed) leaves its lease to expire
  after its TTL; nothing it wrote is reclaimed before that.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional

from pfs.core import keys
from pfs.core.gc.records import LIVE, LeaseHeader, PackRecord
from pfs.errors import Conflict, DataLoss, PfsError

log = logging.getLogger("pachd.gc")

DEFAULT_TTL = 600.0  # Pachyderm's default TTL for temporary storage objects: 10 minutes
ROOT, PACK = b"r", b"p"


class LeaseLost(Conflict):
    """The write's lease expired and was collected: nothing it wrote may be published."""


class Lease:
    def __init__(self, manager: "LeaseManager", lease_id: str, owner: str, raw: bytes):
        self.manager = manager
        self.id = lease_id
        self.owner = owner
        self.key = keys.lease_key(lease_id)
        self._raw = raw
        self._lock = threading.RLock()
        self._packs: set[bytes] = set()
        self.released = False
        self.lost = False

    def __repr__(self) -> str:
        return f"Lease({self.id[:8]}, {self.owner})"

    # ---- entries, written with what they protect ---------------------------------------
    def root_writes(self, root: Optional[bytes]) -> list[tuple[bytes, bytes]]:
        return [] if root is None else [(keys.lease_entry_key(self.id, ROOT, root), b"")]

    def own_pack(self, pack_id: bytes) -> list[tuple[bytes, bytes]]:
        """The entry for a pack this lease's writer is about to store."""
        with self._lock:
            self._packs.add(pack_id)
        return [(keys.lease_entry_key(self.id, PACK, pack_id), b"")]

    def covers_pack(self, pack_id: bytes) -> bool:
        return pack_id in self._packs

    def reserve(self, pack_id: bytes) -> None:
        """A pack this lease's writer is filling: not stored yet, so nothing can collect it;
        its entry is written with its record (`own_pack`)."""
        self._packs.add(pack_id)

    def protect_pack(self, pack_id: bytes) -> bool:
        """Lease a stored pack before using its chunks; False if the collector has claimed it."""
        if pack_id in self._packs:
            return True
        m = self.manager
        rk = keys.pack_record_key(pack_id)
        entry = keys.lease_entry_key(self.id, PACK, pack_id)
        for _ in range(5):
            raw = m.meta.get(rk)
            if raw is None:
                # a pack from before garbage collection existed has no record: adopt it
                from pfs.core.content import pack_key
                if not m.chunks.exists(pack_key(pack_id)):
                    return False
                new = PackRecord(-1, LIVE, m.clock()).encode()
            else:
                rec = PackRecord.decode(raw)
                if rec.state != LIVE:
                    return False
                new = PackRecord(rec.size, LIVE, rec.created).encode()
            try:
                with m.meta.batch(durable=False) as b:
                    b.expect(rk, raw)
                    b.put(rk, new)
                    b.put(entry, b"")
            except Conflict:
                continue  # re-leased or claimed meanwhile: look again
            with self._lock:
                self._packs.add(pack_id)
            return True
        raise Conflict(f"could not lease pack {pack_id.hex()}: it kept changing; retry")

    def protect_refs(self, refs: Iterable) -> None:
        """Lease the packs of chunk refs taken from elsewhere (a copied file, an S3 part).
        A ref whose pack was collected is found where the chunk index says it lives now;
        a chunk that is nowhere raises DataLoss."""
        by_pack: dict[bytes, list] = {}
        for r in refs:
            if r.pack not in self._packs:
                by_pack.setdefault(r.pack, []).append(r)
        for pack_id, rs in by_pack.items():
            if self.protect_pack(pack_id):
                continue
            for r in rs:
                moved = self.manager.lookup(r.hash)
                if moved is None or moved.pack == pack_id or not self.protect_pack(moved.pack):
                    raise DataLoss(f"chunk {r.hash.hex()} (pack {pack_id.hex()}) is missing from the "
                                   "chunk store: the data it belongs to cannot be read")

    # ---- the header ----------------------------------------------------------------------
    @contextmanager
    def pinned(self) -> Iterator[bytes]:
        """Hold renewals off and yield the header's current value, for a transaction that
        must commit only while the lease is alive (expect it unchanged)."""
        with self._lock:
            if self.lost:
                raise LeaseLost(self._lost_message())
            yield self._raw

    def _lost_message(self) -> str:
        return (f"the write's lease expired (not renewed within {self.manager.ttl:.0f}s) and the "
                "garbage collector reclaimed what it had written; nothing was published: retry")

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(self._lost_message())

    def renew(self) -> bool:
        with self._lock:
            if self.released or self.lost:
                return False
            new = LeaseHeader(self.manager.clock() + self.manager.ttl, False, self.owner).encode()
            if self.manager.meta.put_if(self.key, self._raw, new):
                self._raw = new
                return True
            self.lost = True
            log.warning("lease %s (%s) was lost: it expired before it could be renewed", self.id, self.owner)
            return False

    def release(self) -> None:
        """The writer is done: its objects are protected by commits now, or by nothing."""
        with self._lock:
            if self.released:
                return
            self.released = True
            if not self.lost:
                new = LeaseHeader(self.manager.clock(), True, self.owner).encode()
                try:
                    if self.manager.meta.put_if(self.key, self._raw, new):
                        self._raw = new
                finally:
                    self.manager._forget(self)
                return
        self.manager._forget(self)

    def release_quietly(self) -> None:
        """`release` from a finalizer: a store that is closed by then (a content's hold
        outlived its pachd) or failing only means the lease expires after its TTL."""
        try:
            self.release()
        except (RuntimeError, PfsError) as e:
            log.debug("lease %s not released (%s); it expires by itself", self.id, e)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class LeaseManager:
    """Creates leases and renews every active one from a background thread."""

    def __init__(self, meta, chunks, clock: Callable[[], float] = time.time, ttl: float = DEFAULT_TTL,
                 lookup: Optional[Callable] = None):
        self.meta = meta
        self.chunks = chunks
        self.clock = clock
        self.ttl = float(ttl)
        self.lookup = lookup or (lambda h: None)
        self._active: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._ids = itertools.count()

    def create(self, owner: str, root: Optional[bytes] = None,
               guard: Optional[tuple[bytes, Optional[bytes]]] = None, renew: bool = True) -> Lease:
        """A new lease, protecting `root` from the start. With `guard` (key, value), the lease
        is written only if that key still holds that value (else Conflict): the root was read
        from it. `renew=False`: a one-shot lease that simply expires after the TTL."""
        lid = uuid.uuid4().hex
        raw = LeaseHeader(self.clock() + self.ttl, False, owner).encode()
        lease = Lease(self, lid, owner, raw)
        with self.meta.batch(durable=False) as b:
            if guard is not None:
                b.expect(*guard)
            b.put(lease.key, raw)
            for k, v in lease.root_writes(root):
                b.put(k, v)
        if renew:
            with self._lock:
                self._active[lid] = lease
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._loop, name="lease-renewer", daemon=True)
                    self._thread.start()
        else:
            lease.released = True  # nothing to renew or release: it runs out by itself
        return lease

    def one_shot_writes(self, owner: str, root: bytes) -> list[tuple[bytes, bytes]]:
        """Writes for a lease that protects `root` for one TTL, to add to the batch that
        writes the root's nodes (index writes made outside any session)."""
        lid = uuid.uuid4().hex
        raw = LeaseHeader(self.clock() + self.ttl, False, owner).encode()
        return [(keys.lease_key(lid), raw), (keys.lease_entry_key(lid, ROOT, root), b"")]

    def _forget(self, lease: Lease) -> None:
        with self._lock:
            self._active.pop(lease.id, None)

    def active(self) -> list[Lease]:
        with self._lock:
            return list(self._active.values())

    def renew_all(self) -> int:
        """Renew every active lease now; returns how many were renewed."""
        n = 0
        for lease in self.active():
            try:
                if lease.renew():
                    n += 1
            except Exception:  # noqa: BLE001 - a store hiccup: try again next round
                log.exception("renewing lease %s failed", lease.id)
        return n

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self.renew_all()

    def close(self) -> None:
        self._stop.set()
        t = self._thread
        if t is not None:
            t.join()
        with self._lock:
            self._thread = None
