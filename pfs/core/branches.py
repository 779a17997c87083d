"""Branches, branch provenance, and propagation of commits downstream.

Invariants (Pachyderm 2.x):
- A branch that exists has a head commit. Creating a branch without a head gives it an empty
  AUTO commit: finished if the branch has no provenance, open if it has (a pipeline fills it).
- `provenance` is the transitive closure of `direct_provenance`; `subvenance` is its inverse.
  Both are recomputed from the direct edges whenever an edge changes; the graph is acyclic
  and a repo's branch never has its own repo in its provenance.
- Propagation: when a branch gets a new head, every branch downstream of it gets a new open
  AUTO commit with the SAME id (one global commit set), whose parent is that branch's old
  head and whose direct provenance is the new commits (or heads) of its direct provenance.
  Downstream branches are handled in order of provenance depth.
"""
from __future__ import annotations

from typing import Optional

from pfs import ancestry
from pfs.core import keys, records
from pfs.core.txn import Txn
from pfs.errors import HasDependents, InvalidArgument
from pfs.model import AUTO, Branch, BranchInfo, CommitInfo, CommitRef, Repo


class BranchesMixin:
    def create_branch(self, branch: Branch, head: Optional[tuple] = None,
                      provenance: tuple = (), trigger: Optional[dict] = None,
                      new_commit_set: bool = False, commit_set_id: Optional[str] = None) -> None:
        """head: (repo, commit_id, branch_name) as the client gave it, or None.

        commit_set_id: join an existing commit set (pps uses it so a new pipeline's first
        output commit shares its spec commit's id, as in Pachyderm); default a new one."""
        ancestry.validate_branch_name(branch.name)
        for p in provenance:
            ancestry.validate_branch_name(p.name)
            if p.repo == branch.repo:
                raise InvalidArgument(f"repo {branch.repo} cannot be in the provenance of its own branch")
        if provenance and trigger:
            raise InvalidArgument("a branch cannot have both provenance and a trigger")
        if trigger is not None:
            if not trigger.get("branch"):
                raise InvalidArgument("triggers must specify a branch to trigger on")
            ancestry.validate_branch_name(trigger["branch"])
        with self.txn() as t:
            self.require_project(t, branch.repo.project)
            self.require_repo(t, branch.repo)
            set_id = commit_set_id or self.new_commit_set_id()
            # upstream branches that do not exist yet get an empty finished commit
            for p in provenance:
                self.require_repo(t, p.repo)
                if t.branch(p) is None:
                    ci = self._new_commit(t, p, set_id, AUTO, parent=None, finished=True)
                    t.put_branch(BranchInfo(p, head=ci.commit.id, created_at=self.clock(),
                                            updated_at=self.clock()))
            head_ci = None
            if head is not None:
                hrepo, hid, hbranch = head
                if hrepo != branch.repo:
                    raise InvalidArgument(f"branch {branch} cannot point at a commit in repo {hrepo}")
                head_ci = self.resolve(t, hrepo, hid, hbranch)
            bi = t.branch(branch)
            now = self.clock()
            if bi is None:
                bi = BranchInfo(branch, created_at=now)
            old_prov = list(bi.direct_provenance)
            bi.direct_provenance = sorted(set(provenance))
            bi.updated_at = now
            if trigger is not None:
                bi.trigger = trigger
            t.put_branch(bi)
            self._recompute_provenance(t)
            bi = t.branch(branch)
            if branch in bi.provenance:
                raise InvalidArgument(f"branch {branch} cannot be in its own provenance")
            propagate = False
            if head_ci is not None:
                bi.head = head_ci.commit.id
                propagate = True
            if not bi.head or (set(old_prov) != set(provenance) and provenance):
                parent = bi.head or None
                ci = self._new_commit(t, branch, set_id, AUTO, parent=parent,
                                      finished=not provenance, base=head_ci)
                bi.head = ci.commit.id
                propagate = True
            t.put_branch(bi)
            if propagate:
                self._propagate(t, [branch], set_id)

    def set_branch_provenance(self, branch: Branch, provenance: list) -> None:
        """Replace a branch's direct provenance without starting a commit (pipeline updates:
        the new spec commit that follows propagates the new head)."""
        with self.txn() as t:
            bi = self.require_branch(t, branch)
            for p in provenance:
                if p.repo == branch.repo:
                    raise InvalidArgument(f"repo {branch.repo} cannot be in the provenance of its own branch")
                if t.branch(p) is None:
                    self.require_repo(t, p.repo)
                    ci = self._new_commit(t, p, self.new_commit_set_id(), AUTO, parent=None, finished=True)
                    t.put_branch(BranchInfo(p, head=ci.commit.id, created_at=self.clock(),
                                            updated_at=self.clock()))
            bi.direct_provenance = sorted(set(provenance))
            bi.updated_at = self.clock()
            t.put_branch(bi)
            self._recompute_provenance(t)

    def inspect_branch(self, branch: Branch) -> BranchInfo:
        with self.txn() as t:
            self.require_project(t, branch.repo.project)
            return self.require_branch(t, branch)

    def list_branches(self, repo: Optional[Repo] = None, reverse: bool = False) -> list[BranchInfo]:
        if repo is not None:
            with self.txn() as t:
                self.require_repo(t, repo)
            prefix = keys.branch_prefix(repo)
        else:
            prefix = b"B\x00"
        out = [records.decode_branch(v) for _, v in self.meta.scan(prefix=prefix)]
        # newest first, as Pachyderm lists them
        out.sort(key=lambda b: (b.created_at, b.branch.name), reverse=not reverse)
        return out

    def delete_branch(self, branch: Branch, force: bool = False) -> None:
        with self.txn() as t:
            bi = t.branch(branch)
            if bi is None:
                if force:
                    return
                self.require_branch(t, branch)
            if bi.subvenance and not force:
                raise HasDependents(
                    f"branch {branch} has subvenance ({', '.join(str(s) for s in bi.subvenance)}); "
                    "delete those branches first or use force")
            for s in bi.subvenance:
                sb = t.branch(s)
                if sb is not None and branch in sb.direct_provenance:
                    sb.direct_provenance = [p for p in sb.direct_provenance if p != branch]
                    t.put_branch(sb)
            t.delete(keys.branch_key(branch))
            self._recompute_provenance(t)

    # ---- helpers -----------------------------------------------------------------------
    def new_commit_set_id(self) -> str:
        from pfs.core.base import new_id
        return self.ambient_commit_set_id() or new_id()

    def _repoint_provenance(self, t: Txn, ci: CommitInfo, bi: BranchInfo, set_id: str) -> None:
        """A commit set that grows after its downstream commit was made (several commits
        started in one transaction): the downstream commit's provenance moves to the set's
        commits in its upstream repos, so it sees them together (as Pachyderm does)."""
        prov = list(ci.direct_provenance)
        for p in bi.direct_provenance:
            if t.commit_info(p.repo, set_id) is None:
                continue
            for i, ref in enumerate(prov):
                if ref.repo == p.repo and ref.branch == p.name and ref.id != set_id:
                    old = t.commit_info(ref.repo, ref.id)
                    if old is not None:
                        old.direct_subvenance = [s for s in old.direct_subvenance
                                                 if not (s.repo == ci.commit.repo and s.id == ci.commit.id)]
                        t.put_commit(old)
                    prov[i] = CommitRef(p.repo, set_id, p.name)
                    new = t.commit_info(p.repo, set_id)
                    if all(not (s.repo == ci.commit.repo and s.id == ci.commit.id) for s in new.direct_subvenance):
                        new.direct_subvenance.append(CommitRef(ci.commit.repo, ci.commit.id, ci.commit.branch))
                        t.put_commit(new)
        if prov != ci.direct_provenance:
            ci.direct_provenance = prov
            t.put_commit(ci)

    def _recompute_provenance(self, t: Txn) -> None:
        """Rebuild provenance/subvenance closures for every branch from the direct edges."""
        all_keys = [k for k, _ in self.meta.scan(prefix=b"B\x00")]
        infos: dict[Branch, BranchInfo] = {}
        for k in all_keys:
            raw = t.get(k)
            if raw is not None:
                bi = t._typed_get(k, records.decode_branch)
                infos[bi.branch] = bi
        for k, v in t._writes.items():  # branches created in this transaction
            if k.startswith(b"B\x00") and v is not None:
                bi = t._typed_get(k, records.decode_branch)
                infos[bi.branch] = bi
        closure: dict[Branch, set] = {}

        def prov(b: Branch, stack: tuple = ()) -> set:
            if b in closure:
                return closure[b]
            if b in stack:
                raise InvalidArgument(f"branch {b} cannot be in its own provenance")
            out: set = set()
            bi = infos.get(b)
            for p in (bi.direct_provenance if bi else []):
                out.add(p)
                out |= prov(p, stack + (b,))
            closure[b] = out
            return out

        sub: dict[Branch, set] = {b: set() for b in infos}
        for b in infos:
            for p in prov(b):
                sub.setdefault(p, set()).add(b)
        for b, bi in infos.items():
            new_prov = sorted(closure[b])
            new_sub = sorted(sub.get(b, set()))
            if new_prov != bi.provenance or new_sub != bi.subvenance:
                bi.provenance, bi.subvenance = new_prov, new_sub
                t.put_branch(bi)

    def _propagate(self, t: Txn, branches: list[Branch], set_id: str) -> list[CommitInfo]:
        seen: dict[Branch, BranchInfo] = {}
        for b in branches:
            bi = t.branch(b)
            for s in bi.subvenance:
                if s not in seen:
                    seen[s] = t.branch(s)
        started = set(branches)
        created = []
        for bi in sorted((x for x in seen.values() if x is not None), key=lambda x: len(x.provenance)):
            existing = t.commit_info(bi.branch.repo, set_id)
            if existing is not None:  # this repo already has a commit in the set
                self._repoint_provenance(t, existing, bi, set_id)
                continue
            prov = []
            for p in bi.direct_provenance:
                if p in seen or p in started:
                    prov.append(CommitRef(p.repo, set_id, p.name))
                else:
                    pb = t.branch(p)
                    if pb is not None and pb.head:
                        prov.append(CommitRef(p.repo, pb.head, p.name))
            ci = self._new_commit(t, bi.branch, set_id, AUTO, parent=bi.head or None,
                                  finished=False, provenance=prov)
            bi.head = ci.commit.id
            t.put_branch(bi)
            created.append(ci)
        return created
