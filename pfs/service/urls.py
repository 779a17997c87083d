"""Fetching file content from URLs for `put file -f URL` (AddFile.url).

Invariants:
- Content is streamed in bounded pieces; nothing holds a whole object.
- Supported schemes: http, https, s3 (boto3's standard credentials, AWS_ENDPOINT_URL
  honoured). Anything else is a clear INVALID_ARGUMENT naming the scheme.
"""
from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Iterator

from pfs.errors import InvalidArgument, StorageError

PIECE = 1 << 20


def _s3():
    import boto3
    return boto3.client("s3")


def fetch_url(url: str) -> Iterator[bytes]:
    u = urllib.parse.urlparse(url)
    if u.scheme in ("http", "https"):
        try:
            resp = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - user asked for this URL
        except Exception as e:  # noqa: BLE001
            raise StorageError(f"could not fetch {url}: {e}") from e
        with resp:
            while True:
                piece = resp.read(PIECE)
                if not piece:
                    return
                yield piece
    elif u.scheme == "s3":
        try:
            body = _s3().get_object(Bucket=u.netloc, Key=u.path.lstrip("/"))["Body"]
        except Exception as e:  # noqa: BLE001
            raise StorageError(f"could not fetch {url}: {e}") from e
        yield from body.iter_chunks(PIECE)
    else:
        raise InvalidArgument(f"unsupported URL scheme {u.scheme!r} in {url} (use http, https or s3)")


def list_url(url: str) -> Iterator[tuple[str, str]]:
    """(relative path, url) for every object under an s3:// prefix (recursive puts)."""
    u = urllib.parse.urlparse(url)
    if u.scheme != "s3":
        raise InvalidArgument(f"recursive URL puts need an s3:// URL, got {url}")
    prefix = u.path.lstrip("/")
    pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=u.netloc, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            key = obj["Key"]
            rel = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
            yield rel, f"s3://{u.netloc}/{key}"
