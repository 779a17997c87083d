"""Encoding of the metadata records (projects, repos, branches, commits) as msgpack.

Invariants:
- Decoding tolerates fields added later (unknown keys ignored, missing keys defaulted), so
  a newer server reads an older data directory.
- Encoding is deterministic for equal records (compare-and-swap compares bytes).
"""
from __future__ import annotations

import msgpack

from pfs.model import Branch, BranchInfo, CommitInfo, CommitRef, ProjectInfo, Repo, RepoInfo


def _pack(d: dict) -> bytes:
    return msgpack.packb(d, use_bin_type=True)


def _unpack(b: bytes) -> dict:
    return msgpack.unpackb(b, raw=False)


def _branch(v) -> Branch:
    (p, n, t), name = v
    return Branch(Repo(p, n, t), name)


def _commit(v) -> CommitRef:
    (p, n, t), cid, br = v
    return CommitRef(Repo(p, n, t), cid, br)


def _b(b: Branch) -> list:
    return [list(b.repo), b.name]


def _c(c: CommitRef) -> list:
    return [list(c.repo), c.id, c.branch]


def encode_project(p: ProjectInfo) -> bytes:
    return _pack({"name": p.name, "description": p.description, "created_at": p.created_at,
                  "metadata": p.metadata})


def decode_project(b: bytes) -> ProjectInfo:
    d = _unpack(b)
    return ProjectInfo(d["name"], d.get("description", ""), d.get("created_at", 0.0), d.get("metadata", {}))


def encode_repo(r: RepoInfo) -> bytes:
    return _pack({"repo": list(r.repo), "description": r.description, "created": r.created,
                  "metadata": r.metadata})


def decode_repo(b: bytes) -> RepoInfo:
    d = _unpack(b)
    return RepoInfo(Repo(*d["repo"]), d.get("description", ""), d.get("created", 0.0), d.get("metadata", {}))


def encode_branch(bi: BranchInfo) -> bytes:
    return _pack({
        "branch": _b(bi.branch), "head": bi.head,
        "direct_provenance": [_b(x) for x in bi.direct_provenance],
        "provenance": [_b(x) for x in bi.provenance],
        "subvenance": [_b(x) for x in bi.subvenance],
        "trigger": bi.trigger, "created_at": bi.created_at, "created_by": bi.created_by,
        "updated_at": bi.updated_at, "metadata": bi.metadata,
    })


def decode_branch(b: bytes) -> BranchInfo:
    d = _unpack(b)
    return BranchInfo(
        branch=_branch(d["branch"]), head=d.get("head", ""),
        direct_provenance=[_branch(x) for x in d.get("direct_provenance", [])],
        provenance=[_branch(x) for x in d.get("provenance", [])],
        subvenance=[_branch(x) for x in d.get("subvenance", [])],
        trigger=d.get("trigger"), created_at=d.get("created_at", 0.0),
        created_by=d.get("created_by", ""), updated_at=d.get("updated_at", 0.0),
        metadata=d.get("metadata", {}),
    )


def encode_commit(ci: CommitInfo) -> bytes:
    return _pack({
        "commit": _c(ci.commit), "origin": ci.origin, "parent": ci.parent,
        "children": ci.children, "started": ci.started, "finishing": ci.finishing,
        "finished": ci.finished, "description": ci.description, "error": ci.error,
        "direct_provenance": [_c(x) for x in ci.direct_provenance],
        "direct_subvenance": [_c(x) for x in ci.direct_subvenance],
        "root": ci.root, "size": ci.size, "created_by": ci.created_by,
        "metadata": ci.metadata, "seq": ci.seq, "problems": ci.problems,
    })


def decode_commit(b: bytes) -> CommitInfo:
    d = _unpack(b)
    return CommitInfo(
        commit=_commit(d["commit"]), origin=d.get("origin", "USER"), parent=d.get("parent"),
        children=list(d.get("children", [])), started=d.get("started", 0.0),
        finishing=d.get("finishing"), finished=d.get("finished"),
        description=d.get("description", ""), error=d.get("error", ""),
        direct_provenance=[_commit(x) for x in d.get("direct_provenance", [])],
        direct_subvenance=[_commit(x) for x in d.get("direct_subvenance", [])],
        root=d.get("root"), size=d.get("size", 0), created_by=d.get("created_by", ""),
        metadata=d.get("metadata", {}), seq=d.get("seq", 0), problems=list(d.get("problems", [])),
    )
