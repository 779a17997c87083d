"""Projects and repos.

Invariants:
- The `default` project always exists. An empty project name means `default`.
- A repo is deleted with all its branches and commits in one transaction; a repo that other
  repos' branches have in their provenance is only deleted with force.
- A new repo has no branches; its size is the size of `master`'s head (0 without one).
"""
from __future__ import annotations

from typing import Iterable, Optional

from pfs import ancestry
from pfs.core import keys, records
from pfs.errors import (FailedPrecondition, HasDependents, ProjectExists, RepoExists)
from pfs.model import DEFAULT_PROJECT, Branch, ProjectInfo, Repo, RepoInfo


class ReposMixin:
    # ---- projects ------------------------------------------------------------------------
    def create_project(self, name: str, description: str = "", update: bool = False,
                       metadata: Optional[dict] = None) -> None:
        ancestry.validate_project_name(name)
        with self.txn() as t:
            p = t.project(name)
            if p is not None and not update:
                raise ProjectExists(f"project {name} already exists")
            if p is None:
                p = ProjectInfo(name, description, self.clock(), metadata or {})
            else:
                p.description = description
                if metadata is not None:
                    p.metadata = metadata
            t.put_project(p)

    def inspect_project(self, name: str) -> ProjectInfo:
        with self.txn() as t:
            return self.require_project(t, name or DEFAULT_PROJECT)

    def list_projects(self) -> list[ProjectInfo]:
        return [records.decode_project(v) for _, v in self.meta.scan(prefix=keys.PROJECT_PREFIX)]

    def delete_project(self, name: str, force: bool = False) -> None:
        name = name or DEFAULT_PROJECT
        with self.txn() as t:
            self.require_project(t, name)
            repos = [records.decode_repo(v) for _, v in self.meta.scan(prefix=keys.repo_prefix(name))]
            if repos and not force:
                raise HasDependents(
                    f"project {name} still has repos ({', '.join(r.repo.name for r in repos)}); "
                    "delete them first or use force")
            for r in repos:
                self._delete_repo_in(t, r.repo, force=True)
            t.delete(keys.project_key(name))

    # ---- repos ---------------------------------------------------------------------------
    def create_repo(self, repo: Repo, description: str = "", update: bool = False,
                    metadata: Optional[dict] = None) -> None:
        ancestry.validate_repo_name(repo.name)
        with self.txn() as t:
            self.require_project(t, repo.project)
            r = t.repo(repo)
            if r is not None and not update:
                raise RepoExists(f"repo {repo} already exists")
            if r is None:
                r = RepoInfo(repo, description, self.clock(), metadata or {})
            else:
                r.description = description
                if metadata is not None:
                    r.metadata = metadata
            t.put_repo(r)

    def _fill_repo(self, r: RepoInfo) -> RepoInfo:
        r.branches = [records.decode_branch(v).branch
                      for _, v in self.meta.scan(prefix=keys.branch_prefix(r.repo))]
        r.size = 0
        raw = self.meta.get(keys.branch_key(Branch(r.repo, "master")))
        if raw is not None:
            head = records.decode_branch(raw).head
            craw = self.meta.get(keys.commit_key(r.repo, head)) if head else None
            if craw is not None:
                r.size = self._commit_size(records.decode_commit(craw))
        return r

    def inspect_repo(self, repo: Repo) -> RepoInfo:
        with self.txn() as t:
            self.require_project(t, repo.project)
            r = self.require_repo(t, repo)
        return self._fill_repo(r)

    def list_repos(self, projects: Iterable[str] = (), type: str = "") -> list[RepoInfo]:
        projects = list(projects)
        out = []
        prefixes = [keys.repo_prefix(p or DEFAULT_PROJECT) for p in projects] or [keys.repo_prefix()]
        for prefix in prefixes:
            for _, v in self.meta.scan(prefix=prefix):
                r = records.decode_repo(v)
                if type and r.repo.type != type:
                    continue
                out.append(self._fill_repo(r))
        out.sort(key=lambda r: r.created, reverse=True)
        return out

    def delete_repo(self, repo: Repo, force: bool = False) -> bool:
        """False (no error) when the repo does not exist, as in Pachyderm 2.x."""
        with self.txn() as t:
            if t.repo(repo) is None:
                return False
            self._delete_repo_in(t, repo, force)
            return True

    def _delete_repo_in(self, t, repo: Repo, force: bool) -> None:
        branches = [records.decode_branch(v) for _, v in self.meta.scan(prefix=keys.branch_prefix(repo))]
        for bi in branches:
            outside = [s for s in bi.subvenance if s.repo != repo]
            if outside and not force:
                raise HasDependents(
                    f"unable to delete repo {repo}: branch {bi.branch.name} is in the provenance "
                    f"of {', '.join(str(s) for s in outside)}; delete those first or use force")
        for bi in branches:
            # detach from upstream branches' subvenance
            for up in bi.provenance:
                if up.repo == repo:
                    continue
                ub = t.branch(up)
                if ub is not None:
                    ub.subvenance = [s for s in ub.subvenance if s.repo != repo]
                    t.put_branch(ub)
            for down in bi.subvenance:
                if down.repo == repo:
                    continue
                db = t.branch(down)
                if db is not None:
                    db.direct_provenance = [p for p in db.direct_provenance if p.repo != repo]
                    db.provenance = [p for p in db.provenance if p.repo != repo]
                    t.put_branch(db)
            t.delete(keys.branch_key(bi.branch))
        for k, v in self.meta.scan(prefix=keys.commit_prefix(repo)):
            ci = records.decode_commit(v)
            t.blind_delete(keys.commit_set_key(ci.commit.id, repo))
            t.blind_delete(k)
            t.events.append(("commit_deleted", ci))
        for k, _ in self.meta.scan(prefix=keys.commit_order_prefix(repo)):
            t.blind_delete(k)
        t.delete(keys.repo_key(repo))
        t.events.append(("repo_deleted", repo))

    def _commit_size(self, ci) -> int:
        if ci.root is None:
            return 0
        return self.tree(ci).total().size

    @staticmethod
    def _check_not_system(repo: Repo) -> None:
        if repo.type not in ("user", "meta", "spec"):
            raise FailedPrecondition(f"unknown repo type {repo.type!r} (expected user, meta or spec)")
