"""pfs_v2.API: convert the request, call the core, convert the response. No logic here.

Invariants:
- Every handler is wrapped by `rpc`, so core errors reach clients as the right status code.
- ModifyFile applies a whole stream atomically (one write session); GetFile and GetFileTAR
  stream in bounded messages and never hold a whole file.
"""
from __future__ import annotations

import errno
import logging
import os
from typing import Iterator

import grpc
from google.protobuf import empty_pb2, wrappers_pb2

from pfs.core import Pfs
from pfs.core.filesets import FILESETS_REPO
from pfs.errors import DiskFull, InvalidArgument, StorageError, Unimplemented
from pfs.service import convert as cv
from pfs.service.errors import rpc
from pfs.service.local_read import URL_SCHEME, is_local_peer, write_all
from pfs.service.pfs_extra import PfsExtraMixin
from pfs.service.urls import fetch_url, local_file
from pfs.model import DEFAULT_PROJECT
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

log = logging.getLogger("pachd")
GET_CHUNK = 1 << 20  # bytes per GetFile message
EMPTY = empty_pb2.Empty()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _messages(it, size: int = GET_CHUNK, wire: bool = False) -> Iterator[bytes]:
    """Bytes-like pieces (memoryviews into read buffers) regrouped into messages of `size`
    bytes (the last may be shorter), each made with exactly one copy. `wire`: each as a
    serialized BytesValue (field 1, length-delimited) instead of its bare value. The first
    piece (one chunk) is sent by itself, without waiting for the next."""
    group, have, first = [], 0, True
    for piece in it:
        view = memoryview(piece)
        while view:
            take = view[:size - have]
            group.append(take)
            have += len(take)
            view = view[len(take):]
            if have == size:
                yield b"".join([b"\x0a", _varint(have), *group] if wire else group)
                group, have = [], 0
        if first and group:  # the first chunk's bytes go at once: a small read at an offset waits for no more
            yield b"".join([b"\x0a", _varint(have), *group] if wire else group)
            group, have = [], 0
        first = False
    if group:
        yield b"".join([b"\x0a", _varint(have), *group] if wire else group)


def _pass_serialized(msg) -> bytes:
    return msg if type(msg) is bytes else msg.SerializeToString()


class SerializedGetFile(grpc.ServerInterceptor):
    """pachd's GetFile hands gRPC its messages already serialized (`PfsServicer.serialized`):
    each is made with one copy from the read buffers, where building a BytesValue and
    serializing it cost two more copies of every byte. This gives GetFile a serializer that
    passes such bytes through (and still serializes a message object)."""

    METHOD = "/pfs_v2.API/GetFile"

    def intercept_service(self, continuation, details):
        h = continuation(details)
        if h is None or details.method != self.METHOD or not h.response_streaming:
            return h
        return grpc.unary_stream_rpc_method_handler(h.unary_stream, request_deserializer=h.request_deserializer,
                                                    response_serializer=_pass_serialized)


def _rechunk(it: Iterator[bytes], size: int = GET_CHUNK) -> Iterator[bytes]:
    buf = bytearray()
    for piece in it:
        if not buf and len(piece) >= size // 2:
            yield piece
            continue
        buf += piece
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


class PfsServicer(PfsExtraMixin, pfs_pb2_grpc.APIServicer):
    def __init__(self, pfs: Pfs, local_reads=None):
        self.pfs = pfs
        # (context, permission, project, repo) -> may the caller? Set by pachd when auth is
        # wired in: ReposSummary counts, and DeleteRepos deletes, only what the caller may.
        self.caller_may = lambda ctx, permission, project, repo: True
        self.local_reads = local_reads  # pfs.service.local_read.LocalReadServer, or None
        self.serialized = False  # GetFile yields serialized messages (SerializedGetFile installed)

    # ---- projects ----------------------------------------------------------------------
    @rpc
    def CreateProject(self, req, ctx):
        self.pfs.create_project(req.project.name, req.description, req.update)
        return EMPTY

    @rpc
    def InspectProject(self, req, ctx):
        return cv.project_info_out(self.pfs.inspect_project(req.project.name))

    @rpc
    def InspectProjectV2(self, req, ctx):
        info = cv.project_info_out(self.pfs.inspect_project(req.project.name))
        return pb.InspectProjectV2Response(info=info, defaults_json="{}")

    @rpc
    def ListProject(self, req, ctx):
        for p in self.pfs.list_projects():
            yield cv.project_info_out(p)

    @rpc
    def DeleteProject(self, req, ctx):
        self.pfs.delete_project(req.project.name, req.force)
        return EMPTY

    # ---- repos -------------------------------------------------------------------------
    @rpc
    def CreateRepo(self, req, ctx):
        self.pfs.create_repo(cv.repo_in(req.repo), req.description, req.update)
        return EMPTY

    @rpc
    def InspectRepo(self, req, ctx):
        return cv.repo_info_out(self.pfs.inspect_repo(cv.repo_in(req.repo)))

    @rpc
    def ListRepo(self, req, ctx):
        projects = [p.name or DEFAULT_PROJECT for p in req.projects]
        for r in self.pfs.list_repos(projects, req.type):
            yield cv.repo_info_out(r)

    @rpc
    def DeleteRepo(self, req, ctx):
        deleted = self.pfs.delete_repo(cv.repo_in(req.repo), req.force)
        return pb.DeleteRepoResponse(deleted=deleted)

    @rpc
    def DeleteRepos(self, req, ctx):
        """As Pachyderm's: `all` or the repos of the named projects, else nothing; repos the
        caller may not delete are skipped, not refused."""
        if not req.all and not req.projects:
            return pb.DeleteReposResponse()
        projects = [] if req.all else [p.name or DEFAULT_PROJECT for p in req.projects]
        out = []
        for r in self.pfs.list_repos(projects):
            if not self.caller_may(ctx, "REPO_DELETE", r.repo.project, r.repo.name):
                continue
            if self.pfs.delete_repo(r.repo, req.force):
                out.append(cv.repo_out(r.repo))
        return pb.DeleteReposResponse(repos=out)

    # ---- commits -----------------------------------------------------------------------
    @rpc
    def StartCommit(self, req, ctx):
        branch = cv.branch_in(req.branch)
        parent = cv.commit_in(req.parent) if req.HasField("parent") and (req.parent.id or req.parent.branch.name) else None
        if parent is not None and not parent[0].name:
            parent = (branch.repo, parent[1], parent[2])
        ci = self.pfs.start_commit(branch, parent, req.description)
        return cv.commit_out(ci.commit)

    @rpc
    def FinishCommit(self, req, ctx):
        repo, cid, br = cv.commit_in(req.commit)
        self.pfs.finish_commit(repo, cid, br, req.description, req.error, req.force)
        return EMPTY

    @rpc
    def ClearCommit(self, req, ctx):
        repo, cid, br = cv.commit_in(req.commit)
        ci = self.pfs.commit_for_read(repo, cid, br)
        parent = self.pfs.get_commit(repo, ci.parent) if ci.parent else None
        self.pfs.set_commit_root(repo, ci.commit.id, parent.root if parent else None)
        return EMPTY

    @rpc
    def InspectCommit(self, req, ctx):
        repo, cid, br = cv.commit_in(req.commit)
        ci = self.pfs.inspect_commit(repo, cid, br, wait=cv.STATE_FROM_PB.get(req.wait, ""),
                                     cancelled=lambda: not ctx.is_active())
        return cv.commit_info_out(ci)

    @rpc
    def ListCommit(self, req, ctx):
        repo = cv.repo_in(req.repo)
        frm = getattr(req, "from")
        to = cv.commit_in(req.to) if req.HasField("to") and (req.to.id or req.to.branch.name) else None
        fr = cv.commit_in(frm) if req.HasField("from") and (frm.id or frm.branch.name) else None
        if to is not None and not to[0].name:
            to = (repo, to[1], to[2])
        if fr is not None and not fr[0].name:
            fr = (repo, fr[1], fr[2])
        started = cv.from_ts(req.started_time) if req.HasField("started_time") else None
        for ci in self.pfs.list_commits(repo, to, fr, req.number, req.reverse, req.all,
                                        cv.ORIGIN_FROM_PB.get(req.origin_kind, ""), started):
            yield cv.commit_info_out(ci)

    @rpc
    def SubscribeCommit(self, req, ctx):
        repo = cv.repo_in(req.repo)
        frm = getattr(req, "from")
        from_id = frm.id if req.HasField("from") else ""
        state = cv.STATE_FROM_PB.get(req.state, "") or "STARTED"
        for ci in self.pfs.subscribe_commits(repo, req.branch, from_id, state, req.all,
                                             cv.ORIGIN_FROM_PB.get(req.origin_kind, ""),
                                             cancelled=lambda: not ctx.is_active()):
            yield cv.commit_info_out(ci)

    @rpc
    def InspectCommitSet(self, req, ctx):
        for ci in self.pfs.inspect_commit_set(req.commit_set.id, req.wait,
                                              cancelled=lambda: not ctx.is_active()):
            yield cv.commit_info_out(ci)

    @rpc
    def ListCommitSet(self, req, ctx):
        for set_id, cis in self.pfs.list_commit_sets(req.project.name):
            yield pb.CommitSetInfo(commit_set=pb.CommitSet(id=set_id),
                                   commits=[cv.commit_info_out(c) for c in cis])

    @rpc
    def SquashCommitSet(self, req, ctx):
        self.pfs.squash_commit_set(req.commit_set.id)
        return EMPTY

    @rpc
    def DropCommitSet(self, req, ctx):
        self.pfs.drop_commit_set(req.commit_set.id)
        return EMPTY

    @rpc
    def SquashCommit(self, req, ctx):
        repo, cid, br = cv.commit_in(req.commit)
        self.pfs.squash_commit(repo, cid, br, req.recursive)
        return pb.SquashCommitResponse()

    @rpc
    def DropCommit(self, req, ctx):
        repo, cid, br = cv.commit_in(req.commit)
        self.pfs.drop_commit(repo, cid, br, req.recursive)
        return pb.DropCommitResponse()

    @rpc
    def FindCommits(self, req, ctx):
        repo, cid, br = cv.commit_in(req.start)
        path = req.file_path
        ci = self.pfs.commit_for_read(repo, cid, br)
        found = searched = 0
        while ci is not None:
            parent = self.pfs.get_commit(repo, ci.parent) if ci.parent else None
            changed = any(True for _ in self.pfs.diff_file(ci, path, parent)) if _exists_either(self.pfs, ci, parent, path) else False
            searched += 1
            if changed:
                found += 1
                yield pb.FindCommitsResponse(found_commit=cv.commit_out(ci.commit), commits_searched=searched)
                if req.limit and found >= req.limit:
                    return
            if parent is None:
                yield pb.FindCommitsResponse(last_searched_commit=cv.commit_out(ci.commit), commits_searched=searched)
                return
            ci = parent

    # ---- branches ----------------------------------------------------------------------
    @rpc
    def CreateBranch(self, req, ctx):
        branch = cv.branch_in(req.branch)
        head = None
        if req.HasField("head") and (req.head.id or req.head.branch.name):
            head = cv.commit_in(req.head)
            if not head[0].name:
                head = (branch.repo, head[1], head[2])
        prov = tuple(cv.branch_in(b) for b in req.provenance)
        self.pfs.create_branch(branch, head, prov, cv.trigger_in(req.trigger) if req.HasField("trigger") else None,
                               req.new_commit_set)
        return EMPTY

    @rpc
    def InspectBranch(self, req, ctx):
        return cv.branch_info_out(self.pfs.inspect_branch(cv.branch_in(req.branch)))

    @rpc
    def ListBranch(self, req, ctx):
        repo = cv.repo_in(req.repo) if req.HasField("repo") and req.repo.name else None
        for bi in self.pfs.list_branches(repo, req.reverse):
            yield cv.branch_info_out(bi)

    @rpc
    def DeleteBranch(self, req, ctx):
        self.pfs.delete_branch(cv.branch_in(req.branch), req.force)
        return EMPTY

    # ---- files -------------------------------------------------------------------------
    @rpc
    def ModifyFile(self, request_iterator, ctx):
        writer = None
        try:
            for req in request_iterator:
                kind = req.WhichOneof("body")
                if kind == "set_commit":
                    if writer is not None:
                        writer.close()
                    repo, cid, br = cv.commit_in(req.set_commit)
                    writer = self.pfs.open_writer(repo, cid, br)
                    continue
                if writer is None:
                    raise InvalidArgument("ModifyFile: the first message must be set_commit")
                if kind == "add_file":
                    af = req.add_file
                    if af.WhichOneof("source") == "url":
                        local = _local_peer(ctx)
                        if af.url.URL.startswith(URL_SCHEME) and self.local_reads is not None:
                            self._put_file_local(writer, af, ctx)
                        elif af.url.recursive:
                            _put_url_recursive(writer, af, local)
                        elif (lp := local_file(af.url.URL, local)) is not None:
                            writer.put_local(af.path, lp, append=True, datum=af.datum)
                        else:
                            writer.put(af.path, fetch_url(af.url.URL, local), append=True, datum=af.datum)
                    else:
                        writer.add(af.path, af.raw.value, af.datum)
                elif kind == "delete_file":
                    writer.delete(req.delete_file.path, req.delete_file.datum)
                elif kind == "copy_file":
                    cf = req.copy_file
                    repo, cid, br = cv.commit_in(cf.src.commit)
                    writer.copy(repo, cid, br, cf.src.path, cf.dst, cf.append, cf.datum)
            if writer is not None:
                writer.close()
                writer = None
        finally:
            if writer is not None:
                writer.abort()
        return EMPTY

    def _put_file_local(self, writer, af, ctx) -> None:
        """AddFile from a descriptor the client handed over (pfs.service.local_read): pachd
        reads the client's open file itself, exactly as it reads a file:// source."""
        fd = self.local_reads.take(af.url.URL, ctx.peer() or "", for_put=True)
        try:
            writer.put_fd(af.path, fd, append=True, datum=af.datum, name=f"the file for {af.path}")
        finally:
            os.close(fd)

    def _commit(self, f: pb.File):
        repo, cid, br = cv.commit_in(f.commit)
        if repo.name == FILESETS_REPO:
            return self.filesets.as_commit(cid)
        ci = self.pfs.commit_for_read(repo, cid, br)
        self._check_not_forgotten(ci)
        return ci

    @rpc
    def GetFile(self, req, ctx):
        ci = self._commit(req.file)
        if req.URL.startswith(URL_SCHEME) and self.local_reads is not None:
            yield from self._get_file_local(ci, req, ctx)
            return
        if req.URL:
            raise Unimplemented("GetFile to a URL is not supported; read the file and upload it yourself")
        _, it = self.pfs.read_file(ci, req.file.path, req.offset, views=True)
        if self.serialized:
            yield from _messages(it, wire=True)
            return
        for piece in _messages(it):
            yield wrappers_pb2.BytesValue(value=piece)

    def _get_file_local(self, ci, req, ctx):
        """GetFile into a descriptor the client handed over (pfs.service.local_read): the
        same checked bytes, written by pachd; an empty stream."""
        fd = self.local_reads.take(req.URL, ctx.peer() or "")
        try:
            _, it = self.pfs.read_file(ci, req.file.path, req.offset, views=True)
            try:
                write_all(fd, it, ctx.is_active, self.local_reads.stall_limit)
            except OSError as e:
                err = DiskFull if e.errno == errno.ENOSPC else StorageError
                raise err(f"writing {req.file.path} into the client's output failed: {e.strerror or e}") from e
        finally:
            os.close(fd)
        return
        yield  # a generator, as GetFile streams

    @rpc
    def GetFileTAR(self, req, ctx):
        ci = self._commit(req.file)
        for piece in _rechunk(self.pfs.tar_stream(ci, req.file.path)):
            yield wrappers_pb2.BytesValue(value=piece)

    @rpc
    def InspectFile(self, req, ctx):
        ci = self._commit(req.file)
        return cv.file_info_out(self.pfs.inspect_file(ci, req.file.path))

    @rpc
    def ListFile(self, req, ctx):
        out = cv.FileInfoWriter()
        for fi in self.list_file_infos(req):
            yield out.one(fi)

    def list_file_infos(self, req: pb.ListFileRequest):
        """The core's FileInfos a ListFileRequest asks for (ListFile one to a message, and
        pfs_batch_v1.API/ListFile many to a message)."""
        ci = self._commit(req.file)
        marker = req.paginationMarker.path if req.HasField("paginationMarker") and req.paginationMarker.path else None
        return self.pfs.list_file(ci, req.file.path, marker, req.number, req.reverse)

    @rpc
    def WalkFile(self, req, ctx):
        ci = self._commit(req.file)
        marker = req.paginationMarker.path if req.HasField("paginationMarker") and req.paginationMarker.path else None
        out = cv.FileInfoWriter()
        for fi in self.pfs.walk_file(ci, req.file.path, marker, req.number, req.reverse):
            yield out.one(fi)

    @rpc
    def GlobFile(self, req, ctx):
        ci = self._commit(pb.File(commit=req.commit))
        lo = req.path_range.lower if req.HasField("path_range") else ""
        hi = req.path_range.upper if req.HasField("path_range") else ""
        out = cv.FileInfoWriter()
        for fi in self.pfs.glob_file(ci, req.pattern, lo, hi):
            yield out.one(fi)

    @rpc
    def DiffFile(self, req, ctx):
        new_ci = self._commit(req.new_file)
        old_ci = None
        if req.HasField("old_file") and (req.old_file.commit.id or req.old_file.commit.branch.name):
            old_ci = self._commit(req.old_file)
        for new, old in self.pfs.diff_file(new_ci, req.new_file.path, old_ci, req.old_file.path, req.shallow):
            yield pb.DiffFileResponse(new_file=cv.file_info_out(new) if new else None,
                                      old_file=cv.file_info_out(old) if old else None)

    # ---- cluster-wide ------------------------------------------------------------------
    @rpc
    def DeleteAll(self, req, ctx):
        for r in self.pfs.list_repos():
            self.pfs.delete_repo(r.repo, force=True)
        for p in self.pfs.list_projects():
            if p.name != DEFAULT_PROJECT:
                self.pfs.delete_project(p.name, force=True)
        return EMPTY

    # Zombie-file detection needs the pipeline system's datum tables; pachd (the composition root)
    # sets this to an object with `target(repo, commit_id, branch)` and `all()`, each yielding
    # one message per zombie file (pps.zombies). Without pps it stays None.
    zombies = None

    @rpc
    def Fsck(self, req, ctx):
        from pfs.core.gc.check import fsck
        if req.HasField("zombie_target") or req.zombie_all:
            if self.zombies is None:
                raise Unimplemented("zombie file detection (--zombie, --zombie-all) needs the pipeline system, "
                                    "which this pachd runs without")
            if req.HasField("zombie_target"):
                repo, cid, br = cv.commit_in(req.zombie_target)
                found = self.zombies.target(repo, cid, br)
            else:
                found = self.zombies.all()
            for msg in found:
                yield pb.FsckResponse(error=msg)
            return
        for kind, msg in fsck(self.pfs, req.fix):
            yield pb.FsckResponse(fix=msg) if kind == "fix" else pb.FsckResponse(error=msg)

    @rpc
    def CheckStorage(self, req, ctx):
        """Pachyderm's CheckStorage: the chunks whose ids (blake3 hashes, raw bytes) are in
        [chunk_begin, chunk_end) (empty bounds are open); chunk_object_count is how many. Damage fails the call with DATA_LOSS naming repo, commit and path; the counts
        are also sent as trailing metadata (commits, files, chunks, packs, pack-bytes, live-bytes, dead-bytes,
        orphans, orphan-bytes)."""
        from pfs.core.gc.check import check_storage
        from pfs.errors import DataLoss
        r = check_storage(self.pfs, req.read_chunk_data, req.chunk_begin, req.chunk_end)
        ctx.set_trailing_metadata(tuple((k, str(v)) for k, v in (
            ("commits", r.commits), ("files", r.files), ("chunks", r.chunks), ("chunks-read", r.chunks_read),
            ("packs", r.packs), ("pack-bytes", r.pack_bytes), ("live-bytes", r.live_bytes), ("dead-bytes", r.dead_bytes),
            ("orphans", r.orphans), ("orphan-bytes", r.orphan_bytes))))
        if r.damaged:
            more = f"\n... and {r.damaged - len(r.damage)} more" if r.damaged > len(r.damage) else ""
            raise DataLoss(f"storage check found {r.damaged} damaged file(s) in {r.commits} commit(s):\n"
                           + "\n".join(r.damage) + more)
        return pb.CheckStorageResponse(chunk_object_count=r.chunks)

    @rpc
    def ActivateAuth(self, req, ctx):
        return pb.ActivateAuthResponse()

    @rpc
    def ReposSummary(self, req, ctx):
        names = [p.name for p in req.projects if p.name] or [p.name for p in self.pfs.list_projects()]
        out = []
        for name in names:
            repos = [r for r in self.pfs.list_repos([name], "user")
                     if self.caller_may(ctx, "REPO_READ", r.repo.project, r.repo.name)]
            out.append(pb.ReposSummary(project=pb.Project(name=name), user_repo_count=len(repos),
                                       size_bytes=sum(r.size for r in repos)))
        return pb.ReposSummaryResponse(summaries=out)


def _exists_either(pfs, ci, parent, path) -> bool:
    from pfs import ancestry
    p = ancestry.clean_path(path)
    t1 = pfs.tree(ci).lookup(p)
    t2 = pfs.tree(parent).lookup(p) if parent is not None else None
    return t1 is not None or t2 is not None


def _put_url_recursive(writer, af, local: bool) -> None:
    from pfs.service.urls import list_url, local_tree
    base = af.path.rstrip("/")
    tree = local_tree(af.url.URL, local)
    if tree is not None:  # a local directory: walk and read it directly (no per-file URLs)
        for rel, full in tree:
            writer.put_local(f"{base}/{rel}" if base else rel, full, append=False, datum=af.datum)
        return
    for rel, url in list_url(af.url.URL, local):
        writer.put(f"{base}/{rel}" if base else rel, fetch_url(url, local), append=False, datum=af.datum)


def _local_peer(ctx) -> bool:
    """True when the client is on this machine (file:// sources are then allowed)."""
    if os.environ.get("PACHD_ALLOW_FILE_URLS", "1") == "0":
        return False
    return is_local_peer(ctx.peer() or "")
