"""Directories in the worker's scratch space, recycled instead of removed.

Why: a datum creates and drops a few directories (`/pfs/<input>`, `/pfs/out`, staging dirs).
On ext4 mounted with `discard`, every rmdir frees a block and issues a TRIM: ~0.8 ms each,
more than running `cp`. So directories are never removed while the worker lives: emptied ones
go to a pool (`<pool>/<n>`) and `make` renames one into place (~10 us) before falling back to
mkdir.

Invariants:
- Every name in the free list is an EMPTY directory directly under `pool`, owned by nobody.
- `discard(path)` returns at once: the tree is renamed into the pool (so `path` is free for
  reuse immediately) and emptied on a background thread (every RECYCLE_EVERY seconds, in
  bulk): files unlinked, directories added to the free list bottom-up. Nothing outside the
  pool's file system is touched.
- `make(path)` behaves like `mkdir(parents=True, exist_ok=True)`.
- Thread-safe; `close()` stops the background thread (pending trees stay on disk; the
  executor wipes the worker's scratch dir before every start).

Files are recycled too, for the same kind of reason: this file system runs without a journal,
and then ext4 avoids handing out an inode freed in the last 60-300 s, checking every such
inode of the block group on EACH file creation (~0.2 us each, up to ~1.8 ms per create once a
datum loop has freed thousands). So during a job the worker frees no inode of its own:
- Files of trees discarded with `reuse_files=True` (trees only the worker wrote: staged
  inputs) go to a file pool (`<pool>/f<size>.<n>`: regular files of at most
  FILE_POOL_MAX_BYTES with one link); `create_file` renames one into place, resets its mode
  and returns it open for writing. The writer truncates at its end position (`truncate()`),
  so no old byte survives.
- `bury(path, nbytes)` takes a file or tree (e.g. uploaded outputs: user code wrote them and
  may still hold them open while its job runs, so they are not reused then) out of the way
  without freeing it. `free_buried()` (the worker calls it when idle, after the job's user
  processes are gone) moves their files to the file pool and frees the rest. Past
  GRAVE_MAX_FILES entries or GRAVE_MAX_BYTES bytes, the oldest buried entries are freed at once.
- The pool holds at most FILE_POOL_MAX files, FILE_POOL_BYTES of disk; past that files are freed.
"""
from __future__ import annotations

import collections
import itertools
import os
import stat
import threading
from pathlib import Path

RECYCLE_EVERY = 0.05
FILE_POOL_MAX = 65_536        # files in the pool ...
FILE_POOL_BYTES = 256 << 20   # ... and the disk they hold (sizes rounded up to 4 KiB)
FILE_POOL_MAX_BYTES = 1 << 20  # bigger files are freed: their creation cost is small next to their size
GRAVE_MAX_FILES = 100_000
GRAVE_MAX_BYTES = 256 << 20


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


class Dirs:
    def __init__(self, pool: Path):
        self.pool = pool
        pool.mkdir(parents=True, exist_ok=True)
        self._free: collections.deque[str] = collections.deque()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._pending: list[tuple[str, bool]] = [(e.name, False) for e in os.scandir(pool)]  # an earlier run's too
        self._files: collections.deque[str] = collections.deque()  # pooled files, ready to reuse
        self._buried: collections.deque[tuple[str, int]] = collections.deque()  # (name, bytes)
        self._buried_bytes = 0
        self._files_bytes = 0
        self._file_mode = 0o666 & ~_umask()
        self._busy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._recycler, name="recycler", daemon=True)
        self._thread.start()

    def _name(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids)}"

    def make(self, path: Path, fresh: bool = False) -> None:
        """mkdir -p; `fresh=True` promises that `path` does not exist but its parent does."""
        if not fresh:
            if os.path.isdir(path):
                return
            if not os.path.isdir(path.parent):
                self.make(path.parent)
        while True:
            with self._lock:
                name = self._free.popleft() if self._free else None
            if name is None:
                try:
                    os.mkdir(path)
                except FileExistsError:
                    if not os.path.isdir(path):
                        raise
                return
            try:
                os.rename(self.pool / name, path)
                return
            except FileNotFoundError:
                continue  # should not happen; try another
            except OSError:  # e.g. path exists and is not empty
                with self._lock:
                    self._free.appendleft(name)
                if os.path.isdir(path):
                    return
                raise

    def create_file(self, path: Path) -> int:
        """A new file at `path` (its parent exists), open for writing: a pooled inode when
        there is one (same mode as a fresh file; the caller truncates at its end)."""
        while True:
            with self._lock:
                name = self._files.popleft() if self._files else None
                if name is not None:
                    self._files_bytes -= int(name[1:name.index(".")])
            if name is None:
                return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            try:
                os.rename(self.pool / name, path)
            except FileNotFoundError:
                continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                os.fchmod(fd, self._file_mode)
                return fd
            except OSError:  # not ours to write after all: fresh file instead
                os.unlink(path)
                return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)

    def discard(self, path: Path, reuse_files: bool = False) -> None:
        """Take `path` (file or tree; missing is fine) away now; recycle it in the background.
        `reuse_files`: its files were written by the worker only (may go to the file pool)."""
        name = self._name("t")
        try:
            os.rename(path, self.pool / name)
        except FileNotFoundError:
            return
        with self._lock:
            self._pending.append((name, reuse_files))

    def bury(self, path: Path, nbytes: int = 0) -> None:
        """Take `path` (file or tree; missing is fine) away now, freeing it only later
        (`free_buried`, or once the buried entries pass their limits)."""
        name = self._name("g")
        try:
            os.rename(path, self.pool / name)
        except FileNotFoundError:
            return
        with self._lock:
            self._buried.append((name, nbytes))
            self._buried_bytes += nbytes
            while self._buried and (len(self._buried) > GRAVE_MAX_FILES or self._buried_bytes > GRAVE_MAX_BYTES):
                old, n = self._buried.popleft()
                self._buried_bytes -= n
                self._pending.append((old, False))

    def free_buried(self) -> None:
        """Everything buried goes (in the background): files to the pool, the rest freed.
        Only when no user code that wrote them is alive."""
        with self._lock:
            self._pending.extend((name, True) for name, _ in self._buried)
            self._buried.clear()
            self._buried_bytes = 0

    def idle(self) -> bool:
        with self._lock:
            return not self._pending and not self._busy

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    # ---- background -------------------------------------------------------------------
    def _recycler(self) -> None:
        # polls instead of being woken per discard: a wake-up per datum costs more than the work
        while not self._stop.wait(RECYCLE_EVERY):
            with self._lock:
                batch, self._pending = self._pending, []
                self._busy = bool(batch)
            for name, reuse in batch:
                path = str(self.pool / name)
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        self._empty(path, reuse)
                        with self._lock:
                            self._free.append(name)
                    elif not (reuse and self._pool_file(path, os.lstat(path))):
                        os.unlink(path)
                except OSError:
                    pass
            with self._lock:
                self._busy = False

    def _empty(self, top: str, reuse: bool = False) -> None:
        with os.scandir(top) as it:
            entries = list(it)
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                self._empty(e.path, reuse)
                name = self._name("d")
                os.rename(e.path, self.pool / name)
                with self._lock:
                    self._free.append(name)
            elif not (reuse and self._pool_file(e.path, e.stat(follow_symlinks=False))):
                os.unlink(e.path)

    def _pool_file(self, path: str, st: os.stat_result) -> bool:
        """Move a regular, singly linked file into the file pool (False: not taken)."""
        size = (st.st_size + 4095) & ~4095
        if (not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > FILE_POOL_MAX_BYTES
                or len(self._files) >= FILE_POOL_MAX or self._files_bytes + size > FILE_POOL_BYTES):
            return False
        name = f"f{size}.{self._name('')}"  # its size, for the accounting when it leaves
        os.rename(path, self.pool / name)
        with self._lock:
            self._files.append(name)
            self._files_bytes += size
        return True
