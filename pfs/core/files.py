"""File operations: write sessions (ModifyFile) and reads (get, list, walk, glob, diff).

Invariants:
- A write session is atomic. Its operations apply in order to a private root; nothing is
  visible until `close()` publishes that root in one transaction. An aborted or failed session
  leaves the commit exactly as it was (its stored chunks become unreferenced garbage), and a
  session whose repo was deleted (or recreated) or whose commit was dropped meanwhile
  publishes nothing.
- Copying without append replaces the destination file by file; it never clears the
  destination directory first.
- A session on an open commit holds that commit's write lock; `finish_commit` waits for it.
- A session on a branch whose head is finished (or that does not exist) becomes a one-off
  commit at close: started, filled and finished in the same transaction (Pachyderm's
  ModifyFile with a branch). The branch's write lock serializes one-off sessions.
- Adding to a path appends (Pachyderm's AddFile); overwriting is delete-then-add. Successive
  pieces of one file are chunked as one stream, so a file's chunks do not depend on how the
  client split its messages.
- Every path is validated (printable ASCII, no globbing characters, no `.`/`..`) before use.
- A session holds a lease (pfs.core.gc.leases) from open to close: taken atomically with a
  check that its base commit is unchanged, covering its base root, every root it applies and
  every pack its files refer to. The publishing transaction commits only while the lease is
  alive; the lease is released after the session publishes or gives up.
"""
from __future__ import annotations

import re
import tarfile
from typing import Iterable, Iterator, Optional

from pfs import ancestry
from pfs.failpoints import failpoint
from pfs.core.filetree import Entry, FileTree, WriteSession, decode_entry_listed, diff, file_entry
from pfs.errors import (CommitFinished, CommitNotFound, Conflict, DataLoss, FailedPrecondition, FileNotFound,
                        InvalidArgument, InvalidPath, RepoNotFound)
from pfs.model import USER, Branch, BranchInfo, CommitInfo, FileInfo, Repo


def checked_path(path: str) -> str:
    if path in ("", "/"):
        return "/"
    ancestry.validate_path(path)
    return ancestry.clean_path(path)


class FileWriter:
    """One write session. Use as a context manager: commits on success, aborts on error."""

    def __init__(self, pfs, repo: Repo, target_commit: Optional[CommitInfo],
                 branch: Optional[Branch], base: Optional[CommitInfo], lock):
        self.pfs = pfs
        self.repo = repo
        self.target = target_commit  # open commit, or None for a one-off commit
        self.branch = branch
        self.base = base
        self._lock = lock
        src = target_commit or base
        if src is not None:
            self.lease = pfs.lease_commit(repo, src.commit.id, f"write {repo}@{src.commit.id}", src.root)
        else:
            self.lease = pfs.leases.create(f"write {branch}")
        self.session = WriteSession(pfs.index, src.root if src else None, self.lease)
        self.content = pfs.content.writer(self.lease)
        self._open_path: Optional[str] = None
        self._open_datum = ""
        self._closed = False
        self.result: Optional[CommitInfo] = None
        self.repo_created: Optional[float] = None  # the repo's creation time when opened

    # ---- operations ----------------------------------------------------------------------
    def _end_open_file(self) -> None:
        if self._open_path is not None:
            c = self.content.end()
            self.session.append(self._open_path, c, self._open_datum)
            self._open_path = None

    def add(self, path: str, data: bytes, datum: str = "") -> None:
        """Append bytes to a file (creating it). Consecutive calls for one path stream."""
        p = path if path == self._open_path else checked_path(path)
        if p == "/":
            raise InvalidPath("cannot write to the root directory: give a file path")
        self._add_clean(p, data, datum)

    def _add_clean(self, p: str, data: bytes, datum: str) -> None:
        if self._open_path != p or self._open_datum != datum:
            self._end_open_file()
            self.content.begin()
            self._open_path, self._open_datum = p, datum
        if data:
            failpoint("modify_file.write")
            self.content.feed(data)

    def _start_put(self, path: str, append: bool) -> str:
        p = checked_path(path)
        if p == "/":
            raise InvalidPath("cannot write to the root directory: give a file path")
        self._end_open_file()
        if not append:
            self.session.delete(p)
        return p

    def put(self, path: str, chunks: Iterable[bytes], append: bool = False, datum: str = "") -> None:
        p = self._start_put(path, append)
        self._add_clean(p, b"", datum)
        for c in chunks:
            self._add_clean(p, c, datum)
        self._end_open_file()

    def put_local(self, path: str, local_path: str, append: bool = False, datum: str = "") -> None:
        """Put a file from this machine's filesystem: pachd reads it itself, a big one in large
        blocks that its packs are written from (see ContentWriter.ingest_local)."""
        p = self._start_put(path, append)
        try:
            content = self.content.ingest_local(local_path)
        except OSError as e:  # unreadable, or gone since the caller looked (storage errors are not OSError)
            raise InvalidArgument(f"cannot read {local_path}: {e.strerror or e}") from e
        self.session.append(p, content, datum)

    def put_fd(self, path: str, fd: int, append: bool = False, datum: str = "", name: str = "the file") -> None:
        """`put_local` of a regular file open as `fd` (read from its start; the caller closes
        it); `name` says which file in an error."""
        p = self._start_put(path, append)
        try:
            content = self.content.ingest_fd(fd)
        except OSError as e:
            raise InvalidArgument(f"cannot read {name}: {e.strerror or e}") from e
        self.session.append(p, content, datum)

    def delete(self, path: str, datum: str = "", missing_ok: bool = True) -> None:
        self._end_open_file()
        p = checked_path(path) if path not in ("", "/") else "/"
        found = self.session.delete(p)
        if not found and not missing_ok:
            raise FileNotFound(f"file {p} not found in repo {self.repo}")

    def copy(self, src_repo: Repo, src_id: str, src_branch: str, src_path: str,
             dst_path: str, append: bool = False, datum: str = "") -> None:
        self._end_open_file()
        with self.pfs.txn() as t:
            src = self.pfs.resolve(t, src_repo, src_id, src_branch)
        tree = self.pfs.tree(src)
        sp = checked_path(src_path)
        dp = checked_path(dst_path)
        found = tree.lookup(sp)
        if found is None:
            raise FileNotFound(f"file {sp} not found in repo {src_repo} at commit {src.commit.id}")
        key, e = found
        # Without append every copied file replaces the file at its destination; files
        # already under the destination directory that the source lacks stay (Pachyderm
        # overwrites file by file, it does not clear the destination first).
        if not e.is_dir:
            if append:
                self.session.append(dp, e.content(), datum or e.datum)
            else:
                self.session.put(dp, file_entry(e.content(), datum or e.datum))
            return
        base = key  # '/src/' or '/'
        for k, fe in tree.files(key):
            rel = k[len(base):]
            target = (dp.rstrip("/") + "/" + rel) if dp != "/" else "/" + rel
            if append:
                self.session.append(target, fe.content(), datum or fe.datum)
            else:
                self.session.put(target, file_entry(fe.content(), datum or fe.datum))

    # ---- completion ----------------------------------------------------------------------
    def close(self) -> CommitInfo:
        if self._closed:
            return self.result
        try:
            self._end_open_file()
            self.content.flush()
            root = self.session.apply()
            failpoint("commit.before_publish")
            with self.lease.pinned() as lease_raw:
                try:
                    self.result = self.pfs._publish(self, root, lease_raw)
                except Conflict:
                    if self.pfs.meta.get(self.lease.key) != lease_raw:
                        self.lease.lost = True  # collected as expired: say so
                        self.lease.check()
                    raise
            failpoint("commit.after_publish")
            return self.result
        finally:
            self._closed = True
            self.lease.release()
            self._lock.release()

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            # queued pack writes of this session are not needed; running ones end before
            # the lease that covers their packs is released
            self.content.abort(wait=True)
            self.lease.release()
            self._lock.release()

    def __enter__(self) -> "FileWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class FilesMixin:
    # ---- writing ------------------------------------------------------------------------
    def open_writer(self, repo: Repo, commit_id: str = "", branch: str = "") -> FileWriter:
        """A write session on a commit: an open commit, or a branch (one-off if finished)."""
        with self.txn() as t:
            self.require_project(t, repo.project)
            repo_created = self.require_repo(t, repo).created
            is_branch_only = not commit_id or (not _looks_like_id(commit_id) and not ancestry.has_ancestry(commit_id))
            if is_branch_only:
                bname = branch or commit_id
                ancestry.validate_branch_name(bname)
                bi = t.branch(Branch(repo, bname))
                head = t.commit_info(repo, bi.head) if bi is not None and bi.head else None
                if head is not None and head.finished is None:
                    target = head
                else:
                    target = None
            else:
                target = self.resolve(t, repo, commit_id, branch)
                if target.finished is not None:
                    raise CommitFinished(f"commit {target.commit} has already finished")
                bname = target.commit.branch
                head = None
        if target is not None:
            lock = self.write_lock(repo, target.commit.id)
            lock.acquire()
            with self.txn() as t:
                fresh = t.commit_info(repo, target.commit.id)
            if fresh is None or fresh.finished is not None:
                lock.release()
                raise CommitFinished(f"commit {target.commit} has already finished")
            try:
                w = FileWriter(self, repo, fresh, Branch(repo, bname), None, lock)
            except BaseException:
                lock.release()
                raise
            w.repo_created = repo_created
            return w
        lock = self.write_lock(repo, "branch:" + bname)
        lock.acquire()
        try:
            with self.txn() as t:
                bi = t.branch(Branch(repo, bname))
                head = t.commit_info(repo, bi.head) if bi is not None and bi.head else None
                if bi is not None and bi.provenance:
                    raise FailedPrecondition(f"cannot start a commit on an output branch: {Branch(repo, bname)}")
        except BaseException:
            lock.release()
            raise
        if head is not None and head.finished is None:
            lock.release()
            return self.open_writer(repo, head.commit.id)
        try:
            w = FileWriter(self, repo, None, Branch(repo, bname), head, lock)
        except BaseException:
            lock.release()
            raise
        w.repo_created = repo_created
        return w

    def _publish(self, w: FileWriter, root, lease_raw: bytes) -> CommitInfo:
        with self.txn() as t:
            t.expect(w.lease.key, lease_raw)  # the session's lease is alive: nothing was collected
            # the repo may have been deleted (and even recreated) during the upload: never
            # write branches or commits into a repo that is not the one the session opened
            r = self.require_repo(t, w.repo)
            if w.repo_created is not None and r.created != w.repo_created:
                raise RepoNotFound(f"repo {w.repo} not found (it was deleted during the upload)")
            if w.target is not None:
                ci = t.commit_info(w.repo, w.target.commit.id)
                if ci is None:
                    raise CommitNotFound(f"commit {w.target.commit} not found (it was dropped during the upload)")
                if ci.finished is not None:
                    raise CommitFinished(f"commit {w.target.commit} has already finished")
                if ci.root != w.target.root:
                    raise Conflict(f"commit {ci.commit} changed during the upload; retry")
                if ci.direct_provenance:
                    failpoint("job.outputs")  # a pipeline's output commit: a worker's outputs
                ci.root = root
                ci.size = self._commit_size(ci)
                if w.session.collisions and len(ci.problems) < 10:
                    ci.problems = ci.problems + w.session.collisions[: 10 - len(ci.problems)]
                t.put_commit(ci)
                return ci
            bi = t.branch(w.branch)
            head_id = bi.head if bi is not None else ""
            if head_id != (w.base.commit.id if w.base else ""):
                raise Conflict(f"branch {w.branch} moved during the upload; retry")
            set_id = self.new_commit_set_id()
            now = self.clock()
            ci = self._new_commit(t, w.branch, set_id, USER, parent=head_id or None,
                                  finished=False)
            ci.root = root
            ci.finishing = ci.finished = max(now, ci.started)
            ci.size = self._commit_size(ci)
            t.put_commit(ci)
            if bi is None:
                bi = BranchInfo(w.branch, created_at=now)
            bi.head = ci.commit.id
            bi.updated_at = now
            t.put_branch(bi)
            t.events = [e for e in t.events if not (e[0] == "commit_started" and e[1] is ci)]
            t.events.append(("commit_finished", ci))
            self._propagate(t, [w.branch], set_id)
            return ci

    def put_bytes(self, repo: Repo, branch_or_id: str, path: str, data: bytes,
                  append: bool = False) -> CommitInfo:
        """Convenience for tests and internal callers."""
        with self.open_writer(repo, branch_or_id) as w:
            w.put(path, [data], append=append)
        return w.result

    def set_commit_root(self, repo: Repo, commit_id: str, root) -> CommitInfo:
        """Replace an open commit's content wholesale (pps uses it to start an output commit
        from its base job's output)."""
        with self.write_lock(repo, commit_id):
            with self.txn() as t:
                ci = t.commit_info(repo, commit_id)
                if ci is None or ci.finished is not None:
                    raise CommitFinished(f"commit {repo}@{commit_id} has already finished")
                ci.root = root
                ci.size = self._commit_size(ci)
                t.put_commit(ci)
                return ci

    # ---- reading ------------------------------------------------------------------------
    def commit_for_read(self, repo: Repo, commit_id: str = "", branch: str = "") -> CommitInfo:
        with self.txn() as t:
            self.require_project(t, repo.project)
            return self.resolve(t, repo, commit_id, branch)

    def file_info(self, ci: CommitInfo, key: str, e: Entry) -> FileInfo:
        return FileInfo(path=key, is_dir=e.is_dir, size=e.size, hash=e.hash,
                        commit=ci.commit, committed=ci.finished, datum=e.datum,
                        file_count=e.count)

    def inspect_file(self, ci: CommitInfo, path: str) -> FileInfo:
        p = ancestry.clean_path(path)
        found = self.tree(ci).lookup(p)
        if found is None:
            raise FileNotFound(f"file {p} not found in repo {ci.commit.repo} at commit {ci.commit.id}")
        return self.file_info(ci, *found)

    def read_file(self, ci: CommitInfo, path: str, offset: int = 0,
                  length: Optional[int] = None, views: bool = False) -> tuple[FileInfo, Iterator[bytes]]:
        """A file's info and its bytes from `offset` (at most `length`); `views`: pieces may be
        memoryviews (see ContentStore.read)."""
        p = ancestry.clean_path(path)
        found = self.tree(ci).lookup(p)  # one lookup: its entry has the chunk refs too
        if found is None:
            raise FileNotFound(f"file {p} not found in repo {ci.commit.repo} at commit {ci.commit.id}")
        fi = self.file_info(ci, *found)
        if fi.is_dir:
            raise InvalidArgument(
                f"cannot get directory {fi.path} as a single file; use GetFileTAR instead")
        return fi, _naming_file(self.content.read(found[1].refs, offset, length, views=views), ci, fi.path)

    def list_file(self, ci: CommitInfo, path: str, start_after: Optional[str] = None,
                  number: int = 0, reverse: bool = False) -> Iterator[FileInfo]:
        p = ancestry.clean_path(path)
        tree = self.tree(ci)
        found = tree.lookup(p)
        if found is None:
            if p == "/":
                return
            raise FileNotFound(f"file {p} not found in repo {ci.commit.repo} at commit {ci.commit.id}")
        key, e = found
        if not e.is_dir:
            yield self.file_info(ci, key, e)
            return
        n = 0
        for k, ce in tree.list_dir(key, start_after=start_after, reverse=reverse, decode=decode_entry_listed):
            yield self.file_info(ci, k, ce)
            n += 1
            if number and n >= number:
                return

    def walk_file(self, ci: CommitInfo, path: str, start_after: Optional[str] = None,
                  number: int = 0, reverse: bool = False) -> Iterator[FileInfo]:
        p = ancestry.clean_path(path)
        tree = self.tree(ci)
        found = tree.lookup(p)
        if found is None:
            if p == "/":
                return
            raise FileNotFound(f"file {p} not found in repo {ci.commit.repo} at commit {ci.commit.id}")
        items = tree.walk(found[0])
        if reverse:
            items = reversed(list(items))
        n = 0
        for k, e in items:
            if start_after is not None and ((not reverse and k <= start_after) or (reverse and k >= start_after)):
                continue
            yield self.file_info(ci, k, e)
            n += 1
            if number and n >= number:
                return

    def glob_file(self, ci: CommitInfo, pattern: str, lower: str = "", upper: str = "") -> Iterator[FileInfo]:
        for k, e in self.tree(ci).glob(pattern):
            if lower and k < lower:
                continue
            if upper and k >= upper:
                continue
            yield self.file_info(ci, k, e)

    def diff_file(self, new_ci: CommitInfo, new_path: str, old_ci: Optional[CommitInfo],
                  old_path: str = "", shallow: bool = False):
        np = ancestry.clean_path(new_path)
        if old_ci is None and new_ci.parent:
            old_ci = self.get_commit(new_ci.commit.repo, new_ci.parent)
        old_root = old_ci.root if old_ci is not None else None
        op = ancestry.clean_path(old_path) if old_path else np
        if op != np:  # each side under its own path, matched by full path (Pachyderm's Differ)
            yield from self._diff_paths(new_ci, np, old_ci, op, shallow)
            return
        # a directory on either side (it may exist only in the old commit: deleted since)
        is_dir = np != "/" and (self.tree(new_ci).entry(np + "/") is not None
                                or FileTree(self.index, old_root).entry(np + "/") is not None)
        key = "/" if np == "/" else (np + "/" if is_dir else np)
        for new, old in diff(self.index, new_ci.root, old_root, key):
            name = (new or old)[0]
            if shallow and name != key:
                rest = name[len(key):].rstrip("/")
                if "/" in rest:
                    continue
            yield (self.file_info(new_ci, *new) if new else None,
                   self.file_info(old_ci, *old) if old and old_ci else None)

    def _diff_paths(self, new_ci: CommitInfo, np: str, old_ci: Optional[CommitInfo], op: str,
                    shallow: bool):
        """DiffFile with different new and old paths: the entries at or below `np` in the new
        commit against those at or below `op` in the old one, merged in path order; a path on
        both sides with the same content is not a difference."""
        def side(ci, path):
            if ci is None:
                return iter(())
            tree = self.tree(ci)
            if path == "/":
                key = "/"
            else:
                key = path + "/" if tree.entry(path + "/") is not None else path
            return ((k, e) for k, e in tree.walk(key)
                    if not shallow or k == key or "/" not in k[len(key):].rstrip("/"))

        new_it, old_it = side(new_ci, np), side(old_ci, op)
        n, o = next(new_it, None), next(old_it, None)
        while n is not None or o is not None:
            if o is None or (n is not None and n[0] < o[0]):
                yield self.file_info(new_ci, *n), None
                n = next(new_it, None)
            elif n is None or o[0] < n[0]:
                yield None, self.file_info(old_ci, *o)
                o = next(old_it, None)
            else:
                if not (n[1].hash == o[1].hash and n[1].size == o[1].size and n[1].is_dir == o[1].is_dir):
                    yield self.file_info(new_ci, *n), self.file_info(old_ci, *o)
                n, o = next(new_it, None), next(old_it, None)

    def tar_stream(self, ci: CommitInfo, path: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """A tar archive of a file or directory, or of every match of a glob (as Pachyderm's
        GetFileTAR); member names are relative to the repo root."""
        tree = self.tree(ci)
        if ancestry.is_glob(path):
            keys = _glob_keys(tree, path)
            if not keys:
                raise FileNotFound(f"no file matches {path} in repo {ci.commit.repo} at commit {ci.commit.id}")
        else:
            p = ancestry.clean_path(path)
            found = tree.lookup(p)
            if found is None:
                raise FileNotFound(f"file {p} not found in repo {ci.commit.repo} at commit {ci.commit.id}")
            keys = [found[0]]
        yield from _tar_entries(self, ci, tree, keys, chunk_size)


def _naming_file(it: Iterator[bytes], ci: CommitInfo, path: str) -> Iterator[bytes]:
    """`it`, with a DataLoss naming the file, its repo and its commit."""
    try:
        yield from it
    except DataLoss as e:
        raise DataLoss(f"file {path} in repo {ci.commit.repo} at commit {ci.commit.id} cannot be "
                       f"read: {e.message}") from e
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _looks_like_id(s: str) -> bool:
    from pfs.core.base import is_commit_id
    return is_commit_id(s)


_LITERAL_ALTS = re.compile(r"^/?\{((?:[^{}*?\[\]!()@+^\\,]|\\.)*(?:,(?:[^{}*?\[\]!()@+^\\,]|\\.)*)*)\}$")


def _glob_keys(tree: FileTree, pattern: str) -> list[str]:
    """Keys matching a glob; a brace list of literal paths (`/{a,b/c}`) is looked up directly."""
    m = _LITERAL_ALTS.match(pattern)
    if m:
        keys = []
        for alt in re.split(r"(?<!\\),", m.group(1)):
            lit = re.sub(r"\\(.)", r"\1", alt)
            found = tree.lookup(ancestry.clean_path(lit))
            if found is not None:
                keys.append(found[0])
        return sorted(set(keys))
    return [k for k, _ in tree.glob(pattern)]


def _tar_entries(pfs, ci: CommitInfo, tree: FileTree, keys: list, chunk_size: int) -> Iterator[bytes]:
    """Stream a tar archive: header, then the file's bytes straight from storage, then padding."""
    mtime = int(ci.finished or ci.started or 0)
    for k, e in (item for key in keys for item in tree.walk(key)):
        name = k.strip("/")
        if not name:
            continue
        info = tarfile.TarInfo(name)
        info.mtime = mtime
        if e.is_dir:
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            continue
        info.size = e.size
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        yield from _naming_file(pfs.content.read(e.refs), ci, k)
        pad = (-e.size) % tarfile.BLOCKSIZE
        if pad:
            yield b"\0" * pad
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
