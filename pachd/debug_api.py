"""debug_v2.API: what a single-process Python pachd can answer of Pachyderm's debug service.

Invariants:
- Dump and DumpV2 stream a gzipped tar of plain-text/JSON files describing the cluster
  (version, repos and branches, pipelines, jobs); it never contains file contents, secrets
  or tokens. DumpV2 interleaves progress messages, as Pachyderm's does.
- SetLogLevel changes the level of pachd's loggers (`pachyderm`) or grpc's (`grpc`) in this
  process; with a duration the old level comes back afterwards. `affected_pods` is ["pachd"].
- Profile, Binary and Trace are Go runtime facilities (pprof, the pachd binary, execution
  traces) that do not exist in a Python process: FAILED_PRECONDITION says so and what to use.
- RunPFSLoadTest(Default) run pfs.service.loadtest (Pachyderm's load-test spec).
"""
from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
import threading
import time

import grpc
from google.protobuf import wrappers_pb2

from pfs.errors import InvalidArgument
from pfs.service.errors import rpc
from proto.debug_v2 import debug_pb2 as pb
from proto.debug_v2 import debug_pb2_grpc

PIECE = 1 << 20
_LEVELS = {pb.SetLogLevelRequest.DEBUG: logging.DEBUG, pb.SetLogLevelRequest.INFO: logging.INFO,
           pb.SetLogLevelRequest.ERROR: logging.ERROR, pb.SetLogLevelRequest.OFF: logging.CRITICAL + 10}
PACHYDERM_LOGGERS = ("pachd", "pfs", "pps", "pps.executor", "pps.worker", "s3gateway")


def _refuse(context, what: str, instead: str):
    context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                  f"{what} is a Go runtime facility of Pachyderm's pachd; this pachd is a Python program "
                  f"and has none. {instead}")


class DebugServicer(debug_pb2_grpc.DebugServicer):
    def __init__(self, pachd):
        self.pachd = pachd

    # ---- not applicable here -------------------------------------------------------------------
    def Profile(self, request, context):
        _refuse(context, "A pprof profile", "Profile it with py-spy (py-spy dump --pid <pachd pid>) or cProfile.")

    def Binary(self, request, context):
        _refuse(context, "Downloading the pachd binary", "Its code is the installed pachyderm-py package.")

    def Trace(self, request, context):
        _refuse(context, "An execution trace", "Use py-spy record for a timeline.")

    # ---- dumps -----------------------------------------------------------------------------------
    def _dump_files(self) -> list[tuple[str, bytes]]:
        from pachd.misc_api import version_string
        pfs = self.pachd.pfs
        files = [("pachd/version.txt", (version_string() + "\n").encode())]
        repos = []
        for r in pfs.list_repos():
            repos.append({"repo": str(r.repo), "branches": [b.name for b in getattr(r, "branches", [])],
                          "size_bytes": getattr(r, "size", 0)})
        files.append(("pfs/repos.json", json.dumps(repos, indent=1, default=str).encode()))
        pps = getattr(self.pachd, "pps", None)
        if pps is not None:
            pipes = [{"project": p.project, "name": p.name, "version": p.version, "state": p.state,
                      "reason": p.reason} for p in pps.master.list_pipelines()]
            files.append(("pps/pipelines.json", json.dumps(pipes, indent=1).encode()))
            jobs = []
            for j in pps.master.store.list_jobs():
                jobs.append({"pipeline": f"{j.project}/{j.pipeline}", "id": j.id, "state": j.state,
                             "reason": getattr(j, "reason", "")})
            files.append(("pps/jobs.json", json.dumps(jobs, indent=1).encode()))
        return files

    def _tar_gz(self) -> bytes:
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            for name, data in self._dump_files():
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), int(time.time())
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    @rpc
    def Dump(self, request, context):
        data = self._tar_gz()
        for i in range(0, len(data), PIECE):
            yield wrappers_pb2.BytesValue(value=data[i:i + PIECE])

    @rpc
    def DumpV2(self, request, context):
        yield pb.DumpChunk(progress=pb.DumpProgress(task="collecting cluster state", total=1, progress=0))
        data = self._tar_gz()
        yield pb.DumpChunk(progress=pb.DumpProgress(task="collecting cluster state", total=1, progress=1))
        for i in range(0, len(data), PIECE):
            yield pb.DumpChunk(content=pb.DumpContent(content=data[i:i + PIECE]))

    @rpc
    def GetDumpV2Template(self, request, context):
        req = pb.DumpV2Request(system=pb.System(version=True), input_repos=True)
        pps = getattr(self.pachd, "pps", None)
        for p in (pps.master.list_pipelines() if pps is not None else []):
            req.pipelines.append(pb.Pipeline(project=p.project, name=p.name))
        return pb.GetDumpV2TemplateResponse(request=req)

    # ---- log level ---------------------------------------------------------------------------------
    @rpc
    def SetLogLevel(self, request, context):
        which = request.WhichOneof("level")
        if which is None:
            raise InvalidArgument("no log level given (set pachyderm or grpc)")
        value = getattr(request, which)
        if value not in _LEVELS:
            raise InvalidArgument(f"unknown log level {value}")
        names = PACHYDERM_LOGGERS if which == "pachyderm" else ("grpc",)
        old = {n: logging.getLogger(n).level for n in names}
        for n in names:
            logging.getLogger(n).setLevel(_LEVELS[value])
        secs = request.duration.ToNanoseconds() / 1e9 if request.HasField("duration") else 0
        if secs > 0:
            def revert():
                for n, lvl in old.items():
                    logging.getLogger(n).setLevel(lvl)
            t = threading.Timer(secs, revert)
            t.daemon = True
            t.start()
        return pb.SetLogLevelResponse(affected_pods=["pachd"])

    # ---- load tests --------------------------------------------------------------------------------
    @rpc
    def RunPFSLoadTest(self, request, context):
        from pfs.service.loadtest import run_load_test
        return run_load_test(self.pachd.pfs, request.spec, request.branch if request.HasField("branch") else None,
                             request.seed, pb.RunPFSLoadTestResponse)

    @rpc
    def RunPFSLoadTestDefault(self, request, context):
        from pfs.service.loadtest import run_load_test
        return run_load_test(self.pachd.pfs, "", None, 0, pb.RunPFSLoadTestResponse)

