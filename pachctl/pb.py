"""pfs_v2 request messages from parsed pachctl arguments (`pachctl.refs`).

Invariants:
- A Commit names its repo in `repo` and, when a branch is known, also in `branch.repo`, so
  servers reading either field agree; a commit id (or ancestry such as `master^`) goes in `id`.
- Projects are never empty here: the caller resolved `--project` / the context's project.
"""
from __future__ import annotations

from pachctl.refs import BranchRef, CommitRef, FileRef, RepoRef
from proto.pfs_v2 import pfs_pb2 as pfs


def project(name: str) -> pfs.Project:
    return pfs.Project(name=name)


def repo(r: RepoRef) -> pfs.Repo:
    return pfs.Repo(name=r.name, type=r.type or "user", project=project(r.project))


def branch(b: BranchRef) -> pfs.Branch:
    return pfs.Branch(repo=repo(b.repo), name=b.name)


def commit(c: CommitRef) -> pfs.Commit:
    msg = pfs.Commit(repo=repo(c.repo), id=c.id)
    if c.branch:
        msg.branch.CopyFrom(branch(c.branch_ref))
    return msg


def file(f: FileRef, path: str | None = None) -> pfs.File:
    return pfs.File(commit=commit(f.commit), path=f.path if path is None else path)
