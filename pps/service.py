"""pps_v2.API: convert, call the master, convert back. No pipeline logic lives here.

Invariants:
- Specs arrive as CreatePipelineRequest messages or JSON text (CreatePipelineV2) and are
  handed to the master as plain dicts with proto field names; the master validates them.
- Every handler maps core/master errors to gRPC statuses through pfs.service.errors.rpc.
"""
from __future__ import annotations

import json
import time

from google.protobuf import empty_pb2, json_format
from google.protobuf.duration_pb2 import Duration

from pfs.errors import InvalidArgument, NotFound
from pfs.model import Repo
from pfs.service import convert as pcv
from pfs.service.errors import rpc
from pps import datums as dm
from pps.service_misc import PpsMiscMixin
from pps.service_secrets import SecretsMixin
from pps.spec import normalize_spec, pipeline_input_summary
from pps.store import TERMINAL, DatumRecord, JobRecord, LogRecord, PipelineRecord
from proto.pfs_v2 import pfs_pb2
from proto.pps_v2 import pps_pb2 as pb
from proto.pps_v2 import pps_pb2_grpc

EMPTY = empty_pb2.Empty()


def dur(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(round((seconds or 0) * 1e9)))
    return d


def _project(msg) -> str:
    return msg.project.name or "default"


def spec_message(spec: dict) -> pb.CreatePipelineRequest:
    msg = pb.CreatePipelineRequest()
    json_format.ParseDict(spec, msg, ignore_unknown_fields=True)
    return msg


def pipeline_info(p: PipelineRecord, master, details: bool = True) -> pb.PipelineInfo:
    req = spec_message(p.spec)
    info = pb.PipelineInfo(
        pipeline=pb.Pipeline(name=p.name, project=pfs_pb2.Project(name=p.project)),
        version=p.version, stopped=p.stopped, state=pb.PipelineState.Value(p.state),
        reason=p.reason, parallelism=p.parallelism,
        type=pb.PipelineInfo.PIPELINE_TYPE_TRANSFORM,
        user_spec_json=p.user_spec_json, effective_spec_json=json.dumps(p.spec, sort_keys=True),
        metadata=p.metadata or {})
    if p.last_job_state:
        info.last_job_state = pb.JobState.Value(p.last_job_state)
    if p.spec_commit:
        info.spec_commit.CopyFrom(pcv.commit_out(pcv.CommitRef(Repo(p.project, p.name, "spec"), p.spec_commit, "master")))
    if details:
        d = info.details
        for f in req.DESCRIPTOR.fields:
            if f.message_type is None or f.name not in d.DESCRIPTOR.fields_by_name:
                continue
            if f.is_repeated:
                getattr(d, f.name).extend(getattr(req, f.name))
            elif req.HasField(f.name):
                getattr(d, f.name).CopyFrom(getattr(req, f.name))
        d.output_branch = req.output_branch or "master"
        d.description = req.description
        d.salt = p.salt
        d.datum_tries = req.datum_tries
        d.reprocess_spec = req.reprocess_spec
        d.autoscaling = req.autoscaling
        d.s3_out = req.s3_out
        d.pod_spec, d.pod_patch = req.pod_spec, req.pod_patch
        d.created_at.CopyFrom(pcv.ts(p.created_at))
        d.updated_at.CopyFrom(pcv.ts(p.updated_at))
        workers = master.executor.workers((p.project, p.name)) if master.executor else []
        d.workers_requested = p.parallelism
        d.workers_available = len(workers)
    return info


def job_info(j: JobRecord, master, details: bool = False) -> pb.JobInfo:
    info = pb.JobInfo(
        job=pb.Job(pipeline=pb.Pipeline(name=j.pipeline, project=pfs_pb2.Project(name=j.project)), id=j.id),
        pipeline_version=j.pipeline_version,
        output_commit=pcv.commit_out(pcv.CommitRef(Repo(j.project, j.output_repo), j.id, j.output_branch)),
        restart=j.restart, data_processed=j.data_processed, data_skipped=j.data_skipped,
        data_total=j.data_total, data_failed=j.data_failed, data_recovered=j.data_recovered,
        stats=pb.ProcessStats(download_time=dur(j.download_time), process_time=dur(j.process_time),
                              upload_time=dur(j.upload_time), download_bytes=j.download_bytes,
                              upload_bytes=j.upload_bytes),
        state=pb.JobState.Value(j.state), reason=j.reason, created=pcv.ts(j.created),
        started=pcv.ts(j.started), finished=pcv.ts(j.finished))
    if details:
        p = master.store.get_pipeline(j.project, j.pipeline)
        if p is not None:
            req = spec_message(p.spec)
            d = info.details
            for name in ("transform", "parallelism_spec", "egress", "service", "spout", "resource_requests",
                         "resource_limits", "input", "datum_set_spec", "datum_timeout", "job_timeout",
                         "scheduling_spec"):
                if req.HasField(name):
                    getattr(d, name).CopyFrom(getattr(req, name))
            d.salt = p.salt
            d.datum_tries = req.datum_tries
            for wid, job_id, datum_id, started, inputs in master.board.worker_status((j.project, j.pipeline)):
                ws = d.worker_status.add(worker_id=wid, job_id=job_id)
                ws.datum_status.started.CopyFrom(pcv.ts(started))
                for path, h in inputs:
                    ws.datum_status.data.add(path=path, hash=h)
    return info


_DSTATE = {"FAILED": pb.FAILED, "SUCCESS": pb.SUCCESS, "SKIPPED": pb.SKIPPED,
           "STARTING": pb.STARTING, "RECOVERED": pb.RECOVERED}


def datum_info(j: JobRecord, d: DatumRecord) -> pb.DatumInfo:
    info = pb.DatumInfo(
        datum=pb.Datum(id=d.id, job=pb.Job(id=j.id, pipeline=pb.Pipeline(
            name=j.pipeline, project=pfs_pb2.Project(name=j.project)))),
        state=_DSTATE.get(d.state, pb.UNKNOWN),
        stats=pb.ProcessStats(download_time=dur(d.download_time), process_time=dur(d.process_time),
                              upload_time=dur(d.upload_time), download_bytes=d.download_bytes,
                              upload_bytes=d.upload_bytes))
    for name, project, repo, branch, commit, path, h, size in d.inputs:
        fi = info.data.add(size_bytes=size, hash=h,
                           file_type=pfs_pb2.DIR if path == "/" or path.endswith("/") else pfs_pb2.FILE)
        fi.file.path = path
        fi.file.commit.CopyFrom(pcv.commit_out(pcv.CommitRef(Repo(project, repo), commit, branch)))
    return info


def log_message(lg: LogRecord) -> pb.LogMessage:
    return pb.LogMessage(project_name=lg.project, pipeline_name=lg.pipeline, job_id=lg.job_id,
                         worker_id=lg.worker_id, datum_id=lg.datum_id, master=lg.master, user=lg.user,
                         ts=pcv.ts(lg.ts), message=lg.message,
                         data=[pb.InputFile(path=p, hash=h) for p, h in lg.data])


class PpsServicer(SecretsMixin, PpsMiscMixin, pps_pb2_grpc.APIServicer):
    def __init__(self, master):
        self.m = master
        # (context, permission, project, repo) -> may the caller? Set by pachd when auth is
        # wired in: PipelinesSummary counts only pipelines whose output repo the caller reads.
        self.caller_may = lambda ctx, permission, project, repo: True

    # ---- pipelines ---------------------------------------------------------------------------
    @rpc
    def CreatePipeline(self, req, ctx):
        d = json_format.MessageToDict(req, preserving_proto_field_name=True)
        self.m.create_pipeline(d, project=_project(req.pipeline), update=req.update,
                               reprocess=req.reprocess, dry_run=req.dry_run)
        return EMPTY

    @rpc
    def CreatePipelineV2(self, req, ctx):
        try:
            d = json.loads(req.create_pipeline_request_json)
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"pipeline spec is not valid JSON: {e}") from e
        if not isinstance(d, dict):
            raise InvalidArgument(f"pipeline spec must be a JSON object, not {type(d).__name__.replace('NoneType', 'null')}: "
                                  f"{req.create_pipeline_request_json[:80]}")
        pipe = d.get("pipeline")
        proj = pipe.get("project") if isinstance(pipe, dict) else None
        project = (proj.get("name") if isinstance(proj, dict) else None) or "default"
        eff = self.m.create_pipeline(d, project=project, update=req.update, reprocess=req.reprocess,
                                     dry_run=req.dry_run, user_json=req.create_pipeline_request_json)
        return pb.CreatePipelineV2Response(effective_create_pipeline_request_json=json.dumps(eff))

    @rpc
    def InspectPipeline(self, req, ctx):
        name = req.pipeline.name
        history = 0
        if "^" in name or "~" in name:  # pipeline^N: an older version
            base, _, n = name.replace("~", "^").partition("^")
            name, history = base, int(n or 1)
        p = self.m.inspect_pipeline(_project(req.pipeline), name)
        if history:
            versions = self.m.store.pipeline_versions(p.project, p.name)
            if history >= len(versions):
                raise NotFound(f'pipeline "{p.project}/{req.pipeline.name}" not found')
            p = versions[history]
        return pipeline_info(p, self.m, True)

    @rpc
    def ListPipeline(self, req, ctx):
        projects = [pr.name for pr in req.projects if pr.name]
        for p in self.m.list_pipelines(projects, req.history, req.pipeline.name):
            yield pipeline_info(p, self.m, True)

    @rpc
    def DeletePipeline(self, req, ctx):
        if req.all:
            for p in self.m.list_pipelines():
                self.m.delete_pipeline(p.project, p.name, True, req.keep_repo)
            return EMPTY
        try:
            self.m.delete_pipeline(_project(req.pipeline), req.pipeline.name, req.force, req.keep_repo)
        except NotFound:
            if req.must_exist or not req.force:
                raise
        return EMPTY

    @rpc
    def DeletePipelines(self, req, ctx):
        projects = [p.name for p in req.projects if p.name] if not req.all else []
        out = []
        for p in self.m.list_pipelines(projects):
            self.m.delete_pipeline(p.project, p.name, True, req.keep_repo)
            out.append(pb.Pipeline(name=p.name, project=pfs_pb2.Project(name=p.project)))
        return pb.DeletePipelinesResponse(pipelines=out)

    @rpc
    def StartPipeline(self, req, ctx):
        self.m.start_pipeline(_project(req.pipeline), req.pipeline.name)
        return EMPTY

    @rpc
    def StopPipeline(self, req, ctx):
        self.m.stop_pipeline(_project(req.pipeline), req.pipeline.name)
        return EMPTY

    @rpc
    def RerunPipeline(self, req, ctx):
        self.m.rerun_pipeline(_project(req.pipeline), req.pipeline.name, req.reprocess)
        return EMPTY

    @rpc
    def RunCron(self, req, ctx):
        self.m.run_cron(_project(req.pipeline), req.pipeline.name)
        return EMPTY

    @rpc
    def CreateDatum(self, request_iterator, ctx):
        from pps.service_datums import create_datum
        yield from create_datum(self, request_iterator)

    @rpc
    def CheckStatus(self, req, ctx):
        return iter(())

    @rpc
    def PipelinesSummary(self, req, ctx):
        out = pb.PipelinesSummaryResponse()
        by_project: dict = {}
        for p in self.m.list_pipelines():
            if not self.caller_may(ctx, "REPO_READ", p.project, p.name):
                continue
            s = by_project.setdefault(p.project, pb.PipelinesSummary(project=pfs_pb2.Project(name=p.project)))
            if p.stopped:
                s.paused_pipelines += 1
            elif p.last_job_state == "JOB_FAILURE":
                s.failed_pipelines += 1
            else:
                s.active_pipelines += 1
        out.summaries.extend(by_project.values())
        return out

    @rpc
    def DeleteAll(self, req, ctx):
        for p in self.m.list_pipelines():
            self.m.delete_pipeline(p.project, p.name, True, False)
        self.delete_all_secrets()
        return EMPTY

    # ---- jobs --------------------------------------------------------------------------------
    @rpc
    def InspectJob(self, req, ctx):
        j = self.m.inspect_job(_project(req.job.pipeline), req.job.pipeline.name, req.job.id, req.wait)
        return job_info(j, self.m, req.details)

    @rpc
    def InspectJobSet(self, req, ctx):
        jobs = self.m.wait_job_set(req.job_set.id, req.wait)
        if not jobs:
            raise NotFound(f"no jobs found for job set {req.job_set.id}")
        for j in sorted(jobs, key=lambda j: j.seq):
            yield job_info(j, self.m, req.details)

    @rpc
    def ListJob(self, req, ctx):
        projects = {p.name for p in req.projects if p.name}
        pipeline = req.pipeline.name
        project = _project(req.pipeline) if pipeline else None
        jobs = self.m.store.list_jobs(project, pipeline or None)
        if pipeline:
            self.m.inspect_pipeline(project, pipeline)
        # history: jobs of the current pipeline version only (0), N more versions, all (-1)
        versions = {(p.project, p.name, p.version)
                    for p in self.m.list_pipelines(history=req.history, name=pipeline)}
        commits = {self._input_commit(c) for c in req.input_commit}
        n = 0
        marker = pcv.from_ts(req.paginationMarker) if req.HasField("paginationMarker") else None
        if req.reverse:
            jobs = list(reversed(jobs))
        for j in jobs:
            if projects and j.project not in projects:
                continue
            if (j.project, j.pipeline, j.pipeline_version) not in versions:
                continue
            if commits and not self._job_reads(j, commits):
                continue
            if marker is not None and ((not req.reverse and j.created >= marker) or (req.reverse and j.created <= marker)):
                continue
            yield job_info(j, self.m, req.details)
            n += 1
            if req.number and n >= req.number:
                return

    def _input_commit(self, c) -> tuple:
        """(project, repo, commit id) of a ListJob input commit; a branch means its head."""
        repo = pcv.repo_in(c.repo if c.repo.name else c.branch.repo)
        ci = self.m.pfs.commit_for_read(repo, c.id, c.branch.name)
        return (repo.project, repo.name, ci.commit.id)

    def _job_reads(self, j: JobRecord, commits: set) -> bool:
        """A job reads every given input commit: it is that commit set, or its output commit's
        direct provenance holds them (Pachyderm intersects the commits' commit sets)."""
        ci = self.m.pfs.get_commit(Repo(j.project, j.output_repo), j.id)
        prov = {(p.repo.project, p.repo.name, p.id) for p in ci.direct_provenance} if ci is not None else set()
        return all(c in prov or c[2] == j.id for c in commits)

    @rpc
    def ListJobSet(self, req, ctx):
        projects = {p.name for p in req.projects if p.name}
        seen: dict = {}
        for j in self.m.store.list_jobs():
            if projects and j.project not in projects:
                continue
            seen.setdefault(j.id, []).append(j)
        n = 0
        for job_id, jobs in seen.items():
            yield pb.JobSetInfo(job_set=pb.JobSet(id=job_id),
                                jobs=[job_info(j, self.m, req.details) for j in sorted(jobs, key=lambda j: j.seq)])
            n += 1
            if req.number and n >= req.number:
                return

    @rpc
    def SubscribeJob(self, req, ctx):
        project, name = _project(req.pipeline), req.pipeline.name
        self.m.inspect_pipeline(project, name)
        sent: dict = {}
        while ctx.is_active():
            for j in reversed(self.m.store.list_jobs(project, name)):
                if sent.get(j.id) != j.state and j.state in TERMINAL:
                    sent[j.id] = j.state
                    yield job_info(j, self.m, req.details)
            with self.m._changed:
                self.m._changed.wait(0.5)

    @rpc
    def StopJob(self, req, ctx):
        if req.job.pipeline.name:
            self.m.stop_job(_project(req.job.pipeline), req.job.pipeline.name, req.job.id, req.reason)
        else:
            for j in self.m.store.job_set(req.job.id):
                self.m.stop_job(j.project, j.pipeline, j.id, req.reason)
        return EMPTY

    @rpc
    def UpdateJobState(self, req, ctx):
        counters = {"restart": req.restart, "data_processed": req.data_processed,
                    "data_skipped": req.data_skipped, "data_failed": req.data_failed,
                    "data_recovered": req.data_recovered, "data_total": req.data_total}
        if req.HasField("stats"):
            st = req.stats
            counters.update(download_time=st.download_time.ToNanoseconds() / 1e9,
                            process_time=st.process_time.ToNanoseconds() / 1e9,
                            upload_time=st.upload_time.ToNanoseconds() / 1e9,
                            download_bytes=st.download_bytes, upload_bytes=st.upload_bytes)
        self.m.update_job_state(_project(req.job.pipeline), req.job.pipeline.name, req.job.id,
                                pb.JobState.Name(req.state), req.reason, counters)
        return EMPTY

    def check_pipeline_request(self, req: pb.CreatePipelineRequest, new_repos: set) -> None:
        """Validate a pipeline queued in a transaction (see pachd.transactions)."""
        d = json_format.MessageToDict(req, preserving_proto_field_name=True)
        self.m.check_pipeline(d, project=_project(req.pipeline), update=req.update,
                              new_repos=frozenset(new_repos))

    @rpc
    def DeleteJob(self, req, ctx):
        self.m.delete_job(_project(req.job.pipeline), req.job.pipeline.name, req.job.id)
        return EMPTY

    # ---- datums ------------------------------------------------------------------------------
    @rpc
    def ListDatum(self, req, ctx):
        has_job = bool(req.job.id or req.job.pipeline.name)
        if req.HasField("input") and has_job:
            raise InvalidArgument("ListDatum: specify a job or an input, not both")
        if req.HasField("input"):
            yield from self._list_datum_input(req)
            return
        if not has_job:
            raise InvalidArgument("ListDatum: specify a job (pipeline and id) or an input")
        j = self.m.inspect_job(_project(req.job.pipeline), req.job.pipeline.name, req.job.id)
        states = {pb.DatumState.Name(s) for s in req.filter.state} if req.HasField("filter") else set()
        recs = list(self.m.store.datums(j.project, j.pipeline, j.id))
        run = self.m.running((j.project, j.pipeline))
        if run is not None and run.job.id == j.id:  # a running job: show progress so far
            recs += run.result_records({r.id for r in recs})
        if req.reverse:
            recs.reverse()
        n = 0
        for d in recs:
            if req.paginationMarker and ((not req.reverse and d.id <= req.paginationMarker) or
                                         (req.reverse and d.id >= req.paginationMarker)):
                continue
            if states and d.state not in states:
                continue
            yield datum_info(j, d)
            n += 1
            if req.number and n >= req.number:
                return

    def _list_datum_input(self, req):
        from pps.service_datums import datums_of_input
        n = 0
        for info in datums_of_input(self, req.input):
            if req.paginationMarker and info.datum.id <= req.paginationMarker:
                continue
            yield info
            n += 1
            if req.number and n >= req.number:
                return

    def _input_datums(self, input_msg):
        """The datums a pipeline with this input would process now (branch heads)."""
        inp = json_format.MessageToDict(input_msg, preserving_proto_field_name=True)
        spec = normalize_spec({"pipeline": {"name": "list-datum"}, "transform": {"cmd": ["true"]}, "input": inp},
                              strict=False)
        pfs = self.m.pfs

        from pps.spec import PfsInput, iter_inputs
        heads: dict = {}  # (project, repo, branch) -> the commit read, resolved once
        for pi in iter_inputs(spec.input):
            if isinstance(pi, PfsInput):
                repo = Repo(pi.project or "default", pi.repo, pi.repo_type or "user")
                heads[(pi.project, pi.repo, pi.branch)] = pfs.commit_for_read(
                    repo, pi.commit, "" if pi.commit else (pi.branch or "master"))

        def listing(pi):
            ci = heads[(pi.project, pi.repo, pi.branch)]
            return [(k, e.hash, e.size) for k, e in pfs.tree(ci).glob(pi.glob or "/")]

        commits = {k: ci.commit.id for k, ci in heads.items()}
        j = JobRecord(project="default", pipeline="", id="", pipeline_version=0, output_repo="", output_branch="")
        for d in dm.enumerate_datums(spec.input, listing, commits):
            rec = DatumRecord(d.id, "", "UNKNOWN",
                              [[f.name, f.project, f.repo, f.branch, f.commit, f.path, f.file_hash, f.size] for f in d.inputs])
            yield datum_info(j, rec)

    @rpc
    def InspectDatum(self, req, ctx):
        job = req.datum.job
        j = self.m.inspect_job(_project(job.pipeline), job.pipeline.name, job.id)
        d = self.m.store.get_datum(j.project, j.pipeline, j.id, req.datum.id)
        if d is None:
            run = self.m.running((j.project, j.pipeline))
            d = run.result(req.datum.id) if run is not None and run.job.id == j.id else None
        if d is None:
            raise NotFound(f"datum {req.datum.id} not found in job {j.project}/{j.pipeline}@{j.id}")
        return datum_info(j, d)

    @rpc
    def RestartDatum(self, req, ctx):
        self.m.restart_datum(_project(req.job.pipeline), req.job.pipeline.name, req.job.id, list(req.data_filters))
        return EMPTY

    # ---- logs --------------------------------------------------------------------------------
    @rpc
    def GetLogs(self, req, ctx):
        job = req.job if (req.job.pipeline.name or req.job.id) else req.datum.job  # a datum names its job
        project = _project(req.pipeline) if req.pipeline.name else _project(job.pipeline)
        pipeline = req.pipeline.name or job.pipeline.name
        if req.pipeline.name and req.job.id:
            raise InvalidArgument("only one of pipeline or job should be specified")
        if not pipeline:
            raise InvalidArgument("GetLogs needs a pipeline or a job")
        self.m.inspect_pipeline(project, pipeline)
        job_id = job.id
        datum_id = req.datum.id if req.HasField("datum") else ""
        since = time.time() - req.since.ToNanoseconds() / 1e9 if req.HasField("since") and req.since.ToNanoseconds() else None
        filters = list(req.data_filters)

        def wanted(lg: LogRecord) -> bool:
            if req.master != lg.master:
                return False
            if datum_id and lg.datum_id != datum_id:
                return False
            if since is not None and lg.ts < since:
                return False
            if filters and not all(any(f in (p, h.hex() if isinstance(h, bytes) else h) or p.lstrip("/") == f.lstrip("/")
                                       for p, h in lg.data) for f in filters):
                return False
            return True

        cursor = None
        lines = []
        for k, lg in self.m.store.logs(project, pipeline, job_id or None):
            cursor = k
            if wanted(lg):
                lines.append(lg)
        if req.tail > 0:
            lines = lines[-req.tail:]
        for lg in lines:
            yield log_message(lg)
        # follow: a job's stream ends once the job is finished and its last lines are sent;
        # a pipeline's stream runs until the client hangs up
        done = job_id and self._job_finished(project, pipeline, job_id)
        while req.follow and not done and ctx.is_active():
            with self.m._changed:
                self.m._changed.wait(0.5)
            done = job_id and self._job_finished(project, pipeline, job_id)  # before the read: no line lost
            for k, lg in self.m.store.logs(project, pipeline, job_id or None, after=cursor):
                cursor = k
                if wanted(lg):
                    yield log_message(lg)

    def _job_finished(self, project: str, pipeline: str, job_id: str) -> bool:
        j = self.m.store.get_job(project, pipeline, job_id)
        return j is None or j.state in TERMINAL

    @rpc
    def ActivateAuth(self, req, ctx):
        return pb.ActivateAuthResponse()


def input_summary(spec: dict) -> str:
    s = normalize_spec(spec, strict=False)
    return pipeline_input_summary(s.input)
