"""ListObjects (v1) and ListObjectsV2 over one commit's file index.

Invariants:
- Keys come out in S3 order (UTF-8 byte order), which is the index's order for paths, so a
  page is one ordered range scan of the index: no sorting, no materialised listing. A
  common prefix is emitted once and its whole subtree skipped by restarting the scan after
  it, so a page costs O(page size × log N) whatever the number of keys.
- Markers: v1 `marker`, v2 `start-after` and `continuation-token` all mean "strictly after
  this key or common prefix"; a common prefix that sorts at or before the marker is never
  returned again. Continuation tokens are opaque (base64url of the last item).
- `encoding-type=url` encodes every key and prefix in the response (botocore asks for it).
"""
from __future__ import annotations

import base64
import binascii
from typing import Iterator
from urllib.parse import quote_plus

from pfs.core.filetree import decode_entry, prefix_end
from pfs.s3gateway import xmlutil
from pfs.s3gateway.errors import S3Error
from pfs.s3gateway.ops.common import Ctx, etag, modified
from pfs.s3gateway.request import Response
from pfs.s3gateway.xmlutil import el

MAX_KEYS = 1000


def scan(tree, prefix: str, after: str, delimiter: str) -> Iterator[tuple[str, object]]:
    """(key, Entry) for objects and (common_prefix, None) for groups, in order, all > after."""
    lo = "/" + prefix
    hi = prefix_end(lo)
    if after and "/" + after >= lo:
        lo = "/" + after + "\x00"
    while lo < hi:
        restart = None
        for k, raw in tree.index.items(tree.root, lo, hi):
            if k.endswith("/"):
                continue  # directory aggregate, not an object
            key = k[1:]
            if delimiter:
                i = key.find(delimiter, len(prefix))
                if i >= 0:
                    cp = key[: i + len(delimiter)]
                    if not after or cp > after:
                        yield cp, None
                    restart = "/" + prefix_end(cp)
                    break
            yield key, decode_entry(raw)
        if restart is None:
            return
        lo = restart


def _max_keys(ctx: Ctx, name: str = "max-keys") -> int:
    raw = ctx.req.query.get(name)
    if raw is None or raw == "":
        return MAX_KEYS
    try:
        n = int(raw)
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be an integer") from None
    if n < 0:
        raise S3Error("InvalidArgument", f"{name} must not be negative")
    return min(n, MAX_KEYS)


def page(ctx: Ctx, prefix: str, after: str, delimiter: str, max_keys: int):
    """(commit, [(key, Entry|None)], truncated)."""
    ci = ctx.commit()
    items: list = []
    truncated = False
    if ci.root is not None and max_keys > 0:
        for item in scan(ctx.pfs.tree(ci), prefix, after, delimiter):
            if len(items) == max_keys:
                truncated = True
                break
            items.append(item)
    return ci, items, truncated


def _encoder(ctx: Ctx):
    enc = ctx.req.query.get("encoding-type")
    if enc is None or enc == "":
        return None, (lambda s: s)
    if enc != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return "url", (lambda s: quote_plus(s, safe="/") if s is not None else None)


def _contents(items, ci, encode, owner: bool):
    lm = xmlutil.iso8601(modified(ci))
    out = []
    for key, e in items:
        if e is None:
            out.append(el("CommonPrefixes", ("Prefix", encode(key))))
        else:
            out.append(el("Contents", ("Key", encode(key)), ("LastModified", lm), ("ETag", etag(e.hash)),
                          ("Size", e.size), xmlutil.owner() if owner else None,
                          ("StorageClass", "STANDARD")))
    out.sort(key=lambda x: 1 if x.tag == "CommonPrefixes" else 0)  # S3 lists Contents first
    return out


def list_v1(ctx: Ctx) -> Response:
    q = ctx.req.query
    prefix, marker, delimiter = q.get("prefix", ""), q.get("marker", ""), q.get("delimiter", "")
    max_keys = _max_keys(ctx)
    enc_type, encode = _encoder(ctx)
    ci, items, truncated = page(ctx, prefix, marker, delimiter, max_keys)
    root = el("ListBucketResult", ("Name", ctx.bucket.name), ("Prefix", encode(prefix)),
              ("Marker", encode(marker)), ("MaxKeys", max_keys),
              ("Delimiter", encode(delimiter) if delimiter else None),
              ("IsTruncated", truncated),
              ("NextMarker", encode(items[-1][0]) if truncated and items else None),
              ("EncodingType", enc_type),
              *_contents(items, ci, encode, owner=True))
    return Response.xml(root, headers={"x-amz-version-id": ci.commit.id})


def _token(s: str) -> str:
    return base64.urlsafe_b64encode(s.encode()).decode()


def _untoken(t: str) -> str:
    try:
        return base64.urlsafe_b64decode(t.encode() + b"=" * (-len(t) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from None


def list_v2(ctx: Ctx) -> Response:
    q = ctx.req.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    start_after = q.get("start-after", "")
    token = q.get("continuation-token")
    after = _untoken(token) if token else start_after
    max_keys = _max_keys(ctx)
    enc_type, encode = _encoder(ctx)
    ci, items, truncated = page(ctx, prefix, after, delimiter, max_keys)
    root = el("ListBucketResult", ("Name", ctx.bucket.name), ("Prefix", encode(prefix)),
              ("MaxKeys", max_keys), ("KeyCount", len(items)),
              ("Delimiter", encode(delimiter) if delimiter else None),
              ("IsTruncated", truncated),
              ("ContinuationToken", token),
              ("NextContinuationToken", _token(items[-1][0]) if truncated and items else None),
              ("StartAfter", encode(start_after) if start_after else None),
              ("EncodingType", enc_type),
              *_contents(items, ci, encode, owner=q.get("fetch-owner") == "true"))
    return Response.xml(root, headers={"x-amz-version-id": ci.commit.id})

