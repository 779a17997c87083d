"""PutObject, CopyObject, DeleteObject and DeleteObjects: each is one pfs write session.

Invariants:
- A write is atomic and becomes one commit on the bucket's branch (or lands in the branch's
  open commit, if it has one): the body streams into the chunk store first, and only a
  complete, verified body is published. A body that fails a digest or signature check, is
  cut short, or whose client disconnects, publishes nothing (its chunks are garbage).
- The response's x-amz-version-id is the commit the write produced.
- CopyObject copies content references (no bytes move), from any readable bucket or
  version to a writable branch.
- Deleting a key that does not exist succeeds without making a commit (S3 semantics);
  DeleteObjects makes at most one commit for all its keys.
- A key ending in '/' with an empty body (a "folder marker") is accepted and ignored:
  Pachyderm has no empty directories.
"""
from __future__ import annotations

from typing import Optional
from urllib.parse import parse_qsl, unquote

from pfs import errors as pe
from pfs.s3gateway import names, xmlutil
from pfs.s3gateway.errors import S3Error
from pfs.s3gateway.ops.common import Ctx, etag, modified, publish, store, strip_etag
from pfs.s3gateway.request import Response
from pfs.s3gateway.xmlutil import el

MAX_DELETE_KEYS = 1000
MAX_DELETE_XML = 2 * 1024 * 1024


def _folder_marker(ctx: Ctx) -> Optional[Response]:
    key = ctx.req.key
    if key.endswith("/") and names.is_canonical_key(key.rstrip("/")):
        if ctx.body().read(1):
            raise S3Error("InvalidArgument", f"key {key!r} ends with '/': only an empty folder marker "
                                             "may, and Pachyderm does not store it")
        ci = ctx.commit()
        return Response.empty(200, {"ETag": '"' + "0" * 64 + '"', "x-amz-version-id": ci.commit.id})
    return None


def put_object(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    marker = _folder_marker(ctx)
    if marker is not None:
        return marker
    path = names.key_to_path(ctx.req.key)
    if ctx.req.headers.get("Content-Length") is None and not ctx.req.headers.get("Transfer-Encoding"):
        raise S3Error("MissingContentLength")
    content = store(ctx, ctx.body().chunks())
    ci = publish(ctx, b, [(path, content)])
    return Response.empty(200, {"ETag": etag(content.hash), "x-amz-version-id": ci.commit.id})


def parse_copy_source(ctx: Ctx):
    """(BucketRef, key, version_id|None) from x-amz-copy-source."""
    raw = ctx.req.header("x-amz-copy-source")
    src, _, query = raw.partition("?")
    src = unquote(src).lstrip("/")
    bucket, _, key = src.partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must be bucket/key[?versionId=id]")
    version = dict(parse_qsl(query)).get("versionId") or None
    return ctx.gw.resolve_bucket(bucket), key, version


def _source(ctx: Ctx):
    sb, skey, sver = parse_copy_source(ctx)
    sctx = Ctx(ctx.gw, ctx.req)
    sctx.bucket = sb  # cached_property: set the source bucket on a twin context
    ci = sctx.commit(sver)
    if not names.is_canonical_key(skey):
        raise S3Error("NoSuchKey", Key=skey)
    spath = names.key_to_path(skey)
    try:
        fi = ctx.pfs.inspect_file(ci, spath)
    except pe.FileNotFound:
        raise S3Error("NoSuchKey", Key=skey) from None
    if fi.is_dir:
        raise S3Error("NoSuchKey", f"{skey} is a directory, not an object", Key=skey)
    h = ctx.req.headers
    tag = strip_etag(etag(fi.hash))
    im, inm = h.get("x-amz-copy-source-if-match"), h.get("x-amz-copy-source-if-none-match")
    if im is not None and not any(strip_etag(x) in (tag, "*") for x in im.split(",")):
        raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-Match")
    if inm is not None and any(strip_etag(x) in (tag, "*") for x in inm.split(",")):
        raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-None-Match")
    return sb, ci, spath, fi


def copy_object(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    path = names.key_to_path(ctx.req.key)
    sb, sci, spath, sfi = _source(ctx)
    ctx.body().read_all(0)
    content = ctx.pfs.tree(sci).entry(spath).content()  # references only: no byte is copied
    ci = publish(ctx, b, [(path, content)])
    root = el("CopyObjectResult", ("LastModified", xmlutil.iso8601(modified(ci))), ("ETag", etag(content.hash)))
    return Response.xml(root, headers={"x-amz-version-id": ci.commit.id,
                                       "x-amz-copy-source-version-id": sci.commit.id})


def _exists(ctx: Ctx, ci, path: str) -> bool:
    try:
        return not ctx.pfs.inspect_file(ci, path).is_dir
    except pe.FileNotFound:
        return False


def delete_object(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    key = ctx.req.key
    if not names.is_canonical_key(key):
        return Response.empty(204)
    path = names.key_to_path(key)
    if not _exists(ctx, ctx.commit(), path):
        return Response.empty(204)
    ci = publish(ctx, b, deletes=[path])
    return Response.empty(204, {"x-amz-version-id": ci.commit.id, "x-amz-delete-marker": "true"})


def delete_objects(ctx: Ctx) -> Response:
    doc = xmlutil.parse(ctx.body().read_all(MAX_DELETE_XML), "Delete")
    quiet = (xmlutil.child_text(doc, "Quiet", "false") or "").strip().lower() == "true"
    objs = doc.findall("Object")
    if len(objs) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML", f"at most {MAX_DELETE_KEYS} keys may be deleted per request")
    b = ctx.write_branch()
    head = ctx.commit()
    deleted, errors, todo = [], [], []
    for o in objs:
        key = xmlutil.child_text(o, "Key", "") or ""
        vid = xmlutil.child_text(o, "VersionId")
        if vid:
            errors.append((key, "MethodNotAllowed", f"version {vid} is an immutable commit and cannot be deleted"))
            continue
        path = names.key_to_path(key) if names.is_canonical_key(key) else None
        existed = path is not None and _exists(ctx, head, path)
        if existed:
            todo.append(path)
        deleted.append((key, existed))
    version = None
    if todo:
        version = publish(ctx, b, deletes=todo).commit.id
    children = []
    if not quiet:
        children += [el("Deleted", ("Key", k), ("DeleteMarker", True if existed else None),
                        ("DeleteMarkerVersionId", version if existed else None)) for k, existed in deleted]
    children += [el("Error", ("Key", k), ("Code", c), ("Message", m)) for k, c, m in errors]
    return Response.xml(el("DeleteResult", *children))
