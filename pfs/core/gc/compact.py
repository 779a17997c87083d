"""Compaction: rewriting packs that are partly dead before removing them.

A pack whose live chunks are less than `ratio` of its size (default 0.9: at least 10% dead)
and whose dead bytes are at least `min_dead` has its live chunks copied into a new pack; the chunk index then places them in
the new pack, and the old pack is deleted like a dead one.

Invariants:
- Every copied chunk is re-hashed first; a chunk whose bytes do not match is damage: its
  pack is left alone (and reported), never rewritten with wrong bytes.
- The new pack gets its record before it is stored (as every pack). The chunk-index moves
  and the old packs' phase 1 are ONE atomic batch, guarded by the snapshot values of every
  entry moved and every old pack record: if anything changed (a writer leased an old pack),
  nothing moves, and the new pack is unreferenced garbage for the next run.
- File entries keep naming the old pack: their refs are hints, and a read of a chunk whose
  hinted pack is gone goes to where the chunk index says (pfs.core.content).
"""
from __future__ import annotations

import os

import blake3
import msgpack

from pfs.core import keys
from pfs.core.content import pack_key
from pfs.core.gc.mark import Marked, live_entries
from pfs.core.gc.records import DELETING, LIVE, PackRecord
from pfs.core.gc.sweep import claim_pack
from pfs.failpoints import failpoint

__all__ = ["compact"]


def candidates(snap, m: Marked, ratio: float, min_dead: int) -> list[tuple[bytes, bytes, PackRecord]]:
    out = []
    n = len(keys.PACK_RECORD_PREFIX)
    for k, v in snap.scan(prefix=keys.PACK_RECORD_PREFIX):
        pack = k[n:]
        if pack not in m.pack_live_bytes or pack in m.leased_packs:
            continue  # dead (swept), or being written to by a lease holder
        rec = PackRecord.decode(v)
        if rec.state != LIVE or rec.size <= 0:
            continue
        live = m.pack_live_bytes[pack]
        if live < ratio * rec.size and rec.size - live >= min_dead:
            out.append((pack, v, rec))
    return out


def compact(meta, chunks, snap, m: Marked, report, ratio: float, min_dead: int, target: int,
            clock, before_remove=lambda: None) -> None:
    cands = candidates(snap, m, ratio, min_dead)
    if not cands:
        return
    m.pack_live_entries = live_entries(snap, m, {c[0] for c in cands})
    group: list = []
    live = 0
    for cand in cands:
        group.append(cand)
        live += m.pack_live_bytes[cand[0]]
        if live >= target:
            _rewrite(meta, chunks, m, group, report, clock, before_remove)
            group, live = [], 0
    if group:
        _rewrite(meta, chunks, m, group, report, clock, before_remove)


def _rewrite(meta, chunks, m: Marked, group: list, report, clock, before_remove) -> None:
    new_id = os.urandom(16)
    parts: list[bytes] = []
    moves: list[tuple[bytes, bytes, bytes]] = []  # chunk-index key, snapshot value, new value
    pos = 0
    ok_group = []
    for pack, raw, rec in group:
        pk = pack_key(pack)
        pack_parts, pack_moves, damaged = [], [], False
        for kkey, kraw, off, length in sorted(m.pack_live_entries[pack], key=lambda e: e[2]):
            data = chunks.get_range(pk, off, length)
            h = kkey[len(keys.CHUNK_PREFIX):]
            if len(data) != length or blake3.blake3(data).digest() != h:
                report.damage.append(f"chunk {h.hex()} in pack {pack.hex()} at offset {off} is corrupt "
                                     "or short; the pack was not compacted")
                damaged = True
                break
            pack_moves.append((kkey, kraw, msgpack.packb([new_id, pos, length])))
            pack_parts.append(data)
            pos += length
        if damaged:
            pos -= sum(len(p) for p in pack_parts)
            continue
        parts += pack_parts
        moves += pack_moves
        ok_group.append((pack, raw, rec))
    if not ok_group:
        return
    size = sum(len(p) for p in parts)
    meta.put(keys.pack_record_key(new_id), PackRecord(size, LIVE, clock()).encode())
    chunks.put(pack_key(new_id), b"".join(parts))
    failpoint("gc.compact_written")
    # one batch: move the live entries, claim every old pack (first pack's claim carries
    # the moves and the other packs' record checks; the others are claimed in it too)
    first, *rest = ok_group
    extra_expects = [(k, v) for k, v, _ in moves] + [(keys.pack_record_key(p), r) for p, r, _ in rest]
    extra_writes = [(k, nv) for k, _, nv in moves] + [
        (keys.pack_record_key(p), PackRecord(rec.size, DELETING, rec.created).encode()) for p, _, rec in rest]
    dead = list(m.pack_dead_entries.get(first[0], ()))
    for p, _, _ in rest:
        dead += m.pack_dead_entries.get(p, ())
    if not claim_pack(meta, first[0], first[1], dead, extra_writes, extra_expects):
        report.compactions_abandoned += 1
        return  # the new pack is garbage now: the next run deletes it
    report.packs_compacted += len(ok_group)
    report.compacted_into += 1
    before_remove()
    failpoint("gc.compact_claimed")
    for p, _, rec in ok_group:
        chunks.delete(pack_key(p))
        meta.delete(keys.pack_record_key(p))
        report.pack_bytes_deleted += rec.size
        report.packs_deleted += 1
    report.pack_bytes_written += size
    report.chunk_entries_deleted += len(dead)
