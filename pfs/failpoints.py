"""Failpoints: named places where a crash test makes this process kill -9 itself.

As in RocksDB's crash tests, the places are fixed in the code and switched on from outside by
an environment variable read once at import:

    PACH_FAILPOINTS="commit.before_publish"            # kill -9 at its first hit
    PACH_FAILPOINTS="modify_file.write@5,job.bookkeeping@2"   # at the 5th / 2nd hit

Invariants:
- Unset (the normal case) every `failpoint(name)` is one dict lookup on an empty dict: no
  effect, no I/O, no lock.
- A hit that fires writes one line `failpoint <name> hit <n>: killing process <pid>` to
  stderr, then sends SIGKILL to its own process: nothing after the point runs, no atexit, no
  finally block, no buffered write is flushed (exactly a crash there).
- Names are checked: an environment naming an unknown failpoint makes the import fail, and
  tests/reliability/test_failpoints.py checks that every name in `NAMES` has exactly one call
  site and every call site names a known name, so a typo cannot make a crash test pass by
  never firing.

The named places (one line each at the call site):
- modify_file.write        each piece of file data a write session takes (ModifyFile, puts)
- commit.before_publish    a session's chunks are stored, its commit record not yet written
- commit.after_publish     the commit record is written, the client not yet answered
- finish_commit.before     finish commit holds the commit's write lock, nothing written yet
- finish_commit.after      the finished commit is written, the caller not yet answered
- job.output_base          a job is about to set its output commit's starting content
- job.outputs              a worker's outputs are stored, their publish to the job's commit next
- job.bookkeeping          a job is about to record datum results it was sent
- job.datum_table          a job's datums are done, its datum table not yet written
- job.finish               the datum table is written, the output commit not yet finished
- job.finished_state       the output commit is finished, the job's final state not yet saved
- gc.after_mark            a collection has marked what is live, nothing deleted yet
- gc.packs_claimed         dead packs are claimed (DELETING), none of their objects removed yet
- gc.pack_removed          one claimed pack's object is removed, its record not yet (per pack)
- gc.compact_written       compaction stored its new pack, no chunk moved to it yet
- gc.compact_claimed       chunks moved to the new pack and old packs claimed, none removed yet
- pipeline.before_grant    a pipeline is created, its creator's and its own role bindings not yet saved
- repo.before_grant        a repo is created (outside a transaction), its creator's repoOwner not yet saved
"""
from __future__ import annotations

import os
import signal
import threading

ENV = "PACH_FAILPOINTS"

NAMES = frozenset({
    "modify_file.write", "commit.before_publish", "commit.after_publish",
    "finish_commit.before", "finish_commit.after",
    "job.output_base", "job.outputs", "job.bookkeeping", "job.datum_table", "job.finish",
    "job.finished_state",
    "gc.after_mark", "gc.packs_claimed", "gc.pack_removed", "gc.compact_written", "gc.compact_claimed",
    "pipeline.before_grant", "repo.before_grant",
})


def parse(spec: str) -> dict[str, int]:
    """`name[@n],...` -> {name: n} (the hit that kills, counted from 1)."""
    out: dict[str, int] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, nth = item.partition("@")
        if name not in NAMES:
            raise ValueError(f"{ENV}: unknown failpoint {name!r}; known: {', '.join(sorted(NAMES))}")
        try:
            n = int(nth) if nth else 1
        except ValueError:
            raise ValueError(f"{ENV}: {item!r}: the hit number after @ must be a whole number") from None
        if n < 1:
            raise ValueError(f"{ENV}: {item!r}: the hit number after @ counts from 1")
        out[name] = n
    return out


_ARMED: dict[str, int] = parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}
_lock = threading.Lock()


def failpoint(name: str) -> None:
    """Kill this process here if the environment armed `name` and this is the hit it named."""
    if not _ARMED:
        return
    target = _ARMED.get(name)
    if target is None:
        return
    with _lock:
        n = _hits[name] = _hits.get(name, 0) + 1
    if n == target:
        os.write(2, f"failpoint {name} hit {n}: killing process {os.getpid()}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
        threading.Event().wait()  # SIGKILL is delivered before this returns; never go on


def arm(spec: str) -> None:
    """Arm failpoints in this process (tests of the module itself; crash tests use ENV)."""
    global _ARMED
    with _lock:
        _ARMED = parse(spec)
        _hits.clear()


__all__ = ["ENV", "NAMES", "failpoint", "parse", "arm"]
