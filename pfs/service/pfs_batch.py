"""pfs_batch_v1.API: listings with many FileInfos to a message, and byte ranges of a file in
one reply, for our own clients.

Pachyderm's ListFile sends one FileInfo per message, and a Python gRPC stream costs tens of
microseconds per message on top of the work (a bare server streaming 1,000 small messages
takes ~60 ms), so a 1,000-entry listing can never be fast that way. This servicer answers the
same `ListFileRequest` with `FileInfoBatch` messages instead.

Invariants:
- The entries, their order, their fields, the paging (`number`, `paginationMarker`, `reverse`)
  and the errors are exactly those of pfs_v2.API/ListFile for the same request: both read
  `PfsServicer.list_file_infos` and convert with `convert.FileInfoWriter`.
- A message holds at most `MAX_ENTRIES` entries and about `MAX_BYTES` of paths, so it stays
  far below the 64 MiB message limit whatever the path lengths; a listing is streamed, never
  held whole.
- Access is checked like ListFile's (REPO_LIST_FILE on the repo; auth.rules).
- `ReadRange` answers exactly the bytes GetFile streams for the same file from the same
  offset, cut at `length` (fewer at the end of the file), with GetFile's errors and its
  permission (REPO_READ). It reads only the chunks that overlap the range (GetFile at an
  offset reads ahead and streams to the end until cancelled: most of a random 4 KiB read's
  cost). A range is at most `MAX_RANGE` bytes, so one reply stays far below the message limit.
"""
from __future__ import annotations

from google.protobuf import wrappers_pb2

from pfs.errors import InvalidArgument
from pfs.service import convert as cv
from pfs.service.errors import rpc
from proto.pfs_batch_v1 import pfs_batch_pb2 as bpb

MAX_ENTRIES = 1000
MAX_BYTES = 1 << 20
MAX_RANGE = 16 << 20


class PfsBatchServicer:
    def __init__(self, pfs_servicer):
        self.pfs_servicer = pfs_servicer

    @rpc
    def ListFile(self, req, ctx):
        out = cv.FileInfoWriter()
        batch = bpb.FileInfoBatch()
        items = batch.file_infos
        n = size = 0
        for fi in self.pfs_servicer.list_file_infos(req):
            out.fill(items.add(), fi)
            n += 1
            size += len(fi.path) + 64
            if n >= MAX_ENTRIES or size >= MAX_BYTES:
                yield batch
                batch = bpb.FileInfoBatch()
                items = batch.file_infos
                n = size = 0
        if n:
            yield batch

    @rpc
    def ReadRange(self, req, ctx):
        if req.offset < 0 or req.length < 0:
            raise InvalidArgument(f"a byte range needs offset >= 0 and length >= 0 (got offset {req.offset}, "
                                  f"length {req.length})")
        if req.length > MAX_RANGE:
            raise InvalidArgument(f"a byte range is at most {MAX_RANGE} bytes (asked for {req.length}); "
                                  "use GetFile to stream more")
        ci = self.pfs_servicer._commit(req.file)
        _, pieces = self.pfs_servicer.pfs.read_file(ci, req.file.path, req.offset, req.length)
        return wrappers_pb2.BytesValue(value=b"".join(pieces))
