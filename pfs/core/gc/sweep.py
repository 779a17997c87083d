"""Sweeping: deleting what the mark found unreachable, each delete guarded by its snapshot value.

Invariants:
- Packs are deleted in two phases; `before_remove` runs between them (pachd ships the
  metadata to the bucket there, so a restored pachd never refers to a removed pack).
- Packs are deleted in two phases. Phase 1, one atomic metadata batch per pack: the pack's
  record still holds the value the snapshot saw (no lease re-wrote it) -> it becomes
  DELETING, and the chunk-index entries that place dead chunks in it (each unchanged since
  the snapshot) are removed. Phase 2: the object is deleted from the chunk store, then its
  record. A crash between the phases leaves a DELETING record, which every run finishes
  first (`finish_deleting`); both phases are idempotent.
- A lease header is deleted (with its entries) only if unchanged since the snapshot. If an
  *expired* one changed (its writer renewed it late), its objects were not marked: the
  caller must then skip every other delete of this run.
- Index nodes are deleted with a compare-and-swap on the snapshot value (a node re-written
  since carries a new nonce, so it stays).
- Orphan objects (in the chunk store, no record) are deleted only when older than the orphan
  age and still unrecorded, by claiming them with a DELETING record first; an orphan that is
  live (an older data directory's pack) gets a LIVE record instead (adopted).
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable

import msgpack

from pfs.core import keys
from pfs.core.content import pack_key
from pfs.core.gc.mark import Marked
from pfs.core.gc.records import DELETING, LIVE, PackRecord
from pfs.errors import Conflict
from pfs.failpoints import failpoint
from pfs.model import Repo

log = logging.getLogger("pachd.gc")
NODE_BATCH = 500


def finish_deleting(meta, chunks, report, before_remove: Callable = lambda: None) -> None:
    """Phase 2 for every pack already claimed (DELETING): a run that crashed, or this one."""
    claimed = [(k, PackRecord.decode(v)) for k, v in meta.scan(prefix=keys.PACK_RECORD_PREFIX)]
    claimed = [(k, rec) for k, rec in claimed if rec.state == DELETING]
    if claimed:
        before_remove()
    for k, rec in claimed:
        pack = k[len(keys.PACK_RECORD_PREFIX):]
        chunks.delete(pack_key(pack))  # a missing object is fine: idempotent
        meta.delete(k)
        report.packs_deleted += 1
        report.pack_bytes_deleted += max(rec.size, 0)


def delete_leases(meta, m: Marked, report) -> bool:
    """Remove released and expired leases. False if an expired one was renewed meanwhile
    (the caller must not delete anything else this run)."""
    ok = True
    for d in m.dead_leases:
        try:
            with meta.batch(durable=False) as b:
                b.expect(d.key, d.raw)
                b.delete(d.key)
                for e in d.entries:
                    b.delete(e)
            report.leases_deleted += 1
        except Conflict:
            if d.expired:
                log.warning("lease %s was renewed after it expired; collecting nothing this run",
                            d.key[len(keys.LEASE_PREFIX):].decode(errors="replace"))
                ok = False
    if m.orphan_entries:
        with meta.batch(durable=False) as b:
            for e in m.orphan_entries:
                b.delete(e)
    return ok


def claim_pack(meta, pack: bytes, snap_raw: bytes, dead_entries: Iterable[tuple[bytes, bytes]],
               extra_writes: Iterable = (), extra_expects: Iterable = ()) -> bool:
    """Phase 1 for one pack: DELETING, and its dead chunk-index entries gone; False if the
    pack was leased (or anything expected changed) since the snapshot."""
    rk = keys.pack_record_key(pack)
    rec = PackRecord.decode(snap_raw)
    for attempt in range(2):
        # entries re-pointed since the snapshot (a writer stored the chunk again) stay
        entries = [(k, v) for k, v in dead_entries if meta.get(k) == v]
        try:
            with meta.batch(durable=False) as b:
                b.expect(rk, snap_raw)
                b.put(rk, PackRecord(rec.size, DELETING, rec.created).encode())
                for k, v in entries:
                    b.expect(k, v)
                    b.delete(k)
                for k, v in extra_expects:
                    b.expect(k, v)
                for k, v in extra_writes:
                    b.put(k, v)
            return True
        except Conflict:
            if meta.get(rk) != snap_raw:
                return False
    return False


def sweep_packs(meta, chunks, snap, m: Marked, report, on_pack: Callable = lambda: None,
                before_remove: Callable = lambda: None) -> None:
    """Claim every recorded pack nothing live is in, then delete them (phases 1 and 2)."""
    claimed = []
    n = len(keys.PACK_RECORD_PREFIX)
    for k, v in snap.scan(prefix=keys.PACK_RECORD_PREFIX):
        pack = k[n:]
        rec = PackRecord.decode(v)
        if rec.state != LIVE:
            continue  # DELETING: finished by finish_deleting
        report.packs_seen += 1
        report.pack_bytes_seen += max(rec.size, 0)
        if pack in m.live_packs:
            continue
        if claim_pack(meta, pack, v, m.pack_dead_entries.get(pack, ())):
            claimed.append((pack, rec))
            report.chunk_entries_deleted += len(m.pack_dead_entries.get(pack, ()))
        else:
            report.packs_kept_leased += 1
    if claimed:
        before_remove()  # e.g. ship the metadata that says these packs are being deleted
        failpoint("gc.packs_claimed")
    for pack, rec in claimed:
        on_pack()
        chunks.delete(pack_key(pack))
        failpoint("gc.pack_removed")
        meta.delete(keys.pack_record_key(pack))
        report.packs_deleted += 1
        report.pack_bytes_deleted += max(rec.size, 0)


def sweep_nodes(meta, snap, m: Marked, report) -> None:
    batch: list[tuple[bytes, bytes]] = []
    n = len(keys.NODE_PREFIX)
    for k, v in snap.scan(prefix=keys.NODE_PREFIX):
        report.nodes_seen += 1
        if k[n:] in m.nodes:
            continue
        batch.append((k, v))
        if len(batch) >= NODE_BATCH:
            _delete_nodes(meta, batch, report)
            batch = []
    if batch:
        _delete_nodes(meta, batch, report)


def _delete_nodes(meta, items: list, report) -> None:
    try:
        with meta.batch(durable=False) as b:
            for k, v in items:
                b.expect(k, v)
                b.delete(k)
        report.nodes_deleted += len(items)
        report.node_bytes_deleted += sum(len(v) for _, v in items)
        return
    except Conflict:
        pass
    for k, v in items:  # one was re-written since the snapshot: the others still go
        if meta.put_if(k, v, None):
            report.nodes_deleted += 1
            report.node_bytes_deleted += len(v)


def sweep_uploads(meta, snap, now: float, max_age: float, report) -> None:
    """Abort S3 multipart uploads older than `max_age` or whose repo is gone; drop parts
    whose upload record is gone. Their chunks are collected by the next run."""
    n = len(b"G\x00u\x00")
    live_uploads = set()
    for k, v in snap.scan(prefix=b"G\x00u\x00"):
        parts = k[n:].split(keys.SEP)
        project, repo, upload_id = parts[0].decode(), parts[1].decode(), parts[-1]
        initiated = msgpack.unpackb(v)[0]
        gone = snap.get(keys.repo_key(Repo(project, repo, "user"))) is None
        if not gone and now - initiated <= max_age:
            live_uploads.add(upload_id)
            continue
        if meta.put_if(k, v, None):
            report.uploads_aborted += 1
    doomed = []
    pn = len(keys.S3_PART_PREFIX)
    for k, _v in snap.scan(prefix=keys.S3_PART_PREFIX):
        upload_id = k[pn:-5]  # the key ends with SEP + the part number (4 bytes, may hold NULs)
        if upload_id not in live_uploads:
            doomed.append(k)
    if doomed:
        with meta.batch(durable=False) as b:
            for k in doomed:
                b.delete(k)
        report.parts_deleted += len(doomed)


def sweep_orphans(meta, chunks, m: Marked, now: float, orphan_age: float, report) -> None:
    """Objects under packs/ with no record: adopt live ones, delete old dead ones."""
    for info in chunks.iterate_info("packs/"):
        name = info.key.rsplit("/", 1)[-1]
        try:
            pack = bytes.fromhex(name)
        except ValueError:
            continue  # not ours
        rk = keys.pack_record_key(pack)
        if meta.get(rk) is not None:
            continue
        if pack in m.live_packs:
            if meta.put_if(rk, None, PackRecord(info.size, LIVE, info.mtime).encode()):
                report.packs_adopted += 1
            continue
        if now - info.mtime < orphan_age:
            continue  # perhaps being written right now: its record may be on its way
        if not meta.put_if(rk, None, PackRecord(info.size, DELETING, info.mtime).encode()):
            continue
        chunks.delete(info.key)
        meta.delete(rk)
        report.orphans_deleted += 1
        report.orphan_bytes_deleted += info.size
    sweep_temp = getattr(chunks, "sweep_temp_files", None)
    if sweep_temp is not None:
        report.temp_files_deleted += sweep_temp(orphan_age)
