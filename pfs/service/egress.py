"""Egress: copy every file of a commit to object storage (pfs_v2.API/Egress).

Invariants:
- Targets: `s3://bucket/prefix` (boto3's standard credentials, AWS_ENDPOINT_URL honoured)
  and `file:///dir` (only for clients on pachd's machine, as for put file). A file at
  `/a/b` lands at `<prefix>/a/b`. Anything else is INVALID_ARGUMENT naming the scheme.
- Files are streamed from storage; nothing holds a whole file. The answer is the number of
  bytes written.
"""
from __future__ import annotations

import io
import os
import urllib.parse

from pfs.errors import InvalidArgument, StorageError
from pfs.service.urls import _local_path


class _Stream(io.RawIOBase):
    """A read-only file object over an iterator of bytes (for boto3's upload_fileobj)."""

    def __init__(self, it):
        self._it = iter(it)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def egress_to_url(pfs, ci, url: str, allow_local: bool) -> int:
    u = urllib.parse.urlparse(url)
    tree = pfs.tree(ci)
    written = 0
    if u.scheme == "file":
        root = _local_path(u, allow_local)
        for key, e in tree.files("/"):
            dest = os.path.join(root, key.lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                for piece in pfs.content.read(e.refs, 0, None):
                    f.write(piece)
                    written += len(piece)
        return written
    if u.scheme == "s3":
        import boto3
        s3 = boto3.client("s3")
        prefix = u.path.strip("/")
        for key, e in tree.files("/"):
            obj = f"{prefix}/{key.lstrip('/')}" if prefix else key.lstrip("/")
            try:
                s3.upload_fileobj(io.BufferedReader(_Stream(pfs.content.read(e.refs, 0, None))), u.netloc, obj)
            except Exception as err:  # noqa: BLE001 - the store's own message, for a person
                raise StorageError(f"egress of {key} to s3://{u.netloc}/{obj} failed: {err}") from err
            written += e.size
        return written
    raise InvalidArgument(f"unsupported egress URL scheme {u.scheme!r} in {url} (use s3:// or file://)")
