"""Bucket names ↔ (repo, branch, commit), and S3 keys ↔ pfs paths.

Bucket names are `[[commitID.]branch.]repo[.project]`, split on '.':
  `repo` → master of repo in project `default`; `branch.repo` → project `default`;
  `branch.repo.project`; any of these may be prefixed by a 32-hex commit id, which pins the
  bucket to that commit (read-only). ListBuckets names every branch `branch.repo.project`.

Invariants:
- Pachyderm names never contain '.', so the split is unambiguous; a lone 32-hex name is a
  repo name, not a commit.
- A gateway may instead serve a fixed set of named buckets (`S3Gateway(buckets=...)`, the
  way Pachyderm's worker gateway serves a job's `s3` inputs and its `s3_out` bucket "out"):
  then only those names exist. A fixed bucket pinned to a commit is read-only unless it was
  made `writable`, which lets writes land in that (open) commit.
- An S3 key maps to the absolute pfs path "/" + key. Only canonical keys are accepted
  (no empty segment, no '.'/'..', no trailing '/'), so every object a client writes can be
  listed back under exactly the key it used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pfs import ancestry
from pfs.core import is_commit_id
from pfs.errors import InvalidPath
from pfs.model import DEFAULT_PROJECT, Repo
from pfs.s3gateway.errors import S3Error

MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class BucketRef:
    name: str
    repo: Repo
    branch: str
    commit: Optional[str] = None  # a pinned commit id: the bucket is read-only...
    writable: bool = False  # ...unless set (fixed buckets only): writes go into that open commit

    @property
    def pinned(self) -> bool:
        return self.commit is not None


def fixed_bucket(name: str, repo: Repo, commit_id: str, branch: str = "", writable: bool = False) -> BucketRef:
    """A bucket for `S3Gateway(buckets=...)`: `name` serves `repo@commit_id` (writable: into
    that commit while it is open, e.g. a job's output commit for `s3_out`)."""
    return BucketRef(name, repo, branch or "master", commit_id, writable)


def parse_bucket(name: str) -> BucketRef:
    parts = name.split(".")
    if any(not p for p in parts) or len(parts) > 4:
        raise S3Error("InvalidBucketName", f"bucket name {name!r} is not [[commitID.]branch.]repo[.project]",
                      BucketName=name)
    commit = None
    if len(parts) > 1 and is_commit_id(parts[0]):
        commit, parts = parts[0], parts[1:]
    if len(parts) == 1:
        branch, repo, project = "master", parts[0], DEFAULT_PROJECT
    elif len(parts) == 2:
        (branch, repo), project = parts, DEFAULT_PROJECT
    elif len(parts) == 3:
        branch, repo, project = parts
    else:
        raise S3Error("InvalidBucketName", f"bucket name {name!r} has too many parts", BucketName=name)
    for what, v in (("branch", branch), ("repo", repo), ("project", project)):
        if not ancestry.is_valid_name(v):
            raise S3Error("InvalidBucketName", f"invalid {what} name {v!r} in bucket {name!r}", BucketName=name)
    return BucketRef(name, Repo(project, repo, "user"), branch, commit)


def bucket_name(project: str, repo: str, branch: str) -> str:
    """The name ListBuckets gives a branch."""
    return f"{branch}.{repo}.{project}"


def key_to_path(key: str) -> str:
    """The pfs path of an S3 key; InvalidArgument / KeyTooLongError if it cannot be one."""
    if not key:
        raise S3Error("InvalidArgument", "an object key must not be empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Key=key[:64] + "...")
    path = "/" + key
    try:
        ancestry.validate_path(path)
    except InvalidPath as e:
        raise S3Error("InvalidArgument", e.message, Key=key) from None
    if ancestry.clean_path(path) != path:
        raise S3Error("InvalidArgument",
                      f"key {key!r} is not a canonical path (empty segment, '.' or trailing '/'); "
                      "Pachyderm stores files at canonical paths only", Key=key)
    return path


def is_canonical_key(key: str) -> bool:
    try:
        key_to_path(key)
        return True
    except S3Error:
        return False
