"""Pachyderm 2.12's pickers (ProjectPicker, RepoPicker, BranchPicker, CommitPicker) -> core.

Pickers select one object in requests of the newer RPCs (Walk*, ForgetCommit, metadata
edits). A picker that names nothing is INVALID_ARGUMENT; what it names must exist
(NOT_FOUND with the core's usual texts).
"""
from __future__ import annotations

from pfs.errors import InvalidArgument
from pfs.model import DEFAULT_PROJECT, Branch, CommitInfo, Repo
from proto.pfs_v2 import pfs_pb2 as pb


def project(p: pb.ProjectPicker) -> str:
    if p.WhichOneof("picker") == "name":
        return p.name or DEFAULT_PROJECT
    return DEFAULT_PROJECT


def repo(p: pb.RepoPicker) -> Repo:
    if p.WhichOneof("picker") != "name" or not p.name.name:
        raise InvalidArgument("repo picker names no repo")
    return Repo(project(p.name.project), p.name.name, p.name.type or "user")


def branch(p: pb.BranchPicker) -> Branch:
    if p.WhichOneof("picker") != "name" or not p.name.name:
        raise InvalidArgument("branch picker names no branch")
    return Branch(repo(p.name.repo), p.name.name)


def commit(pfs, p: pb.CommitPicker) -> CommitInfo:
    kind = p.WhichOneof("picker")
    if kind == "branch_head":
        b = branch(p.branch_head)
        return pfs.commit_for_read(b.repo, "", b.name)
    if kind == "id":
        if not p.id.id:
            raise InvalidArgument("commit picker names no commit id")
        return pfs.commit_for_read(repo(p.id.repo), p.id.id, "")
    if kind == "ancestor":
        start = commit(pfs, p.ancestor.start)
        ref = start.commit.id + (f"^{p.ancestor.offset}" if p.ancestor.offset else "")
        return pfs.commit_for_read(start.commit.repo, ref, "")
    if kind == "branch_root":
        b = branch(p.branch_root.branch)
        return pfs.commit_for_read(b.repo, f"{b.name}.{p.branch_root.offset + 1}", "")
    raise InvalidArgument("commit picker names no commit")
