"""Garbage collection: reclaiming packs, chunk-index entries and index nodes nothing refers to.

What refers to what: a commit's root -> index nodes (pfs.core.index, in the metadata store)
-> file entries -> chunk refs (hash + a hint: pack, offset, length) -> the chunk index
(where each chunk is stored now) -> pack objects (in the chunk store). S3 multipart parts
refer to chunks directly; leases (in-flight writes) to roots and packs.

The collector (collector.py) is a mark-and-sweep over ONE consistent snapshot of the
metadata (mark.py), with compare-and-swap deletes (sweep.py), two-phase pack deletion and
compaction of mostly-dead packs (compact.py). Writers protect what they make or reuse with
leases (leases.py, Pachyderm's tracker model: a TTL renewed every ttl/3).

The invariant everything here keeps: **nothing reachable is ever deleted.** An object is
deleted only if (1) nothing reached it in the snapshot -- no commit, no S3 part, no live
lease -- and (2) its record still holds the exact value the snapshot saw, checked inside the
deleting batch. Every write that could make an object reachable after the snapshot re-writes
that object's record (index nodes and pack records carry a fresh nonce on every write, see
records.py) in the same batch as the lease entry that protects it, so (2) fails for it.
Why that covers every path:
- new index nodes are written with the lease entry of the root they form;
- a new pack's record is written, with its lease entry, before the pack object;
- a pack reused by dedup, a copy or an S3 part is leased by a CAS that re-writes its record
  (and fails if the collector already claimed it: the chunk is then written again);
- a session's base root is leased atomically with a check that its commit is unchanged;
- a publish commits only while its session's lease is alive (not collected as expired).
"""
__all__ = ["GarbageCollector", "GcReport", "GcSettings", "Lease", "LeaseLost", "LeaseManager", "DEFAULT_TTL"]


def __getattr__(name: str):
    # lazy: pfs.core.content imports gc.records, and the collector imports pfs.core.content
    if name in ("GarbageCollector", "GcReport", "GcSettings"):
        from pfs.core.gc import collector
        return getattr(collector, name)
    if name in ("Lease", "LeaseLost", "LeaseManager", "DEFAULT_TTL"):
        from pfs.core.gc import leases
        return getattr(leases, name)
    raise AttributeError(f"module 'pfs.core.gc' has no attribute {name!r}")
