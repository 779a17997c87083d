"""Conversions between the core's plain records and pfs_v2 protobuf messages.

Invariants:
- Requests are normalised here exactly once: an empty project means `default`, an empty repo
  type means `user`, a Commit may carry its repo in `repo` or in `branch.repo`, and a branch
  name may arrive in `commit.id` (the core resolves ids, branch names and ancestry alike).
- Responses carry what Pachyderm's clients read: both `repo` and `branch` on commits, sizes
  in `size_bytes_upper_bound` and in `details`, directories with a trailing `/`.
"""
from __future__ import annotations

from typing import Optional

from google.protobuf.timestamp_pb2 import Timestamp

from pfs.model import (DEFAULT_PROJECT, Branch, BranchInfo, CommitInfo, CommitRef, FileInfo,
                       ProjectInfo, Repo, RepoInfo)
from proto.pfs_v2 import pfs_pb2 as pb

ORIGIN_TO_PB = {"USER": pb.USER, "AUTO": pb.AUTO, "FSCK": pb.FSCK}
ORIGIN_FROM_PB = {pb.USER: "USER", pb.AUTO: "AUTO", pb.FSCK: "FSCK", pb.ORIGIN_KIND_UNKNOWN: ""}
STATE_FROM_PB = {pb.COMMIT_STATE_UNKNOWN: "", pb.STARTED: "STARTED", pb.READY: "READY",
                 pb.FINISHING: "FINISHING", pb.FINISHED: "FINISHED"}


def ts(t: Optional[float]) -> Optional[Timestamp]:
    if t is None:
        return None
    out = Timestamp()
    secs = int(t)
    out.seconds = secs
    out.nanos = int(round((t - secs) * 1e9)) % 1_000_000_000
    return out


def from_ts(t: Timestamp) -> float:
    return t.seconds + t.nanos / 1e9


# ---- requests -> core ---------------------------------------------------------------------
def repo_in(r: pb.Repo) -> Repo:
    return Repo(r.project.name or DEFAULT_PROJECT, r.name, r.type or "user")


def branch_in(b: pb.Branch) -> Branch:
    return Branch(repo_in(b.repo), b.name)


def commit_in(c: pb.Commit) -> tuple[Repo, str, str]:
    """(repo, id-or-ref, branch name) from a Commit that may be filled in several ways."""
    repo_msg = c.repo if c.HasField("repo") and c.repo.name else c.branch.repo
    return repo_in(repo_msg), c.id, c.branch.name if c.HasField("branch") else ""


# ---- core -> responses ---------------------------------------------------------------------
def project_out(name: str) -> pb.Project:
    return pb.Project(name=name)


def repo_out(r: Repo) -> pb.Repo:
    return pb.Repo(name=r.name, type=r.type, project=pb.Project(name=r.project))


def branch_out(b: Branch) -> pb.Branch:
    return pb.Branch(repo=repo_out(b.repo), name=b.name)


def commit_out(c: CommitRef) -> pb.Commit:
    msg = pb.Commit(repo=repo_out(c.repo), id=c.id)
    if c.branch:
        msg.branch.CopyFrom(branch_out(Branch(c.repo, c.branch)))
    return msg


def project_info_out(p: ProjectInfo) -> pb.ProjectInfo:
    return pb.ProjectInfo(project=project_out(p.name), description=p.description,
                          created_at=ts(p.created_at), metadata=p.metadata)


def repo_info_out(r: RepoInfo) -> pb.RepoInfo:
    return pb.RepoInfo(
        repo=repo_out(r.repo), created=ts(r.created), size_bytes_upper_bound=r.size,
        description=r.description, branches=[branch_out(b) for b in r.branches],
        details=pb.RepoInfo.Details(size_bytes=r.size), metadata=r.metadata)


def trigger_out(t: Optional[dict]) -> Optional[pb.Trigger]:
    if not t:
        return None
    return pb.Trigger(branch=t.get("branch", ""), all=t.get("all", False),
                      rate_limit_spec=t.get("rate_limit_spec", ""), size=t.get("size", ""),
                      commits=t.get("commits", 0), cron_spec=t.get("cron_spec", ""))


def trigger_in(t: pb.Trigger) -> Optional[dict]:
    if not t.branch and not (t.all or t.rate_limit_spec or t.size or t.commits or t.cron_spec):
        return None
    return {"branch": t.branch, "all": t.all, "rate_limit_spec": t.rate_limit_spec,
            "size": t.size, "commits": t.commits, "cron_spec": t.cron_spec}


def branch_info_out(bi: BranchInfo) -> pb.BranchInfo:
    msg = pb.BranchInfo(
        branch=branch_out(bi.branch),
        provenance=[branch_out(b) for b in bi.provenance],
        subvenance=[branch_out(b) for b in bi.subvenance],
        direct_provenance=[branch_out(b) for b in bi.direct_provenance],
        trigger=trigger_out(bi.trigger), metadata=bi.metadata, created_by=bi.created_by,
        created_at=ts(bi.created_at), updated_at=ts(bi.updated_at or bi.created_at))
    if bi.head:
        msg.head.CopyFrom(commit_out(CommitRef(bi.branch.repo, bi.head, bi.branch.name)))
    return msg


def commit_info_out(ci: CommitInfo) -> pb.CommitInfo:
    repo = ci.commit.repo
    msg = pb.CommitInfo(
        commit=commit_out(ci.commit),
        origin=pb.CommitOrigin(kind=ORIGIN_TO_PB.get(ci.origin, pb.USER)),
        description=ci.description,
        child_commits=[commit_out(CommitRef(repo, c)) for c in ci.children],
        started=ts(ci.started), finishing=ts(ci.finishing), finished=ts(ci.finished),
        direct_provenance=[commit_out(c) for c in ci.direct_provenance],
        direct_subvenance=[commit_out(c) for c in ci.direct_subvenance],
        error=ci.error, size_bytes_upper_bound=ci.size,
        details=pb.CommitInfo.Details(size_bytes=ci.size),
        metadata=ci.metadata, created_by=ci.created_by,
        created_at=ts(ci.started), updated_at=ts(ci.finished or ci.started))
    if ci.parent:
        msg.parent_commit.CopyFrom(commit_out(CommitRef(repo, ci.parent)))
    return msg


def file_info_out(fi: FileInfo) -> pb.FileInfo:
    return pb.FileInfo(
        file=pb.File(commit=commit_out(fi.commit), path=fi.path, datum=fi.datum),
        file_type=pb.DIR if fi.is_dir else pb.FILE,
        committed=ts(fi.committed), size_bytes=fi.size, hash=fi.hash)


class FileInfoWriter:
    """`file_info_out` for a run of entries of one commit (a listing, a walk, a glob).

    The same message `file_info_out` gives, made faster: the commit and its timestamp are
    converted once per run (profiled, they were two thirds of ListFile's own time), and each
    entry is a copy of that template with its own fields set."""

    __slots__ = ("_commit", "_committed", "_template")

    def __init__(self):
        self._commit = self._committed = self._template = None

    def fill(self, msg: pb.FileInfo, fi: FileInfo) -> pb.FileInfo:
        """Write `fi` into the empty message `msg` (e.g. `batch.file_infos.add()`)."""
        if fi.commit is not self._commit or fi.committed != self._committed or self._template is None:
            self._commit, self._committed = fi.commit, fi.committed
            self._template = pb.FileInfo(file=pb.File(commit=commit_out(fi.commit)), committed=ts(fi.committed))
        msg.CopyFrom(self._template)
        f = msg.file
        f.path = fi.path
        if fi.datum:
            f.datum = fi.datum
        msg.file_type = pb.DIR if fi.is_dir else pb.FILE
        msg.size_bytes = fi.size
        msg.hash = fi.hash
        return msg

    def one(self, fi: FileInfo) -> pb.FileInfo:
        return self.fill(pb.FileInfo(), fi)
