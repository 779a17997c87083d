"""Multipart uploads: Create, UploadPart(Copy), Complete, Abort, ListParts, ListMultipartUploads.

Invariants:
- Uploads belong to a writable branch bucket; parts stream into the chunk store as they
  arrive (see pfs.s3gateway.mpstore) and are never held in memory whole.
- Complete publishes the object in one write session (one commit) whose file entry is the
  concatenation of the parts' chunk references, then forgets the upload. If publishing
  fails the upload stays, and the client may retry Complete.
- UploadPartCopy streams the source range through a new part (bounded memory).
"""
from __future__ import annotations

from pfs import errors as pe
from pfs.s3gateway import names, xmlutil
from pfs.s3gateway.errors import S3Error
from pfs.s3gateway.ops.common import Ctx, etag, publish, strip_etag
from pfs.s3gateway.ops.objects import parse_range
from pfs.s3gateway.ops.writes import _source
from pfs.s3gateway.request import Response
from pfs.s3gateway.xmlutil import el

MAX_COMPLETE_XML = 4 * 1024 * 1024
MAX_LIST = 1000


def _ensure_not_dir(ctx: Ctx, path: str) -> None:
    try:
        if ctx.pfs.inspect_file(ctx.commit(), path).is_dir:
            raise S3Error("InvalidArgument", f"key {path[1:]!r} is a directory here (objects exist under "
                                             f"{path[1:]}/); Pachyderm cannot hold both", Key=path[1:])
    except pe.FileNotFound:
        pass


def create(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    path = names.key_to_path(ctx.req.key)
    _ensure_not_dir(ctx, path)
    u = ctx.gw.uploads.create(b, ctx.req.key)
    return Response.xml(el("InitiateMultipartUploadResult", ("Bucket", b.name), ("Key", ctx.req.key),
                           ("UploadId", u.upload_id)))


def _part_number(ctx: Ctx) -> int:
    try:
        return int(ctx.req.query.get("partNumber", ""))
    except ValueError:
        raise S3Error("InvalidArgument", "partNumber must be an integer between 1 and 10000") from None


def upload_part(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    n = _part_number(ctx)
    if ctx.req.headers.get("Content-Length") is None and not ctx.req.headers.get("Transfer-Encoding"):
        raise S3Error("MissingContentLength")
    p = ctx.gw.uploads.write_part(b, ctx.req.key, ctx.req.query.get("uploadId", ""), n, ctx.body().chunks())
    return Response.empty(200, {"ETag": '"' + p.etag + '"'})


def upload_part_copy(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    n = _part_number(ctx)
    upload_id = ctx.req.query.get("uploadId", "")
    ctx.gw.uploads.get(b, ctx.req.key, upload_id)
    sb, sci, spath, sfi = _source(ctx)
    start, end = 0, sfi.size
    rng = ctx.req.header("x-amz-copy-source-range")
    if rng:
        r = parse_range(rng, sfi.size)
        if r is None:
            raise S3Error("InvalidArgument", f"invalid x-amz-copy-source-range {rng!r}")
        start, end = r
    _, it = ctx.pfs.read_file(sci, spath, start, end - start) if end > start else (None, iter(()))
    p = ctx.gw.uploads.write_part(b, ctx.req.key, upload_id, n, it)
    return Response.xml(el("CopyPartResult", ("LastModified", xmlutil.iso8601(p.modified)),
                           ("ETag", '"' + p.etag + '"')),
                        headers={"x-amz-copy-source-version-id": sci.commit.id})


def complete(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    key = ctx.req.key
    upload_id = ctx.req.query.get("uploadId", "")
    store = ctx.gw.uploads
    store.get(b, key, upload_id)
    doc = xmlutil.parse(ctx.body().read_all(MAX_COMPLETE_XML), "CompleteMultipartUpload")
    wanted = []
    for p in doc.findall("Part"):
        try:
            wanted.append((int(xmlutil.child_text(p, "PartNumber", "")), strip_etag(xmlutil.child_text(p, "ETag", ""))))
        except ValueError:
            raise S3Error("MalformedXML", "PartNumber must be an integer") from None
    content = store.content(upload_id, wanted)
    ci = publish(ctx, b, [(names.key_to_path(key), content)])
    store.delete(b, key, upload_id)
    root = el("CompleteMultipartUploadResult", ("Location", f"/{b.name}/{key}"), ("Bucket", b.name),
              ("Key", key), ("ETag", etag(content.hash)))
    return Response.xml(root, headers={"x-amz-version-id": ci.commit.id})


def abort(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    upload_id = ctx.req.query.get("uploadId", "")
    ctx.gw.uploads.get(b, ctx.req.key, upload_id)
    ctx.gw.uploads.delete(b, ctx.req.key, upload_id)
    return Response.empty(204)


def _int(ctx: Ctx, name: str, default: int) -> int:
    raw = ctx.req.query.get(name)
    if raw in (None, ""):
        return default
    try:
        v = int(raw)
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be an integer") from None
    if v < 0:
        raise S3Error("InvalidArgument", f"{name} must not be negative")
    return v


def list_parts(ctx: Ctx) -> Response:
    b = ctx.write_branch()
    key = ctx.req.key
    upload_id = ctx.req.query.get("uploadId", "")
    u = ctx.gw.uploads.get(b, key, upload_id)
    marker = _int(ctx, "part-number-marker", 0)
    max_parts = min(_int(ctx, "max-parts", MAX_LIST), MAX_LIST)
    parts, truncated = [], False
    for p in ctx.gw.uploads.parts(upload_id, after=marker):
        if len(parts) == max_parts:
            truncated = True
            break
        parts.append(p)
    root = el("ListPartsResult", ("Bucket", b.name), ("Key", key), ("UploadId", u.upload_id),
              el("Initiator", ("ID", "pachyderm"), ("DisplayName", "pachyderm")), xmlutil.owner(),
              ("StorageClass", "STANDARD"), ("PartNumberMarker", marker),
              ("NextPartNumberMarker", parts[-1].number if parts else marker),
              ("MaxParts", max_parts), ("IsTruncated", truncated),
              *[el("Part", ("PartNumber", p.number), ("LastModified", xmlutil.iso8601(p.modified)),
                   ("ETag", '"' + p.etag + '"'), ("Size", p.size)) for p in parts])
    return Response.xml(root)


def list_uploads(ctx: Ctx) -> Response:
    b = ctx.bucket
    ctx.commit()
    q = ctx.req.query
    prefix = q.get("prefix", "")
    key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    max_uploads = min(_int(ctx, "max-uploads", MAX_LIST), MAX_LIST)
    ups, truncated = [], False
    for u in ctx.gw.uploads.list(b, prefix):
        if key_marker and (u.key < key_marker or (u.key == key_marker and (not id_marker or u.upload_id <= id_marker))):
            continue
        if len(ups) == max_uploads:
            truncated = True
            break
        ups.append(u)
    root = el("ListMultipartUploadsResult", ("Bucket", b.name), ("KeyMarker", key_marker),
              ("UploadIdMarker", id_marker),
              ("NextKeyMarker", ups[-1].key if truncated else None),
              ("NextUploadIdMarker", ups[-1].upload_id if truncated else None),
              ("Prefix", prefix), ("MaxUploads", max_uploads), ("IsTruncated", truncated),
              *[el("Upload", ("Key", u.key), ("UploadId", u.upload_id),
                   el("Initiator", ("ID", "pachyderm"), ("DisplayName", "pachyderm")), xmlutil.owner(),
                   ("StorageClass", "STANDARD"), ("Initiated", xmlutil.iso8601(u.initiated))) for u in ups])
    return Response.xml(root)

