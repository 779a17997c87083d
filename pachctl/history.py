"""`list file --history`: Pachyderm 1.x's file revision history, computed client-side.

For each entry of the listing at the starting commit, walk the commit's ancestors (parent
pointers) and report the commits where that path's content hash changed: version k of a path
is the commit that introduced it, i.e. the commit whose parent holds a different hash (or no
such path). `--history N` keeps the N newest versions per path, `all` every one, `none` none
(a plain listing).

Invariants:
- Only public RPCs are used (InspectCommit, ListFile); one ListFile per ancestor visited, and
  the walk stops as soon as every path has its N versions or has disappeared.
- Output order: paths in listing order, each path's versions newest first.
- Returned FileInfos are the ones listed at the introducing commit, so size/type are that
  version's.
"""
from __future__ import annotations

from typing import Iterator, Optional

import grpc

from proto.pfs_v2 import pfs_pb2 as pfs


def parse_history(value: str) -> int:
    """`none` -> 0, `all` -> -1, else a non-negative integer."""
    v = value.strip().lower()
    if v == "none":
        return 0
    if v == "all":
        return -1
    try:
        n = int(v)
    except ValueError:
        n = -2
    if n < 0:
        raise ValueError(f'invalid --history value "{value}": must be "none", "all" or a non-negative number')
    return n


def _listing(client, commit: pfs.Commit, path: str) -> Optional[dict]:
    """path -> FileInfo at commit (None when the path does not exist there)."""
    req = pfs.ListFileRequest(file=pfs.File(commit=commit, path=path))
    try:
        return {fi.file.path.rstrip("/") or "/": fi for fi in client.pfs.ListFile(req)}
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def _by_id(commit_info: pfs.CommitInfo, commit_id: str) -> pfs.Commit:
    c = commit_info.commit
    return pfs.Commit(repo=c.repo if c.HasField("repo") and c.repo.name else c.branch.repo, id=commit_id)


def file_history(client, start: pfs.Commit, path: str, n: int) -> Iterator[tuple[pfs.CommitInfo, pfs.FileInfo]]:
    """(introducing commit, FileInfo) pairs; n = -1 for all versions."""
    if n == 0:
        return
    ci = client.pfs.InspectCommit(pfs.InspectCommitRequest(commit=start))
    listing = _listing(client, _by_id(ci, ci.commit.id), path) or {}
    order = list(listing)
    versions: dict[str, list] = {p: [] for p in order}
    current = {p: (ci, listing[p]) for p in order}  # version being traced, and where we saw it
    live = set(order)
    while live:
        parent_id = ci.parent_commit.id if ci.HasField("parent_commit") else ""
        parent = None
        older: dict = {}
        if parent_id:
            parent = client.pfs.InspectCommit(pfs.InspectCommitRequest(commit=_by_id(ci, parent_id)))
            older = _listing(client, _by_id(parent, parent_id), path) or {}
        for p in list(live):
            seen_at, fi = current[p]
            prev = older.get(p)
            if prev is None or prev.hash != fi.hash or prev.file_type != fi.file_type:
                versions[p].append((seen_at, fi))  # `seen_at` introduced this version
                if prev is None or (n > 0 and len(versions[p]) >= n):
                    live.discard(p)
                    continue
            current[p] = (parent, prev)
        if parent is None:
            break
        ci = parent
    for p in order:
        for seen_at, fi in versions[p]:
            yield seen_at, fi
