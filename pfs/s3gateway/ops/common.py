"""What every operation needs: the request context, bucket resolution and object metadata.

Invariants:
- Reads resolve the bucket to exactly one commit (`Ctx.commit`): the `versionId` if given,
  else the bucket's pinned commit, else the branch head. A whole response is served from that
  one commit, so a concurrent write never mixes versions within a response.
- Writes go only to branches (`Ctx.write_branch`): pinned buckets and pinned versions are
  refused with MethodNotAllowed before anything is read or stored.
- ETag = the quoted hex of the pfs file hash; version id = commit id; Last-Modified = the
  commit's finish time (its start time while it is open).
"""
from __future__ import annotations

from functools import cached_property
from typing import Optional

from pfs import errors as pe
from pfs.core import is_commit_id
from pfs.model import Branch, CommitInfo
from pfs.s3gateway import names
from pfs.s3gateway.errors import S3Error, read_only
from pfs.s3gateway.request import Request


def etag(h: bytes) -> str:
    return '"' + h.hex() + '"'


def strip_etag(s: str) -> str:
    s = s.strip()
    if s.startswith("W/"):
        s = s[2:]
    return s.strip('"').lower()


def modified(ci: CommitInfo) -> float:
    return ci.finished or ci.started or 0.0


class Ctx:
    def __init__(self, gw, req: Request):
        self.gw = gw
        self.pfs = gw.pfs
        self.req = req

    @cached_property
    def bucket(self) -> names.BucketRef:
        return names.parse_bucket(self.req.bucket)

    @property
    def version_id(self) -> Optional[str]:
        v = self.req.query.get("versionId")
        return v if v not in (None, "", "null") else None

    def commit(self, version_id: Optional[str] = None) -> CommitInfo:
        """The commit a read of this bucket sees (raises NoSuchBucket / NoSuchVersion)."""
        b = self.bucket
        try:
            if version_id:
                if not is_commit_id(version_id):
                    raise S3Error("InvalidArgument", f"invalid version id {version_id!r}: "
                                                     "versions are 32-hex Pachyderm commit ids")
                try:
                    self.pfs.inspect_branch(Branch(b.repo, b.branch)) if not b.pinned else None
                except pe.NotFound:
                    raise S3Error("NoSuchBucket", BucketName=b.name) from None
                try:
                    return self.pfs.commit_for_read(b.repo, version_id)
                except pe.CommitNotFound as e:
                    raise S3Error("NoSuchVersion", e.message) from None
            if b.pinned:
                return self.pfs.commit_for_read(b.repo, b.commit)
            return self.pfs.commit_for_read(b.repo, "", b.branch)
        except (pe.RepoNotFound, pe.BranchNotFound, pe.ProjectNotFound, pe.CommitNotFound) as e:
            raise S3Error("NoSuchBucket", e.message, BucketName=b.name) from None

    def write_branch(self) -> names.BucketRef:
        """The bucket, checked to be a writable branch that exists."""
        b = self.bucket
        if b.pinned:
            raise read_only(b.name, f"it is pinned to commit {b.commit}")
        if self.version_id:
            raise read_only(b.name, f"version {self.version_id} is an immutable commit")
        try:
            self.pfs.inspect_branch(Branch(b.repo, b.branch))
        except pe.NotFound as e:
            raise S3Error("NoSuchBucket", e.message, BucketName=b.name) from None
        return b

    def body(self):
        return self.req.body
