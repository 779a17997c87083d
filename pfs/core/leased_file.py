"""A local file read in place: windows of it mapped read-only, under a read lease.

`LeasedFile.open(fd)` lets local ingest hash and write a file's bytes straight from the page
cache (no copy into private buffers): chunks are hashed from a mapped window, and packs are
written with O_DIRECT from the same window. That is only sound while nobody can change the
file, which is what the lease is for. Invariants:

- A lease is taken only if the kernel grants a read lease (`F_SETLEASE F_RDLCK`): nobody,
  this process included, has the file open for writing (no writable fd, no writable shared
  mapping), and the file is on a local filesystem of a known kind (`LOCAL_FILESYSTEMS`,
  where every change passes through this kernel). Otherwise `open` returns None and the
  caller copies the file as before.
- While the lease is held, any open for writing or truncation of the file, by any process,
  blocks until it is released. So the bytes of a window cannot change between being hashed
  and being written, and a window never loses its pages (no SIGBUS).
- The lease is released (`close`) only when no window is in use: neither by a segment being
  cut and hashed, nor by a pack write pointing into it (`hold`, `release_when_done`).
- A writer waiting on the lease is noticed with `intact()` (one fcntl); the caller stops
  using the file, `close`s, and goes on by copying. The kernel lets a writer wait at most
  `/proc/sys/fs/lease-break-time` seconds (45 by default): callers check at least once per
  window, which takes milliseconds.
- The kernel announces a lease break with a signal. It is set to SIGURG, whose default
  action is to be ignored, so the break can never kill the process (SIGIO's would).
- Windows never reach past the file's size when the lease was taken (the last one ends
  mid-page, so the pack holding the file's end is written through the page cache). A
  window is unmapped when its last use ends, so memory use stays that of the windows in
  use, whatever the file's size.
"""
from __future__ import annotations

import fcntl
import mmap
import os
import signal
from functools import lru_cache
from typing import Optional

from pfs.core.buffers import HeldBuffers


# Filesystems whose every change goes through this kernel, so a lease sees every writer.
# Not network or FUSE filesystems (changes made elsewhere), nor overlayfs (leases there do
# not see writes to the layers below).
LOCAL_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "jfs"})


@lru_cache(maxsize=64)
def _filesystem_of_device(dev: int) -> Optional[str]:
    """The filesystem type mounted from device `dev` (as in st_dev), from mountinfo."""
    want = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[2] == want and " - " in line:
                    return line.split(" - ", 1)[1].split()[0]
    except OSError:
        return None
    return None


class LeasedFile(HeldBuffers):
    """Read-only windows of one open file, valid while this holds a read lease on it."""

    def __init__(self, fd: int, size: int):
        super().__init__()
        self.fd, self.size = fd, size
        self._leased = True

    @classmethod
    def open(cls, fd: int) -> Optional["LeasedFile"]:
        """A leased view of the regular file open (read-only) as `fd`, or None when the
        kernel will not lease it (open for writing somewhere, not ours, not a local fs)."""
        st = os.fstat(fd)
        if _filesystem_of_device(st.st_dev) not in LOCAL_FILESYSTEMS:
            return None
        try:
            fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError:  # EAGAIN: open for writing; EACCES: another user's; EINVAL: no leases
            return None
        # the size once nobody can change it
        return cls(fd, os.fstat(fd).st_size)

    def intact(self) -> bool:
        """False once someone is waiting to write or truncate the file."""
        return fcntl.fcntl(self.fd, fcntl.F_GETLEASE) == fcntl.F_RDLCK

    def read(self, start: int, length: int):
        """`(window, n, final)`: file bytes `[start, start + n)` as a read-only mapping,
        with `n` up to `length`; `final` when the file ends there. The caller holds it once."""
        n = max(0, min(length, self.size - start))
        if n:
            # n bytes, not whole pages: Python refuses a mapping longer than the file
            window = mmap.mmap(self.fd, n, mmap.MAP_SHARED, mmap.PROT_READ, offset=start)
        else:
            window = bytearray()
        with self._lock:
            self._start_use(window)
        return window, n, n < length

    def _last_use_ended(self, window) -> None:
        # unmapped once the holders' last view of it goes; `close` waits for the last one
        if not self._uses:
            self._lock.notify_all()

    def close(self) -> None:
        """Wait until no window is in use, then give up the lease. Idempotent."""
        with self._lock:
            self._lock.wait_for(lambda: not self._uses)
        if self._leased:
            self._leased = False
            fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
