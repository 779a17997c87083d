"""Downloading datums' inputs from pachd into the worker's scratch space (uploads: upload.py).

Downloads (`PfsIO.download`):
- A datum's input `path` (a repo path; directories end in "/", "/" is the whole repo) is
  fetched with pfs_v2 GetFileTAR and unpacked under `<stage>/<datum index>-<input name>/`
  KEEPING the full repo path (`/a/b.txt` -> `.../a/b.txt`), as Pachyderm's downloadData does;
  mounting is one rename of that directory to `/pfs/<input name>`.
- Identical inputs of several datums in one batch are fetched once; the extra copies are hard
  links (inputs are not to be modified in place, as in Pachyderm).
- File inputs of one input commit are fetched with ONE GetFileTAR whose path is a brace glob
  `/{a,b/c,...}` when the server supports it (probed on first use: an error or a reply missing
  every path means "no", and the worker then fetches per path for its whole life, with
  PER_PATH_CONCURRENCY calls in flight).
- `empty_files` inputs become zero-byte files (names from WalkFile); `s3` inputs are not
  mounted; `lazy` inputs are downloaded eagerly (no FIFOs).
- `Prefetcher` downloads a task's datums IN ORDER on one thread, in growing batches
  (1, 2, 4 ... 64 datums), at most `ahead` datums ahead of the consumer.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import grpc

from pps.worker.scratch import Dirs
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc
from proto.worker_v1 import tasks_pb2 as wpb

PUT_CHUNK = 1 << 20
GLOB_BATCH_CHARS = 32 * 1024
PER_PATH_CONCURRENCY = 4  # pachd without glob support: overlap the calls
_GLOB_SPECIAL = set("\\*?[]{}(),|!@+^$")


def commit_pb(project: str, repo: str, commit: str, branch: str = "") -> pb.Commit:
    r = pb.Repo(name=repo, type="user", project=pb.Project(name=project or "default"))
    return pb.Commit(repo=r, id=commit, branch=pb.Branch(repo=r, name=branch) if branch else None)


def glob_escape(path: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in path)


class _Stream:
    """A file-like reader over a GetFileTAR response stream (counts bytes)."""

    def __init__(self, responses):
        self._it = iter(responses)
        self._buf = memoryview(b"")
        self.nbytes = 0

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if not self._buf:
                try:
                    self._buf = memoryview(next(self._it).value)
                except StopIteration:
                    break
                self.nbytes += len(self._buf)
            take = len(self._buf) if n < 0 else min(n - len(out), len(self._buf))
            out += self._buf[:take]
            self._buf = self._buf[take:]
        return bytes(out)


@dataclass
class Fetch:
    """One input path to materialize under each of `dests` (dirs named after the input)."""
    input: wpb.Input
    dests: list[Path]
    nbytes: int = 0
    error: str = ""
    seen: bool = False


@dataclass
class Staged:
    """A datum's inputs, downloaded: input name -> its directory (`<stage root>/<key>-<name>`)."""
    index: int
    dirs: dict[str, Path]
    mounted: bool = False
    nbytes: int = 0
    seconds: float = 0.0
    error: str = ""


class PfsIO:
    def __init__(self, channel: grpc.Channel, dirs: Dirs, metadata: Sequence[tuple[str, str]] = ()):
        self.pfs = pfs_pb2_grpc.APIStub(channel)
        self.dirs = dirs
        self.md = tuple(metadata)
        self.glob_ok: Optional[bool] = None
        self._pool: Optional[futures.ThreadPoolExecutor] = None

    # ---- downloads ----------------------------------------------------------------------
    def download(self, datums: Sequence[wpb.Datum], stage_root: Path, first_index: int = 0,
                 tag: str = "") -> list[Staged]:
        """Download the inputs of `datums` (indices first_index...) under `stage_root`."""
        t0 = time.monotonic()
        fetches: dict[tuple, Fetch] = {}
        per_datum: list[list[Fetch]] = []
        staged = []
        for i, d in enumerate(datums, first_index):
            dirs: dict[str, Path] = {}
            mine = []
            for inp in d.inputs:
                if inp.s3:
                    continue
                dest = dirs.get(inp.name)
                if dest is None:
                    dest = dirs[inp.name] = stage_root / f"{i}{tag}-{inp.name}"
                    self.dirs.make(dest, fresh=True)
                key = (inp.project, inp.repo, inp.commit, inp.branch, inp.path, inp.empty_files)
                f = fetches.get(key)
                if f is None:
                    f = fetches[key] = Fetch(inp, [])
                if dest not in f.dests:
                    f.dests.append(dest)
                mine.append(f)
            per_datum.append(mine)
            staged.append(Staged(i, dirs))
        self._fetch_all(list(fetches.values()))
        share = (time.monotonic() - t0) / max(1, len(staged))
        for s, mine in zip(staged, per_datum):
            s.seconds = share
            s.nbytes = sum(f.nbytes for f in mine)
            errs = [f.error for f in mine if f.error]
            s.error = errs[0] if errs else ""
        return staged

    def _fetch_all(self, fetches: list[Fetch]) -> None:
        groups: dict[tuple, list[Fetch]] = {}
        singles: list[Fetch] = []
        for f in fetches:
            i = f.input
            if i.empty_files:
                self._guard(f, self._fetch_empty, f)
            elif i.path.endswith("/") or self.glob_ok is False:
                singles.append(f)
            else:
                groups.setdefault((i.project, i.repo, i.commit, i.branch), []).append(f)
        self._fetch_each(singles)
        for group in groups.values():
            batch: list[Fetch] = []
            size = 0
            for f in group:
                batch.append(f)
                size += len(f.input.path) + 1
                if size >= GLOB_BATCH_CHARS:
                    self._fetch_glob(batch)
                    batch, size = [], 0
            if batch:
                self._fetch_glob(batch)

    @staticmethod
    def _guard(f: Fetch, fn, *args) -> None:
        try:
            fn(*args)
        except grpc.RpcError as e:
            f.error = f"downloading {f.input.name}:{f.input.path}: {e.details() or e.code().name}"
        except OSError as e:
            f.error = f"downloading {f.input.name}:{f.input.path}: {e}"

    def _get_tar(self, i: wpb.Input, path: str):
        req = pb.GetFileRequest(file=pb.File(commit=commit_pb(i.project, i.repo, i.commit, i.branch), path=path))
        return self.pfs.GetFileTAR(req, metadata=self.md)

    def _fetch_one(self, f: Fetch) -> None:
        stream = _Stream(self._get_tar(f.input, f.input.path))
        self._untar(stream, {}, f)

    def _fetch_each(self, fetches: list[Fetch]) -> None:
        """One GetFileTAR per path, PER_PATH_CONCURRENCY at a time."""
        if len(fetches) <= 1:
            for f in fetches:
                self._guard(f, self._fetch_one, f)
            return
        if self._pool is None:
            self._pool = futures.ThreadPoolExecutor(PER_PATH_CONCURRENCY, thread_name_prefix="fetch")
        for fut in [self._pool.submit(self._guard, f, self._fetch_one, f) for f in fetches]:
            fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _fetch_glob(self, batch: list[Fetch]) -> None:
        if len(batch) == 1 or self.glob_ok is False:
            self._fetch_each(batch)
            return
        by_path = {f.input.path.strip("/"): f for f in batch}
        # "/{a,b/c}", not "{/a,/b/c}": a glob is cleaned to start with "/" (Pachyderm's CleanPath)
        pattern = "/{" + ",".join(glob_escape(f.input.path.lstrip("/")) for f in batch) + "}"
        try:
            stream = _Stream(self._get_tar(batch[0].input, pattern))
            self._untar(stream, by_path, None)
            ok = any(f.seen for f in batch)
        except (grpc.RpcError, OSError, tarfile.TarError):
            ok = False
        if self.glob_ok is None:
            self.glob_ok = ok
        retry = [f for f in batch if not ok or not f.seen]  # per path: gives the real error
        for f in retry:
            f.nbytes = 0
        self._fetch_each(retry)

    def _untar(self, stream: _Stream, by_path: dict[str, Fetch], only: Optional[Fetch]) -> None:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                name = m.name.strip("/")
                if not name or name.startswith("../") or "/../" in f"/{name}/":
                    continue
                f = only if only is not None else by_path.get(name)
                if f is None:
                    continue
                f.seen = True
                if m.isdir():
                    for d in f.dests:
                        self.dirs.make(d / name)
                elif m.isfile():
                    first = f.dests[0] / name
                    self.dirs.make(first.parent)
                    src = tf.extractfile(m)
                    with open(first, "wb") as out:
                        shutil.copyfileobj(src, out, PUT_CHUNK)
                    f.nbytes += m.size
                    for d in f.dests[1:]:
                        self.dirs.make((d / name).parent)
                        os.link(first, d / name)

    def _fetch_empty(self, f: Fetch) -> None:
        i = f.input
        req = pb.WalkFileRequest(file=pb.File(commit=commit_pb(i.project, i.repo, i.commit, i.branch), path=i.path))
        for fi in self.pfs.WalkFile(req, metadata=self.md):
            name = fi.file.path.strip("/")
            if not name:
                continue
            for d in f.dests:
                if fi.file_type == pb.DIR:
                    self.dirs.make(d / name)
                else:
                    self.dirs.make((d / name).parent)
                    (d / name).touch()
        f.seen = True


class Prefetcher:
    """Downloads a task's datums in order on its own thread (see the module doc)."""

    def __init__(self, io: PfsIO, datums: Sequence[wpb.Datum], stage_root: Path, ahead: int = 64):
        self.io = io
        io.dirs.make(stage_root)
        self.datums = list(datums)
        self.stage_root = stage_root
        self.ahead = ahead
        self._ready: dict[int, Staged] = {}
        self._consumed = 0
        self._cancelled = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start, size, n = 0, 1, len(self.datums)
        while start < n:
            with self._cond:
                while not self._cancelled and start - self._consumed >= self.ahead:
                    self._cond.wait()
                if self._cancelled:
                    return
            batch = self.datums[start:start + size]
            try:
                staged = self.io.download(batch, self.stage_root, start)
            except Exception as e:
                staged = [Staged(start + k, {}, error=f"downloading inputs: {e}")
                          for k in range(len(batch))]
            with self._cond:
                for s in staged:
                    self._ready[s.index] = s
                self._cond.notify_all()
            start += len(batch)
            size = min(size * 2, self.ahead)

    def get(self, index: int) -> Optional[Staged]:
        """The staged inputs of datum `index` (blocks); None once cancelled."""
        with self._cond:
            while index not in self._ready and not self._cancelled:
                self._cond.wait()
            self._consumed = max(self._consumed, index + 1)
            self._cond.notify_all()
            return self._ready.pop(index, None)

    def close(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()
        self._thread.join()
