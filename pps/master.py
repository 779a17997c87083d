"""The pipeline master inside pachd: pipelines, their controllers, jobs and cron ticks.

Invariants:
- A pipeline is: a record (every version kept), an output repo named after it whose output
  branch has provenance on the input branches and on the pipeline's spec branch
  (`<pipeline>.spec@master`), and a controller thread. Updating a pipeline kills its unfinished
  jobs (UPDATE_KILL_REASON) and writes a new spec commit, which propagates a new output commit,
  which is a new job (as in Pachyderm).
- One job per output commit; a pipeline's jobs run one at a time in commit order, so a job's
  base (its parent's job) is always finished when it starts.
- The master never imports Kubernetes or process code: workers are started through the
  Executor interface only.
- Events from pfs (new output commits) never block the pfs lock: they are queued.
- `_lock` guards pipeline records and controllers; job threads take it only to update their
  pipeline's record, and state-change waits use their own condition (`_changed`), so a
  pipeline operation never waits on a job that waits on it. Deleting a pipeline joins its job
  thread before deleting records (nothing the job writes survives it). A pachd shutdown
  interrupts jobs without ending them; `start` requeues them.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, Optional

from pfs.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PfsError
from pfs.model import Branch, Repo
from pps import cron as cronlib
from pps.jobs import JobRun
from pps.spec import (CronInput, PfsInput, PipelineSpec, effective_parallelism, input_repos,
                      iter_inputs, normalize_spec, spec_to_dict)
from pps.store import (JOB_CREATED, JOB_KILLED, TERMINAL, JobRecord, LogRecord, PipelineRecord,
                       PpsStore)
from pps.tasks import TaskBoard

log = logging.getLogger("pps")


class PipelineNotFound(NotFound):
    pass


# Pachyderm's reason for the jobs an update kills (api_server.go stopAllJobsInPipeline; the
# user is unknown_username when auth is off)
UPDATE_KILL_REASON = "all jobs killed because pipeline was updated for user unknown_username"


class Controller:
    """Runs one pipeline's jobs in order on its own thread."""

    def __init__(self, master: "PpsMaster", key: tuple[str, str]):
        self.master = master
        self.key = key
        self.jobs: "queue.Queue[Optional[str]]" = queue.Queue()
        self.current: Optional[JobRun] = None
        # held while a queued job becomes `current`: StopJob and stop() see a job either
        # queued (they end it in the store) or running (they kill the JobRun), never between
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name=f"pipeline-{key[1]}", daemon=True)
        self.stopping = False

    def start(self) -> None:
        self.thread.start()

    def stop(self, shutdown: bool = False) -> None:
        """Pipeline deleted: kill the running job. pachd shutdown: interrupt it, so that it
        resumes (rather than ends KILLED) when pachd starts again."""
        with self.lock:
            self.stopping = True
            cur = self.current
            if cur is not None:
                if shutdown:
                    cur.interrupt()
                else:
                    cur.kill("pipeline deleted")
        self.jobs.put(None)

    def _loop(self) -> None:
        while not self.stopping:
            job_id = self.jobs.get()
            if job_id is None or self.stopping:
                return
            m = self.master
            with self.lock:
                if self.stopping:
                    return
                p = m.store.get_pipeline(*self.key)
                j = m.store.get_job(self.key[0], self.key[1], job_id)
                if p is None or j is None or j.state in TERMINAL:
                    continue
                spec = m.spec_of(p)
                run = JobRun(m, p, spec, j)
                self.current = run
            try:
                run.run()
            finally:
                self.current = None


class PpsMaster:
    def __init__(self, pfs, executor=None, clock=time.time):
        self.pfs = pfs
        self.store = PpsStore(pfs.meta)
        self.board = TaskBoard()
        self.executor = executor
        self.clock = clock
        self._lock = threading.RLock()  # pipeline records and controllers
        # job/pipeline state changes; its own lock, so waiters and job threads never contend
        # with (or deadlock against) a pipeline operation holding _lock
        self._changed = threading.Condition()
        self._controllers: dict[tuple[str, str], Controller] = {}
        self._spec_cache: dict[tuple, PipelineSpec] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cron_wakeup = threading.Event()
        self.cpu_count = os.cpu_count() or 1
        self.auth_token: Optional[str] = None  # pachd's token, for job S3 gateways
        # set by pachd with auth on: (project, pipeline) -> the token that pipeline's workers use
        self.worker_token: Optional[Callable[[str, str], Optional[str]]] = None
        self.worker_env: dict[str, str] = {}  # more worker environment from pachd (PACHD_TLS_CA)
        self.secrets = None  # a pps.secrets.SecretStore, set by pachd (pps_runtime)
        pfs.is_pipeline_output = self.is_pipeline_output
        pfs.add_listener(self._on_event)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        for p in self.store.list_pipelines():
            self._start_controller(p)
            if not p.stopped:
                self.ensure_workers(p, self.spec_of(p))
            pending = [j for j in self.store.list_jobs(p.project, p.name) if j.state not in TERMINAL]
            for j in sorted(pending, key=lambda j: (j.created, j.seq)):
                j.restart += 1
                self.store.put_job(j)
                self._controllers[p.key].jobs.put(j.id)
        for target in (self._reaper, self._cron_loop):
            t = threading.Thread(target=target, daemon=True, name=target.__name__)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stopping.set()
        self._cron_wakeup.set()
        self.pfs.remove_listener(self._on_event)
        for c in list(self._controllers.values()):
            c.stop(shutdown=True)
        for c in list(self._controllers.values()):
            c.thread.join(timeout=5)
        if self.executor is not None:
            self.executor.close()
        for t in self._threads:
            t.join(timeout=5)

    def _reaper(self) -> None:
        while not self._stopping.wait(2.0):
            self.board.reap()

    # ---- helpers used by jobs ----------------------------------------------------------------
    def is_pipeline_output(self, repo: Repo) -> bool:
        return repo.type == "user" and self.store.get_pipeline(repo.project, repo.name) is not None

    def spec_of(self, p: PipelineRecord) -> PipelineSpec:
        k = (p.project, p.name, p.version)
        s = self._spec_cache.get(k)
        if s is None:
            s = self._spec_cache[k] = normalize_spec(p.spec, project=p.project, strict=False)
        return s

    def is_stopped(self, key) -> bool:
        p = self.store.get_pipeline(*key)
        return p is None or p.stopped

    def wait_while_stopped(self, run: JobRun) -> None:
        while True:
            run._check()
            p = self.store.get_pipeline(*run.key)
            if p is None:
                raise_killed("pipeline deleted")
            if not p.stopped:
                return
            with self._changed:
                self._changed.wait(0.5)

    def ensure_workers(self, p: PipelineRecord, spec: PipelineSpec) -> None:
        if self.executor is None:
            return
        n = effective_parallelism(spec, self.cpu_count)
        env = {"PPS_PIPELINE_VERSION": str(p.version)}
        env.update(self.worker_env)
        token = (self.worker_token(*p.key) if self.worker_token else None) or self.auth_token
        if token:
            env["PACHD_AUTH_TOKEN"] = token  # the worker's credential for pachd
        self.executor.ensure_workers(p.key, json.dumps(p.spec), n, env)
        self._note_worker_health(p)

    def _note_worker_health(self, p: PipelineRecord) -> None:
        """Pipeline state CRASHING (with the reason and the worker's log) while its workers
        keep exiting, RUNNING again once they stay up: what `list pipeline` shows."""
        crashing = [w for w in self.executor.workers(p.key) if w.state == "crashing" and w.restarts >= 1]
        with self._lock:
            cur = self.store.get_pipeline(*p.key)
            if cur is None or cur.stopped:
                return
            if crashing:
                w = crashing[0]
                reason = (f"worker {w.id} keeps exiting (exit code {w.exit_code}, {w.restarts} restarts)"
                          + (f"; see {w.log_path}" if w.log_path else ""))
                if cur.state != "PIPELINE_CRASHING" or cur.reason != reason:
                    cur.state, cur.reason = "PIPELINE_CRASHING", reason
                    self.store.put_pipeline(cur)
                    self.store.add_logs([LogRecord(p.project, p.name, "", "", "", True, False, time.time(), reason)])
            elif cur.state == "PIPELINE_CRASHING":
                cur.state, cur.reason = "PIPELINE_RUNNING", ""
                self.store.put_pipeline(cur)

    def job_changed(self, j: JobRecord) -> None:
        with self._changed:
            self._changed.notify_all()

    def job_finished(self, run: JobRun, state: str) -> None:
        with self._lock:  # read-modify-write: must not undo a concurrent update or delete
            p = self.store.get_pipeline(*run.key)
            if p is not None:
                p.last_job_state = state
                self.store.put_pipeline(p)
        self.store.add_logs([LogRecord(run.job.project, run.job.pipeline, run.job.id, "", "", True, False,
                                       time.time(), f"job {run.job.id} finished: {state}"
                                       + (f" ({run.job.reason})" if run.job.reason else ""))])
        with self._changed:
            self._changed.notify_all()

    # ---- pfs events ------------------------------------------------------------------------
    def _on_event(self, kind: str, obj) -> None:
        if kind == "commit_started":  # a new open output commit is a new job
            ci = obj
            repo = ci.commit.repo
            if repo.type != "user":
                return
            p = self.store.get_pipeline(repo.project, repo.name)
            if p is None or ci.commit.branch != p.spec.get("output_branch", "master"):
                return
            if ci.finished is not None:
                return
            if self.store.get_job(repo.project, repo.name, ci.commit.id) is not None:
                return
            j = JobRecord(project=repo.project, pipeline=repo.name, id=ci.commit.id,
                          pipeline_version=p.version, output_repo=repo.name,
                          output_branch=ci.commit.branch, state=JOB_CREATED, created=time.time(),
                          seq=ci.seq)
            self.store.put_job(j)
            c = self._controllers.get(p.key)
            if c is not None:
                c.jobs.put(j.id)
        elif kind == "commit_deleted":
            repo = obj.commit.repo
            c = self._controllers.get((repo.project, repo.name))
            if c is not None and c.current is not None and c.current.job.id == obj.commit.id:
                c.current.kill("output commit removed")

    def _start_controller(self, p: PipelineRecord) -> Controller:
        c = self._controllers.get(p.key)
        if c is None:
            c = self._controllers[p.key] = Controller(self, p.key)
            c.start()
        return c

    # ---- pipelines ---------------------------------------------------------------------------
    def create_pipeline(self, spec_dict: dict, project: str = "default", update: bool = False,
                        reprocess: bool = False, dry_run: bool = False,
                        user_json: Optional[str] = None) -> dict:
        user_json = user_json or json.dumps(spec_dict, sort_keys=True)  # before the defaults
        spec = self._spec_with_defaults(spec_dict, project)
        project, name = spec.project or project, spec.name
        update = update or spec.update
        reprocess = reprocess or spec.reprocess
        with self._lock:
            self.pfs.inspect_project(project)
            existing = self.store.get_pipeline(project, name)
            if existing is not None and not update:
                raise AlreadyExists(f"pipeline {project}/{name} already exists")
            self._validate_inputs(spec, project, name)
            effective = spec_to_dict(spec)
            effective.pop("update", None)
            effective.pop("reprocess", None)
            effective.pop("dry_run", None)
            if dry_run:
                return effective
            # (Pachyderm refuses to update cron pipelines; here an update simply restarts the schedule)
            now = time.time()
            if existing is None:
                salt = spec.salt or uuid.uuid4().hex
            else:
                salt = uuid.uuid4().hex if reprocess else existing.salt
            effective["salt"] = salt
            if existing is not None:  # unfinished jobs of the old version are killed
                for j in self.store.list_jobs(project, name):
                    if j.state not in TERMINAL:
                        self.stop_job(project, name, j.id, UPDATE_KILL_REASON)
            rec = PipelineRecord(
                project=project, name=name, version=(existing.version + 1) if existing else 1,
                spec=effective, user_spec_json=user_json,
                salt=salt, created_at=existing.created_at if existing else now, updated_at=now,
                state="PIPELINE_RUNNING", stopped=existing.stopped if existing else False,
                parallelism=effective_parallelism(spec, self.cpu_count),
                last_job_state=existing.last_job_state if existing else "",
                metadata=dict(existing.metadata) if existing else {})
            self.store.put_pipeline(rec)
            self._start_controller(rec)
            try:
                self._materialize(rec, spec, existing is None)
            except BaseException:
                if existing is None:
                    c = self._controllers.pop(rec.key, None)
                    if c is not None:
                        c.stop()
                    self.store.delete_pipeline(project, name)
                else:
                    self.store.put_pipeline(existing)
                raise
            self._start_controller(rec)
            self.board.set_stop(rec.key, False, rec.version)
            if not rec.stopped:
                # start workers now (they take a moment to come up); workers still running an
                # older spec are replaced, since ensure_workers is declarative
                self.ensure_workers(rec, self.spec_of(rec))
            self._cron_wakeup.set()
            return effective

    def _spec_with_defaults(self, spec_dict: dict, project: str):
        """The normalized spec, the cluster's and its project's defaults under the user's."""
        from pps import defaults
        pipe = spec_dict.get("pipeline")  # any JSON here: the spec parser names what is wrong
        proj = pipe.get("project") if isinstance(pipe, dict) else None
        target = (proj.get("name") if isinstance(proj, dict) else None) or project
        spec_dict = defaults.apply(self.pfs.meta, target, spec_dict)  # cluster < project < user
        return normalize_spec(spec_dict, project=project, now=datetime.now(timezone.utc))

    def check_pipeline(self, spec_dict: dict, project: str = "default", update: bool = False,
                       new_repos: frozenset = frozenset()) -> None:
        """What create_pipeline checks before it changes anything, without the pipeline lock
        and counting `new_repos` ((project, name) pairs about to be created) as existing.
        Used to validate a pipeline queued in a transaction."""
        spec = self._spec_with_defaults(spec_dict, project)
        project, name = spec.project or project, spec.name
        self.pfs.inspect_project(project)
        if self.store.get_pipeline(project, name) is not None and not (update or spec.update):
            raise AlreadyExists(f"pipeline {project}/{name} already exists")
        if spec.input is None:
            raise InvalidArgument(f"pipeline {name} has no input")
        for inp in iter_inputs(spec.input):
            if isinstance(inp, PfsInput) and (inp.project, inp.repo) not in new_repos:
                repo = Repo(inp.project, inp.repo, inp.repo_type or "user")
                if not self._repo_exists(repo):
                    raise NotFound(f"repo {repo} not found")

    def _validate_inputs(self, spec: PipelineSpec, project: str, name: str) -> None:
        if spec.input is None:
            raise InvalidArgument(f"pipeline {name} has no input")
        out = Repo(project, name, "user")
        downstream: set = set()
        if self._repo_exists(out):
            for bi in self.pfs.list_branches(out):
                downstream |= {b.repo for b in bi.subvenance}
        for inp in iter_inputs(spec.input):
            if not isinstance(inp, PfsInput):
                continue
            repo = Repo(inp.project, inp.repo, inp.repo_type or "user")
            if repo == out or repo in downstream:
                raise InvalidArgument(
                    f"pipeline {project}/{name} cannot take {repo} as input: {repo} is its own "
                    "output or downstream of it, which would make a cycle")
            if not self._repo_exists(repo):
                raise NotFound(f"repo {repo} not found")

    def _repo_exists(self, repo: Repo) -> bool:
        try:
            self.pfs.inspect_repo(repo)
            return True
        except NotFound:
            return False

    def _materialize(self, rec: PipelineRecord, spec: PipelineSpec, new: bool) -> None:
        project, name = rec.project, rec.name
        out = Repo(project, name, "user")
        spec_repo = Repo(project, name, "spec")
        out_branch = spec.output_branch or "master"
        if not self._repo_exists(out):
            self.pfs.create_repo(out, f"Output repo for pipeline {project}/{name}.")
        elif new and self.pfs.list_branches(out) and not self._owned(out):
            raise AlreadyExists(f"repo {project}/{name} already exists; a pipeline needs its own output repo")
        if not self._repo_exists(spec_repo):
            self.pfs.create_repo(spec_repo, f"Spec repo for pipeline {project}/{name}.")
        provenance = []
        for inp in iter_inputs(spec.input):
            if isinstance(inp, CronInput):
                cron_repo = Repo(inp.project or project, inp.repo, "user")
                if not self._repo_exists(cron_repo):
                    self.pfs.create_repo(cron_repo, f"Cron tick repo for pipeline {project}/{name}.")
                provenance.append(Branch(cron_repo, "master"))
            elif isinstance(inp, PfsInput):
                provenance.append(Branch(Repo(inp.project, inp.repo, inp.repo_type or "user"), inp.branch or "master"))
        provenance.append(Branch(spec_repo, "master"))
        provenance = sorted(set(provenance))
        out_b = Branch(out, out_branch)
        exists = any(b.branch == out_b for b in self.pfs.list_branches(out))
        if exists:
            self.pfs.set_branch_provenance(out_b, provenance)
        spec_ci = self.pfs.put_bytes(spec_repo, "master", "/spec.json",
                                     json.dumps(rec.spec, indent=2, sort_keys=True).encode())
        rec.spec_commit = spec_ci.commit.id
        self.store.put_pipeline(rec)
        if not exists:  # the first output commit joins the spec commit's commit set
            self.pfs.create_branch(out_b, None, tuple(provenance), commit_set_id=spec_ci.commit.id)

    def _owned(self, repo: Repo) -> bool:
        return self._repo_exists(Repo(repo.project, repo.name, "spec"))

    def inspect_pipeline(self, project: str, name: str) -> PipelineRecord:
        p = self.store.get_pipeline(project or "default", name)
        if p is None:
            raise PipelineNotFound(f'pipeline "{project or "default"}/{name}" not found')
        return p

    def list_pipelines(self, projects=(), history: int = 0, name: str = "") -> list[PipelineRecord]:
        out = []
        pipelines = self.store.list_pipelines()
        for p in pipelines:
            if projects and p.project not in projects:
                continue
            if name and p.name != name:
                continue
            if history == 0:
                out.append(p)
            else:
                versions = self.store.pipeline_versions(p.project, p.name)
                out.extend(versions if history < 0 else versions[: history + 1])
        out.sort(key=lambda p: p.created_at, reverse=True)
        return out

    def delete_pipeline(self, project: str, name: str, force: bool = False, keep_repo: bool = False) -> None:
        with self._lock:
            p = self.inspect_pipeline(project, name)
            downstream = [q for q in self.store.list_pipelines()
                          if q.key != p.key and any((pr, r) == (p.project, p.name) for pr, r, _ in
                                                    input_repos(self.spec_of(q)))]
            if downstream and not force and not keep_repo:
                raise FailedPrecondition(
                    f"cannot delete pipeline {p.project}/{p.name}: pipeline(s) "
                    f"{', '.join(q.project + '/' + q.name for q in downstream)} read its output; "
                    "delete them first, use --keep-repo, or force")
            c = self._controllers.pop(p.key, None)
            if c is not None:
                c.stop()
            self.board.drop(p.key)
        # the running job (killed above) finishes its records before they are deleted, so
        # nothing it writes survives the pipeline; joined outside _lock (it takes _lock)
        if c is not None and c.thread is not threading.current_thread():
            c.thread.join(timeout=30)
        with self._lock:
            p = self.inspect_pipeline(project, name)
            c2 = self._controllers.pop(p.key, None)  # re-created meanwhile: stop that one too
            if c2 is not None:
                c2.stop()
            out = Repo(p.project, p.name, "user")
            if self.executor is not None:
                self.executor.stop_workers(p.key)
            spec = self.spec_of(p)
            self.store.delete_pipeline(p.project, p.name)
            if keep_repo:
                for b in self.pfs.list_branches(out):
                    self.pfs.set_branch_provenance(b.branch, [])
            else:
                self.pfs.delete_repo(out, force=True)
            self.pfs.delete_repo(Repo(p.project, p.name, "spec"), force=True)
            for inp in iter_inputs(spec.input):
                if isinstance(inp, CronInput):
                    self.pfs.delete_repo(Repo(inp.project or p.project, inp.repo, "user"), force=True)

    def stop_pipeline(self, project: str, name: str) -> None:
        with self._lock:
            p = self.inspect_pipeline(project, name)
            p.stopped, p.state = True, "PIPELINE_PAUSED"
            self.store.put_pipeline(p)
            self.board.set_stop(p.key, True)
            if self.executor is not None:
                self.executor.stop_workers(p.key)
        with self._changed:
            self._changed.notify_all()

    def start_pipeline(self, project: str, name: str) -> None:
        with self._lock:
            p = self.inspect_pipeline(project, name)
            p.stopped, p.state = False, "PIPELINE_RUNNING"
            self.store.put_pipeline(p)
            self.board.set_stop(p.key, False)
            self.ensure_workers(p, self.spec_of(p))
        with self._changed:
            self._changed.notify_all()

    def edit_pipeline_metadata(self, edits: list, then=None) -> None:
        """metadata.EditMetadata on pipelines: `edits` are (project, name, op, key, value,
        replacement) applied in order to each pipeline's user metadata (PipelineInfo.metadata;
        no new version, nothing restarts). All are checked first; `then()` (the request's other
        edits) runs before anything here is written, so a failure there changes nothing."""
        from dataclasses import replace as _replace
        from pfs.core.metadata import apply_op
        with self._lock:
            recs: dict = {}
            for project, name, op, key, value, replacement in edits:
                rec = recs.get((project, name)) or self.inspect_pipeline(project, name)
                recs[(project, name)] = _replace(rec, metadata=apply_op(
                    rec.metadata, op, key, value, replacement, f"pipeline {project}/{name}"))
            if then is not None:
                then()
            with self.pfs.meta.batch() as b:
                for rec in recs.values():
                    self.store.put_pipeline(rec, batch=b)

    def rerun_pipeline(self, project: str, name: str, reprocess: bool) -> None:
        p = self.inspect_pipeline(project, name)
        self.create_pipeline(dict(p.spec), project=p.project, update=True, reprocess=reprocess,
                             user_json=p.user_spec_json)

    # ---- jobs --------------------------------------------------------------------------------
    def inspect_job(self, project: str, pipeline: str, job_id: str, wait: bool = False,
                    timeout: Optional[float] = None) -> JobRecord:
        self.inspect_pipeline(project, pipeline)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:  # read under the condition: no notification is missed
                j = self.store.get_job(project or "default", pipeline, job_id)
                if j is None:
                    raise NotFound(f"job {project or 'default'}/{pipeline}@{job_id} not found")
                if not wait or j.state in TERMINAL:
                    return j
                if deadline is not None and time.monotonic() > deadline:
                    return j
                self._changed.wait(0.5)

    def wait_job_set(self, job_id: str, wait: bool) -> list[JobRecord]:
        while True:
            with self._changed:
                jobs = self.store.job_set(job_id)
                if not wait or all(j.state in TERMINAL for j in jobs):
                    return jobs
                self._changed.wait(0.5)

    def running(self, key) -> Optional[JobRun]:
        c = self._controllers.get(key)
        return c.current if c else None

    def stop_job(self, project: str, pipeline: str, job_id: str, reason: str = "",
                 state: str = JOB_KILLED) -> None:
        """End a job that has not finished, as `state` (JOB_KILLED, or another terminal
        state UpdateJobState asks for); its output commit is finished with the reason."""
        j = self.inspect_job(project, pipeline, job_id)
        if j.state in TERMINAL:
            return
        c = self._controllers.get((j.project, j.pipeline))
        with (c.lock if c is not None else contextlib.nullcontext()):
            run = c.current if c is not None else None
            if run is not None and run.job.id == j.id:
                run.kill(reason or "job stopped", state)
                return
            j = self.store.get_job(j.project, j.pipeline, j.id)  # queued: end it here
            if j is None or j.state in TERMINAL:
                return
            j.state, j.reason, j.finished = state, reason or "job stopped", time.time()
            self.store.put_job(j)
        ci = self.pfs.get_commit(Repo(j.project, j.pipeline), j.id)
        if ci is not None and ci.finished is None:
            self.pfs.finish_commit(Repo(j.project, j.pipeline), j.id, error=j.reason, force=True)
        self.job_changed(j)

    def update_job_state(self, project: str, pipeline: str, job_id: str, state: str, reason: str,
                         counters: dict) -> None:
        """Pachyderm's UpdateJobState (an internal RPC of its workers): a job that has not
        finished takes the given counters and state. A terminal failure state ends the job
        (as StopJob does); JOB_SUCCESS is only ever set by the job's own run, after its
        datums and output commit are done."""
        j = self.inspect_job(project, pipeline, job_id)
        if j.state in TERMINAL:
            raise FailedPrecondition(f"job {j.project}/{j.pipeline}@{j.id} has already finished")
        if state == "JOB_SUCCESS":
            raise FailedPrecondition(
                f"job {j.project}/{j.pipeline}@{j.id}: JOB_SUCCESS is set by pachd when the job's datums "
                "are processed and its output commit is finished; it cannot be set from outside")
        if state in TERMINAL:
            self.stop_job(j.project, j.pipeline, j.id, reason or f"job state set to {state}", state)
            return
        with self._lock:
            j = self.store.get_job(j.project, j.pipeline, j.id)
            if j is None or j.state in TERMINAL:
                raise FailedPrecondition(f"job {project}/{pipeline}@{job_id} has already finished")
            if state and state != "JOB_STATE_UNKNOWN":
                j.state = state
            j.reason = reason
            for k, v in counters.items():
                setattr(j, k, v)
            self.store.put_job(j)
        self.job_changed(j)

    def delete_job(self, project: str, pipeline: str, job_id: str) -> None:
        j = self.inspect_job(project, pipeline, job_id)
        if j.state not in TERMINAL:
            self.stop_job(project, pipeline, job_id)
            self.inspect_job(project, pipeline, job_id, wait=True, timeout=10)
        self.store.delete_job(j)

    def restart_datum(self, project: str, pipeline: str, job_id: str, filters: list[str]) -> int:
        """Kill the running attempts of matching datums of a running job (they are retried).
        Only datums a worker is processing right now: a queued datum flagged here would lose
        its first attempt as soon as a worker picked it up."""
        j = self.inspect_job(project, pipeline, job_id)
        run = self.running((j.project, j.pipeline))
        if run is None or run.job.id != j.id:
            return 0
        running = {datum_id for _, job, datum_id, _, _ in self.board.worker_status(run.key)
                   if job == j.id and datum_id}
        ids = set()
        with run.cond:
            for did in list(run.outstanding & running):
                d = run.by_id.get(did)
                if d is None:
                    continue
                if not filters or all(any(f in (i.path, i.file_hash.hex()) or i.path.lstrip("/") == f.lstrip("/")
                                          for i in d.inputs) for f in filters):
                    ids.add(did)
        return self.board.restart_datums(run.key, j.id, ids)

    # ---- cron ----------------------------------------------------------------------------------
    def run_cron(self, project: str, name: str) -> None:
        p = self.inspect_pipeline(project, name)
        crons = [inp for inp in iter_inputs(self.spec_of(p).input) if isinstance(inp, CronInput)]
        if not crons:  # Pachyderm's text (an error without a gRPC status: UNKNOWN)
            raise PfsError("pipeline doesn't have a cron input")
        when = datetime.now(timezone.utc).replace(microsecond=0)  # the same time for every tick
        for inp in crons:
            self._tick(p, inp, when)

    def _tick(self, p: PipelineRecord, inp: CronInput, when: datetime) -> None:
        repo = Repo(inp.project or p.project, inp.repo, "user")
        with self.pfs.open_writer(repo, "master") as w:
            if inp.overwrite:
                w.delete("/")
            w.put("/" + cronlib.format_tick(when), [b""])

    def _latest_tick(self, p: PipelineRecord, inp: CronInput) -> Optional[datetime]:
        repo = Repo(inp.project or p.project, inp.repo, "user")
        try:
            ci = self.pfs.commit_for_read(repo, "", "master")
        except PfsError:
            return None
        latest = None
        for fi in self.pfs.list_file(ci, "/"):
            try:
                t = cronlib.parse_tick(fi.path.strip("/"))
            except Exception:  # noqa: BLE001 - a stray file in a cron repo is not a tick
                continue
            latest = t if latest is None or t > latest else latest
        return latest

    def _cron_loop(self) -> None:
        while not self._stopping.is_set():
            soonest = 60.0
            for p in self.store.list_pipelines():
                if p.stopped:
                    continue
                try:
                    spec = self.spec_of(p)
                except PfsError:
                    continue
                for inp in iter_inputs(spec.input):
                    if not isinstance(inp, CronInput):
                        continue
                    last = self._latest_tick(p, inp) or inp.start or datetime.fromtimestamp(p.created_at, timezone.utc)
                    nxt = cronlib.next_tick(inp.spec, last)
                    now = datetime.now(timezone.utc)
                    if nxt <= now:
                        try:
                            self._tick(p, inp, nxt)
                        except PfsError:
                            log.exception("cron tick for %s failed", p.name)
                        soonest = 0.0
                    else:
                        soonest = min(soonest, (nxt - now).total_seconds())
            self._cron_wakeup.wait(max(0.05, soonest))
            self._cron_wakeup.clear()


def raise_killed(reason: str):
    from pps.jobs import JobKilled
    raise JobKilled(reason)
