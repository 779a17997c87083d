"""Uploading datums' outputs: staging `/pfs/out` and batched ModifyFile streams.

Invariants:
- `Uploader.stage(datum, out_dir)` walks `/pfs/out` (symlinks followed, cycles cut; only
  regular files; directories are implicit, empty ones vanish), validates every name as a PFS
  path, then moves the top-level entries out of the way (renames; `/pfs/out` itself stays,
  empty) and keeps what symlinks pointed at (hard link or copy), so nothing the upload needs is
  lost when /pfs is wiped for the next datum.
- Staged datums are sent in batches (`batch_datums` datums or `batch_bytes` bytes) on a
  background thread, ONE ModifyFile stream per batch to the job's open output commit:
  `set_commit`, then for each file `delete_file` + `add_file` tagged with the datum id (the
  delete makes a re-sent task idempotent). The commit's write lock is held only while a batch
  streams. A failed stream uploads nothing (pachd applies a stream atomically): `failed` says
  which datums and why; `times` has every uploaded datum's seconds.
"""
from __future__ import annotations

import errno
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import grpc

from pfs.ancestry import validate_path
from pfs.errors import InvalidPath
from pps.worker.datum_io import PUT_CHUNK, PfsIO
from proto.pfs_v2 import pfs_pb2 as pb


@dataclass
class _StagedOut:
    datum_id: str
    files: list[tuple[str, Path]]  # (pfs path, local source)
    dirs: list[Path]               # staging dirs to drop after the upload
    nbytes: int = 0
    seconds: float = 0.0


class Uploader:
    """Stages datums' outputs and uploads them in batches on a background thread.

    A batch (`batch_datums` datums or `batch_bytes` bytes) is one ModifyFile stream, so the
    output commit's write lock is held only while a batch streams. `finish()` uploads the rest
    and reports per datum: upload seconds, or the reason its batch failed."""

    def __init__(self, io: PfsIO, commit: pb.Commit, root: Path,
                 batch_datums: int = 64, batch_bytes: int = 64 << 20):
        self.io, self.commit, self.root = io, commit, root
        self.batch_datums, self.batch_bytes = batch_datums, batch_bytes
        self._batch: list[_StagedOut] = []
        self._bytes = 0
        self._n = 0
        self._out_real = ""
        self._q: "queue.Queue[Optional[list[_StagedOut]]]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._abandon = False
        self.times: dict[str, float] = {}
        self.failed: dict[str, str] = {}

    def stage(self, datum_id: str, out_dir: Path) -> tuple[list[str], int]:
        """Take the contents of `out_dir` (the datum's /pfs/out) for upload, leaving it EMPTY;
        return (pfs paths, bytes). Raises ValueError for a file name PFS does not accept (the
        contents are then left in place)."""
        found, top = _walk_out(out_dir)
        if not top:
            return [], 0
        if self._n == 0:
            self.io.dirs.make(self.root)
            self._out_real = os.path.realpath(out_dir)
        out_real = self._out_real
        moved: dict[str, Path] = {}
        for name in top:  # the top-level entries move; /pfs/out itself stays
            self._n += 1
            moved[name] = self.root / str(self._n)
            os.rename(out_dir / name, moved[name])
        item = _StagedOut(datum_id, [], list(moved.values()), sum(size for _, _, size in found))
        ext = None
        for k, (path, real, _) in enumerate(found):
            if real.startswith(out_real + "/"):
                first, _, rest = real[len(out_real) + 1:].partition("/")
                src = moved[first] / rest if rest else moved[first]
            else:  # a symlink out of /pfs/out: keep its target past the datum
                if ext is None:
                    self._n += 1
                    ext = self.root / str(self._n)
                    self.io.dirs.make(ext, fresh=True)
                    item.dirs.append(ext)
                src = ext / str(k)
                try:
                    os.link(real, src)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK):
                        raise
                    shutil.copyfile(real, src)
            item.files.append((path, src))
        if not item.files:
            self._drop(item)
            return [], 0
        self._batch.append(item)
        self._bytes += item.nbytes
        if len(self._batch) >= self.batch_datums or self._bytes >= self.batch_bytes:
            self._send()
        return [p for p, _ in item.files], item.nbytes

    def _send(self) -> None:
        if not self._batch:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._uploader, name="upload", daemon=True)
            self._thread.start()
        self._q.put(self._batch)
        self._batch, self._bytes = [], 0

    def finish(self) -> None:
        """Upload what is staged and wait; then `times` and `failed` are complete."""
        self._send()
        self._stop()

    def discard(self) -> None:
        """Upload nothing more (a cancelled task); drop what is staged."""
        self._abandon = True
        for item in self._batch:
            self._drop(item)
        self._batch = []
        self._stop()

    def _stop(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join()
            self._thread = None

    def _drop(self, item: _StagedOut) -> None:
        # buried, not freed: freeing inodes during a job slows every file creation (scratch.py)
        for d in item.dirs:
            self.io.dirs.bury(d, item.nbytes // max(1, len(item.dirs)))

    def _uploader(self) -> None:
        while True:
            batch = self._q.get()
            if batch is None:
                return
            try:
                if not self._abandon:
                    self._upload(batch)
            finally:
                for item in batch:
                    self._drop(item)

    def _upload(self, batch: list[_StagedOut]) -> None:
        t0 = time.monotonic()
        try:
            self.io.pfs.ModifyFile(self._requests(batch), metadata=self.io.md)
        except (grpc.RpcError, OSError) as e:
            why = e.details() if isinstance(e, grpc.RpcError) else str(e)
            for item in batch:
                self.failed[item.datum_id] = f"uploading outputs: {why}"
            return
        rest = (time.monotonic() - t0 - sum(i.seconds for i in batch)) / len(batch)
        for item in batch:
            self.times[item.datum_id] = item.seconds + max(0.0, rest)

    def _requests(self, batch: list[_StagedOut]) -> Iterator[pb.ModifyFileRequest]:
        yield pb.ModifyFileRequest(set_commit=self.commit)
        for item in batch:
            t = time.monotonic()
            for path, src in item.files:
                yield pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=path, datum=item.datum_id))
                with open(src, "rb") as fh:
                    first = True
                    while True:
                        data = fh.read(PUT_CHUNK)
                        if data or first:
                            yield pb.ModifyFileRequest(add_file=pb.AddFile(
                                path=path, datum=item.datum_id, raw={"value": data}))
                        first = False
                        if len(data) < PUT_CHUNK:
                            break
            item.seconds += time.monotonic() - t


def _walk_out(out_dir: Path) -> tuple[list[tuple[str, str, int]], list[str]]:
    """((pfs path, real path, size) of every regular file under out_dir, symlinks followed;
    the names of out_dir's top-level entries)."""
    found: list[tuple[str, str, int]] = []
    top: list[str] = []
    out_real = ""
    stack = [("", str(out_dir), False, frozenset())]  # (pfs path, path, via a symlink, ancestors)
    while stack:
        rel, d, linked, ancestors = stack.pop()
        try:
            it = os.scandir(d)
        except FileNotFoundError:
            continue
        with it:
            entries = list(it)
        if not rel:
            top = [e.name for e in entries]
            if not entries:
                return found, top
            out_real = os.path.realpath(out_dir)
        st = os.stat(d)
        if (st.st_dev, st.st_ino) in ancestors:
            continue  # a symlink cycle
        ancestors = ancestors | {(st.st_dev, st.st_ino)}
        for e in entries:
            p = f"{rel}/{e.name}"
            try:
                if e.is_dir(follow_symlinks=True):
                    stack.append((p, e.path, linked or e.is_symlink(), ancestors))
                elif e.is_file(follow_symlinks=True):
                    try:
                        validate_path(p)
                    except InvalidPath as err:
                        raise ValueError(f"invalid output file name {p!r}: {err}") from None
                    if linked or e.is_symlink():
                        real = os.path.realpath(e.path)
                    else:
                        real = out_real + p
                    found.append((p, real, e.stat(follow_symlinks=True).st_size))
            except FileNotFoundError:
                continue  # a broken symlink
    found.sort()
    return found, top
