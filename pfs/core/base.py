"""Shared state of the versioning core: stores, locks, transactions, reference resolution.

Invariants:
- Every metadata mutation runs inside `self.txn()`: under the core's lock, as one atomic,
  compare-and-swap-guarded batch (see pfs.core.txn). Readers never see half an operation.
- Expensive work (chunking, building index trees) happens outside the lock; only publishing
  the result (a root hash into a commit record) happens inside.
- `atomic()` groups several operations of one thread into one transaction (Pachyderm's
  transaction API): every `self.txn()` inside joins the same Txn, the core lock is held
  throughout, and at the end everything is committed at once, or nothing (an error, or a
  dry run). Commits made inside belong to one commit set (the id given to `atomic`).
- Waiters (`wait=FINISHED`, subscriptions) block on one condition variable notified after
  every committed transaction; event listeners receive (kind, CommitInfo) after commit.
  `stop_waiting()` (and `close()`) ends every wait with StorageError (UNAVAILABLE).
"""
from __future__ import annotations

import re
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from pfs import ancestry
from pfs.core import keys
from pfs.core.content import ContentStore
from pfs.core.filetree import FileTree
from pfs.core.index import IndexTree
from pfs.core.txn import Txn
from pfs.errors import (BranchNotFound, CommitNotFound, InvalidArgument, ProjectNotFound,
                        RepoNotFound, StorageError)
from pfs.model import DEFAULT_PROJECT, Branch, CommitInfo, ProjectInfo, Repo

_UUID_HEX = re.compile(r"^[0-9a-f]{32}$")


def new_id() -> str:
    return uuid.uuid4().hex


def is_commit_id(s: str) -> bool:
    return bool(_UUID_HEX.match(s))


class _MetaNodes:
    """NodeStore over the metadata store (index nodes live next to the records)."""

    def __init__(self, meta):
        self.meta = meta

    def get_node(self, h: bytes) -> bytes:
        raw = self.meta.get(keys.node_key(h))
        if raw is None:
            from pfs.errors import ObjectNotFound
            raise ObjectNotFound(f"index node {h.hex()} is missing from the metadata store")
        return raw

    def put_node(self, h: bytes, data: bytes) -> None:
        self.meta.put(keys.node_key(h), data)

    def put_nodes(self, nodes: list) -> None:
        with self.meta.batch() as b:
            for h, data in nodes:
                b.put(keys.node_key(h), data)


class PfsBase:
    def __init__(self, meta, chunks, clock: Callable[[], float] = time.time):
        self.meta = meta
        self.chunks = chunks
        self.clock = clock
        self.index = IndexTree(_MetaNodes(meta))
        self.content = ContentStore(chunks, meta)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: list[Callable[[str, object], None]] = []
        # weak values: a commit's lock lives while someone holds or waits for it, then goes
        self._write_locks: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._closed = False
        self._ambient = threading.local()  # .txn / .commit_set_id while inside atomic()
        raw = meta.get(keys.SEQUENCE_KEY)
        self._seq = int(raw.decode()) if raw else 0
        with self.txn() as t:
            if t.project(DEFAULT_PROJECT) is None:
                t.put_project(ProjectInfo(DEFAULT_PROJECT, "", self.clock()))

    # ---- plumbing ----------------------------------------------------------------------
    @contextmanager
    def txn(self) -> Iterator[Txn]:
        ambient = getattr(self._ambient, "txn", None)
        if ambient is not None:  # inside atomic(): join its transaction
            yield ambient
            return
        with self._lock:
            t = Txn(self.meta)
            yield t
            t.commit()
            self._changed.notify_all()
        self._after(t)

    def _after(self, t: Txn) -> None:
        for kind, obj in t.events:
            for cb in list(self._listeners):
                cb(kind, obj)
        for fn in t.after_commit:
            fn()

    @contextmanager
    def atomic(self, commit_set_id: str, dry_run: bool = False) -> Iterator[Txn]:
        """Run the operations of the block as ONE transaction whose new commits all belong to
        commit set `commit_set_id`. With dry_run (or an error) nothing is written."""
        if getattr(self._ambient, "txn", None) is not None:
            raise RuntimeError("atomic() does not nest")
        with self._lock:
            t = Txn(self.meta)
            self._ambient.txn, self._ambient.commit_set_id = t, commit_set_id
            try:
                yield t
            finally:
                self._ambient.txn = self._ambient.commit_set_id = None
            if dry_run:
                return
            t.commit()
            self._changed.notify_all()
        self._after(t)

    def ambient_commit_set_id(self) -> Optional[str]:
        return getattr(self._ambient, "commit_set_id", None)

    def add_listener(self, cb: Callable[[str, object], None]) -> None:
        """cb(kind, CommitInfo) after commits are created/finished/deleted. Must not block."""
        self._listeners.append(cb)

    def remove_listener(self, cb) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    def next_seq(self, t: Txn) -> int:
        self._seq += 1
        t.blind_put(keys.SEQUENCE_KEY, str(self._seq).encode())
        return self._seq

    def write_lock(self, repo: Repo, commit_id: str) -> threading.Lock:
        with self._lock:
            k = (repo, commit_id)
            lk = self._write_locks.get(k)
            if lk is None:
                lk = self._write_locks[k] = threading.Lock()
            return lk

    def wait_until(self, predicate: Callable[[], bool], timeout: Optional[float] = None) -> bool:
        """Block until predicate() (evaluated under the lock) is true."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not predicate():
                if self._closed:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(timeout=1.0 if remaining is None else min(remaining, 1.0))
            return True

    def stop_waiting(self) -> None:
        """End every wait and subscription (they raise StorageError) and refuse new ones;
        reads and writes keep working. First step of a shutdown."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def close(self) -> None:
        self.stop_waiting()
        self.content.close()

    def shutting_down_error(self) -> StorageError:
        return StorageError("the server is shutting down; retry once it is back")

    # ---- names -------------------------------------------------------------------------
    @staticmethod
    def repo_of(project: str, name: str, type: str = "") -> Repo:
        return Repo(project or DEFAULT_PROJECT, name, type or "user")

    def require_project(self, t: Txn, name: str) -> ProjectInfo:
        p = t.project(name or DEFAULT_PROJECT)
        if p is None:
            raise ProjectNotFound(f'project "{name}" not found')
        return p

    def require_repo(self, t: Txn, repo: Repo):
        r = t.repo(repo)
        if r is None:
            raise RepoNotFound(f"repo {repo} not found")
        return r

    def require_branch(self, t: Txn, branch: Branch):
        bi = t.branch(branch)
        if bi is None:
            self.require_repo(t, branch.repo)
            raise BranchNotFound(f'branch "{branch.name}" not found in repo {branch.repo}')
        return bi

    # ---- commit references -------------------------------------------------------------
    def resolve(self, t: Txn, repo: Repo, commit_id: str = "", branch: str = "") -> CommitInfo:
        """Pachyderm's ResolveCommit: an id, a branch head, or either with ancestry."""
        self.require_repo(t, repo)
        if not commit_id and not branch:
            raise InvalidArgument("cannot resolve commit with no ID or branch")
        original = f"{repo}@{commit_id or branch}"
        base, back, from_start = ancestry.parse_ancestry(commit_id) if commit_id else ("", 0, None)
        if base and not is_commit_id(base):
            if branch and branch != base:
                raise InvalidArgument(f"invalid commit ID given with a branch ({repo}@{branch}): {base}")
            branch, base = base, ""
        if not base:
            bi = self.require_branch(t, Branch(repo, branch))
            if not bi.head:
                raise CommitNotFound(f"commit {original} not found")
            base = bi.head
        ci = t.commit_info(repo, base)
        if ci is None:
            raise CommitNotFound(f"commit {repo}@{base} not found")
        if from_start is not None:
            chain = [ci]
            while chain[-1].parent:
                p = t.commit_info(repo, chain[-1].parent)
                if p is None:
                    break
                chain.append(p)
            chain.reverse()
            if from_start < 1 or from_start > len(chain):
                raise CommitNotFound(f"commit {original} not found")
            return chain[from_start - 1]
        for _ in range(back or 0):
            if not ci.parent:
                raise CommitNotFound(f"commit {original} not found")
            p = t.commit_info(repo, ci.parent)
            if p is None:
                raise CommitNotFound(f"commit {original} not found")
            ci = p
        return ci

    def tree(self, ci: CommitInfo) -> FileTree:
        return FileTree(self.index, ci.root)
