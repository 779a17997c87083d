"""Durable state of multipart uploads: upload records and part records in the metadata store.

A part's bytes go through a pfs `ContentWriter` into the chunk store (chunked, deduplicated,
packed) exactly like a file's; its record keeps the resulting chunk references. Completing
an upload concatenates the parts' references into one file entry, so no byte is copied or
read back.

Invariants:
- A part's chunks are flushed to the chunk store before its record is written, and a record
  is written before the part's ETag is returned: an acknowledged part survives a restart.
- Keys live in `pfs.core.keys` (`s3_upload_key`, `s3_part_key`): uploads are listed per
  bucket (project, repo, branch) in key order; parts per upload in part-number order.
- Re-uploading a part number replaces its record; the old part's chunks become garbage.
- Records are only ever written through `Pfs.txn()`, so they commit atomically with respect
  to the core's other metadata.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import msgpack

from pfs.core import keys, new_id
from pfs.core.content import ChunkRef, FileContent
from pfs.s3gateway.errors import S3Error
from pfs.s3gateway.names import BucketRef

MAX_PART_NUMBER = 10_000


@dataclass
class Upload:
    upload_id: str
    key: str
    initiated: float


@dataclass
class Part:
    number: int
    size: int
    hash: bytes
    refs: list
    modified: float

    @property
    def etag(self) -> str:
        return self.hash.hex()


class MultipartStore:
    def __init__(self, pfs, clock=time.time):
        self.pfs = pfs
        self.clock = clock

    @staticmethod
    def _ukey(b: BucketRef, key: str, upload_id: str) -> bytes:
        return keys.s3_upload_key(b.repo.project, b.repo.name, b.branch, key, upload_id)

    def create(self, b: BucketRef, key: str) -> Upload:
        u = Upload(new_id(), key, self.clock())
        with self.pfs.txn() as t:
            t.blind_put(self._ukey(b, key, u.upload_id), msgpack.packb([u.initiated]))
        return u

    def get(self, b: BucketRef, key: str, upload_id: str) -> Upload:
        raw = self.pfs.meta.get(self._ukey(b, key, upload_id)) if upload_id and "\x00" not in upload_id else None
        if raw is None:
            raise S3Error("NoSuchUpload", UploadId=upload_id)
        return Upload(upload_id, key, msgpack.unpackb(raw)[0])

    def list(self, b: BucketRef, prefix: str = "") -> Iterator[Upload]:
        base = keys.s3_upload_prefix(b.repo.project, b.repo.name, b.branch)
        for k, v in self.pfs.meta.scan(prefix=keys.s3_upload_prefix(b.repo.project, b.repo.name,
                                                                       b.branch, prefix)):
            key, _, upload_id = k[len(base):].decode().rpartition("\x00")
            yield Upload(upload_id, key, msgpack.unpackb(v)[0])

    def write_part(self, b: BucketRef, key: str, upload_id: str, number: int,
                   data: Iterable[bytes]) -> Part:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error("InvalidArgument", f"part number must be an integer between 1 and {MAX_PART_NUMBER}")
        self.get(b, key, upload_id)
        w = self.pfs.content.writer()
        w.begin()
        for piece in data:
            w.feed(piece)
        content = w.end()
        w.flush()
        part = Part(number, content.size, content.hash, list(content.refs), self.clock())
        with self.pfs.txn() as t:
            if t.get(self._ukey(b, key, upload_id)) is None:
                raise S3Error("NoSuchUpload", "the upload was completed or aborted meanwhile",
                              UploadId=upload_id)
            t.blind_put(keys.s3_part_key(upload_id, number),
                        msgpack.packb([part.size, part.hash, [list(r) for r in part.refs], part.modified]))
        return part

    def parts(self, upload_id: str, after: int = 0) -> Iterator[Part]:
        start = keys.s3_part_key(upload_id, after + 1) if after else None
        for k, v in self.pfs.meta.scan(prefix=keys.s3_part_prefix(upload_id), start=start):
            size, h, refs, mod = msgpack.unpackb(v)
            yield Part(int.from_bytes(k[-4:], "big"), size, h, [ChunkRef(*r) for r in refs], mod)

    def content(self, upload_id: str, wanted: list[tuple[int, str]]) -> FileContent:
        """The concatenation of the listed (part number, etag) parts; InvalidPart* if off."""
        if not wanted:
            raise S3Error("MalformedXML", "CompleteMultipartUpload needs at least one part")
        prev = 0
        for n, _ in wanted:
            if n <= prev:
                raise S3Error("InvalidPartOrder")
            prev = n
        stored = {p.number: p for p in self.parts(upload_id)}
        out = FileContent()
        for n, tag in wanted:
            p: Optional[Part] = stored.get(n)
            if p is None or (tag and tag != p.etag):
                raise S3Error("InvalidPart", f"part {n} was not uploaded or its ETag does not match",
                              PartNumber=str(n))
            out.refs.extend(p.refs)
            out.size += p.size
        return out

    def delete(self, b: BucketRef, key: str, upload_id: str) -> None:
        with self.pfs.txn() as t:
            t.blind_delete(self._ukey(b, key, upload_id))
            for k, _ in self.pfs.meta.scan(prefix=keys.s3_part_prefix(upload_id)):
                t.blind_delete(k)
