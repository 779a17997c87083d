"""The rest of pfs_v2.API: provenance walks, ForgetCommit, file sets, the cache, tasks,
egress and load tests. A mixin of PfsServicer (same rules: convert, call the core, convert).

Invariants:
- Walk* visit breadth first from each start (the start included), each object once,
  following direct provenance (or subvenance); max_depth / max_commits / max_branches of 0
  mean no limit.
- File set ids are 32 hex; TTLs are seconds (default 10 min, at most 30 min); see
  pfs.core.filesets for their lifetime rules.
- Cache entries are pachd-level records (`Y\\0cache\\0<key>`) holding the client's Any value,
  its tag and the file sets it refers to.
"""
from __future__ import annotations

import logging
import urllib.parse
from collections import deque

import msgpack
from google.protobuf import any_pb2, empty_pb2

from pfs.core.filesets import DEFAULT_TTL, FileSets
from pfs.core.keys import pachd_key, pachd_prefix
from pfs.errors import FailedPrecondition, InvalidArgument, NotFound
from pfs.service import convert as cv
from pfs.service import pickers
from pfs.service.errors import rpc
from pfs.service.urls import fetch_url  # noqa: F401 - the same URL rules as put file
from proto.pfs_v2 import pfs_pb2 as pb

log = logging.getLogger("pachd")
EMPTY = empty_pb2.Empty()


class PfsExtraMixin:
    pfs = None  # set by PfsServicer

    @property
    def filesets(self) -> FileSets:
        fs = getattr(self, "_filesets", None)
        if fs is None:
            fs = self._filesets = FileSets(self.pfs)
        return fs

    # ---- forgotten commits -------------------------------------------------------------------
    def _check_not_forgotten(self, ci) -> None:
        if self.pfs.is_forgotten(ci.commit.repo, ci.commit.id):
            raise FailedPrecondition(f"commit {ci.commit} is forgotten: its files were dropped by ForgetCommit")

    @rpc
    def ForgetCommit(self, req, ctx):
        ci = pickers.commit(self.pfs, req.commit)
        self.pfs.forget_commit(ci.commit.repo, ci.commit.id)
        return pb.ForgetCommitResponse()

    # ---- provenance walks --------------------------------------------------------------------
    def _walk(self, starts, nxt, max_items: int, max_depth: int):
        seen = set()
        queue = deque((s, 0) for s in starts)
        n = 0
        while queue:
            item, depth = queue.popleft()
            key = nxt.key(item)
            if key in seen:
                continue
            seen.add(key)
            yield item
            n += 1
            if max_items and n >= max_items:
                return
            if max_depth and depth >= max_depth:
                continue
            for up in nxt.edges(item):
                queue.append((up, depth + 1))

    def _commit_walker(self, up: bool):
        pfs = self.pfs

        class W:
            @staticmethod
            def key(ci):
                return (ci.commit.repo, ci.commit.id)

            @staticmethod
            def edges(ci):
                for ref in (ci.direct_provenance if up else ci.direct_subvenance):
                    c = pfs.get_commit(ref.repo, ref.id)
                    if c is not None:
                        yield c
        return W

    def _branch_walker(self, up: bool):
        pfs = self.pfs

        class W:
            @staticmethod
            def key(bi):
                return bi.branch

            @staticmethod
            def edges(bi):
                if up:
                    refs = bi.direct_provenance
                else:  # direct subvenance: branches that name this one as direct provenance
                    refs = [s for s in bi.subvenance if bi.branch in pfs.inspect_branch(s).direct_provenance]
                for b in refs:
                    yield pfs.inspect_branch(b)
        return W

    @rpc
    def WalkCommitProvenance(self, req, ctx):
        starts = [pickers.commit(self.pfs, p) for p in req.start]
        for ci in self._walk(starts, self._commit_walker(True), req.max_commits, req.max_depth):
            yield cv.commit_info_out(ci)

    @rpc
    def WalkCommitSubvenance(self, req, ctx):
        starts = [pickers.commit(self.pfs, p) for p in req.start]
        for ci in self._walk(starts, self._commit_walker(False), req.max_commits, req.max_depth):
            yield cv.commit_info_out(ci)

    @rpc
    def WalkBranchProvenance(self, req, ctx):
        starts = [self.pfs.inspect_branch(pickers.branch(p)) for p in req.start]
        for bi in self._walk(starts, self._branch_walker(True), req.max_branches, req.max_depth):
            yield cv.branch_info_out(bi)

    @rpc
    def WalkBranchSubvenance(self, req, ctx):
        starts = [self.pfs.inspect_branch(pickers.branch(p)) for p in req.start]
        for bi in self._walk(starts, self._branch_walker(False), req.max_branches, req.max_depth):
            yield cv.branch_info_out(bi)

    # ---- file sets -----------------------------------------------------------------------------
    @rpc
    def CreateFileSet(self, request_iterator, ctx):
        w = self.filesets.writer()
        try:
            for req in request_iterator:
                kind = req.WhichOneof("body")
                if kind == "add_file":
                    af = req.add_file
                    if af.WhichOneof("source") == "url":
                        from pfs.service.pfs_api import _local_peer
                        w.put(af.path, fetch_url(af.url.URL, _local_peer(ctx)), append=True, datum=af.datum)
                    else:
                        w.add(af.path, af.raw.value, af.datum)
                elif kind == "delete_file":
                    w.delete(req.delete_file.path, req.delete_file.datum)
                elif kind == "copy_file":
                    cf = req.copy_file
                    repo, cid, br = cv.commit_in(cf.src.commit)
                    w.copy_commit(repo, cid, br, cf.src.path, cf.dst, cf.append, cf.datum)
                elif kind == "set_commit":
                    raise InvalidArgument("CreateFileSet makes a file set, not a commit: set_commit is not allowed")
            fs_id = w.close()
        finally:
            w.abort()
        return pb.CreateFileSetResponse(file_set_id=fs_id)

    @rpc
    def GetFileSet(self, req, ctx):
        repo, cid, br = cv.commit_in(req.commit)
        ci = self.pfs.commit_for_read(repo, cid, br)
        self._check_not_forgotten(ci)
        fs_id = self.filesets.from_commit(ci, diff=req.type == pb.GetFileSetRequest.DIFF)
        return pb.CreateFileSetResponse(file_set_id=fs_id)

    @rpc
    def AddFileSet(self, req, ctx):
        self.filesets.root(req.file_set_id)  # exists, before a write session opens
        repo, cid, br = cv.commit_in(req.commit)
        writer = self.pfs.open_writer(repo, cid, br)
        try:
            self.filesets.add_to_commit(writer, req.file_set_id)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        return EMPTY

    @rpc
    def RenewFileSet(self, req, ctx):
        self.filesets.renew(req.file_set_id, float(req.ttl_seconds))
        return EMPTY

    @rpc
    def ComposeFileSet(self, req, ctx):
        ttl = float(req.ttl_seconds) if req.ttl_seconds else DEFAULT_TTL
        return pb.CreateFileSetResponse(file_set_id=self.filesets.compose(list(req.file_set_ids), ttl))

    @rpc
    def ShardFileSet(self, req, ctx):
        shards = self.filesets.shard(req.file_set_id, req.num_files, req.size_bytes)
        return pb.ShardFileSetResponse(shards=[pb.PathRange(lower=lo, upper=hi) for lo, hi in shards])

    # ---- cache ---------------------------------------------------------------------------------
    @rpc
    def PutCache(self, req, ctx):
        if not req.key:
            raise InvalidArgument("PutCache needs a key")
        for fs_id in req.file_set_ids:
            self.filesets.root(fs_id)
        self.pfs.meta.put(pachd_key("cache", req.key), msgpack.packb(
            {"value": req.value.SerializeToString(), "tag": req.tag, "file_sets": list(req.file_set_ids)}))
        return EMPTY

    @rpc
    def GetCache(self, req, ctx):
        raw = self.pfs.meta.get(pachd_key("cache", req.key))
        if raw is None:
            raise NotFound(f"cache entry {req.key} not found")
        value = any_pb2.Any.FromString(msgpack.unpackb(raw)["value"])
        return pb.GetCacheResponse(value=value)

    @rpc
    def ClearCache(self, req, ctx):
        for k, v in self.pfs.meta.scan(prefix=pachd_prefix("cache")):
            if msgpack.unpackb(v)["tag"].startswith(req.tag_prefix):
                self.pfs.meta.delete(k)
        return EMPTY

    # ---- tasks ---------------------------------------------------------------------------------
    @rpc
    def ListTask(self, req, ctx):
        # pfs does its work (chunking, index building, compaction) inline in the calls that
        # need it; it never queues background tasks, so there are none to list.
        return iter(())

    # ---- egress --------------------------------------------------------------------------------
    @rpc
    def Egress(self, req, ctx):
        repo, cid, br = cv.commit_in(req.commit)
        ci = self.pfs.commit_for_read(repo, cid, br)
        self._check_not_forgotten(ci)
        target = req.WhichOneof("target")
        if target == "sql_database":
            raise FailedPrecondition(
                f"SQL egress ({req.sql_database.url}) needs a database driver (postgres, mysql, snowflake) "
                "that this pachd does not include; egress to object storage (s3://) instead")
        if target != "object_storage" or not req.object_storage.url:
            raise InvalidArgument("egress needs a target: object_storage.url (s3://bucket/prefix)")
        from pfs.service.egress import egress_to_url
        from pfs.service.pfs_api import _local_peer
        written = egress_to_url(self.pfs, ci, req.object_storage.url, _local_peer(ctx))
        return pb.EgressResponse(object_storage=pb.EgressResponse.ObjectStorageResult(bytes_written=written))

    # ---- load tests (Pachyderm 2.7's pfs API; debug_v2 has the 2.12 ones) ----------------------
    @rpc
    def RunLoadTest(self, req, ctx):
        from pfs.service.loadtest import run_load_test
        return run_load_test(self.pfs, req.spec, req.branch if req.HasField("branch") else None, req.seed,
                             pb.RunLoadTestResponse)

    @rpc
    def RunLoadTestDefault(self, req, ctx):
        from pfs.service.loadtest import run_load_test
        return run_load_test(self.pfs, "", None, 0, pb.RunLoadTestResponse)


def url_scheme(url: str) -> str:
    return urllib.parse.urlparse(url).scheme
