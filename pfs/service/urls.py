"""Fetching file content from URLs for `put file -f URL` (AddFile.url).

Invariants:
- Content is streamed in bounded pieces; nothing holds a whole object.
- Supported schemes: http, https, s3 (boto3's standard credentials, AWS_ENDPOINT_URL
  honoured), and file:// -- the last only for clients on the same machine (a loopback
  peer), which is how pachctl uploads local files to a local pachd without pushing every
  byte through gRPC. Anything else is a clear INVALID_ARGUMENT naming the scheme, and so is
  an http(s) URL without a host or an s3 URL without a bucket (they are not unreachable
  servers but malformed input).
"""
from __future__ import annotations

import os
import urllib.parse
import urllib.request
from typing import Iterator, Optional

from pfs.errors import InvalidArgument, StorageError

PIECE = 1 << 20


def _s3():
    import boto3
    return boto3.client("s3")


def _local_path(u, allow_local: bool) -> str:
    if not allow_local:
        raise InvalidArgument(
            f"file:// URLs are only accepted from clients on pachd's own machine; "
            f"stream the file's bytes instead ({urllib.parse.urlunparse(u)})")
    path = urllib.parse.unquote(u.path)
    if not os.path.isabs(path):
        raise InvalidArgument(f"file:// URL must hold an absolute path, got {path!r}")
    return path


def fetch_url(url: str, allow_local: bool = False) -> Iterator[bytes]:
    u = urllib.parse.urlparse(url)
    if u.scheme in ("http", "https", "s3") and not u.hostname:
        what = "bucket" if u.scheme == "s3" else "host"
        raise InvalidArgument(f"URL {url!r} names no {what} (expected {u.scheme}://{what}/path)")
    if u.scheme == "file":
        path = _local_path(u, allow_local)
        try:
            f = open(path, "rb")
        except OSError as e:
            raise InvalidArgument(f"cannot read {path}: {e.strerror}") from e
        with f:
            while True:
                piece = f.read(4 * PIECE)
                if not piece:
                    return
                yield piece
    elif u.scheme in ("http", "https"):
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


def local_file(url: str, allow_local: bool) -> Optional[str]:
    """The path of a file:// URL naming a regular local file; None for anything else (other
    schemes, and pipes or missing files, which `fetch_url` streams or reports)."""
    u = urllib.parse.urlparse(url)
    if u.scheme != "file":
        return None
    path = _local_path(u, allow_local)
    return path if os.path.isfile(path) else None


def local_tree(url: str, allow_local: bool) -> Optional[Iterator[tuple[str, str]]]:
    """For a file:// URL of a local directory: (relative path, absolute path) of every file
    below it, in sorted order; None for any other URL."""
    u = urllib.parse.urlparse(url)
    if u.scheme != "file":
        return None
    root = _local_path(u, allow_local)
    if not os.path.isdir(root):
        return None

    def walk(d: str, prefix: str) -> Iterator[tuple[str, str]]:
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            rel = prefix + e.name
            if e.is_dir():
                yield from walk(e.path, rel + "/")
            elif e.is_file():
                yield rel, e.path
    return walk(root, "")


def list_url(url: str, allow_local: bool = False) -> Iterator[tuple[str, str]]:
    """(relative path, url) for every object under an s3:// prefix or a local directory."""
    u = urllib.parse.urlparse(url)
    if u.scheme == "file":
        root = _local_path(u, allow_local)
        if not os.path.isdir(root):
            yield os.path.basename(root), url
            return
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                yield os.path.relpath(full, root), "file://" + urllib.parse.quote(full)
        return
    if u.scheme != "s3":
        raise InvalidArgument(f"recursive URL puts need an s3:// URL, got {url}")
    prefix = u.path.lstrip("/")
    pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=u.netloc, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            key = obj["Key"]
            rel = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
            yield rel, f"s3://{u.netloc}/{key}"
