"""Staged files on local disk, and the commit: one ModifyFile stream per written view.

Layout: `<staging root>/<session>/<view>/<n>` holds staged file number n; the overlay maps
repo paths to them. Files are written in place by the file system (pwrite), never held in
memory. At commit pachd reads them itself when it runs on this machine: each staged file is
opened here and its descriptor handed to pachd's local socket (pachctl.local_read; pachd
never opens our paths, so this works whatever user pachd runs as), and the ModifyFile names
it by a `pachd-local-fd:` handle. Where that is not available (a remote pachd, an older one,
no abstract sockets) it falls back to `file://` URLs (same machine, pachd can read the path)
and then to streaming the bytes over gRPC.

Invariants:
- A staged file whose write failed (disk full, I/O error) is `failed`: it is left out of the
  commit (reported by name) until it is truncated to zero or removed, so a commit never
  carries a half-written file.
- `commit_plan` sends the whole plan in ONE ModifyFile call on the branch: pachd applies it
  atomically as one new commit (or into the branch's open commit), so a failure at any
  point leaves the branch as it was, and the staged files stay for the next try.
- The upload route only changes where pachd reads the bytes from, never the commit: the same
  ModifyFile requests in the same order, one file's bytes from one source. A route pachd
  refuses (a handle it does not know or that expired, a file:// it cannot read) makes the
  whole ModifyFile fail before the branch moves; the plan is then sent again by the next
  route. At most MAX_HANDLES descriptors are handed over per commit (pachd serves a bounded
  number of local connections); the files beyond go by the next route.
- Symbolic links are committed as the content of the file they point to (resolved in the
  overlay, or on local disk for paths outside the mount); one pointing nowhere, or at a
  directory, is left out and reported.
- A session's directory is removed only when nothing is left staged in it. At the end of a
  mount whose commits all succeeded it is renamed to `<staging root>/.removing-<session>`
  (one atomic step: recovery never looks at dot-names) and deleted by a detached `rm -rf`,
  so the mount process exits without waiting for the file system to free its blocks
  (about a second per GiB once the staged pages reached the disk). A `.removing-*` left by
  a remover that did not finish is deleted when the next mount starts.
- While its mount runs, a session holds an exclusive lock (flock) on `<session>/.lock`; the
  lock goes with the process however it ends, so a session whose lock is free was left by
  a stopped mount and its journals (pachctl.mount.journal) can be committed by
  `pachctl mount --recover` (pachctl.mount.recover), which takes the same lock.
"""
from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
import posixpath
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import grpc
from google.protobuf import wrappers_pb2

from pachctl.transfer import file_url
from proto.pfs_v2 import pfs_pb2 as pfs

log = logging.getLogger("pachctl.mount")
REMOVING = ".removing-"  # prefix of session directories being deleted (see the invariants)
CHUNK = 2 * 1024 * 1024
MAX_LINKS = 40
MAX_HANDLES = 64  # descriptors handed to pachd in one commit (its local socket serves 256 at once)
FD, URL, RAW = "descriptor", "file-url", "grpc"  # upload routes, fastest first


class StagedFile:
    __slots__ = ("path", "dirty", "failed", "nopen", "mode")

    def __init__(self, path: str):
        self.path = path          # the local file
        self.dirty = True         # changed since the last commit
        self.failed = 0           # errno of a failed write (left out of commits)
        self.nopen = 0            # open handles
        self.mode = 0o644

    def size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def mtime_ns(self) -> int:
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return 0


class Staging:
    """The staged files of one mount session."""

    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)
        self._n = itertools.count(1)
        self.lock_fd = lock_session(root)
        if self.lock_fd is None:
            raise OSError(errno.EBUSY, f"staging directory {root} is in use by another process")
        self.journals: list = []
        base = os.path.dirname(root.rstrip("/"))
        leftovers = [os.path.join(base, d) for d in os.listdir(base) if d.startswith(REMOVING)]
        if leftovers:
            remove_behind(leftovers)

    def journal(self, view, mountpoint: str):
        """Write `view`'s overlay changes down as they happen (see pachctl.mount.journal)."""
        from pachctl.mount.journal import Journal
        j = Journal(self.root, view, mountpoint)
        self.journals.append(j)
        return j

    def _dir(self, view_name: str) -> str:
        d = os.path.join(self.root, view_name)
        os.makedirs(d, mode=0o700, exist_ok=True)
        return d

    def new_file(self, view_name: str) -> StagedFile:
        path = os.path.join(self._dir(view_name), str(next(self._n)))
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        return StagedFile(path)

    def copy_up(self, view_name: str, download: Callable[[int], int]) -> StagedFile:
        """A staged copy of a remote file: `download(fd)` writes its bytes (blocking)."""
        sf = self.new_file(view_name)
        fd = os.open(sf.path, os.O_WRONLY)
        try:
            download(fd)
        except BaseException:
            os.close(fd)
            self.drop(sf)
            raise
        os.close(fd)
        return sf

    @staticmethod
    def drop(sf: StagedFile) -> None:
        try:
            os.unlink(sf.path)
        except FileNotFoundError:
            pass

    def remove_if_empty(self) -> bool:
        """Remove the session directory if no staged file is left in it."""
        for _, _, files in os.walk(self.root):
            if files:
                return False
        shutil.rmtree(self.root, ignore_errors=True)
        return True

    def remove_all(self, behind: bool = False) -> None:
        """Delete the session's directory; `behind`: rename it out of the way and leave the
        deleting to a detached process (falls back to deleting it here)."""
        for j in self.journals:
            j.close()
        root = self.root.rstrip("/")
        if behind:
            trash = os.path.join(os.path.dirname(root), REMOVING + os.path.basename(root))
            try:
                os.rename(root, trash)
            except OSError:
                behind = False
            else:
                if not remove_behind([trash]):
                    shutil.rmtree(trash, ignore_errors=True)
        if not behind:
            shutil.rmtree(root, ignore_errors=True)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def remove_behind(paths: list[str]) -> bool:
    """Start `rm -rf paths` detached from this process (it goes on after we exit, and is
    nobody's zombie: the shell that starts it exits at once); False if it could not start."""
    try:
        subprocess.run(["sh", "-c", 'rm -rf -- "$@" >/dev/null 2>&1 </dev/null &', "sh", *paths],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, start_new_session=True, timeout=10)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def lock_session(root: str) -> Optional[int]:
    """Take the session's lock (an fd to keep open), or None if a live process holds it."""
    fd = os.open(os.path.join(root, ".lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


# ---- committing --------------------------------------------------------------------------------
@dataclass
class CommitResult:
    ops: int = 0
    commit: str = ""
    skipped: list = field(default_factory=list)   # (path, reason) left out of the commit
    route: str = ""                                 # how the staged bytes reached pachd (FD, URL, RAW)


class LinkResolver:
    """Resolves a symlink at commit to what it points to: ("staged", StagedFile),
    ("remote", commit, path), ("local", path) or ("skip", reason)."""

    def __init__(self, overlay, head: Optional[str], view_mountpoint: str,
                 remote_exists: Callable[[Optional[str], str], Optional[bool]]):
        self.overlay = overlay
        self.head = head
        self.root = view_mountpoint.rstrip("/")
        self.remote_exists = remote_exists  # (commit, path) -> True file / False dir / None

    def resolve(self, path: str, target: str):
        for _ in range(MAX_LINKS):
            if target.startswith("/"):
                if target == self.root or target.startswith(self.root + "/"):
                    inner = target[len(self.root):] or "/"
                else:
                    return self._local(target)
            else:
                inner = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                if inner.startswith("//"):
                    inner = inner[1:]
                if inner == ".." or inner.startswith("../") or inner.startswith("/.."):
                    return self._local(posixpath.normpath(self.root + "/" + posixpath.join(
                        posixpath.dirname(path).lstrip("/"), target)))
            r = self.overlay.resolve(inner)
            if r is None:
                return ("skip", f"it is a symbolic link to {target}, which does not exist")
            if r.kind == "link":
                path, target = inner, r.change.target
                continue
            if r.kind == "file":
                return ("staged", r.change.staged)
            if r.kind == "dir":
                return ("skip", f"it is a symbolic link to the directory {target}")
            commit = r.commit or self.head
            kind = self.remote_exists(commit, r.src) if commit else None
            if kind is None:
                return ("skip", f"it is a symbolic link to {target}, which does not exist")
            if kind is False:
                return ("skip", f"it is a symbolic link to the directory {target}")
            return ("remote", commit, r.src)
        return ("skip", "too many levels of symbolic links")

    @staticmethod
    def _local(path: str):
        if os.path.isdir(path):
            return ("skip", f"it is a symbolic link to the directory {path}")
        if not os.path.isfile(path):
            return ("skip", f"it is a symbolic link to {path}, which does not exist")
        return ("local", path)


def _add(path: str, data: bytes) -> pfs.ModifyFileRequest:
    return pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=data)))


class LocalHandles:
    """Staged files handed to pachd's local socket for one ModifyFile: each is opened here and
    its descriptor passed over (SCM_RIGHTS); pachd answers a handle that the ModifyFile names.
    Each handle's connection stays open until `close()` (pachd drops an unused handle when its
    connection closes). gRPC pulls the requests on a thread of its own, which may still be
    pulling when the call has failed: once closed, nothing more is handed over."""

    def __init__(self, socket_name: str):
        self.socket_name = socket_name
        self.conns: list = []
        self.closed = False
        self.file_urls = True  # a file that cannot be handed over goes by file:// (else gRPC)
        self._lock = threading.Lock()

    def url(self, local: str) -> Optional[str]:
        """A `pachd-local-fd:` URL for the file at `local`, or None (use another route)."""
        from pachctl.local_read import URL_SCHEME, _hand_over
        with self._lock:
            if self.closed or len(self.conns) >= MAX_HANDLES:
                return None
        try:
            fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            got = _hand_over(self.socket_name, fd)
        finally:
            os.close(fd)  # pachd holds its own copy now
        if got is None:
            return None
        conn, handle = got
        with self._lock:
            if self.closed:
                conn.close()  # the call is over: pachd drops the handle with the connection
                return None
            self.conns.append(conn)
        return URL_SCHEME + handle

    def close(self) -> None:
        with self._lock:
            self.closed = True
            conns, self.conns = self.conns, []
        for c in conns:
            c.close()


def _file_requests(path: str, local: str, route: str,
                   handles: Optional[LocalHandles] = None) -> Iterator[pfs.ModifyFileRequest]:
    if route == FD and handles is not None:
        url = handles.url(local)
        if url is not None:
            yield _add(path, b"")  # the file exists even if it is empty (as a lean put sends it)
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, url=pfs.AddFile.URLSource(URL=url)))
            return
        route = URL if handles.file_urls else RAW
    if route == URL:
        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, url=pfs.AddFile.URLSource(URL=file_url(local))))
        return
    yield _add(path, b"")
    with open(local, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                return
            yield _add(path, b)


def plan_requests(branch: pfs.Branch, plan: list, links: LinkResolver, route: str,
                  result: CommitResult, handles: Optional[LocalHandles] = None) -> Iterator[pfs.ModifyFileRequest]:
    """The ModifyFile requests applying `plan` on `branch`, staged bytes by `route` (FD needs
    `handles`; a file it cannot hand over goes by file:// when `handles.file_urls`, else RAW)."""
    repo = branch.repo
    yield pfs.ModifyFileRequest(set_commit=pfs.Commit(repo=repo, branch=branch))
    for op in plan:
        kind, path = op[0], op[1]
        if kind == "delete":
            yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path))
        elif kind == "put":
            yield from _file_requests(path, op[2].path, route, handles)
        elif kind == "copy":
            src = pfs.File(commit=pfs.Commit(repo=repo, id=op[2]), path=op[3])
            yield pfs.ModifyFileRequest(copy_file=pfs.CopyFile(dst=path, src=src))
        elif kind == "link":
            target = links.resolve(path, op[2])
            if target[0] == "skip":
                result.skipped.append((path, target[1]))
            elif target[0] == "staged":
                yield from _file_requests(path, target[1].path, route, handles)
            elif target[0] == "local":
                yield from _file_requests(path, target[1], route, handles)
            else:
                src = pfs.File(commit=pfs.Commit(repo=repo, id=target[1]), path=target[2])
                yield pfs.ModifyFileRequest(copy_file=pfs.CopyFile(dst=path, src=src))
        result.ops += 1


def _refused_file_url(e: grpc.RpcError) -> bool:
    details = (e.details() if hasattr(e, "details") else "") or ""
    return e.code() == grpc.StatusCode.INVALID_ARGUMENT and ("file://" in details or "cannot read" in details)


class PachdUnreachable(Exception):
    """pachd did not answer (after the retries asked for)."""


RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def first_route(local_pachd: bool, env=None) -> str:
    """The fastest upload route allowed: FD/URL for a pachd on this machine unless
    PACHCTL_LOCAL_UPLOAD is 0/false/no, else RAW."""
    env = os.environ if env is None else env
    if not local_pachd or env.get("PACHCTL_LOCAL_UPLOAD", "1").lower() in ("0", "false", "no"):
        return RAW
    import socket
    return FD if hasattr(socket, "SCM_RIGHTS") else URL


def commit_plan(client, view, plan: list, links: LinkResolver, *, local_pachd: bool,
                retries: int = 0, say: Optional[Callable[[str], None]] = None,
                backoff: float = 1.0, route: Optional[str] = None) -> CommitResult:
    """Send `plan` as one ModifyFile on the view's branch; the new head's id in the result.

    Staged bytes go by `route` (default: the fastest allowed, see `first_route`); a route
    pachd refuses is replaced by the next one and the plan sent again (nothing of the refused
    call landed). With `retries`, an unreachable pachd is tried again (1, 2, 4... seconds
    apart). `result.route` says which route the commit went by."""
    from pachctl.local_read import _fallback, _socket_name
    repo = pfs.Repo(name=view.repo, type=view.repo_type or "user", project=pfs.Project(name=view.project))
    branch = pfs.Branch(repo=repo, name=view.branch)
    route = route or first_route(local_pachd)
    attempt = 0
    while True:
        result = CommitResult()
        handles = None
        try:
            if route == FD:
                try:
                    name = _socket_name(client, 10)
                except grpc.RpcError as e:
                    if e.code() in RETRYABLE:
                        raise
                    name = None  # whatever pachd says about its socket, the other routes remain
                if not name:
                    route = URL
                    continue
                handles = LocalHandles(name)
            client.pfs.ModifyFile(plan_requests(branch, plan, links, route, result, handles), timeout=None)
            break
        except grpc.RpcError as e:
            if route == FD and _fallback(e):
                route = URL
                continue
            if route == URL and _refused_file_url(e):
                route = RAW
                continue
            if e.code() in RETRYABLE and attempt < retries:
                wait = backoff * (2 ** attempt)
                attempt += 1
                if say:
                    say(f"pachd did not answer ({e.details() or e.code().name}); trying the commit to "
                        f"{view.repo}@{view.branch} again in {wait:g}s ({attempt}/{retries})")
                time.sleep(wait)
                continue
            raise
        finally:
            if handles is not None:
                handles.close()
    result.route = route
    try:
        ci = client.pfs.InspectCommit(pfs.InspectCommitRequest(commit=pfs.Commit(repo=repo, branch=branch)))
        result.commit = ci.commit.id
    except grpc.RpcError:
        pass
    return result


def disk_error(e: OSError) -> int:
    return e.errno if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG) else errno.EIO
