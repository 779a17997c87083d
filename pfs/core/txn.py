"""Read-modify-write transactions over the metadata store.

Invariants:
- A `Txn` buffers every write; `commit()` applies them in ONE atomic metadata batch, guarded
  by compare-and-swap on every record it read (the batch fails with Conflict, writing
  nothing, if any of them changed underneath). Branch heads and commit records therefore
  only ever move by CAS, and a crash leaves either all of an operation or none of it.
- Within a transaction, reads see the transaction's own writes.
- Typed accessors return decoded copies cached per transaction; callers mutate the copy and
  `put_*` it back.
"""
from __future__ import annotations

from typing import Callable, Optional

from pfs.core import keys, records
from pfs.model import Branch, BranchInfo, CommitInfo, ProjectInfo, Repo, RepoInfo

_MISSING = object()


class Txn:
    def __init__(self, meta):
        self.meta = meta
        self._orig: dict[bytes, Optional[bytes]] = {}
        self._writes: dict[bytes, Optional[bytes]] = {}
        self._decoded: dict[bytes, object] = {}
        self._expects: list[tuple[bytes, Optional[bytes]]] = []
        self.events: list[tuple[str, object]] = []
        self.after_commit: list[Callable[[], None]] = []

    # ---- raw -------------------------------------------------------------------------
    def get(self, key: bytes) -> Optional[bytes]:
        if key in self._writes:
            return self._writes[key]
        if key not in self._orig:
            self._orig[key] = self.meta.get(key)
        return self._orig[key]

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self._orig and key not in self._writes:
            self._orig[key] = self.meta.get(key)
        self._writes[key] = value

    def delete(self, key: bytes) -> None:
        if key not in self._orig and key not in self._writes:
            self._orig[key] = self.meta.get(key)
        self._writes[key] = None
        self._decoded.pop(key, None)

    def blind_put(self, key: bytes, value: bytes) -> None:
        """A write that does not need a CAS guard (index entries, order keys)."""
        self._writes[key] = value

    def blind_delete(self, key: bytes) -> None:
        self._writes[key] = None

    def expect(self, key: bytes, value: Optional[bytes]) -> None:
        """Commit only if `key` still holds `value` then (e.g. a writer's lease header)."""
        self._expects.append((key, value))

    def commit(self) -> None:
        self.flush_typed()
        if not self._writes:
            return
        with self.meta.batch() as b:
            for k, v in self._expects:
                b.expect(k, v)
            for k, v in self._writes.items():
                if k in self._orig:
                    b.expect(k, self._orig[k])
                if v is None:
                    b.delete(k)
                else:
                    b.put(k, v)

    # ---- typed -------------------------------------------------------------------------
    def _typed_get(self, key: bytes, decode):
        if key in self._decoded:
            return self._decoded[key]
        raw = self.get(key)
        if raw is None:
            return None
        obj = decode(raw)
        self._decoded[key] = obj
        return obj

    def _typed_put(self, key: bytes, obj, encode) -> None:
        self._decoded[key] = obj
        self.put(key, encode(obj))

    def project(self, name: str) -> Optional[ProjectInfo]:
        return self._typed_get(keys.project_key(name), records.decode_project)

    def put_project(self, p: ProjectInfo) -> None:
        self._typed_put(keys.project_key(p.name), p, records.encode_project)

    def repo(self, repo: Repo) -> Optional[RepoInfo]:
        return self._typed_get(keys.repo_key(repo), records.decode_repo)

    def put_repo(self, r: RepoInfo) -> None:
        self._typed_put(keys.repo_key(r.repo), r, records.encode_repo)

    def branch(self, branch: Branch) -> Optional[BranchInfo]:
        return self._typed_get(keys.branch_key(branch), records.decode_branch)

    def put_branch(self, bi: BranchInfo) -> None:
        self._typed_put(keys.branch_key(bi.branch), bi, records.encode_branch)

    def commit_info(self, repo: Repo, commit_id: str) -> Optional[CommitInfo]:
        return self._typed_get(keys.commit_key(repo, commit_id), records.decode_commit)

    def put_commit(self, ci: CommitInfo) -> None:
        self._typed_put(keys.commit_key(ci.commit.repo, ci.commit.id), ci, records.encode_commit)

    def flush_typed(self) -> None:
        """Re-encode every decoded object (callers may have mutated them in place)."""
        for key, obj in list(self._decoded.items()):
            if key not in self._writes:
                continue
            if isinstance(obj, CommitInfo):
                self._writes[key] = records.encode_commit(obj)
            elif isinstance(obj, BranchInfo):
                self._writes[key] = records.encode_branch(obj)
