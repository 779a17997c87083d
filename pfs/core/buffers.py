"""Page-aligned buffers for writing around the page cache, reused through a pool.

Invariants:
- Every buffer is an anonymous mapping, so it starts on a page and its length is a whole
  number of pages (`page_up`): views from a page boundary to a page boundary may be written
  with O_DIRECT (`LocalChunkStore.put_parts(direct=True)`).
- A pooled buffer is reused only after every use of it has ended (`BlockPool`): the reader
  or filler that took it, and every pending write pointing into it. The uses are counted by
  `HeldBuffers`, which `pfs.core.leased_file` shares for windows of a leased file.
- A pool with `idle_seconds` lets go of its idle buffers once nothing has used it for that
  long, so a long-lived pool (one per store, shared by its uploads) costs memory only
  around its busy times.
"""
from __future__ import annotations

import mmap
import threading
import time
from typing import Optional

PAGE = 4096  # O_DIRECT alignment: a multiple of every common logical block size


def page_down(n: int) -> int:
    return n & ~(PAGE - 1)


def page_up(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)


# Filled by the kernel at mmap time: on the dev VM that halves the cost of a fresh 18 MiB
# buffer's first fill (about 22 -> 11 ms) against faulting it in page by page.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def _new_buffer(size: int, populate: bool) -> mmap.mmap:
    if populate and _POPULATE:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)
    return mmap.mmap(-1, size)


class HeldBuffers:
    """Use counts of buffers, by identity: a buffer is in use from `_start_use` until as many
    `release`s as it had `_start_use` + `hold`s; then `_last_use_ended(buf)` runs, under
    `self._lock` (a Condition). Uses end on any thread (a pending write's future completes
    on a writer thread: `release_when_done`). The holders keep the buffer alive meanwhile."""

    def __init__(self):
        self._uses: dict[int, int] = {}
        self._lock = threading.Condition()

    def _start_use(self, buf) -> None:  # the caller holds the lock
        self._uses[id(buf)] = 1

    def hold(self, buf) -> None:
        """One more use of a buffer already taken (a pack being filled points into it)."""
        with self._lock:
            self._uses[id(buf)] += 1

    def release(self, buf) -> None:
        with self._lock:
            left = self._uses[id(buf)] - 1
            if left:
                self._uses[id(buf)] = left
                return
            del self._uses[id(buf)]
            self._last_use_ended(buf)

    def release_when_done(self, bufs, fut) -> None:
        """Release each of `bufs` once `fut` (a pending write from them) is done."""
        bufs = list(bufs)
        fut.add_done_callback(lambda _f: [self.release(b) for b in bufs])

    def _last_use_ended(self, buf) -> None:
        raise NotImplementedError


class BlockPool(HeldBuffers):
    """Reusable page-aligned buffers of one size.

    Fresh multi-MiB buffers cost a page fault per 4 KiB on every use; reused ones do not. A
    buffer is in use while the reader holds it (`take`..`release`) and while a pack whose
    parts point into it is being filled (`hold`) or written (`release_when_done(bufs,
    future)`); it returns to the pool only when all of those are done. At most `keep` idle
    buffers are kept. Thread-safe (futures complete on writer threads). `populate`: new
    buffers are filled in by the kernel at once (for buffers that will be filled whole);
    else their pages appear as they are first touched (a small pack touches few).
    `idle_seconds`: drop the idle buffers once no buffer has been taken or released for that
    long (checked by a timer started when the last buffer in use comes back).
    """

    def __init__(self, size: int, keep: int = 4, *, populate: bool = True,
                 idle_seconds: Optional[float] = None):
        super().__init__()
        self.size, self.keep, self.populate = page_up(size), keep, populate
        self.idle_seconds = idle_seconds
        self._free: list[mmap.mmap] = []
        self._last_use = time.monotonic()
        self._timer: Optional[threading.Timer] = None

    def idle_buffers(self) -> int:
        with self._lock:
            return len(self._free)

    def take(self) -> mmap.mmap:
        with self._lock:
            buf = self._free.pop() if self._free else _new_buffer(self.size, self.populate)
            self._start_use(buf)
            self._last_use = time.monotonic()
        return buf

    def _last_use_ended(self, buf: mmap.mmap) -> None:
        if len(self._free) < self.keep:
            self._free.append(buf)
        self._last_use = time.monotonic()
        if self.idle_seconds is not None and not self._uses and self._timer is None:
            self._trim_later(self.idle_seconds)

    def _trim_later(self, delay: float) -> None:  # the caller holds the lock
        self._timer = threading.Timer(delay, self._trim_if_idle)
        self._timer.daemon = True
        self._timer.start()

    def _trim_if_idle(self) -> None:
        with self._lock:
            self._timer = None
            if self._uses:  # busy again: the release that ends it starts a new timer
                return
            idle = time.monotonic() - self._last_use
            if idle >= self.idle_seconds:
                self._free.clear()
            else:
                self._trim_later(self.idle_seconds - idle)
