"""What is mounted: one `View` per top-level directory, from `--repos` arguments or the mount
server's requests, checked against pachd before anything is mounted.

    -r repo[@branch[=commit]][+mode]      mode: any of r, w ('+w' and '+rw' are writable)

Invariants:
- Parsing never talks to pachd; `resolve_views` does every check before mounting, so a bad
  argument is one clear error and no half-made mount: a missing repo, branch or commit is an
  error, except a writable branch, which is created (empty) there and then.
- A view is writable only when asked (`+w`, `--write`, mode `rw`) AND it is a branch that
  no pipeline writes: a commit id, or a branch with provenance (a pipeline's output), never is.
  Asking for it explicitly is an error; `--write` without `--repos` mounts those read-only.
- Names are unique: a repo mounted twice (two `-r` for it) is an error.
- A view's `paths` (datum mode) limit what it shows to those paths, their ancestors and
  everything below them; `local_only` views (the datum mode's `out`) have no repo at all.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from typing import Iterable, Optional

import grpc

from pachctl.refs import is_commit_set_id, parse_commit
from proto.pfs_v2 import pfs_pb2 as pfs

MODE_CHARS = frozenset("rw")


class MountError(ValueError):
    """A problem with what was asked to be mounted; its text is shown to the user as is."""


@dataclass(frozen=True)
class RepoArg:
    """One `-r` argument, parsed."""
    repo: str
    repo_type: str
    branch: str
    commit: str
    writable: bool
    text: str


@dataclass
class View:
    """One directory under the mountpoint: a repo at a branch (following its head) or at a
    commit (fixed), read-only or writable, optionally limited to some paths."""
    name: str
    project: str = "default"
    repo: str = ""
    repo_type: str = "user"
    branch: str = ""
    commit: str = ""               # a fixed commit (a commit view), "" for a branch view
    writable: bool = False
    paths: tuple = ()              # datum mode: only these repo paths (and what is below)
    local_only: bool = False       # no repo: a scratch directory (datum mode's `out`)
    overlay: object = field(default=None, repr=False)   # overlay.Overlay of a writable view

    @property
    def follows_branch(self) -> bool:
        return not self.commit and not self.local_only

    def describe(self) -> str:
        ref = self.commit if self.commit else self.branch
        where = f"{self.project}/{self.repo}@{ref}" if not self.local_only else "(local only)"
        return f"{where}{' (writable)' if self.writable else ''}"

    # ---- datum-mode path filters ------------------------------------------------------------
    def visible(self, path: str) -> bool:
        """Is this repo path shown? (always, unless the view is limited to some paths)"""
        if not self.paths:
            return True
        for p in self.paths:
            if p == "/" or path == p or path.startswith(p + "/") or p.startswith(path.rstrip("/") + "/"):
                return True
        return False

    def fully_visible(self, path: str) -> bool:
        """Is everything below this repo path shown (not just the way to a datum path)?"""
        if not self.paths:
            return True
        return any(p == "/" or path == p or path.startswith(p + "/") for p in self.paths)

    def children_on_the_way(self, path: str) -> set:
        """Names below `path` that lead to a datum path (for a directory not fully visible)."""
        prefix = "/" if path == "/" else path + "/"
        out = set()
        for p in self.paths:
            if p.startswith(prefix) and p != prefix:
                out.add(p[len(prefix):].split("/", 1)[0])
        return out


def parse_repo_arg(arg: str, project: str = "default") -> RepoArg:
    """`repo[@branch[=commit]][+mode]` (Pachyderm's `--repos`); branch defaults to master."""
    body, mode = arg, ""
    if "+" in arg:
        body, _, mode = arg.rpartition("+")
        if not mode or not set(mode) <= MODE_CHARS:
            raise MountError(f'invalid format "{arg}": unrecognized mode: \'{mode}\' '
                             f"(use +r for read-only or +w for writable)")
    try:
        c = parse_commit(body, project)
    except ValueError as e:
        raise MountError(str(e)) from None
    branch, commit = c.branch, c.id
    if not branch and not commit:
        branch = "master"
    return RepoArg(c.repo.name, c.repo.type or "user", branch, commit, "w" in mode, arg)


def _code(e: grpc.RpcError):
    return e.code() if hasattr(e, "code") else None


def _details(e: grpc.RpcError) -> str:
    return (e.details() if hasattr(e, "details") else "") or str(e)


def _repo_msg(project: str, name: str, repo_type: str = "user") -> pfs.Repo:
    return pfs.Repo(name=name, type=repo_type or "user", project=pfs.Project(name=project))


def resolve_views(client, project: str, args: Iterable[str], write_all: bool = False) -> list[View]:
    """Check `--repos` arguments against pachd and turn them into views.

    No arguments: every user repo of the project at master, writable with `write_all`.
    """
    parsed = [parse_repo_arg(a, project) for a in args]
    seen: dict[str, str] = {}
    for p in parsed:
        if p.repo in seen:
            raise MountError(f"repo {p.repo} is given twice ({seen[p.repo]} and {p.text}); "
                             "each repo can be mounted once")
        seen[p.repo] = p.text
    if not parsed:
        return _all_repos(client, project, write_all)
    return [_check(client, project, p) for p in parsed]


def _all_repos(client, project: str, write_all: bool) -> list[View]:
    try:
        client.pfs.InspectProject(pfs.InspectProjectRequest(project=pfs.Project(name=project)))
    except grpc.RpcError as e:
        if _code(e) == grpc.StatusCode.NOT_FOUND:
            raise MountError(_details(e)) from None
        raise
    views = []
    req = pfs.ListRepoRequest(type="user", projects=[pfs.Project(name=project)])
    for ri in client.pfs.ListRepo(req):
        if (ri.repo.project.name or "default") != project:
            continue
        v = View(name=ri.repo.name, project=project, repo=ri.repo.name, branch="master")
        if write_all:
            v.writable = not _is_output_branch(client, v)
        views.append(v)
    views.sort(key=lambda v: v.name)
    return views


def _is_output_branch(client, v: View) -> bool:
    try:
        bi = client.pfs.InspectBranch(pfs.InspectBranchRequest(
            branch=pfs.Branch(repo=_repo_msg(v.project, v.repo, v.repo_type), name=v.branch)))
    except grpc.RpcError as e:
        if _code(e) == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return bool(bi.direct_provenance or bi.provenance)


def _check(client, project: str, p: RepoArg) -> View:
    repo = _repo_msg(project, p.repo, p.repo_type)
    try:
        client.pfs.InspectRepo(pfs.InspectRepoRequest(repo=repo))
    except grpc.RpcError as e:
        if _code(e) == grpc.StatusCode.NOT_FOUND:
            raise MountError(f"cannot mount {p.text}: {_details(e)}") from None
        raise
    v = View(name=p.repo, project=project, repo=p.repo, repo_type=p.repo_type, branch=p.branch,
             writable=p.writable)
    if p.commit:
        if p.writable:
            raise MountError(f"cannot mount {p.text} writable: a commit never changes; "
                             f"mount a branch with +w to write (e.g. {p.repo}@master+w)")
        commit = pfs.Commit(repo=repo, id=p.commit)
        if p.branch:
            commit.branch.CopyFrom(pfs.Branch(repo=repo, name=p.branch))
        try:
            ci = client.pfs.InspectCommit(pfs.InspectCommitRequest(commit=commit))
        except grpc.RpcError as e:
            if _code(e) in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise MountError(f"cannot mount {p.text}: {_details(e)}") from None
            raise
        v.commit = ci.commit.id
        v.branch = ci.commit.branch.name if ci.commit.HasField("branch") else p.branch
        return v
    branch = pfs.Branch(repo=repo, name=p.branch)
    try:
        bi = client.pfs.InspectBranch(pfs.InspectBranchRequest(branch=branch))
    except grpc.RpcError as e:
        if _code(e) != grpc.StatusCode.NOT_FOUND:
            raise
        if not p.writable:
            raise MountError(f"cannot mount {p.text}: {_details(e)} "
                             f"(a writable mount, {p.repo}@{p.branch}+w, would create it)") from None
        client.pfs.CreateBranch(pfs.CreateBranchRequest(branch=branch))
        return v
    if p.writable and (bi.direct_provenance or bi.provenance):
        raise MountError(f"cannot mount {p.text} writable: {p.repo}@{p.branch} is a pipeline's "
                         "output branch (its commits come from its inputs); mount it read-only")
    return v


def datum_view(name: str, project: str, repo: str, branch: str, commit: str, paths: list) -> View:
    """A read-only view of one datum's files of one input (mount server, datum mode)."""
    clean = tuple(sorted({("/" + p.strip("/")) if p.strip("/") else "/" for p in paths}))
    return View(name=name, project=project, repo=repo, branch=branch, commit=commit, paths=clean)


def with_name(v: View, name: str) -> View:
    return replace(v, name=name)


def join(path: str, name: str) -> str:
    if name.startswith("/"):
        return posixpath.join(path, name)
    return path + name if path.endswith("/") else path + "/" + name


def is_commit_id(s: str) -> bool:
    return is_commit_set_id(s)


def head_commit(view: View) -> Optional[str]:
    return view.commit or None
