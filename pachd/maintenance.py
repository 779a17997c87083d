"""Storage maintenance in pachd: the background garbage collector and the maintenance_v1 API.

- `GcLoop` runs `pfs.core.gc.GarbageCollector.run()` every `period` seconds (`pachd
  --gc-period`, env PACHD_GC_PERIOD, default 60; 0 turns the loop off), and never sooner
  than `PACE` times the last run's duration after it ends: a collection's mark walks every
  live file, so on a store of millions of files a fixed period would have the collector
  running most of the time, taking CPU and the GIL from the writes. On-demand runs
  (`pachctl garbage-collect`, the GarbageCollect RPC) use the same collector, so they never
  overlap a background run (they wait for it).
- `MaintenanceServicer` serves maintenance_v1.API: GarbageCollect, ShipMetadata, Backup.
  Pachyderm has no such API; no Pachyderm client calls it.

Invariants:
- With metadata shipped to the bucket (pachd.shipping), no pack is removed from the bucket
  before the metadata that marks it deleted has been shipped (the collector's
  `before_remove` hook ships first): a pachd restored from the bucket never refers to a
  removed pack.
- A failed background run (bucket unreachable or read-only) is logged and retried next
  period; it deleted nothing (see pfs.core.gc.collector).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Optional

from pfs.core.gc import GarbageCollector, GcSettings
from pfs.errors import InvalidArgument, PfsError
from pfs.service.errors import rpc
from proto.maintenance_v1 import maintenance_pb2 as mpb
from proto.maintenance_v1 import maintenance_pb2_grpc

log = logging.getLogger("pachd.gc")
DEFAULT_GC_PERIOD = 60.0


class GcLoop:
    # pause after a run at least this many times its duration: the background collector
    # then takes at most 1/(1 + PACE) of the time (a 15 s mark on 3,000,000 files: 60 s idle)
    PACE = 4.0

    def __init__(self, collector: GarbageCollector, period: float):
        self.collector = collector
        self.period = float(period)
        self.last_seconds = 0.0  # how long the last background run took
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if self.period <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="gc-loop", daemon=True)
        self._thread.start()
        log.info("garbage collection every %gs", self.period)

    def next_wait(self) -> float:
        """Seconds until the next background run."""
        return max(self.period, self.PACE * self.last_seconds)

    def _loop(self) -> None:
        while not self._stop.wait(self.next_wait()):
            t0 = time.monotonic()
            try:
                r = self.collector.run()
            except PfsError as e:
                log.error("garbage collection failed (nothing was deleted): %s", e.message)
                continue
            except Exception:  # noqa: BLE001 - the loop must survive anything one run hits
                log.exception("garbage collection failed")
                continue
            finally:
                self.last_seconds = time.monotonic() - t0
            if r.skipped:
                log.warning("garbage collection skipped deletes: %s", r.skipped)

    def stop(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join()


def report_message(r) -> mpb.GarbageCollectResponse:
    return mpb.GarbageCollectResponse(
        objects_deleted=r.objects_deleted, bytes_reclaimed=r.bytes_reclaimed, packs_deleted=r.packs_deleted,
        pack_bytes_deleted=r.pack_bytes_deleted, nodes_deleted=r.nodes_deleted, orphans_deleted=r.orphans_deleted,
        packs_compacted=r.packs_compacted, chunk_entries_deleted=r.chunk_entries_deleted,
        leases_live=r.leases_live, packs_kept_leased=r.packs_kept_leased, seconds=r.seconds, skipped=r.skipped,
        damage=list(r.damage), packs_seen=r.packs_seen, pack_bytes_seen=r.pack_bytes_seen)


class MaintenanceServicer(maintenance_pb2_grpc.APIServicer):
    def __init__(self, pachd):
        self.pachd = pachd

    @rpc
    def GarbageCollect(self, request, context):
        r = self.pachd.gc.run(orphans=request.orphans, compact=not request.no_compaction)
        return report_message(r)

    @rpc
    def ShipMetadata(self, request, context):
        shipper = self.pachd.shipper
        if shipper is None:
            return mpb.ShipMetadataResponse(generation=0)
        s = shipper.ship_now()
        return mpb.ShipMetadataResponse(generation=s.generation, files_uploaded=s.files_uploaded,
                                        bytes_uploaded=s.bytes_uploaded, seconds=s.seconds)

    @rpc
    def Backup(self, request, context):
        from pachd import backup
        if not request.destination:
            raise InvalidArgument("backup needs a destination: a directory or s3://bucket/prefix")
        b = backup.backup(self.pachd, request.destination)
        return mpb.BackupResponse(objects_copied=b.objects_copied, bytes_copied=b.bytes_copied,
                                  metadata_files=b.metadata_files, seconds=b.seconds)


def make_collector(pfs, before_remove=None) -> GarbageCollector:
    """The collector, with compaction tunable by PACHD_GC_COMPACT_RATIO (rewrite packs whose live
    share is below it) and PACHD_GC_COMPACT_MIN_DEAD (bytes a pack must free to be rewritten)."""
    settings = GcSettings()
    if os.environ.get("PACHD_GC_COMPACT_RATIO"):
        settings.compact_ratio = float(os.environ["PACHD_GC_COMPACT_RATIO"])
    if os.environ.get("PACHD_GC_COMPACT_MIN_DEAD"):
        settings.compact_min_dead = int(os.environ["PACHD_GC_COMPACT_MIN_DEAD"])
    gc = GarbageCollector(pfs, settings)
    if before_remove is not None:
        gc.before_remove = before_remove
    return gc
