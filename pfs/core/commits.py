"""Commits and commit sets.

Invariants (Pachyderm 2.x):
- A commit's id is its commit set's id: one global id across the repos it touched. A repo
  holds at most one commit per id.
- A new commit starts with its parent's content (its index root) and its own branch's
  provenance heads as direct provenance. Starting a commit needs a finished parent; users
  cannot start commits on branches with provenance (pipeline outputs).
- A commit is visible, with its final root, the moment it is finished; an open commit's root
  moves only when a whole write session is published (see pfs.core.files).
- Dropping removes commits that have no children (branch heads fall back to the parent);
  squashing removes commits that have children, whose content already includes theirs.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

from pfs.core import keys, records
from pfs.core.txn import Txn
from pfs.errors import (CommitFinished, CommitNotFound, CommitSetNotFound, FailedPrecondition,
                        InvalidArgument)
from pfs import ancestry
from pfs.failpoints import failpoint
from pfs.model import AUTO, USER, Branch, BranchInfo, CommitInfo, CommitRef, Repo

FINISHED, FINISHING, STARTED, READY = "FINISHED", "FINISHING", "STARTED", "READY"


class CommitsMixin:
    # pps sets this: returns True for repos whose commits only a job may finish
    is_pipeline_output: Callable[[Repo], bool] = staticmethod(lambda repo: False)

    # ---- creation ----------------------------------------------------------------------
    def _new_commit(self, t: Txn, branch: Branch, commit_id: str, origin: str,
                    parent: Optional[str], finished: bool, provenance: Optional[list] = None,
                    base: Optional[CommitInfo] = None, description: str = "") -> CommitInfo:
        repo = branch.repo
        if t.commit_info(repo, commit_id) is not None:  # one commit per repo per commit set
            raise FailedPrecondition(
                f"commit {repo}@{commit_id} already exists: commit set {commit_id} (one transaction) "
                f"already has a commit in repo {repo}")
        now = self.clock()
        parent_ci = t.commit_info(repo, parent) if parent else None
        if base is None:
            base = parent_ci
        if provenance is None:
            provenance = []
            bi = t.branch(branch)
            for p in (bi.direct_provenance if bi else []):
                pb = t.branch(p)
                if pb is not None and pb.head:
                    provenance.append(CommitRef(p.repo, pb.head, p.name))
        ci = CommitInfo(
            commit=CommitRef(repo, commit_id, branch.name), origin=origin,
            parent=parent_ci.commit.id if parent_ci else None, started=now,
            finishing=now if finished else None, finished=now if finished else None,
            description=description, direct_provenance=list(provenance),
            root=base.root if base else None, seq=self.next_seq(t))
        ci.size = self._commit_size(ci)
        if parent_ci is not None:
            parent_ci.children.append(commit_id)
            t.put_commit(parent_ci)
        for p in ci.direct_provenance:
            pc = t.commit_info(p.repo, p.id)
            if pc is not None:
                pc.direct_subvenance.append(CommitRef(repo, commit_id, branch.name))
                t.put_commit(pc)
        t.put_commit(ci)
        t.blind_put(keys.commit_set_key(commit_id, repo), b"")
        t.blind_put(keys.commit_order_key(repo, ci.seq), commit_id.encode())
        if not self._set_known(t, commit_id):
            t.blind_put(keys.commit_set_order_key(ci.seq, commit_id), b"")
        t.events.append(("commit_finished" if finished else "commit_started", ci))
        return ci

    def _set_known(self, t: Txn, set_id: str) -> bool:
        seen = getattr(t, "_sets_seen", None)
        if seen is None:
            seen = t._sets_seen = set()
        if set_id in seen:
            return True
        seen.add(set_id)
        for _ in self.meta.scan(prefix=keys.commit_set_prefix(set_id), limit=1):
            return True
        return False

    def start_commit(self, branch: Branch, parent: Optional[tuple] = None,
                     description: str = "", allow_output: bool = False) -> CommitInfo:
        """parent: (repo, id, branch_name) as the client gave it, or None for the head."""
        ancestry.validate_branch_name(branch.name)
        with self.txn() as t:
            self.require_project(t, branch.repo.project)
            self.require_repo(t, branch.repo)
            bi = t.branch(branch)
            now = self.clock()
            if bi is None:
                bi = BranchInfo(branch, created_at=now, updated_at=now)
            if bi.provenance and not allow_output:
                raise FailedPrecondition(f"cannot start a commit on an output branch: {branch}")
            parent_ci = None
            if parent is not None:
                prepo, pid, pbranch = parent
                parent_ci = self.resolve(t, prepo, pid, pbranch)
            elif bi.head:
                parent_ci = t.commit_info(branch.repo, bi.head)
            if parent_ci is not None and parent_ci.finishing is None:
                raise FailedPrecondition(f"parent commit {parent_ci.commit} has not been finished")
            set_id = self.new_commit_set_id()
            ci = self._new_commit(t, branch, set_id, USER,
                                  parent=parent_ci.commit.id if parent_ci else None,
                                  finished=False, description=description)
            bi.head = ci.commit.id
            bi.updated_at = now
            t.put_branch(bi)
            self._propagate(t, [branch], set_id)
            return ci

    def finish_commit(self, repo: Repo, commit_id: str = "", branch: str = "",
                      description: str = "", error: str = "", force: bool = False) -> CommitInfo:
        with self.txn() as t:
            ci = self.resolve(t, repo, commit_id, branch)
        lock = self.write_lock(ci.commit.repo, ci.commit.id)
        with lock:  # wait for any write session on this commit to publish
            failpoint("finish_commit.before")
            with self.txn() as t:
                ci = t.commit_info(repo, ci.commit.id)
                if ci is None:
                    raise CommitNotFound(f"commit {repo}@{commit_id or branch} not found")
                if ci.finishing is not None:
                    raise CommitFinished(f"commit {ci.commit} has already finished")
                if not force and ci.direct_provenance and self.is_pipeline_output(repo):
                    raise FailedPrecondition(
                        "cannot finish a pipeline output or meta commit, use 'stop job' instead")
                now = self.clock()
                if description:
                    ci.description = description
                ci.error = error
                ci.finishing = ci.finished = now
                ci.size = self._commit_size(ci)
                t.put_commit(ci)
                t.events.append(("commit_finished", ci))
            failpoint("finish_commit.after")
            return ci

    def forget_commit(self, repo: Repo, commit_id: str = "", branch: str = "") -> CommitInfo:
        """Pachyderm's ForgetCommit: a finished commit keeps its record but loses its files
        (their storage becomes garbage unless other commits share it); `is_forgotten` then
        says so and readers refuse it. Its children are unaffected (they hold whole trees)."""
        with self.txn() as t:
            ci = self.resolve(t, repo, commit_id, branch)
            if ci.finished is None:
                raise FailedPrecondition(f"cannot forget commit {ci.commit}: it is not finished")
            ci.root = None
            t.put_commit(ci)
            t.blind_put(keys.pachd_key("forgotten", repo.project, repo.name, repo.type, ci.commit.id), b"1")
            return ci

    def is_forgotten(self, repo: Repo, commit_id: str) -> bool:
        return self.meta.get(keys.pachd_key("forgotten", repo.project, repo.name, repo.type, commit_id)) is not None

    # ---- reads -------------------------------------------------------------------------
    def inspect_commit(self, repo: Repo, commit_id: str = "", branch: str = "",
                       wait: str = "", timeout: Optional[float] = None,
                       cancelled: Optional[Callable[[], bool]] = None) -> CommitInfo:
        """`cancelled` (checked about once a second while waiting) ends a wait whose caller
        went away, so an abandoned wait never pins a server thread."""
        with self.txn() as t:
            self.require_project(t, repo.project)
            ci = self.resolve(t, repo, commit_id, branch)
        if wait in (FINISHED, FINISHING) and ci.finished is None:
            return self.wait_commit(repo, ci.commit.id, timeout, cancelled)
        if wait == READY and ci.finished is None:
            for p in ci.direct_provenance:
                self.wait_commit(p.repo, p.id, timeout, cancelled)
            return self.inspect_commit(repo, ci.commit.id)
        return ci

    def wait_commit(self, repo: Repo, commit_id: str, timeout: Optional[float] = None,
                    cancelled: Optional[Callable[[], bool]] = None) -> CommitInfo:
        box: dict = {}

        def done() -> bool:
            raw = self.meta.get(keys.commit_key(repo, commit_id))
            if raw is None:
                box["gone"] = True
                return True
            ci = records.decode_commit(raw)
            box["ci"] = ci
            if ci.finished is None and cancelled is not None and cancelled():
                box["cancelled"] = True
                return True
            return ci.finished is not None

        if not self.wait_until(done, timeout):
            if self._closed:
                raise self.shutting_down_error()
            raise FailedPrecondition(f"timed out waiting for commit {repo}@{commit_id} to finish")
        if box.get("gone"):
            raise CommitNotFound(f"commit {repo}@{commit_id} was deleted while waiting for it")
        if box.get("cancelled"):
            raise FailedPrecondition(f"stopped waiting for commit {repo}@{commit_id}: the caller went away")
        return box["ci"]

    def get_commit(self, repo: Repo, commit_id: str) -> Optional[CommitInfo]:
        raw = self.meta.get(keys.commit_key(repo, commit_id))
        return None if raw is None else records.decode_commit(raw)

    def list_commits(self, repo: Repo, to: Optional[tuple] = None, from_: Optional[tuple] = None,
                     number: int = 0, reverse: bool = False, all: bool = False,
                     origin: str = "", started_before: Optional[float] = None) -> list[CommitInfo]:
        def passes(ci: CommitInfo) -> bool:
            return all or not origin or ci.origin == origin

        with self.txn() as t:
            self.require_project(t, repo.project)
            self.require_repo(t, repo)
            to_ci = self.resolve(t, *to) if to is not None else None
            from_ci = self.resolve(t, *from_) if from_ is not None else None
        limit = number if number > 0 else None
        out: list[CommitInfo] = []
        if from_ci is not None and to_ci is None:
            raise InvalidArgument("cannot use `from` commit without `to` commit")
        if to_ci is None:
            for _, v in self.meta.scan(prefix=keys.commit_order_prefix(repo), reverse=not reverse):
                ci = self.get_commit(repo, v.decode())
                if ci is None or not passes(ci):
                    continue
                if started_before is not None:
                    if (not reverse and ci.started >= started_before) or (reverse and ci.started <= started_before):
                        continue
                out.append(ci)
                if limit is not None and len(out) >= limit:
                    break
            return out
        if reverse:
            raise InvalidArgument("cannot use 'Reverse' while also using 'From' or 'To'")
        cur: Optional[CommitInfo] = to_ci
        while cur is not None and (from_ci is None or cur.commit.id != from_ci.commit.id):
            if passes(cur):
                out.append(cur)
                if limit is not None and len(out) >= limit:
                    break
            cur = self.get_commit(repo, cur.parent) if cur.parent else None
        return out

    def subscribe_commits(self, repo: Repo, branch: str = "", from_id: str = "",
                          state: str = STARTED, all: bool = False, origin: str = "",
                          cancelled: Callable[[], bool] = lambda: False) -> Iterator[CommitInfo]:
        """Existing commits (oldest first) then new ones as they appear, forever."""
        with self.txn() as t:
            self.require_repo(t, repo)
            start_seq = 0
            if from_id:
                fc = self.resolve(t, repo, from_id)
                start_seq = fc.seq
        pos = keys.commit_order_key(repo, start_seq + 1)
        prefix = keys.commit_order_prefix(repo)
        while not cancelled():
            if self._closed:
                raise self.shutting_down_error()
            batch = list(self.meta.scan(prefix=prefix, start=pos))
            for k, v in batch:
                pos = k + b"\x00"
                ci = self.get_commit(repo, v.decode())
                if ci is None:
                    continue
                if branch and ci.commit.branch != branch:
                    continue
                if not (all or not origin or ci.origin == origin):
                    continue
                if state in (FINISHED, FINISHING) and ci.finished is None:
                    while not cancelled():
                        try:
                            ci = self.wait_commit(repo, ci.commit.id, timeout=1.0)
                            break
                        except FailedPrecondition:
                            continue
                        except CommitNotFound:
                            ci = None
                            break
                    if ci is None or ci.finished is None:
                        continue
                yield ci
            if not batch:
                self.wait_until(lambda: cancelled() or any(
                    True for _ in self.meta.scan(prefix=prefix, start=pos, limit=1)), timeout=1.0)

    # ---- commit sets -------------------------------------------------------------------
    def commit_set(self, set_id: str) -> list[CommitInfo]:
        out = []
        for k, _ in self.meta.scan(prefix=keys.commit_set_prefix(set_id)):
            _, sid, project, name, rtype = k.split(b"\x00")
            ci = self.get_commit(Repo(project.decode(), name.decode(), rtype.decode()), set_id)
            if ci is not None:
                out.append(ci)
        out.sort(key=lambda c: c.seq)
        return out

    def inspect_commit_set(self, set_id: str, wait: bool = False,
                           timeout: Optional[float] = None,
                           cancelled: Optional[Callable[[], bool]] = None) -> list[CommitInfo]:
        cis = self.commit_set(set_id)
        if not cis:
            raise CommitSetNotFound(f"no commits found for commitset {set_id}")
        if wait:
            cis = [c if c.finished is not None
                   else self.wait_commit(c.commit.repo, c.commit.id, timeout, cancelled)
                   for c in cis]
        return cis

    def list_commit_sets(self, project: str = "") -> list[tuple[str, list[CommitInfo]]]:
        out = []
        for k, _ in self.meta.scan(prefix=keys.COMMIT_SET_ORDER_PREFIX, reverse=True):
            # W\0 <8-byte big-endian seq> \0 <set id>: the seq may itself hold NUL bytes
            set_id = k[len(keys.COMMIT_SET_ORDER_PREFIX) + 9:].decode()
            cis = self.commit_set(set_id)
            if project:
                cis = [c for c in cis if c.commit.repo.project == project]
            if cis:
                out.append((set_id, cis))
        return out

    def squash_commit_set(self, set_id: str) -> None:
        self._remove_commits(self.inspect_commit_set(set_id), squash=True)

    def drop_commit_set(self, set_id: str) -> None:
        self._remove_commits(self.inspect_commit_set(set_id), squash=False)

    def squash_commit(self, repo: Repo, commit_id: str, branch: str = "", recursive: bool = False) -> None:
        self._remove_one(repo, commit_id, branch, recursive, squash=True)

    def drop_commit(self, repo: Repo, commit_id: str, branch: str = "", recursive: bool = False) -> None:
        self._remove_one(repo, commit_id, branch, recursive, squash=False)

    def _remove_one(self, repo, commit_id, branch, recursive, squash) -> None:
        with self.txn() as t:
            ci = self.resolve(t, repo, commit_id, branch)
        cis = [ci]
        todo = list(ci.direct_subvenance)
        while todo:
            c = todo.pop()
            sc = self.get_commit(c.repo, c.id)
            if sc is not None and sc not in cis:
                cis.append(sc)
                todo.extend(sc.direct_subvenance)
        if len(cis) > 1 and not recursive:
            verb = "squash" if squash else "drop"
            raise FailedPrecondition(f"cannot {verb} commit {ci.commit} with subvenance without recursive")
        self._remove_commits(cis, squash)

    def _remove_commits(self, cis: list[CommitInfo], squash: bool) -> None:
        with self.txn() as t:
            for c in cis:
                cur = t.commit_info(c.commit.repo, c.commit.id)
                if squash and not cur.children:
                    raise FailedPrecondition(
                        f"cannot squash commit {cur.commit} because it has no children "
                        "(squashing it would lose its data); use drop instead")
                if not squash and cur.children:
                    raise FailedPrecondition(
                        f"cannot drop commit {cur.commit} because it has children; "
                        "drop them first or squash this commit instead")
            for c in cis:
                self._delete_commit(t, t.commit_info(c.commit.repo, c.commit.id))

    def _delete_commit(self, t: Txn, ci: CommitInfo) -> None:
        repo = ci.commit.repo
        parent = t.commit_info(repo, ci.parent) if ci.parent else None
        if parent is not None:
            parent.children = [x for x in parent.children if x != ci.commit.id] + [
                x for x in ci.children if x not in parent.children]
            t.put_commit(parent)
        for child_id in ci.children:
            child = t.commit_info(repo, child_id)
            if child is not None:
                child.parent = parent.commit.id if parent else None
                t.put_commit(child)
        for p in ci.direct_provenance:
            pc = t.commit_info(p.repo, p.id)
            if pc is not None:
                pc.direct_subvenance = [x for x in pc.direct_subvenance
                                        if not (x.repo == repo and x.id == ci.commit.id)]
                t.put_commit(pc)
        for s in ci.direct_subvenance:
            sc = t.commit_info(s.repo, s.id)
            if sc is not None:
                sc.direct_provenance = [x for x in sc.direct_provenance
                                        if not (x.repo == repo and x.id == ci.commit.id)]
                t.put_commit(sc)
        for k, v in self.meta.scan(prefix=keys.branch_prefix(repo)):
            bi = t._typed_get(k, records.decode_branch)
            if bi is not None and bi.head == ci.commit.id:
                if parent is not None:
                    bi.head = parent.commit.id
                else:
                    empty = self._new_commit(t, bi.branch, self.new_commit_set_id(), AUTO,
                                             parent=None, finished=True, provenance=[])
                    empty.root = None
                    empty.size = 0
                    t.put_commit(empty)
                    bi.head = empty.commit.id
                t.put_branch(bi)
        t.delete(keys.commit_key(repo, ci.commit.id))
        t.blind_delete(keys.commit_set_key(ci.commit.id, repo))
        t.blind_delete(keys.commit_order_key(repo, ci.seq))
        t.events.append(("commit_deleted", ci))
