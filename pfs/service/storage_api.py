"""storage.Fileset (Pachyderm 2.12): file sets through their own small API.

The same file sets as pfs_v2's CreateFileSet & co. (pfs.core.filesets), with a simpler
write stream (append_file / delete_file / copy_file between file sets) and a read stream.

Invariants:
- ReadFileset streams each matching file as (path, data) messages of at most 1 MiB, in path
  order; a file must pass every filter (path range [lower, upper), path regex); empty files
  are sent only when `empty_files` is set.
- ReadFilesetCDR refuses with FAILED_PRECONDITION: content-defined references hand a client
  presigned object-storage URLs of chunks encrypted and hashed as Pachyderm stores them;
  this pachd's chunks are BLAKE3-named packs, so there is nothing such a URL could point to.
"""
from __future__ import annotations

from google.protobuf import empty_pb2, wrappers_pb2

from pfs.core.filesets import DEFAULT_TTL, FileSets
from pfs.errors import FailedPrecondition
from pfs.service.errors import rpc
from proto.storage import storage_pb2 as spb
from proto.storage import storage_pb2_grpc

PIECE = 1 << 20


class StorageServicer(storage_pb2_grpc.FilesetServicer):
    def __init__(self, pfs):
        self.pfs = pfs
        self.filesets = FileSets(pfs)

    @rpc
    def CreateFileset(self, request_iterator, ctx):
        w = self.filesets.writer()
        try:
            for req in request_iterator:
                kind = req.WhichOneof("modification")
                if kind == "append_file":
                    w.add(req.append_file.path, req.append_file.data.value)
                elif kind == "delete_file":
                    w.delete(req.delete_file.path)
                elif kind == "copy_file":
                    c = req.copy_file
                    w.copy_fileset(c.fileset_id, c.src, c.dst)
            fs_id = w.close()
        finally:
            w.abort()
        return spb.CreateFilesetResponse(fileset_id=fs_id)

    def _matching(self, req):
        lower = upper = regex = ""
        ranges, regexes = [], []
        for f in req.filters:
            if f.WhichOneof("filter") == "path_range":
                ranges.append((f.path_range.lower, f.path_range.upper))
            elif f.WhichOneof("filter") == "path_regex":
                regexes.append(f.path_regex)
        if ranges:
            lower = max(lo for lo, _ in ranges)
            uppers = [hi for _, hi in ranges if hi]
            upper = min(uppers) if uppers else ""
        it = self.filesets.files(req.fileset_id, lower, upper, regexes[0] if regexes else "")
        for path, e in it:
            if len(regexes) > 1:
                import re
                if not all(re.search(r, path) for r in regexes[1:]):
                    continue
            if e.size == 0 and not req.empty_files:
                continue
            yield path, e

    @rpc
    def ReadFileset(self, req, ctx):
        for path, e in self._matching(req):
            if e.size == 0:
                yield spb.ReadFilesetResponse(path=path, data=wrappers_pb2.BytesValue(value=b""))
                continue
            buf = bytearray()
            for piece in self.pfs.content.read(e.refs):
                buf += piece
                while len(buf) >= PIECE:
                    yield spb.ReadFilesetResponse(path=path, data=wrappers_pb2.BytesValue(value=bytes(buf[:PIECE])))
                    del buf[:PIECE]
            if buf:
                yield spb.ReadFilesetResponse(path=path, data=wrappers_pb2.BytesValue(value=bytes(buf)))

    @rpc
    def ReadFilesetCDR(self, req, ctx):
        self.filesets.root(req.fileset_id)  # a missing file set is still NOT_FOUND
        raise FailedPrecondition(
            "content-defined references (CDRs) point at chunks in object storage through presigned URLs, "
            "encrypted and hashed the way Pachyderm stores them; this pachd stores chunks differently "
            "(BLAKE3-named packs), so it has no CDRs to give. Read the file set with ReadFileset instead.")

    @rpc
    def RenewFileset(self, req, ctx):
        self.filesets.renew(req.fileset_id, float(req.ttl_seconds))
        return empty_pb2.Empty()

    @rpc
    def ComposeFileset(self, req, ctx):
        ttl = float(req.ttl_seconds) if req.ttl_seconds else DEFAULT_TTL
        return spb.ComposeFilesetResponse(fileset_id=self.filesets.compose(list(req.fileset_ids), ttl))

    @rpc
    def ShardFileset(self, req, ctx):
        shards = self.filesets.shard(req.fileset_id, req.num_files, req.size_bytes)
        return spb.ShardFilesetResponse(shards=[spb.PathRange(lower=lo, upper=hi) for lo, hi in shards])
