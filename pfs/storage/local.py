"""LocalChunkStore: a chunk store in a directory of the local file system.

Layout: the object with key ``"packs/ab/abcdef"`` is the file ``<root>/packs/ab/abcdef``.

Invariants (on top of those of `pfs.storage.chunkstore`):
- A put writes a temp file named ``.tmp-<random>`` in the object's own directory, fsyncs it,
  `os.replace`s it over the final name and fsyncs the directory (and the parents of any
  directories it created). So after a crash an object is either absent, the old one, or
  the whole new one -- never torn -- and a put that returned survives a power cut.
- Names starting with '.' are the store's own (temp files); `iterate` never yields them and
  `check_key` forbids keys that would collide with them. A crash can leave temp files
  behind; `sweep_temp_files()` removes stale ones (they are never reachable as objects).
- Empty directories are left in place after delete (cheap, and removing them would race
  with a concurrent put into the same directory).
- No lock is needed: every write goes through a uniquely named temp file and an atomic
  rename, so concurrent puts (even of the same key) are safe; the last rename wins, and for
  content-addressed keys all writers carry the same bytes.
- Hot path: `put`/`put_parts` hand the caller's buffers straight to `os.writev` (no copy); `get` reads
  with one `readall` sized by fstat; `get_range` is a single `pread`; `get_range_view` maps
  the range (no copy at all: the reader hashes and writes straight from the page cache).
- `put_parts(..., direct=True)` (parts page-aligned in memory and whole pages long, as
  `pfs.core.local_ingest` makes them) writes around the page cache with O_DIRECT: no copy
  into the cache and no cache pages to find for a big pack. Where the file system or a part
  refuses it (EINVAL), the same bytes go through the cache instead; the stored object and
  its atomicity are the same either way.
- ``durable=False`` skips the fsyncs (tests, scratch stores); atomicity against concurrent
  readers still holds, durability across a power cut does not.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import secrets
import time
from pathlib import Path
from typing import Iterator

from pfs.errors import DiskFull, ObjectNotFound, StorageError
from pfs.storage.chunkstore import ObjectInfo, check_key, check_range

__all__ = ["LocalChunkStore"]

_TMP = ".tmp-"
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


_O_DIRECT = getattr(os, "O_DIRECT", 0)
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # map every page at once: no fault per 64 KiB


def _drop_direct(fd: int) -> bool:
    """Switch `fd` from O_DIRECT to cached writes; False if it was not direct."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not flags & _O_DIRECT:
        return False
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~_O_DIRECT)
    return True


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalChunkStore:
    """Chunk store rooted at a local directory (created if missing)."""

    def __init__(self, root: Path | str, *, durable: bool = True):
        self.root = Path(root).absolute()
        self.durable = durable
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot create chunk store directory {self.root}: {e.strerror or e}; "
                "check that the path is writable and on a mounted file system"
            ) from e
        if not self.root.is_dir():
            raise StorageError(f"chunk store root {self.root} exists but is not a directory")
        self._root = str(self.root)
        self._direct_io = bool(_O_DIRECT)  # until the file system refuses it

    def __repr__(self) -> str:
        return f"LocalChunkStore({self._root!r})"

    def _where(self) -> str:
        return f"local chunk store at {self._root}"

    def _path(self, key: str) -> str:
        return os.path.join(self._root, check_key(key))

    def _not_found(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(
            f"object {key!r} not found in the {self._where()} "
            "(was the store moved, pruned, or is pachd pointed at a different one?)"
        )

    def _error(self, op: str, key: str, e: OSError) -> StorageError:
        if e.errno == errno.ENOSPC:
            return DiskFull(f"{op} of {key!r} failed: the disk of the {self._where()} is full "
                            f"({e.strerror}); nothing was written, free space on it and retry")
        return StorageError(f"{op} of {key!r} failed in the {self._where()}: {e.strerror or e}")

    # -- writes ------------------------------------------------------------------------
    def _ensure_dir(self, d: str) -> None:
        """Create `d` and missing parents; fsync each new entry's parent when durable."""
        missing = []
        p = d
        while not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        for m in reversed(missing):
            try:
                os.mkdir(m)
            except FileExistsError:
                continue  # a concurrent put made it
            if self.durable:
                _fsync_dir(os.path.dirname(m))

    def put(self, key: str, data: bytes) -> None:
        self.put_parts(key, [data])

    def put_parts(self, key: str, parts: list, *, direct: bool = False) -> None:
        """Store the concatenation of `parts` (bytes-like), written with gathered writes
        straight from the caller's buffers. Same atomicity as `put`. `direct`: the parts are
        page-aligned whole pages, so they may be written around the page cache (O_DIRECT)."""
        def write(fd: int) -> None:
            views = [memoryview(p).cast("B") for p in parts if len(p)]
            i = 0
            while i < len(views):
                try:
                    n = os.writev(fd, views[i:i + 1024])  # at most IOV_MAX buffers per call
                except OSError as e:
                    if e.errno != errno.EINVAL or not _drop_direct(fd):
                        raise
                    continue  # refused as unaligned: the same write through the page cache
                while n:  # a short write: skip what went out, resume mid-buffer
                    if n >= len(views[i]):
                        n -= len(views[i])
                        i += 1
                    else:
                        views[i] = views[i][n:]
                        n = 0
        self._atomic_write(key, write, direct=direct and self._direct_io)

    def _atomic_write(self, key: str, write, direct: bool = False) -> None:
        final = self._path(key)
        d = os.path.dirname(final)
        tmp = os.path.join(d, _TMP + secrets.token_hex(8))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        if direct:
            flags |= _O_DIRECT
        try:
            try:
                fd = self._open_new(tmp, flags)
            except FileNotFoundError:
                self._ensure_dir(d)
                fd = self._open_new(tmp, flags)
        except OSError as e:
            raise self._error("put", key, e) from e
        try:
            try:
                write(fd)
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError):
                raise self._error("put", key, e) from e
            raise
        if self.durable:
            try:
                _fsync_dir(d)
            except OSError as e:
                raise self._error("put", key, e) from e

    def _open_new(self, path: str, flags: int) -> int:
        try:
            return os.open(path, flags, 0o644)
        except OSError as e:
            if not flags & _O_DIRECT or e.errno != errno.EINVAL:
                raise
        self._direct_io = False  # this file system has no O_DIRECT (e.g. an old tmpfs)
        return os.open(path, flags & ~_O_DIRECT, 0o644)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except _MISSING:
            return
        except OSError as e:
            raise self._error("delete", key, e) from e

    # -- reads -------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                return f.readall()
        except _MISSING:
            raise self._not_found(key) from None
        except OSError as e:
            raise self._error("get", key, e) from e

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except _MISSING:
            raise self._not_found(key) from None
        except OSError as e:
            raise self._error("get_range", key, e) from e
        try:
            data = os.pread(fd, length, offset)
            if len(data) < length and data:  # short read before EOF: finish it
                parts = [data]
                got = len(data)
                while got < length:
                    more = os.pread(fd, length - got, offset + got)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
            return data
        except IsADirectoryError:
            raise self._not_found(key) from None
        except OSError as e:
            raise self._error("get_range", key, e) from e
        finally:
            os.close(fd)

    def get_range_view(self, key: str, offset: int, length: int) -> memoryview:
        """`get_range` without the copy: a read-only view of the object's bytes mapped from
        the page cache (clipped at its end). The mapping lives as long as the view (or any
        slice of it); a pack deleted meanwhile stays readable through it (objects are only
        ever replaced by rename, never truncated, so the mapped bytes cannot vanish)."""
        check_range(offset, length)
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except _MISSING:
            raise self._not_found(key) from None
        except OSError as e:
            raise self._error("get_range", key, e) from e
        try:
            size = os.fstat(fd).st_size
            end = min(offset + length, size)
            if end <= offset:
                return memoryview(b"")
            start = offset - offset % mmap.ALLOCATIONGRANULARITY
            m = mmap.mmap(fd, end - start, flags=mmap.MAP_SHARED | _MAP_POPULATE, prot=mmap.PROT_READ,
                          offset=start)
        except IsADirectoryError:
            raise self._not_found(key) from None
        except (OSError, ValueError) as e:
            raise self._error("get_range", key, e if isinstance(e, OSError) else OSError(str(e))) from e
        finally:
            os.close(fd)
        return memoryview(m)[offset - start:end - start]

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def iterate(self, prefix: str = "") -> Iterator[str]:
        for key, _path in self._keys(prefix):
            yield key

    def iterate_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key, path in self._keys(prefix):
            try:
                st = os.stat(path)
            except _MISSING:
                continue  # deleted since it was listed
            except OSError as e:
                raise self._error("stat", key, e) from e
            yield ObjectInfo(key, st.st_size, st.st_mtime)

    def _keys(self, prefix: str) -> Iterator[tuple[str, str]]:
        if "\x00" in prefix:
            return
        base_rel = prefix[: prefix.rfind("/") + 1]  # "" or "a/b/"
        if base_rel:
            segs = base_rel[:-1].split("/")
            if any(not s or s.startswith(".") for s in segs):
                return  # no valid key can start with this prefix
        yield from self._walk(os.path.join(self._root, base_rel), base_rel, prefix)

    def _walk(self, dirpath: str, rel: str, prefix: str) -> Iterator[tuple[str, str]]:
        try:
            with os.scandir(dirpath) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it
                           if not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise StorageError(f"listing {dirpath} in the {self._where()} failed: {e.strerror or e}") from e
        # Sorting directories as "name/" makes the depth-first walk yield keys in global
        # string order (e.g. "a-c" < "a/b" because '-' < '/').
        entries.sort(key=lambda e: e[0] + "/" if e[1] else e[0])
        for name, is_dir in entries:
            if is_dir:
                cand = rel + name + "/"
                if cand.startswith(prefix) or prefix.startswith(cand):
                    yield from self._walk(os.path.join(dirpath, name), cand, prefix)
            else:
                key = rel + name
                if key.startswith(prefix):
                    yield key, os.path.join(dirpath, name)

    # -- maintenance -------------------------------------------------------------------
    def sweep_temp_files(self, max_age_seconds: float = 3600.0) -> int:
        """Remove temp files left by crashed puts older than `max_age_seconds`; return count."""
        cutoff = time.time() - max_age_seconds
        removed = 0
        for dirpath, _dirs, files in os.walk(self._root):
            for name in files:
                if name.startswith(_TMP):
                    p = os.path.join(dirpath, name)
                    try:
                        if os.stat(p).st_mtime < cutoff:
                            os.unlink(p)
                            removed += 1
                    except FileNotFoundError:
                        pass
        return removed

    def close(self) -> None:
        """Nothing to release: every operation opens and closes its own descriptors."""
