"""Moving bytes for `put file` and `get file`: the ModifyFile stream, tar extraction,
progress bars. Which source goes to which path is planned in pachctl.put_plan (re-exported here).

Invariants:
- A whole `put file` is ONE ModifyFile stream (one set_commit, then per file: delete_file
  unless appending, an empty add_file, then the bytes in CHUNK-sized add_file messages), so
  pachd applies it atomically: a local read error cancels the stream and nothing is written.
- URLs (http, https, s3, ...) are sent as AddFile.url; pachd fetches them.
- Fast path: when pachd is on loopback, plain local files go as `file://` URLs so pachd reads
  them itself (no bytes through gRPC), and a `-r` directory as ONE recursive file:// URL that
  pachd walks (the client does not walk it); if pachd refuses, the same put is streamed
  instead, the directory then walked by the client as its files are sent.
  `PACHCTL_LOCAL_UPLOAD=0` turns this off; puts that read stdin never use it.
- Extraction never writes outside the output directory (absolute names and `..` are refused).
- Progress bars (rich) go to the given stream and only when enabled; they never touch data.
"""
from __future__ import annotations

import io
import logging
import os
import posixpath
import sys
import tarfile
from typing import BinaryIO, Iterable, Iterator, Optional, TextIO
from urllib.parse import quote

from google.protobuf import wrappers_pb2

from pachctl.put_plan import (PROGRESS_THRESHOLD, TAR_SUFFIXES, Item, TransferError, _pfs_path,  # noqa: F401
                              expand_dirs, is_url, plan_put, want_progress)  # re-exported
from proto.pfs_v2 import pfs_pb2 as pfs

log = logging.getLogger("pachctl.transfer")
CHUNK = 2 * 1024 * 1024
LOCAL_UPLOAD_ENV = "PACHCTL_LOCAL_UPLOAD"


def read_input_list(spec: str, stdin: BinaryIO) -> list[str]:
    """`-i`: sources one per line, from a local file, a URL or `-` (stdin)."""
    if spec == "-":
        text = stdin.read().decode()
    elif is_url(spec):
        from urllib.request import urlopen
        with urlopen(spec) as r:  # noqa: S310 - the user asked for this URL
            text = r.read().decode()
    else:
        with open(spec, encoding="utf-8") as f:
            text = f.read()
    return [line.strip() for line in text.splitlines() if line.strip()]


# ---- progress --------------------------------------------------------------------------------
class Progress:
    """A rich transfer bar, or nothing."""

    def __init__(self, enabled: bool, total: Optional[int], description: str, stream: TextIO):
        self._p = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress as RichProgress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)
        self._p = RichProgress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                               TransferSpeedColumn(), TimeRemainingColumn(),
                               console=Console(file=stream), transient=False)
        self._task = self._p.add_task(description, total=total)
        self._p.start()

    @property
    def enabled(self) -> bool:
        return self._p is not None

    def advance(self, n: int) -> None:
        if self._p is not None:
            self._p.advance(self._task, n)

    def reset(self) -> None:
        if self._p is not None:
            self._p.reset(self._task)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


# ---- put -------------------------------------------------------------------------------------
def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while True:
        b = f.read(CHUNK)
        if not b:
            return
        yield b


def _add(path: str, data: bytes) -> pfs.ModifyFileRequest:
    return pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=data)))


def file_url(path: str) -> str:
    """`file://` URL of a local path (absolute, percent-quoted)."""
    return "file://" + quote(os.path.abspath(path))


def modify_requests(commit: pfs.Commit, items: Iterable[Item], *, append: bool, stdin: BinaryIO,
                    progress: Progress, local_files: bool = False,
                    _first: bool = True) -> Iterator[pfs.ModifyFileRequest]:
    """The ModifyFile stream; with local_files, plain local files go as file:// URLs and a
    local directory (with -r) as one recursive file:// URL that pachd walks."""
    if _first:
        yield pfs.ModifyFileRequest(set_commit=commit)
    trees_sent: set[str] = set()
    for it in items:
        if it.kind == "dir" and not (local_files and not append):
            # pachd cannot walk it for us: its files one by one (walked now, as they are sent)
            yield from modify_requests(commit, expand_dirs([it]), append=append, stdin=stdin,
                                       progress=progress, local_files=local_files, _first=False)
            continue
        if it.tree and local_files and not append:
            # a whole local directory: one recursive file:// source, pachd walks it and
            # overwrites each file (the same result as one delete+add per file)
            if it.tree not in trees_sent:
                trees_sent.add(it.tree)
                yield pfs.ModifyFileRequest(add_file=pfs.AddFile(
                    path=it.tree_dest, url=pfs.AddFile.URLSource(URL=file_url(it.tree), recursive=True)))
            progress.advance(it.size)
            continue
        if it.kind == "tar":
            yield from _tar_requests(it, append, progress)
            continue
        if not append and not (it.kind == "url" and it.recursive):
            yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=it.dest))
        if it.kind == "url":
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(
                path=it.dest, url=pfs.AddFile.URLSource(URL=it.src, recursive=it.recursive)))
            continue
        yield _add(it.dest, b"")
        if it.kind == "file" and local_files:
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(
                path=it.dest, url=pfs.AddFile.URLSource(URL=file_url(it.src))))
            progress.advance(it.size)
            continue
        if it.kind == "stdin":
            src = stdin
            for b in _chunks(src):
                progress.advance(len(b))
                yield _add(it.dest, b)
            continue
        with open(it.src, "rb") as f:
            for b in _chunks(f):
                progress.advance(len(b))
                yield _add(it.dest, b)


def _tar_requests(it: Item, append: bool, progress: Progress) -> Iterator[pfs.ModifyFileRequest]:
    with tarfile.open(it.src, mode="r|*") as tf:
        for m in tf:
            if not m.isfile():
                continue
            dest = _pfs_path(it.dest, m.name)
            if not append:
                yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=dest))
            yield _add(dest, b"")
            f = tf.extractfile(m)
            for b in _chunks(f):
                progress.advance(len(b))
                yield _add(dest, b)


class _QuietRequestErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "iterating requests" not in record.getMessage()


_channel_log = logging.getLogger("grpc._channel")
_channel_log.addFilter(_QuietRequestErrors())


def is_loopback(client) -> bool:
    """Is pachd on this machine (so it can read our files by path)?"""
    a = client.address
    return bool(a.unix_socket) or a.host in ("localhost", "::1", "ip6-localhost") or a.host.startswith("127.")


def local_upload_allowed(client, items: list[Item], env=None) -> bool:
    """file:// fast path: pachd on loopback, not disabled, and nothing from stdin (which a
    fallback could not read twice)."""
    env = os.environ if env is None else env
    return (env.get(LOCAL_UPLOAD_ENV, "1") not in ("0", "false", "no") and is_loopback(client)
            and any(it.kind in ("file", "dir") for it in items) and not any(it.kind == "stdin" for it in items))


def _refused_local(e) -> bool:
    import grpc
    details = (e.details() if hasattr(e, "details") else "") or ""
    return e.code() == grpc.StatusCode.INVALID_ARGUMENT and ("file://" in details or "cannot read" in details)


def put(client, commit: pfs.Commit, items: list[Item], *, append: bool, stdin: BinaryIO,
        progress: Progress, compress: bool = False, local_files: bool = False) -> None:
    """Send everything through one ModifyFile call; a local error aborts the whole stream.

    With local_files, plain local files are sent as file:// URLs for pachd to read itself; if
    pachd refuses them (another machine or container, another user), the whole put is sent
    again with the bytes streamed. Either way the put is one atomic ModifyFile.
    """
    import grpc

    failure: list[BaseException] = []

    def guarded(local: bool):
        try:
            yield from modify_requests(commit, items, append=append, stdin=stdin, progress=progress,
                                       local_files=local)
        except Exception as e:  # re-raised below, after gRPC cancelled the stream
            failure.append(e)
            raise

    kw = {"compression": grpc.Compression.Gzip} if compress else {}
    try:
        if local_files:
            try:
                client.pfs.ModifyFile(guarded(True), **kw)
                log.debug("put: %d local file(s) sent as file:// URLs", sum(it.kind == "file" for it in items))
                return
            except grpc.RpcError as e:
                if failure or not _refused_local(e):
                    raise
                log.debug("put: pachd refused file:// sources (%s); streaming the bytes instead", e.details())
                progress.reset()
        client.pfs.ModifyFile(guarded(False), **kw)
    except grpc.RpcError:
        if failure:
            raise failure[0] from None
        raise
    finally:
        progress.close()


# ---- get -------------------------------------------------------------------------------------
class StreamReader(io.RawIOBase):
    """A readable file over a stream of BytesValue messages."""

    def __init__(self, messages: Iterable, progress: Optional[Progress] = None):
        self._it = iter(messages)
        self._buf = memoryview(b"")
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(next(self._it).value)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        if self._progress is not None:
            self._progress.advance(n)
        return n


def write_stream(messages: Iterable, out_path: Optional[str], stdout: BinaryIO, progress: Progress) -> None:
    """GetFile's bytes to out_path (created even when empty, only once data or EOF arrives) or stdout."""
    f = None
    try:
        for msg in messages:
            if f is None:
                f = open(out_path, "wb") if out_path else stdout
            f.write(msg.value)
            progress.advance(len(msg.value))
        if f is None:
            f = open(out_path, "wb") if out_path else stdout
    finally:
        progress.close()
        if f is not None and out_path:
            f.close()
        elif f is not None:
            f.flush()


def _safe_rel(name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise TransferError(f"refusing to extract {name!r}: it would land outside the output directory")
    return "/".join(parts)


def extract_tar(messages: Iterable, requested: str, out: str, progress: Progress) -> int:
    """Extract GetFileTAR output; entries under `requested` land under out (a file: at out)."""
    prefix = requested.strip("/")
    n = 0
    try:
        with tarfile.open(fileobj=io.BufferedReader(StreamReader(messages, progress), CHUNK), mode="r|") as tf:
            for m in tf:
                name = _safe_rel(m.name)
                if prefix and name == prefix:
                    rel = ""
                elif prefix and name.startswith(prefix + "/"):
                    rel = name[len(prefix) + 1:]
                else:
                    rel = name
                dest = os.path.join(out, *rel.split("/")) if rel else out
                if not rel and m.isfile() and os.path.isdir(out):
                    dest = os.path.join(out, posixpath.basename(name))
                if m.isdir():
                    os.makedirs(dest, exist_ok=True)
                elif m.isfile():
                    parent = os.path.dirname(dest)
                    if parent:
                        os.makedirs(parent, exist_ok=True)
                    src = tf.extractfile(m)
                    with open(dest, "wb") as f:
                        while True:
                            b = src.read(CHUNK)
                            if not b:
                                break
                            f.write(b)
                    n += 1
    finally:
        progress.close()
    return n


def stdout_binary() -> BinaryIO:
    return getattr(sys.stdout, "buffer", sys.stdout)
