"""ListObjectVersions: an object's versions are the commits of the branch that changed it.

Walking from the bucket's commit back through its parents, each commit is diffed against
its parent: a file added or changed there is a version (version id = that commit), a file
removed there is a delete marker. The newest entry of each key is the latest.

Invariants:
- Output order is S3's: by key, then newest version first; pagination by key-marker /
  version-id-marker resumes strictly after the given (key, version).
- Cost is O(total changed files in the history under the prefix): the whole history is
  walked on every call (S3 clients rarely list versions; this keeps no extra index).
"""
from __future__ import annotations

from pfs.core.filetree import diff, prefix_end
from pfs.s3gateway import xmlutil
from pfs.s3gateway.errors import S3Error
from pfs.s3gateway.ops.common import Ctx, etag, modified
from pfs.s3gateway.ops.listing import _encoder, _max_keys
from pfs.s3gateway.request import Response
from pfs.s3gateway.xmlutil import el


def _history(ctx: Ctx, prefix: str):
    """[(key, age, commit, Entry|None)], age 0 = newest commit; None = delete marker."""
    pfs = ctx.pfs
    ci = ctx.commit()
    out = []
    age = 0
    lo = "/" + prefix
    hi = prefix_end(lo)
    while ci is not None:
        parent = pfs.get_commit(ci.commit.repo, ci.parent) if ci.parent else None
        old_root = parent.root if parent is not None else None
        for new, old in diff(pfs.index, ci.root, old_root, "/"):
            k = (new or old)[0]
            if k.endswith("/") or not (lo <= k < hi):
                continue
            if new is not None:
                out.append((k[1:], age, ci, new[1]))
            else:
                out.append((k[1:], age, ci, None))
        ci = parent
        age += 1
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def list_versions(ctx: Ctx) -> Response:
    q = ctx.req.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, vid_marker = q.get("key-marker", ""), q.get("version-id-marker", "")
    if vid_marker and not key_marker:
        raise S3Error("InvalidArgument", "A version-id marker cannot be specified without a key marker.")
    max_keys = _max_keys(ctx)
    enc_type, encode = _encoder(ctx)
    entries = _history(ctx, prefix)
    latest_seen: set = set()
    rows = []  # (key, version_id, ci, entry|None, is_latest) or (cp, None, ...)
    for key, age, ci, e in entries:
        is_latest = key not in latest_seen
        latest_seen.add(key)
        rows.append((key, ci.commit.id, ci, e, is_latest))
    # resume after (key_marker, vid_marker)
    start = 0
    if key_marker:
        start = len(rows)
        for i, r in enumerate(rows):
            if r[0] > key_marker:
                start = i
                break
            if vid_marker and r[0] == key_marker and r[1] == vid_marker:
                start = i + 1
                break
    out, cps, truncated = [], [], False
    last_cp = None
    i = start
    while i < len(rows):
        key = rows[i][0]
        if delimiter:
            j = key.find(delimiter, len(prefix))
            if j >= 0:
                cp = key[: j + len(delimiter)]
                if cp != last_cp and not (key_marker and cp <= key_marker):
                    if len(out) + len(cps) >= max_keys:
                        truncated = True
                        break
                    cps.append(cp)
                    last_cp = cp
                i += 1
                continue
        if len(out) + len(cps) >= max_keys:
            truncated = True
            break
        out.append(rows[i])
        i += 1
    children = []
    for key, vid, ci, e, latest in out:
        lm = xmlutil.iso8601(modified(ci))
        if e is None:
            children.append(el("DeleteMarker", ("Key", encode(key)), ("VersionId", vid),
                               ("IsLatest", latest), ("LastModified", lm), xmlutil.owner()))
        else:
            children.append(el("Version", ("Key", encode(key)), ("VersionId", vid), ("IsLatest", latest),
                               ("LastModified", lm), ("ETag", etag(e.hash)), ("Size", e.size),
                               ("StorageClass", "STANDARD"), xmlutil.owner()))
    children += [el("CommonPrefixes", ("Prefix", encode(cp))) for cp in cps]
    next_key = next_vid = None
    if truncated:
        if out and (not cps or out[-1][0] > cps[-1]):
            next_key, next_vid = out[-1][0], out[-1][1]
        elif cps:
            next_key = cps[-1]
    root = el("ListVersionsResult", ("Name", ctx.bucket.name), ("Prefix", encode(prefix)),
              ("KeyMarker", encode(key_marker)), ("VersionIdMarker", vid_marker),
              ("NextKeyMarker", encode(next_key) if next_key else None),
              ("NextVersionIdMarker", next_vid), ("MaxKeys", max_keys),
              ("Delimiter", encode(delimiter) if delimiter else None),
              ("IsTruncated", truncated), ("EncodingType", enc_type), *children)
    return Response.xml(root)

