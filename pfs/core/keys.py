"""The layout of every metadata key, in one place.

Invariants:
- Each kind of record has a one-letter prefix and NUL-separated components; names are
  validated (`[a-zA-Z0-9_-]`) before they reach here, so NUL never occurs inside a component
  and a prefix scan for one parent never sees another's children.
- Fixed-width numbers are big-endian so byte order equals numeric order.
"""
from __future__ import annotations

import struct

from pfs.model import Branch, Repo

SEP = b"\x00"


def _j(*parts: str) -> bytes:
    return SEP.join(p.encode() for p in parts)


def project_key(project: str) -> bytes:
    return b"P\x00" + project.encode()


PROJECT_PREFIX = b"P\x00"


def repo_key(repo: Repo) -> bytes:
    return b"R\x00" + _j(repo.project, repo.name, repo.type)


def repo_prefix(project: str | None = None) -> bytes:
    return b"R\x00" if project is None else b"R\x00" + project.encode() + SEP


def branch_key(branch: Branch) -> bytes:
    r = branch.repo
    return b"B\x00" + _j(r.project, r.name, r.type, branch.name)


def branch_prefix(repo: Repo) -> bytes:
    return b"B\x00" + _j(repo.project, repo.name, repo.type) + SEP


def commit_key(repo: Repo, commit_id: str) -> bytes:
    return b"C\x00" + _j(repo.project, repo.name, repo.type, commit_id)


def commit_prefix(repo: Repo) -> bytes:
    return b"C\x00" + _j(repo.project, repo.name, repo.type) + SEP


def commit_order_key(repo: Repo, seq: int) -> bytes:
    """Commits of a repo in creation order: value is the commit id."""
    return b"O\x00" + _j(repo.project, repo.name, repo.type) + SEP + struct.pack(">Q", seq)


def commit_order_prefix(repo: Repo) -> bytes:
    return b"O\x00" + _j(repo.project, repo.name, repo.type) + SEP


def commit_set_key(set_id: str, repo: Repo) -> bytes:
    return b"S\x00" + _j(set_id, repo.project, repo.name, repo.type)


def commit_set_prefix(set_id: str | None = None) -> bytes:
    return b"S\x00" if set_id is None else b"S\x00" + set_id.encode() + SEP


def commit_set_order_key(seq: int, set_id: str) -> bytes:
    """Commit sets in creation order (ListCommitSet)."""
    return b"W\x00" + struct.pack(">Q", seq) + SEP + set_id.encode()


COMMIT_SET_ORDER_PREFIX = b"W\x00"


def chunk_key(chunk_hash: bytes) -> bytes:
    return b"K\x00" + chunk_hash


def node_key(node_hash: bytes) -> bytes:
    return b"N\x00" + node_hash


SEQUENCE_KEY = b"Q\x00seq"


def pps_key(kind: str, *parts: str) -> bytes:
    """Keys for the pipeline system (pipelines, jobs, datums, logs): `X\\0kind\\0...`."""
    return b"X\x00" + _j(kind, *parts)


def pps_prefix(kind: str, *parts: str) -> bytes:
    return b"X\x00" + _j(kind, *parts) + SEP


# ---- S3 gateway multipart uploads (pfs.s3gateway.mpstore) ------------------------------
# Parts' chunks are referenced from these records until the upload completes or aborts:
# a garbage collector must treat the refs in `s3_part_key` values as live.
def s3_upload_key(project: str, repo: str, branch: str, key: str, upload_id: str) -> bytes:
    return b"G\x00u\x00" + _j(project, repo, branch, key, upload_id)


def s3_upload_prefix(project: str, repo: str, branch: str, key_prefix: str = "") -> bytes:
    return b"G\x00u\x00" + _j(project, repo, branch) + SEP + key_prefix.encode()


def s3_part_key(upload_id: str, part: int) -> bytes:
    return b"G\x00p\x00" + upload_id.encode() + SEP + struct.pack(">I", part)


def s3_part_prefix(upload_id: str) -> bytes:
    return b"G\x00p\x00" + upload_id.encode() + SEP


S3_PART_PREFIX = b"G\x00p\x00"


# ---- pachd-level records (transactions, secrets, file sets, snapshots, ...) ---------------
def pachd_key(kind: str, *parts: str) -> bytes:
    """Records kept by pachd's own services, not by pfs or pps: `Y\\0kind\\0...`."""
    return b"Y\x00" + _j(kind, *parts)


def pachd_prefix(kind: str, *parts: str) -> bytes:
    return b"Y\x00" + _j(kind, *parts) + SEP
