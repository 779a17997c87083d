"""GetObject and HeadObject: one file of one commit, whole or one byte range.

Invariants:
- The body streams from the chunk store chunk by chunk (`Pfs.read_file` with offset and
  length, or `pfs.core.readahead` with a few ranges in flight when the chunk store is
  remote); memory does not depend on the object's size.
- Range: one `bytes=a-b`, `bytes=a-` or `bytes=-n` range → 206 with Content-Range; a range
  starting at or past the end → 416 InvalidRange with `Content-Range: bytes */size`; a
  malformed or multi-range header is ignored (200, whole object), as S3 does.
- Conditional headers follow RFC 9110 precedence: If-Match, then If-Unmodified-Since (412),
  then If-None-Match, then If-Modified-Since (304).
- Directories are not objects: a key naming a directory is NoSuchKey.
"""
from __future__ import annotations

import re
from typing import Optional

from pfs import errors as pe
from pfs.core.readahead import read_ahead
from pfs.s3gateway import names, xmlutil
from pfs.s3gateway.errors import S3Error
from pfs.s3gateway.ops.common import Ctx, etag, modified, strip_etag
from pfs.s3gateway.request import Response

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_OVERRIDES = {"response-content-type": "Content-Type", "response-content-language": "Content-Language",
              "response-expires": "Expires", "response-cache-control": "Cache-Control",
              "response-content-disposition": "Content-Disposition",
              "response-content-encoding": "Content-Encoding"}


def parse_range(header: str, size: int) -> Optional[tuple[int, int]]:
    """(start, end_exclusive) or None for "whole object"; raises InvalidRange (416)."""
    m = _RANGE.match(header.strip().replace(" ", "")) if header else None
    if not m or (not m.group(1) and not m.group(2)):
        return None
    a, b = m.group(1), m.group(2)
    if not a:  # suffix: the last n bytes
        n = int(b)
        if n == 0:
            raise _bad_range(size)
        return max(0, size - n), size
    start = int(a)
    end = int(b) + 1 if b else size
    if b and int(b) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise _bad_range(size)
    return start, min(end, size)


def _bad_range(size: int) -> S3Error:
    return S3Error("InvalidRange", headers={"Content-Range": f"bytes */{size}"},
                   ActualObjectSize=str(size))


def _lookup(ctx: Ctx):
    key = ctx.req.key
    if not names.is_canonical_key(key):
        raise S3Error("NoSuchKey", Key=key)
    ci = ctx.commit(ctx.version_id)
    path = names.key_to_path(key)
    try:
        fi = ctx.pfs.inspect_file(ci, path)
    except pe.FileNotFound:
        raise S3Error("NoSuchKey", Key=key) from None
    if fi.is_dir:
        raise S3Error("NoSuchKey", f"{key} is a directory, not an object", Key=key)
    return ci, path, fi


def _preconditions(ctx: Ctx, tag: str, mtime: float) -> Optional[Response]:
    h = ctx.req.headers
    im, inm = h.get("If-Match"), h.get("If-None-Match")
    ims, ius = h.get("If-Modified-Since"), h.get("If-Unmodified-Since")
    t = strip_etag(tag)
    if im is not None:
        if not any(x.strip() == "*" or strip_etag(x) == t for x in im.split(",")):
            raise S3Error("PreconditionFailed", Condition="If-Match")
    elif ius is not None:
        when = _http_time(ius)
        if when is not None and int(mtime) > when:
            raise S3Error("PreconditionFailed", Condition="If-Unmodified-Since")
    if inm is not None:
        if any(x.strip() == "*" or strip_etag(x) == t for x in inm.split(",")):
            return Response.empty(304, {"ETag": tag, "Last-Modified": xmlutil.http_date(mtime)})
    elif ims is not None:
        when = _http_time(ims)
        if when is not None and int(mtime) <= when:
            return Response.empty(304, {"ETag": tag, "Last-Modified": xmlutil.http_date(mtime)})
    return None


def _http_time(s: str) -> Optional[float]:
    from email.utils import mktime_tz, parsedate_tz
    t = parsedate_tz(s)
    return None if t is None else mktime_tz(t)


def get_object(ctx: Ctx, head: bool = False) -> Response:
    q = ctx.req.query
    ci, path, fi = _lookup(ctx)
    tag = etag(fi.hash)
    mtime = modified(ci)
    early = _preconditions(ctx, tag, mtime)
    if early is not None:
        return early
    size = fi.size
    headers = {"ETag": tag, "Last-Modified": xmlutil.http_date(mtime), "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream", "x-amz-version-id": ci.commit.id}
    for param, header in _OVERRIDES.items():
        if param in q:
            headers[header] = q[param]
    part = q.get("partNumber")
    if part not in (None, ""):
        if part != "1":
            raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", status=416)
        headers["x-amz-mp-parts-count"] = "1"
    rng = parse_range(ctx.req.header("Range"), size) if size > 0 or ctx.req.header("Range") else None
    status, start, end = 200, 0, size
    if rng is not None:
        start, end = rng
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    length = end - start
    if head or length == 0:
        return Response(status, headers, b"", length)
    return Response(status, headers, _stream(ctx, ci, path, start, length), length)


def _stream(ctx: Ctx, ci, path: str, start: int, length: int):
    """The bytes, read ahead in parallel when the chunk store is remote (each read a request),
    as views of the verified read buffers (the socket takes them without a copy)."""
    if ctx.gw.read_ahead:
        entry = ctx.pfs.tree(ci).entry(path)
        if entry is not None and not entry.is_dir:
            return read_ahead(ctx.pfs.content, entry.refs, start, length, views=True)
    return ctx.pfs.read_file(ci, path, start, length, views=True)[1]


def head_object(ctx: Ctx) -> Response:
    return get_object(ctx, head=True)
