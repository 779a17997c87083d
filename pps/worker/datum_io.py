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
from typing import Iterator, Optional, Sequence

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


FILE, DIR, OTHER = "file", "dir", "other"
_BLOCK = 512


def _tar_number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256
        n = int.from_bytes(field[1:], "big")
        return n - (1 << (8 * len(field) - 8)) if field[0] & 0x40 else n
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def read_tar(stream: "_Stream") -> Iterator[tuple[str, str, int]]:
    """The members of a tar stream as (name, FILE | DIR | OTHER, size). After each, the caller
    reads the member's `size` data bytes (or skips them); the block padding is handled here.
    Reads ustar, pax ('x'; 'g' ignored) and GNU long names ('L'), as pachd and tar write them.
    Raises tarfile.ReadError for a damaged header."""
    pending: dict[str, str] = {}
    while True:
        hdr = stream.read(_BLOCK)
        if len(hdr) < _BLOCK or hdr == bytes(_BLOCK):
            return  # end of archive (two zero blocks, or the stream's end)
        if _tar_number(hdr[148:156]) != sum(hdr[:148]) + 256 + sum(hdr[156:]):
            raise tarfile.ReadError("bad tar header checksum")
        kind_flag, size = hdr[156:157], _tar_number(hdr[124:136])
        name = hdr[:100].split(b"\0", 1)[0]
        if hdr[257:262] == b"ustar":
            prefix = hdr[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        pad = -size % _BLOCK
        if kind_flag in (b"x", b"g", b"L", b"K"):
            data = stream.read(size)
            stream.skip(pad)
            if kind_flag == b"x":
                pending.update(_pax_records(data))
            elif kind_flag == b"L":
                pending["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        text = pending.pop("path", None) or name.decode("utf-8", "surrogateescape")
        if "size" in pending:
            size = int(pending["size"])
            pad = -size % _BLOCK
        pending.clear()
        kind = FILE if kind_flag in (b"0", b"\0", b"7") else DIR if kind_flag == b"5" else OTHER
        if kind == DIR:
            size = pad = 0
            text = text.rstrip("/")
        stream.pending_pad = pad
        yield text, kind, size
        stream.skip(stream.pending_pad)
        stream.pending_pad = 0


def _pax_records(data: bytes) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(data):
        sp = data.index(b" ", pos)
        length = int(data[pos:sp])
        key, _, value = data[sp + 1:pos + length - 1].partition(b"=")
        out[key.decode()] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class _Stream:
    """A file-like reader over a GetFileTAR response stream (counts bytes)."""

    def __init__(self, responses):
        self._it = iter(responses)
        self._buf = memoryview(b"")
        self.nbytes = 0
        self.pending_pad = 0

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

    def _more(self) -> bool:
        if not self._buf:
            try:
                self._buf = memoryview(next(self._it).value)
            except StopIteration:
                return False
            self.nbytes += len(self._buf)
        return True

    def skip(self, n: int) -> None:
        while n > 0 and self._more():
            take = min(n, len(self._buf))
            self._buf = self._buf[take:]
            n -= take

    def copy_to(self, out, n: int) -> None:
        """Write the next `n` bytes to `out`; raises tarfile.ReadError if the stream ends first."""
        while n > 0:
            if not self._more():
                raise tarfile.ReadError("the tar stream ended inside a file")
            take = min(n, len(self._buf))
            out.write(self._buf[:take])
            self._buf = self._buf[take:]
            n -= take


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
        made: set[str] = set()  # directories known to exist (spares a stat per file)

        def make_dir(path: str) -> None:
            if path not in made:
                self.dirs.make(Path(path))
                made.add(path)

        for name, kind, size in read_tar(stream):
            name = name.strip("/")
            if not name or name.startswith("../") or "/../" in f"/{name}/":
                stream.skip(size)
                continue
            f = only if only is not None else by_path.get(name)
            if f is None:
                stream.skip(size)
                continue
            f.seen = True
            dests = [str(d) for d in f.dests]
            if kind == DIR:
                for d in dests:
                    make_dir(f"{d}/{name}")
            elif kind == FILE:
                first = f"{dests[0]}/{name}"
                make_dir(os.path.dirname(first))
                with open(self.dirs.create_file(Path(first)), "wb") as out:
                    stream.copy_to(out, size)
                    out.truncate()  # a recycled inode: nothing of its old contents stays
                f.nbytes += size
                for d in dests[1:]:
                    make_dir(os.path.dirname(f"{d}/{name}"))
                    os.link(first, f"{d}/{name}")
            stream.skip(size if kind != FILE else 0)

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
