"""What every operation needs: the request context, bucket resolution and object metadata.

Invariants:
- Reads resolve the bucket to exactly one commit (`Ctx.commit`): the `versionId` if given,
  else the bucket's pinned commit, else the branch head. A whole response is served from that
  one commit, so a concurrent write never mixes versions within a response.
- Writes go only to branches, or to the open commit of a fixed writable bucket
  (`Ctx.write_branch`): other pinned buckets and pinned versions are refused with
  MethodNotAllowed before anything is read or stored.
- Writes store content first and publish after (`store`, then `publish`): a body streams
  into the chunk store with no lock held, and the branch's write lock is taken only to
  apply the (path → content) edits and commit them, so a slow upload never blocks the
  branch. Publishing refuses to turn a directory into an object (S3 lets "a" and "a/b"
  coexist, a file system cannot; silently deleting "a/*" would be worse).
- ETag = the quoted hex of the pfs file hash; version id = commit id; Last-Modified = the
  commit's finish time (its start time while it is open).
"""
from __future__ import annotations

from functools import cached_property
from typing import Iterable, Optional

from pfs import errors as pe
from pfs.core import is_commit_id
from pfs.core.content import FileContent
from pfs.core.filetree import file_entry
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
        return self.gw.resolve_bucket(self.req.bucket)

    @property
    def version_id(self) -> Optional[str]:
        v = self.req.query.get("versionId")
        return v if v not in (None, "", "null") else None

    def commit(self, version_id: Optional[str] = None) -> CommitInfo:
        """The commit a read of this bucket sees (raises NoSuchBucket / NoSuchVersion)."""
        b = self.bucket
        try:
            if not version_id:
                return self.pfs.commit_for_read(b.repo, b.commit or "", "" if b.pinned else b.branch)
            if not is_commit_id(version_id):
                raise S3Error("InvalidArgument", f"invalid version id {version_id!r}: "
                                                 "versions are 32-hex Pachyderm commit ids")
            if not b.pinned:
                self.pfs.inspect_branch(Branch(b.repo, b.branch))  # the bucket must exist
        except (pe.RepoNotFound, pe.BranchNotFound, pe.ProjectNotFound, pe.CommitNotFound) as e:
            raise S3Error("NoSuchBucket", e.message, BucketName=b.name) from None
        try:
            return self.pfs.commit_for_read(b.repo, version_id)
        except pe.CommitNotFound as e:
            raise S3Error("NoSuchVersion", e.message, VersionId=version_id) from None
        except pe.NotFound as e:
            raise S3Error("NoSuchBucket", e.message, BucketName=b.name) from None

    def write_branch(self) -> names.BucketRef:
        """The bucket, checked to be a writable branch that exists."""
        b = self.bucket
        if b.pinned and not b.writable:
            raise read_only(b.name, f"it is pinned to commit {b.commit}")
        if self.version_id:
            raise read_only(b.name, f"version {self.version_id} is an immutable commit")
        try:
            if b.pinned:
                if self.pfs.commit_for_read(b.repo, b.commit).finished is not None:
                    raise read_only(b.name, f"its commit {b.commit} has finished")
            else:
                self.pfs.inspect_branch(Branch(b.repo, b.branch))
        except pe.NotFound as e:
            raise S3Error("NoSuchBucket", e.message, BucketName=b.name) from None
        return b

    def body(self):
        return self.req.body


def store(ctx: Ctx, chunks: Iterable[bytes]) -> FileContent:
    """Stream bytes into the chunk store (chunked, deduplicated, flushed); nothing is published."""
    w = ctx.pfs.content.writer()
    w.begin()
    for c in chunks:
        w.feed(c)
    content = w.end()
    w.flush()
    return content


def publish(ctx: Ctx, b: names.BucketRef, puts: Iterable[tuple[str, FileContent]] = (),
            deletes: Iterable[str] = ()) -> CommitInfo:
    """Apply deletes then puts on the branch in one write session: one commit (or the open one)."""
    try:
        w = ctx.pfs.open_writer(b.repo, b.commit) if b.pinned else ctx.pfs.open_writer(b.repo, b.branch)
    except pe.CommitFinished as e:
        raise read_only(b.name, e.message) from None
    with w:
        for path in deletes:
            w.delete(path)
        for path, content in puts:
            if w.session.current(path + "/") is not None:
                raise S3Error("InvalidArgument", f"key {path[1:]!r} is a directory here (objects exist under "
                                                 f"{path[1:]}/); Pachyderm cannot hold both", Key=path[1:])
            w.session.put(path, file_entry(content))
    return w.result
