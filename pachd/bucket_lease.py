"""One pachd per bucket prefix: a lease object in the bucket, renewed while pachd runs.

Two pachds on one `--storage s3://bucket/prefix` would each collect the other's new packs as
orphans (the orphan sweep deletes objects its own metadata does not record) and overwrite each
other's shipped metadata. So a pachd with --storage holds `meta/OWNER` (JSON: cluster id,
instance id, host, pid, renewal period, last renewal) while it runs.

Invariants:
- Start (`acquire`): no OWNER -> write ours. OWNER of another cluster id -> refuse (the prefix
  belongs to another installation; its packs are not ours to collect). OWNER of our cluster
  (a pachd restored from the bucket, or this root's own pachd) is taken over only if its holder
  is dead: the same host with that pid gone, or no renewal seen for two renewal periods and a
  second; a renewal seen -> refuse, naming the holder. After writing, OWNER is read back after
  a short pause: if another pachd wrote in between, this one refuses.
- While running (`renew`, every `period` s): OWNER must still hold exactly what this pachd last
  wrote; else another pachd took the prefix over (this one was thought dead): `on_lost` is
  called once and the caller stops collecting garbage and shipping metadata at once.
  `verify()` re-reads OWNER; the collector calls it before each run.
- A clean stop deletes OWNER (if still ours), so the next start does not wait.
- The bucket's cluster id is also in every shipped metadata generation (pachd.shipping); a
  root whose `cluster-id` differs from it is refused too (`check_cluster`).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable, Optional

from pfs.errors import FailedPrecondition, ObjectNotFound

log = logging.getLogger("pachd.bucket")
KEY = "meta/OWNER"
DEFAULT_PERIOD = 5.0
SETTLE = 0.3  # seconds between writing OWNER and reading it back


class BucketInUse(FailedPrecondition):
    """Another pachd (or another installation) uses this bucket prefix."""


def _read(chunks) -> Optional[dict]:
    try:
        return json.loads(chunks.get(KEY))
    except ObjectNotFound:
        return None
    except ValueError:
        return {"unreadable": True}


def _describe(o: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(o.get("renewed", 0)))
    return f"pachd pid {o.get('pid')} on host {o.get('host')} (cluster {o.get('cluster_id')}, last renewed {when})"


def _pid_gone(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, TypeError):
        return False
    return False


def check_cluster(chunks, cluster_id: str, storage: str) -> None:
    """Refuse a bucket prefix whose shipped metadata belongs to another cluster id."""
    from pachd.shipping import latest
    doc = latest(chunks)
    theirs = (doc or {}).get("cluster_id")
    if theirs and theirs != cluster_id:
        raise BucketInUse(
            f"{storage} holds the metadata of cluster {theirs}, but this --root belongs to cluster {cluster_id}: "
            "two installations on one bucket prefix would delete each other's data. Use another prefix, or start "
            "pachd with an empty --root to recover cluster " + theirs + " from the bucket")


class BucketLease:
    def __init__(self, chunks, storage: str, cluster_id: str, period: float = DEFAULT_PERIOD,
                 on_lost: Callable[[str], None] = lambda reason: None):
        self.chunks = chunks
        self.storage = storage
        self.cluster_id = cluster_id
        self.period = float(period)
        self.on_lost = on_lost
        self.instance = uuid.uuid4().hex
        self._mine: Optional[bytes] = None
        self._attempted: Optional[bytes] = None
        self.lost: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def _record(self) -> bytes:
        return json.dumps({"cluster_id": self.cluster_id, "instance": self.instance, "host": socket.gethostname(),
                           "pid": os.getpid(), "period": self.period, "renewed": time.time()},
                          sort_keys=True).encode()

    # ---- start ------------------------------------------------------------------------------
    def acquire(self) -> None:
        held = _read(self.chunks)
        if held is not None:
            self._judge(held)
        with self._lock:
            self._mine = self._record()
            self.chunks.put(KEY, self._mine)
        time.sleep(SETTLE)
        now = _read(self.chunks)
        if now is None or now.get("instance") != self.instance:
            raise BucketInUse(f"another pachd started on {self.storage} at the same moment"
                              + (f" ({_describe(now)})" if now else "") + "; only one pachd may use a bucket prefix")
        log.info("this pachd holds %s (instance %s)", self.storage, self.instance[:8])

    def _judge(self, held: dict) -> None:
        """Return if OWNER's holder is dead; raise BucketInUse if it is alive or another cluster's."""
        if held.get("unreadable"):
            log.warning("%s/%s is unreadable; taking it over", self.storage, KEY)
            return
        if held.get("cluster_id") != self.cluster_id:
            raise BucketInUse(f"{self.storage} is used by another installation: {_describe(held)}. Two installations "
                              "on one bucket prefix would delete each other's data; use another prefix")
        if held.get("host") == socket.gethostname() and (held.get("pid") == os.getpid() or _pid_gone(held.get("pid"))):
            log.info("the previous pachd on %s (pid %s, this host) is gone; taking the bucket over",
                     self.storage, held.get("pid"))
            return
        wait = 2 * float(held.get("period") or self.period) + 1.0
        log.info("%s was held by %s; waiting up to %.0fs to see whether it is still alive",
                 self.storage, _describe(held), wait)
        before = self.chunks.get(KEY)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(min(0.5, wait))
            try:
                cur = self.chunks.get(KEY)
            except ObjectNotFound:
                return  # released meanwhile
            if cur != before:
                raise BucketInUse(f"another pachd is using {self.storage}: {_describe(json.loads(cur))}. Only one "
                                  "pachd may use a bucket prefix (the garbage collector of each would delete the "
                                  "other's new data); stop it first")
        log.warning("no renewal from %s in %.0fs: taking %s over", _describe(held), wait, self.storage)

    # ---- while running ----------------------------------------------------------------------
    def start(self) -> None:
        if self.period <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="bucket-lease", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period) and self.lost is None:
            try:
                self.renew()
            except FailedPrecondition:
                return
            except Exception as e:  # noqa: BLE001 - an unreachable bucket: retry, the holder is still us
                log.warning("renewing the lease on %s failed (will retry): %s", self.storage, e)

    def verify(self) -> None:
        """Raise BucketInUse if OWNER is no longer what this pachd wrote (checked, not cached)."""
        if self.lost is not None:
            raise BucketInUse(self.lost)
        with self._lock:
            self.verify_locked()

    def renew(self) -> None:
        with self._lock:
            self.verify_locked()
            new = self._record()
            self._attempted = new  # a PUT that failed may still have landed (connection reset)
            self.chunks.put(KEY, new)
            self._mine, self._attempted = new, None

    def verify_locked(self) -> None:
        try:
            cur = self.chunks.get(KEY)
        except ObjectNotFound:
            cur = None
        if cur is not None and cur == self._attempted:
            self._mine, self._attempted = cur, None
        if cur != self._mine:
            self._lose(json.loads(cur) if cur else None)

    def _lose(self, other: Optional[dict]) -> None:
        self.lost = (f"this pachd no longer holds {self.storage}: "
                     + (f"{_describe(other)} took it over" if other else "its lease object was removed")
                     + "; garbage collection and metadata shipping stopped, restart this pachd only after the "
                       "other one is stopped")
        log.error("%s", self.lost)
        try:
            self.on_lost(self.lost)
        finally:
            raise BucketInUse(self.lost)

    # ---- stop -------------------------------------------------------------------------------
    def release(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join()
        if self.lost is not None or self._mine is None:
            return
        with self._lock:
            try:
                if self.chunks.get(KEY) == self._mine:
                    self.chunks.delete(KEY)
            except ObjectNotFound:
                pass
            except Exception as e:  # noqa: BLE001 - shutting down: the next start waits instead
                log.warning("could not release %s: %s", self.storage, e)
