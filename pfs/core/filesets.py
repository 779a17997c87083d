"""File sets: temporary, immutable sets of files named by an id (Pachyderm's file sets).

A file set is a file tree (an index root, like a commit's) that belongs to no repo, plus an
expiry time. Clients build one from a stream of operations (CreateFileSet, storage's
CreateFileset), take one from a commit (GetFileSet), combine several (ComposeFileSet), split
one into path ranges (ShardFileSet), read it, and add it to an open commit (AddFileSet).

Invariants:
- A file set never changes after it is created; only its expiry moves (RenewFileSet), and
  by at most MAX_TTL from now. An expired file set is gone: every use of it is NOT_FOUND.
- Creating one writes its content first and its record last (one metadata write), so an
  interrupted creation leaves no file set behind.
- A garbage collector must treat the roots of unexpired file set records (keys.pachd_key
  ("fileset", id)) as live, like commit roots.
- Composition applies the sets in order: a later set's file replaces an earlier one at the
  same path. File sets hold files only (no deletion markers), so composition only adds.
"""
from __future__ import annotations

import re
import time
import uuid
from typing import Iterator, Optional

import msgpack

from pfs import ancestry
from pfs.core.filetree import FileTree, WriteSession, file_entry
from pfs.core.keys import pachd_key, pachd_prefix
from pfs.errors import InvalidArgument, NotFound
from pfs.model import CommitInfo

FILESETS_REPO = "__filesets__"  # Pachyderm's virtual repo: its commit ids are file set ids
DEFAULT_TTL = 10 * 60.0
MAX_TTL = 30 * 60.0
_ID = re.compile(r"^[0-9a-f]{32}$")


class _Unlocked:
    def release(self) -> None:
        pass


class FileSets:
    """File sets over a Pfs core (its index, content store and metadata)."""

    def __init__(self, pfs, clock=time.time):
        self.pfs = pfs
        self.meta = pfs.meta
        self.clock = clock

    # ---- records -----------------------------------------------------------------------------
    def _key(self, fs_id: str) -> bytes:
        return pachd_key("fileset", fs_id)

    def _put(self, root: Optional[bytes], ttl: float) -> str:
        fs_id = uuid.uuid4().hex
        now = self.clock()
        self.meta.put(self._key(fs_id), msgpack.packb({"root": root, "expires": now + ttl, "created": now}))
        self._sweep(now)
        return fs_id

    def _sweep(self, now: float) -> None:
        """Forget expired file sets (their content becomes garbage)."""
        for k, v in self.meta.scan(prefix=pachd_prefix("fileset")):
            if msgpack.unpackb(v)["expires"] <= now:
                self.meta.delete(k)

    def root(self, fs_id: str) -> Optional[bytes]:
        if not _ID.match(fs_id or ""):
            raise InvalidArgument(f"invalid file set id {fs_id!r} (expected 32 hex characters)")
        raw = self.meta.get(self._key(fs_id))
        if raw is None:
            raise NotFound(f"file set {fs_id} not found")
        rec = msgpack.unpackb(raw)
        if rec["expires"] <= self.clock():
            self.meta.delete(self._key(fs_id))
            raise NotFound(f"file set {fs_id} not found (it expired)")
        return rec["root"]

    def tree(self, fs_id: str) -> FileTree:
        return FileTree(self.pfs.index, self.root(fs_id))

    def as_commit(self, fs_id: str) -> CommitInfo:
        """A read-only stand-in commit whose tree is the file set (for the commit read paths)."""
        from pfs.model import CommitRef, Repo
        return CommitInfo(commit=CommitRef(Repo("default", FILESETS_REPO, "user"), fs_id, ""), origin="USER",
                          parent=None, started=0.0, finishing=0.0, finished=0.0, root=self.root(fs_id))

    # ---- making file sets ------------------------------------------------------------------
    def writer(self) -> "FileSetWriter":
        return FileSetWriter(self)

    def from_commit(self, ci: CommitInfo, diff: bool = False, ttl: float = DEFAULT_TTL) -> str:
        """The commit's files (TOTAL), or the files it added or changed against its parent (DIFF)."""
        if not diff:
            return self._put(ci.root, ttl)
        parent = self.pfs.get_commit(ci.commit.repo, ci.parent) if ci.parent else None
        s = WriteSession(self.pfs.index, None)
        for new, _old in self.pfs.diff_file(ci, "/", parent):
            if new is not None and not new.is_dir:
                e = self.pfs.tree(ci).entry(new.path)
                s.put(new.path, e)
        return self._put(s.apply(), ttl)

    def compose(self, ids: list[str], ttl: float = DEFAULT_TTL) -> str:
        check_ttl(ttl)
        roots = [self.root(i) for i in ids]  # all must exist before anything is written
        s = WriteSession(self.pfs.index, roots[0] if roots else None)
        for root in roots[1:]:
            for k, e in FileTree(self.pfs.index, root).files("/"):
                s.put(k, e)
        return self._put(s.apply(), ttl)

    def renew(self, fs_id: str, ttl: float) -> None:
        check_ttl(ttl)
        root = self.root(fs_id)
        raw = msgpack.unpackb(self.meta.get(self._key(fs_id)))
        raw["expires"] = max(raw["expires"], self.clock() + ttl)
        raw["root"] = root
        self.meta.put(self._key(fs_id), msgpack.packb(raw))

    # ---- using them ------------------------------------------------------------------------
    def shard(self, fs_id: str, num_files: int = 0, size_bytes: int = 0) -> list[tuple[str, str]]:
        """Path ranges [lower, upper) that split the file set into pieces of at most
        `num_files` files or about `size_bytes` bytes ('' is open-ended)."""
        num_files = num_files if num_files > 0 else 1_000_000
        size_bytes = size_bytes if size_bytes > 0 else 1 << 30
        bounds = [""]
        n = size = 0
        for k, e in self.tree(fs_id).files("/"):
            if n and (n >= num_files or size >= size_bytes):
                bounds.append(k)
                n = size = 0
            n += 1
            size += e.size
        bounds.append("")
        return list(zip(bounds[:-1], bounds[1:]))

    def files(self, fs_id: str, lower: str = "", upper: str = "", regex: str = "") -> Iterator[tuple[str, object]]:
        """(path, entry) of the files in a path range and/or matching a regex, in path order."""
        rx = None
        if regex:
            try:
                rx = re.compile(regex)
            except re.error as e:
                raise InvalidArgument(f"invalid path regex {regex!r}: {e}") from e
        for k, e in self.tree(fs_id).files("/"):
            if lower and k < lower:
                continue
            if upper and k >= upper:
                break
            if rx is not None and not rx.search(k):
                continue
            yield k, e

    def add_to_commit(self, w, fs_id: str) -> None:
        """Put every file of the set into an open write session (`Pfs.open_writer`)."""
        for k, e in self.tree(fs_id).files("/"):
            w._end_open_file()
            w.session.put(k, file_entry(e.content(), e.datum))


def check_ttl(ttl: float) -> None:
    if ttl < 1:
        raise InvalidArgument(f"ttl ({ttl:g}s) must be at least one second")
    if ttl > MAX_TTL:
        raise InvalidArgument(f"ttl ({ttl:g}s) exceeds max ttl ({MAX_TTL:g}s)")


class FileSetWriter:
    """Builds a new file set from file operations, like a commit's write session."""

    def __init__(self, filesets: FileSets):
        from pfs.core.files import FileWriter
        self.filesets = filesets
        self.w = FileWriter(filesets.pfs, None, None, None, None, _Unlocked())
        self.w.session = WriteSession(filesets.pfs.index, None)
        self._done = False

    def add(self, path: str, data: bytes, datum: str = "") -> None:
        self.w.add(path, data, datum)

    def put(self, path: str, chunks, append: bool = False, datum: str = "") -> None:
        self.w.put(path, chunks, append=append, datum=datum)

    def delete(self, path: str, datum: str = "") -> None:
        self.w.delete(path, datum)

    def copy_commit(self, repo, commit_id: str, branch: str, src: str, dst: str, append: bool, datum: str) -> None:
        self.w.copy(repo, commit_id, branch, src, dst, append, datum)

    def copy_fileset(self, fs_id: str, src: str, dst: str) -> None:
        """Copy a file or directory of another file set."""
        tree = self.filesets.tree(fs_id)
        sp, dp = ancestry.clean_path(src), ancestry.clean_path(dst)
        found = tree.lookup(sp)
        if found is None:
            raise NotFound(f"file {sp} not found in file set {fs_id}")
        key, e = found
        self.w._end_open_file()
        if not e.is_dir:
            self.w.session.put(dp, file_entry(e.content(), e.datum))
            return
        for k, fe in tree.files(key):
            rel = k[len(key):]
            self.w.session.put((dp.rstrip("/") + "/" + rel) if dp != "/" else "/" + rel,
                               file_entry(fe.content(), fe.datum))

    def close(self, ttl: float = DEFAULT_TTL) -> str:
        self._done = True
        self.w._end_open_file()
        self.w.content.flush()
        return self.filesets._put(self.w.session.apply(), ttl)

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self.w.content.abort()
