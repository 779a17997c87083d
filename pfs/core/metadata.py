"""Editing the user metadata (string -> string maps) of projects, repos, branches and commits
(Pachyderm 2.12's metadata.API/EditMetadata).

Invariants:
- All edits of one request apply in one core transaction, in order: all or nothing.
- Ops: replace (the whole map), add_key (fails if the key exists), edit_key (fails if it
  does not), delete_key (fails if it does not). Failures name the key and the object.
"""
from __future__ import annotations

from typing import Optional

from pfs.errors import FailedPrecondition, InvalidArgument


def apply_op(md: dict, op: str, key: str = "", value: str = "", replacement: Optional[dict] = None,
             where: str = "") -> dict:
    md = dict(md or {})
    if op == "replace":
        return dict(replacement or {})
    if not key:
        raise InvalidArgument(f"{op} needs a key ({where})")
    if op == "add_key":
        if key in md:
            raise FailedPrecondition(f"add_key: key {key!r} already exists in the metadata of {where}")
        md[key] = value
    elif op == "edit_key":
        if key not in md:
            raise FailedPrecondition(f"edit_key: key {key!r} does not exist in the metadata of {where}")
        md[key] = value
    elif op == "delete_key":
        if key not in md:
            raise FailedPrecondition(f"delete_key: key {key!r} does not exist in the metadata of {where}")
        del md[key]
    else:
        raise InvalidArgument(f"unknown metadata edit {op!r}")
    return md


class MetadataMixin:
    def edit_metadata(self, edits: list) -> None:
        """`edits`: (kind, target, op, key, value, replacement) with kind one of project
        (target: name), repo (Repo), branch (Branch), commit ((Repo, commit id))."""
        with self.txn() as t:
            for kind, target, op, key, value, replacement in edits:
                if kind == "project":
                    p = self.require_project(t, target)
                    p.metadata = apply_op(p.metadata, op, key, value, replacement, f"project {target}")
                    t.put_project(p)
                elif kind == "repo":
                    r = self.require_repo(t, target)
                    r.metadata = apply_op(r.metadata, op, key, value, replacement, f"repo {target}")
                    t.put_repo(r)
                elif kind == "branch":
                    bi = self.require_branch(t, target)
                    bi.metadata = apply_op(bi.metadata, op, key, value, replacement, f"branch {target}")
                    t.put_branch(bi)
                elif kind == "commit":
                    repo, cid = target
                    ci = self.resolve(t, repo, cid, "")
                    ci.metadata = apply_op(ci.metadata, op, key, value, replacement, f"commit {ci.commit}")
                    t.put_commit(ci)
                else:
                    raise InvalidArgument(f"cannot edit the metadata of a {kind}")
