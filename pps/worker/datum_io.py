"""Moving datum data between pachd and the worker's `/pfs`: downloads, staging, uploads.

Downloads (`PfsIO.download`):
- A datum's input `path` (a repo path; directories end in "/", "/" is the whole repo) is
  fetched with pfs_v2 GetFileTAR and unpacked under `<stage>/<input name>/` KEEPING the full
  repo path (`/a/b.txt` -> `<name>/a/b.txt`), as Pachyderm's downloadData does.
- Identical inputs of several datums in one batch are fetched once; the extra copies are hard
  links (inputs are not to be modified in place, as in Pachyderm).
- File inputs of one input commit are fetched with ONE GetFileTAR whose path is a brace glob
  `{/a,/b,...}` when the server supports it (probed on first use: an error or a reply missing
  every path means "no", and the worker then fetches per path for its whole life).
- `empty_files` inputs become zero-byte files (names from WalkFile); `s3` inputs are not
  mounted; `lazy` inputs are downloaded eagerly (no FIFOs).
- `Prefetcher` downloads a task's datums IN ORDER on one thread, in growing batches
  (1, 2, 4 ... 64 datums), at most `ahead` datums ahead of the consumer.

Uploads (`Uploader`):
- `stage(datum, out_dir)` walks `/pfs/out` (symlinks followed, cycles cut; only regular files;
  directories are implicit), validates every name as a PFS path, then moves the directory out
  of the way (rename) and keeps what symlinks pointed at (hard link or copy), so nothing the
  upload needs is lost when `/pfs` is wiped for the next datum.
- `flush()` sends every staged datum in ONE ModifyFile stream to the open output commit:
  `set_commit`, then for each file `delete_file` + `add_file` tagged with the datum id (the
  delete makes a re-sent task idempotent). A failed stream uploads nothing (pachd applies a
  stream atomically); the caller fails those datums.
"""
from __future__ import annotations

import errno
import os
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import grpc

from pfs.ancestry import validate_path
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc
from proto.worker_v1 import tasks_pb2 as wpb

PUT_CHUNK = 1 << 20
GLOB_BATCH_CHARS = 32 * 1024
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
    """A datum's inputs, downloaded into `dir/<name>/...`."""
    index: int
    dir: Path
    names: list[str]
    nbytes: int = 0
    seconds: float = 0.0
    error: str = ""


class PfsIO:
    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]] = ()):
        self.pfs = pfs_pb2_grpc.APIStub(channel)
        self.md = tuple(metadata)
        self.glob_ok: Optional[bool] = None

    # ---- downloads ----------------------------------------------------------------------
    def download(self, datums: Sequence[wpb.Datum], stage_dirs: Sequence[Path],
                 first_index: int = 0) -> list[Staged]:
        """Download the inputs of `datums` into their stage dirs (see the module doc)."""
        t0 = time.monotonic()
        fetches: dict[tuple, Fetch] = {}
        per_datum: list[list[Fetch]] = []
        staged = []
        for i, (d, sdir) in enumerate(zip(datums, stage_dirs)):
            names, mine = [], []
            for inp in d.inputs:
                if inp.s3:
                    continue
                if inp.name not in names:
                    names.append(inp.name)
                key = (inp.project, inp.repo, inp.commit, inp.branch, inp.path, inp.empty_files)
                f = fetches.get(key)
                if f is None:
                    f = fetches[key] = Fetch(inp, [])
                dest = sdir / inp.name
                if dest not in f.dests:
                    f.dests.append(dest)
                mine.append(f)
            for name in names:
                (sdir / name).mkdir(parents=True, exist_ok=True)
            per_datum.append(mine)
            staged.append(Staged(first_index + i, sdir, names))
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
        for f in fetches:
            i = f.input
            if i.empty_files:
                self._guard(f, self._fetch_empty, f)
            elif i.path.endswith("/") or self.glob_ok is False:
                self._guard(f, self._fetch_one, f)
            else:
                groups.setdefault((i.project, i.repo, i.commit, i.branch), []).append(f)
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
        f.nbytes = stream.nbytes

    def _fetch_glob(self, batch: list[Fetch]) -> None:
        if len(batch) == 1 or self.glob_ok is False:
            for f in batch:
                self._guard(f, self._fetch_one, f)
            return
        by_path = {f.input.path.strip("/"): f for f in batch}
        pattern = "{" + ",".join(glob_escape(f.input.path) for f in batch) + "}"
        try:
            stream = _Stream(self._get_tar(batch[0].input, pattern))
            self._untar(stream, by_path, None)
            ok = any(f.seen for f in batch)
        except (grpc.RpcError, OSError, tarfile.TarError):
            ok = False
        if self.glob_ok is None:
            self.glob_ok = ok
        for f in batch:
            if not ok or not f.seen:  # fall back per path (gives the real error if missing)
                self._guard(f, self._fetch_one, f)
            else:
                f.nbytes = f.nbytes or 0

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
                        (d / name).mkdir(parents=True, exist_ok=True)
                elif m.isfile():
                    first = f.dests[0] / name
                    first.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    with open(first, "wb") as out:
                        shutil.copyfileobj(src, out, PUT_CHUNK)
                    f.nbytes += m.size
                    for d in f.dests[1:]:
                        (d / name).parent.mkdir(parents=True, exist_ok=True)
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
                    (d / name).mkdir(parents=True, exist_ok=True)
                else:
                    (d / name).parent.mkdir(parents=True, exist_ok=True)
                    (d / name).touch()
        f.seen = True


class Prefetcher:
    """Downloads a task's datums in order on its own thread (see the module doc)."""

    def __init__(self, io: PfsIO, datums: Sequence[wpb.Datum], stage_root: Path, ahead: int = 64):
        self.io = io
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
            dirs = [self.stage_root / str(start + k) for k in range(len(batch))]
            try:
                staged = self.io.download(batch, dirs, start)
            except Exception as e:  # noqa: BLE001 - reported per datum, never kills the worker
                staged = [Staged(start + k, dirs[k], [], error=f"downloading inputs: {e}")
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


@dataclass
class _StagedOut:
    datum_id: str
    files: list[tuple[str, Path]]  # (pfs path, local source)
    seconds: float = 0.0


@dataclass
class Uploader:
    io: PfsIO
    commit: pb.Commit
    root: Path  # staging area (same file system as /pfs/out)
    staged: list[_StagedOut] = field(default_factory=list)
    nbytes: int = 0
    _n: int = 0

    def stage(self, datum_id: str, out_dir: Path) -> tuple[list[str], int]:
        """Take `out_dir` (the datum's /pfs/out) for upload; return (pfs paths, bytes).
        Raises ValueError for a file name PFS does not accept."""
        found = _walk_out(out_dir)
        if not found:
            return [], 0
        self._n += 1
        dest = self.root / f"{self._n}"
        ext = self.root / f"{self._n}.links"
        out_real = os.path.realpath(out_dir)
        files: list[tuple[str, Path]] = []
        self.root.mkdir(parents=True, exist_ok=True)
        os.rename(out_dir, dest)
        for k, (path, real, _) in enumerate(found):
            if real == out_real or real.startswith(out_real + "/"):
                src = dest / os.path.relpath(real, out_real)
            else:
                ext.mkdir(exist_ok=True)
                src = ext / str(k)
                try:
                    os.link(real, src)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK):
                        raise
                    shutil.copyfile(real, src)
            files.append((path, src))
        total = sum(size for _, _, size in found)
        self.staged.append(_StagedOut(datum_id, files))
        self.nbytes += total
        return [p for p, _ in files], total

    def pending(self) -> int:
        return len(self.staged)

    def flush(self) -> dict[str, float]:
        """Upload everything staged in one ModifyFile; {datum id: seconds}. Raises grpc.RpcError."""
        if not self.staged:
            return {}
        staged, self.staged, self.nbytes = self.staged, [], 0
        t0 = time.monotonic()
        try:
            self.io.pfs.ModifyFile(self._requests(staged), metadata=self.io.md)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
        rest = (time.monotonic() - t0 - sum(s.seconds for s in staged)) / len(staged)
        return {s.datum_id: s.seconds + max(0.0, rest) for s in staged}

    def discard(self) -> None:
        self.staged, self.nbytes = [], 0
        shutil.rmtree(self.root, ignore_errors=True)

    def _requests(self, staged: list[_StagedOut]) -> Iterator[pb.ModifyFileRequest]:
        yield pb.ModifyFileRequest(set_commit=self.commit)
        for s in staged:
            t = time.monotonic()
            for path, src in s.files:
                yield pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=path, datum=s.datum_id))
                with open(src, "rb") as fh:
                    first = True
                    while True:
                        data = fh.read(PUT_CHUNK)
                        if data or first:
                            yield pb.ModifyFileRequest(add_file=pb.AddFile(
                                path=path, datum=s.datum_id, raw={"value": data}))
                        first = False
                        if len(data) < PUT_CHUNK:
                            break
            s.seconds += time.monotonic() - t


def _walk_out(out_dir: Path) -> list[tuple[str, str, int]]:
    """(pfs path, real path, size) of every regular file under out_dir, symlinks followed."""
    found: list[tuple[str, str, int]] = []
    if not out_dir.is_dir():
        return found
    out_real = os.path.realpath(out_dir)
    seen_dirs = set()
    stack = [("", str(out_dir), False)]  # (pfs path, path, reached through a symlink)
    while stack:
        rel, d, linked = stack.pop()
        st = os.stat(d)
        if (st.st_dev, st.st_ino) in seen_dirs:
            continue  # a symlink cycle
        seen_dirs.add((st.st_dev, st.st_ino))
        with os.scandir(d) as it:
            for e in it:
                p = f"{rel}/{e.name}"
                try:
                    if e.is_dir(follow_symlinks=True):
                        stack.append((p, e.path, linked or e.is_symlink()))
                    elif e.is_file(follow_symlinks=True):
                        try:
                            validate_path(p)
                        except Exception as err:  # pfs.errors.InvalidPath
                            raise ValueError(f"invalid output file name {p!r}: {err}") from None
                        if linked or e.is_symlink():
                            real = os.path.realpath(e.path)
                        else:
                            real = out_real + p
                        found.append((p, real, e.stat(follow_symlinks=True).st_size))
                except FileNotFoundError:
                    continue  # a broken symlink
    found.sort()
    return found
