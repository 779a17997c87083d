"""logs.API/GetLogs (Pachyderm 2.12's log service) over the pipeline log store.

Invariants:
- User queries (project, pipeline, job, datum, pipeline_job, job_datum, pipeline_datum) read
  the same records as pps_v2 GetLogs, oldest first; each answer carries the pps LogMessage
  and a verbatim JSON line. Filters: time range (from/until, offset), limit, regex (negate),
  user_logs_only. `tail` sends the newest `limit` (or all) lines, still oldest first.
- Admin queries (LogQL, pods, apps, storage) need Loki and Kubernetes pods: FAILED_PRECONDITION
  names why. A pachd without the pipeline system answers FAILED_PRECONDITION too.
- Under auth, only lines of pipelines whose output repo the caller may read are returned,
  dropped before offset and limit are applied (so a count reveals nothing about the rest).
"""
from __future__ import annotations

import json
import re

from google.protobuf import timestamp_pb2

from pfs.errors import FailedPrecondition
from pfs.service.errors import rpc
from proto.logs import logs_pb2 as pb
from proto.logs import logs_pb2_grpc


class LogsServicer(logs_pb2_grpc.APIServicer):
    def __init__(self, pachd):
        self.pachd = pachd

    def _select(self, q):
        """(project, pipeline or None, job or None, datum or None) of a user query."""
        kind = q.WhichOneof("user_type")
        if kind == "project":
            return q.project or "default", None, None, None
        if kind == "pipeline":
            return q.pipeline.project or "default", q.pipeline.pipeline, None, None
        if kind == "job":
            return None, None, q.job, None
        if kind == "datum":
            return None, None, None, q.datum
        if kind == "pipeline_job":
            return q.pipeline_job.pipeline.project or "default", q.pipeline_job.pipeline.pipeline, q.pipeline_job.job, None
        if kind == "job_datum":
            return None, None, q.job_datum.job, q.job_datum.datum
        if kind == "pipeline_datum":
            p = q.pipeline_datum.pipeline
            return p.project or "default", p.pipeline, None, q.pipeline_datum.datum
        return None, None, None, None

    @rpc
    def GetLogs(self, req, context):
        from pps.service import log_message
        pps = getattr(self.pachd, "pps", None)
        if pps is None:
            raise FailedPrecondition("this pachd runs without the pipeline system: no logs")
        if req.query.WhichOneof("query_type") == "admin":
            raise FailedPrecondition(
                          "admin log queries (LogQL, pods, apps, storage) need Loki and Kubernetes pods; this pachd "
                          "keeps pipeline and job logs only: use a user query (project, pipeline, job or datum)")
        project, pipeline, job, datum = self._select(req.query.user)
        f = req.filter
        lo = f.time_range.__getattribute__("from").ToNanoseconds() / 1e9 if f.time_range.HasField("from") else None
        hi = f.time_range.until.ToNanoseconds() / 1e9 if f.time_range.HasField("until") else None
        rx = re.compile(f.regex.pattern) if f.regex.pattern else None
        store = pps.master.store
        projects = [project] if project else [p.name for p in self.pachd.pfs.list_projects()]
        may = self.pachd.authn.caller_may
        out = []
        for proj in projects:
            for _, lg in store.logs(proj, pipeline, job):
                if not may(context, "REPO_READ", proj, lg.pipeline):
                    continue
                if datum and lg.datum_id != datum:
                    continue
                if f.user_logs_only and not lg.user:
                    continue
                if lo is not None and lg.ts < lo or hi is not None and lg.ts > hi:
                    continue
                if rx is not None and bool(rx.search(lg.message)) == f.regex.negate:
                    continue
                out.append(lg)
        out.sort(key=lambda lg: lg.ts)
        out = out[f.time_range.offset:] if f.time_range.offset else out
        if f.limit:
            out = out[-f.limit:] if req.tail else out[:f.limit]
        for lg in out:
            ts = timestamp_pb2.Timestamp()
            ts.FromNanoseconds(int(lg.ts * 1e9))
            line = json.dumps({"message": lg.message, "pipeline": lg.pipeline, "job": lg.job_id,
                               "datum": lg.datum_id, "user": lg.user})
            yield pb.GetLogsResponse(log=pb.LogMessage(
                verbatim=pb.VerbatimLogMessage(line=line.encode(), timestamp=ts), native_timestamp=ts,
                pps_log_message=log_message(lg)))
