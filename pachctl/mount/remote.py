"""The gRPC calls the mount makes, in the mount's own terms (entries, heads, byte streams).

Every call here blocks; the file system calls them on worker threads (`trio.to_thread`).

Invariants:
- Reads always name a commit by id (a branch view resolves its head first, `head`), so one
  directory listing or one open file never mixes two commits.
- Listings are paged (`ListFile` with `number` and `paginationMarker`, many entries to a
  message through `PachClient.list_file`), file bytes come by
  byte range (`GetFile` from an offset, cancelled when no longer wanted; a small range by
  itself through pachd's own `pfs_batch_v1.API/ReadRange`, or GetFile where pachd lacks it):
  nothing is read whole.
- A failed call becomes `RemoteError` carrying an errno for the kernel (`ENOENT` for NOT_FOUND,
  `EACCES` for auth failures, `EIO` for the rest, pachd unreachable included) and pachd's
  message for the log; no gRPC exception leaves this module from a read.
"""
from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Optional

import grpc

from proto.pfs_batch_v1 import pfs_batch_pb2 as bpb
from proto.pfs_v2 import pfs_pb2 as pfs

log = logging.getLogger("pachctl.mount")


class Entry(NamedTuple):
    """A file or directory of a commit. `path` has no trailing slash ("/" is the root).
    (A tuple: one is made per listed entry, and a frozen dataclass costs several times more.)"""
    path: str
    is_dir: bool
    size: int
    hash: bytes
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Head:
    """Where a branch view reads: its head commit (None for a branch without commits)."""
    commit: Optional[str]
    finished: bool
    time_ns: int = 0


class RemoteError(Exception):
    def __init__(self, err: int, message: str):
        super().__init__(message)
        self.errno = err


_ERRNO = {
    grpc.StatusCode.NOT_FOUND: errno.ENOENT,
    grpc.StatusCode.PERMISSION_DENIED: errno.EACCES,
    grpc.StatusCode.UNAUTHENTICATED: errno.EACCES,
    grpc.StatusCode.INVALID_ARGUMENT: errno.EINVAL,
}


def as_remote_error(e: grpc.RpcError, what: str) -> RemoteError:
    code = e.code() if hasattr(e, "code") else None
    details = (e.details() if hasattr(e, "details") else "") or (code.name if code else str(e))
    return RemoteError(_ERRNO.get(code, errno.EIO), f"{what}: {details}")


def _ns(ts) -> int:
    return ts.seconds * 1_000_000_000 + ts.nanos


_DIR = pfs.DIR


def entry_of(fi: pfs.FileInfo, mtime_ns: int = 0) -> Entry:
    p = fi.file.path
    if p.endswith("/"):
        p = p.rstrip("/") or "/"
    if not p.startswith("/"):
        p = "/" + p
    if fi.HasField("committed"):
        c = fi.committed
        mtime_ns = c.seconds * 1_000_000_000 + c.nanos
    return Entry(p, fi.file_type == _DIR, fi.size_bytes, fi.hash, mtime_ns)


class Remote:
    """The mount's calls to pachd through one `PachClient`."""

    PAGE = 2000

    def __init__(self, client):
        self.client = client
        self._ranges: Optional[bool] = None  # does pachd answer ReadRange? (unknown until asked)

    @staticmethod
    def repo(view) -> pfs.Repo:
        return pfs.Repo(name=view.repo, type=view.repo_type or "user", project=pfs.Project(name=view.project))

    def commit(self, view, commit_id: str) -> pfs.Commit:
        return pfs.Commit(repo=self.repo(view), id=commit_id)

    def head(self, view) -> Head:
        """The branch's head commit, or Head(None) if the branch has no commit (or none yet)."""
        repo = self.repo(view)
        if view.commit:  # a commit view: always that commit
            req = pfs.InspectCommitRequest(commit=pfs.Commit(repo=repo, id=view.commit))
        else:
            req = pfs.InspectCommitRequest(commit=pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name=view.branch)))
        try:
            ci = self.client.pfs.InspectCommit(req)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return Head(None, True)
            raise as_remote_error(e, f"reading the head of {view.repo}@{view.branch}") from None
        t = ci.finished if ci.HasField("finished") else ci.started
        return Head(ci.commit.id, ci.HasField("finished"), _ns(t))

    def inspect(self, view, commit_id: str, path: str) -> Optional[Entry]:
        """The entry at `path`, or None if there is nothing there."""
        req = pfs.InspectFileRequest(file=pfs.File(commit=self.commit(view, commit_id), path=path))
        try:
            return entry_of(self.client.pfs.InspectFile(req))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise as_remote_error(e, f"inspecting {view.repo}@{commit_id}:{path}") from None

    def list_page(self, view, commit_id: str, path: str, after: Optional[str] = None,
                  number: Optional[int] = None) -> list[Entry]:
        """Up to `number` entries of directory `path`, sorted, starting after the path `after`."""
        c = self.commit(view, commit_id)
        req = pfs.ListFileRequest(file=pfs.File(commit=c, path=path), number=number or self.PAGE)
        if after is not None:
            req.paginationMarker.CopyFrom(pfs.File(commit=c, path=after))
        try:
            return [entry_of(fi) for fi in self.client.list_file(req)]
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return []
            raise as_remote_error(e, f"listing {view.repo}@{commit_id}:{path}") from None

    def file(self, view, commit_id: str, path: str) -> pfs.File:
        return pfs.File(commit=self.commit(view, commit_id), path=path)

    def stream(self, view, commit_id: str, path: str, offset: int):
        """A GetFile call from `offset`: iterate it for the bytes, `cancel()` it when done."""
        req = pfs.GetFileRequest(file=self.file(view, commit_id, path), offset=offset)
        return self.client.pfs.GetFile(req, timeout=None)

    def read_range(self, view, commit_id: str, path: str, offset: int, length: int) -> Optional[bytes]:
        """The file's bytes [offset, offset + length) (fewer at its end) in one call; None when
        pachd does not offer ReadRange (a Pachyderm cluster): then stream them with `stream`."""
        if self._ranges is False:
            return None
        req = bpb.ReadRangeRequest(file=pfs.File(commit=self.commit(view, commit_id), path=path), offset=offset,
                                   length=length)
        try:
            data = self.client.pfs_batch.ReadRange(req).value
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._ranges = False
                return None
            raise as_remote_error(e, f"reading {view.repo}@{commit_id}:{path}") from None
        self._ranges = True
        return data

    def download(self, view, commit_id: str, path: str, fd: int, limit: Optional[int] = None) -> int:
        """Write the file's first `limit` bytes (all if None) to `fd`; the number written."""
        import os
        call = self.stream(view, commit_id, path, 0)
        n = 0
        try:
            for msg in call:
                data = msg.value
                if limit is not None and n + len(data) > limit:
                    data = data[:limit - n]
                view_ = memoryview(data)
                while view_:
                    w = os.write(fd, view_)
                    view_ = view_[w:]
                n += len(data)
                if limit is not None and n >= limit:
                    break
        except grpc.RpcError as e:
            raise as_remote_error(e, f"reading {view.repo}@{commit_id}:{path}") from None
        finally:
            call.cancel()
        return n


def iter_bytes(call) -> Iterator[bytes]:
    for msg in call:
        yield msg.value
