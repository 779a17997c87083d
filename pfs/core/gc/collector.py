"""The garbage collector: one run = finish, snapshot, mark, sweep, compact; one run at a time.

Invariants:
- Runs never overlap (a lock); an on-demand run waits for a background one to end.
- A run first checks that the chunk store can be written (a probe object): an unreachable
  or read-only bucket fails the run with StorageError before anything is claimed.
- Nothing is deleted in a run whose mark found damage (a missing index node) or whose lease
  cleanup found a lease renewed after it expired: unsure means keep.
- Every step is idempotent and guarded (see mark.py, sweep.py, compact.py): a run killed at
  any point leaves claimed (DELETING) packs that the next run finishes, and nothing else
  half-done. Crash tests kill it at the `gc.*` failpoints (pfs.failpoints).
- After a run, the memory its mark freed is handed back to the operating system
  (glibc's malloc_trim; nothing elsewhere): glibc otherwise keeps freed heap pages, so
  pachd's resident size stayed at the mark's high point between runs.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from pfs.core.gc import compact as compaction
from pfs.core.gc import sweep
from pfs.core.gc.mark import mark
from pfs.errors import StorageError
from pfs.failpoints import failpoint

log = logging.getLogger("pachd.gc")


def _load_malloc_trim():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_malloc_trim()


def release_freed_memory() -> None:
    """Return the C heap's free pages to the operating system (glibc only; else nothing)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


@dataclass
class GcReport:
    started: float = 0.0
    seconds: float = 0.0
    packs_seen: int = 0
    pack_bytes_seen: int = 0
    packs_deleted: int = 0
    pack_bytes_deleted: int = 0
    packs_kept_leased: int = 0  # dead at the snapshot but leased again since
    packs_adopted: int = 0
    packs_compacted: int = 0
    compacted_into: int = 0
    compactions_abandoned: int = 0
    pack_bytes_written: int = 0
    chunk_entries_deleted: int = 0
    nodes_seen: int = 0
    nodes_deleted: int = 0
    node_bytes_deleted: int = 0
    leases_live: int = 0
    leases_deleted: int = 0
    uploads_aborted: int = 0
    parts_deleted: int = 0
    orphans_deleted: int = 0
    orphan_bytes_deleted: int = 0
    temp_files_deleted: int = 0
    skipped: str = ""  # why nothing was deleted this run, if so
    damage: list = field(default_factory=list)

    @property
    def objects_deleted(self) -> int:
        return self.packs_deleted + self.orphans_deleted + self.nodes_deleted

    @property
    def bytes_reclaimed(self) -> int:
        """Bytes no longer stored: objects removed (less what compaction wrote) and index nodes."""
        return (self.pack_bytes_deleted + self.orphan_bytes_deleted - self.pack_bytes_written
                + self.node_bytes_deleted)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["objects_deleted"] = self.objects_deleted
        d["bytes_reclaimed"] = self.bytes_reclaimed
        return d


@dataclass
class GcSettings:
    # rewrite packs whose live bytes are below this share of their size (at least 10% dead)
    # and that hold at least `compact_min_dead` dead bytes. Packs are at most ~8 MiB, so a
    # rewrite copies at most 9 live bytes per dead byte freed; a lower ratio would leave
    # more dead bytes behind for good (GC under load keeps >= 99% of them reclaimed).
    compact_ratio: float = 0.9
    compact_min_dead: int = 4096
    orphan_age: Optional[float] = None  # unrecorded objects older than this go (None: the lease TTL)
    orphans_every: int = 10  # look for orphans every Nth run (listing the bucket costs requests)
    upload_max_age: float = 7 * 24 * 3600.0  # abandoned S3 multipart uploads


class GarbageCollector:
    def __init__(self, pfs, settings: Optional[GcSettings] = None):
        self.pfs = pfs
        self.meta, self.chunks = pfs.meta, pfs.chunks
        self.settings = settings or GcSettings()
        self._lock = threading.Lock()
        self.runs = 0
        self.last: Optional[GcReport] = None
        self.hooks: dict[str, Callable[[], None]] = {}  # test hooks: "after_packs", "per_pack"
        # runs after packs are claimed (phase 1) and before their objects are removed
        self.before_remove: Callable[[], None] = lambda: None
        # runs first in every run; raises to refuse it (pachd: this pachd still owns the bucket)
        self.guard: Callable[[], None] = lambda: None

    def run(self, orphans: Optional[bool] = None, compact: bool = True) -> GcReport:
        """One collection. `orphans`: also list the chunk store for unrecorded objects
        (default: every `orphans_every`th run, and the first)."""
        with self._lock:
            r = GcReport(started=time.time())
            t0 = time.monotonic()
            try:
                self._run(r, orphans, compact)
            finally:
                r.seconds = time.monotonic() - t0
                self.runs += 1
                self.last = r
                release_freed_memory()
            return r

    def _probe(self) -> None:
        key = f"gc/probe-{os.getpid()}"
        try:
            self.chunks.put(key, b"probe")
            self.chunks.delete(key)
        except StorageError as e:
            raise StorageError(f"garbage collection cannot run, nothing was deleted: the chunk store "
                               f"cannot be written ({e.message})") from e

    def _run(self, r: GcReport, orphans: Optional[bool], compact: bool) -> None:
        s = self.settings
        self.guard()
        self._probe()
        sweep.finish_deleting(self.meta, self.chunks, r, self.before_remove)
        now = self.pfs.clock()
        with self.meta.snapshot() as snap:
            m = mark(snap, now)
            failpoint("gc.after_mark")
            r.leases_live = m.live_leases
            if m.damage:
                r.damage += m.damage
                r.skipped = "the index is damaged (see damage); nothing was deleted"
                log.error("garbage collection deleted nothing: %s", "; ".join(m.damage[:5]))
                return
            if not sweep.delete_leases(self.meta, m, r):
                r.skipped = "a lease was renewed after it expired; will retry"
                return
            sweep.sweep_packs(self.meta, self.chunks, snap, m, r, self.hooks.get("per_pack", lambda: None),
                              self.before_remove)
            self.hooks.get("after_packs", lambda: None)()
            sweep.sweep_nodes(self.meta, snap, m, r)
            sweep.sweep_uploads(self.meta, snap, now, s.upload_max_age, r)
            if compact:
                compaction.compact(self.meta, self.chunks, snap, m, r, s.compact_ratio, s.compact_min_dead,
                                   self.pfs.content.pack_target, self.pfs.clock, self.before_remove)
            if orphans if orphans is not None else (self.runs % max(s.orphans_every, 1) == 0):
                age = s.orphan_age if s.orphan_age is not None else self.pfs.leases.ttl
                sweep.sweep_orphans(self.meta, self.chunks, m, time.time(), age, r)
        if r.objects_deleted or r.damage:
            log.info("garbage collection: %d objects deleted, %d bytes reclaimed in %.2fs",
                     r.objects_deleted, r.bytes_reclaimed, r.seconds)
