"""Service and bucket operations: ListBuckets, Create/Delete/HeadBucket, GetBucketLocation,
Get/PutBucketVersioning.

Invariants:
- A bucket is a branch. ListBuckets names every branch of every user repo
  `branch.repo.project`, created at its repo's creation time.
- CreateBucket creates the repo if needed, then the branch (with an empty commit); an
  existing branch is BucketAlreadyExists. Pinned names cannot be created or deleted.
- DeleteBucket refuses a branch whose head has files (BucketNotEmpty); deleting a repo's
  last branch deletes the repo, so create/delete round-trips leave nothing behind.
- Versioning is always on (every write is a commit) and cannot be suspended.
"""
from __future__ import annotations

from pfs import errors as pe
from pfs.model import Branch
from pfs.s3gateway import names, xmlutil
from pfs.s3gateway.errors import S3Error
from pfs.s3gateway.ops.common import Ctx
from pfs.s3gateway.request import Response
from pfs.s3gateway.xmlutil import el

MAX_CONFIG_XML = 64 * 1024


def list_buckets(ctx: Ctx) -> Response:
    buckets = []
    if ctx.gw.buckets is not None:
        for name, b in ctx.gw.buckets.items():
            try:
                buckets.append((name, ctx.pfs.inspect_repo(b.repo).created))
            except pe.NotFound:
                pass
    else:
        for ri in ctx.pfs.list_repos(type="user"):
            if not ctx.gw.can_list(ctx.req, ri.repo):  # repos the caller cannot read stay unseen
                continue
            for b in sorted(ri.branches, key=lambda b: b.name):
                buckets.append((names.bucket_name(ri.repo.project, ri.repo.name, b.name), ri.created))
    buckets.sort()
    root = el("ListAllMyBucketsResult", xmlutil.owner(),
              el("Buckets", *[el("Bucket", ("Name", n), ("CreationDate", xmlutil.iso8601(t)))
                              for n, t in buckets]))
    return Response.xml(root)


def head_bucket(ctx: Ctx) -> Response:
    ctx.commit()
    return Response.empty(200, {"x-amz-bucket-region": ctx.gw.region})


def _fixed_set(ctx: Ctx) -> None:
    if ctx.gw.buckets is not None:
        raise S3Error("MethodNotAllowed", "this gateway serves a fixed set of buckets; "
                                          "they cannot be created or deleted through it")


def create_bucket(ctx: Ctx) -> Response:
    _fixed_set(ctx)
    b = ctx.bucket
    ctx.body().read_all(MAX_CONFIG_XML)  # CreateBucketConfiguration: any region is fine
    if b.pinned:
        raise S3Error("InvalidBucketName", "a bucket pinned to a commit cannot be created", BucketName=b.name)
    pfs = ctx.pfs
    try:
        pfs.inspect_project(b.repo.project)
    except pe.ProjectNotFound as e:
        raise S3Error("InvalidBucketName", e.message + " (create the project first)", BucketName=b.name) from None
    made_repo = False
    try:
        pfs.create_repo(b.repo)
        made_repo = True
    except pe.RepoExists:
        pass
    try:
        try:
            pfs.inspect_branch(Branch(b.repo, b.branch))
            raise S3Error("BucketAlreadyExists", f"branch {b.branch} of repo {b.repo} already exists",
                          BucketName=b.name)
        except pe.BranchNotFound:
            pass
        pfs.create_branch(Branch(b.repo, b.branch))
    except BaseException:
        if made_repo:  # a failed CreateBucket leaves no repo behind
            pfs.delete_repo(b.repo, True)
        raise
    return Response.empty(200, {"Location": "/" + b.name})


def delete_bucket(ctx: Ctx) -> Response:
    _fixed_set(ctx)
    b = ctx.bucket
    if b.pinned:
        raise S3Error("InvalidBucketName", "a bucket pinned to a commit cannot be deleted", BucketName=b.name)
    ci = ctx.commit()
    if ci.root is not None and ctx.pfs.tree(ci).total().count > 0:
        raise S3Error("BucketNotEmpty", f"branch {b.branch} of repo {b.repo} has files; delete them first",
                      BucketName=b.name)
    try:
        ctx.pfs.delete_branch(Branch(b.repo, b.branch))
    except pe.HasDependents as e:
        raise S3Error("BucketNotEmpty", e.message, BucketName=b.name) from None
    if not ctx.pfs.inspect_repo(b.repo).branches:
        try:
            ctx.pfs.delete_repo(b.repo)
        except pe.PfsError:
            pass  # someone else is using it meanwhile: keep it
    return Response.empty(204)


def get_location(ctx: Ctx) -> Response:
    ctx.commit()
    region = ctx.gw.region
    return Response.xml(el("LocationConstraint", text=None if region == "us-east-1" else region))


def get_versioning(ctx: Ctx) -> Response:
    ctx.commit()
    return Response.xml(el("VersioningConfiguration", ("Status", "Enabled")))


def put_versioning(ctx: Ctx) -> Response:
    ctx.commit()
    doc = xmlutil.parse(ctx.body().read_all(MAX_CONFIG_XML), "VersioningConfiguration")
    status = xmlutil.child_text(doc, "Status", "")
    if status != "Enabled":
        raise S3Error("NotImplemented", "versioning is always enabled on Pachyderm buckets "
                                        "(every write is a commit) and cannot be suspended")
    return Response.empty(200)
