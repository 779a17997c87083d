"""Running one job: from its output commit to SUCCESS, FAILURE, KILLED or UNRUNNABLE.

Invariants (Pachyderm 2.x, see shared/reference/pps-semantics.md §3, §4, §6):
- A job waits for every input commit to finish; an input that finished with an error makes
  the job UNRUNNABLE ("unrunnable because the following upstream pipelines failed: <input
  names>") and its output commit finishes with that reason (errors cascade).
- The base job is the newest ancestor output commit that finished without error and whose
  job succeeded. Datums are classified against the base job's datum table: unchanged datums
  that succeeded are skipped (their outputs inherited), the rest are processed after the
  base's outputs for them are removed; datums gone from the input have their outputs removed.
  For every input pps.planning can plan (pfs/cron leaves under cross, union, and joins and
  groups of leaves), the changed and gone datums are found from a diff of each leaf's two
  input commits (`planning.plan_changes`, with the key index the base job carried for joins
  and groups), with the same result as classifying every datum; other inputs classify every
  datum.
- The job's datum table is the base's table edited by the datums it removes and runs
  (pps.store: O(changed) per job); its counters come from the plan, not from a scan.
- The output commit starts from the base's content minus removed outputs (set once, before
  any worker writes). Workers add outputs tagged with the datum id.
- Two datums writing the same path is an error (the job fails with Pachyderm's text).
- A failed datum makes the job fail ("datum <id> failed") after all datums ran; the output
  commit is finished with the reason as its error. Only the job finishes its output commit
  (or StopJob, for a job still queued). job_timeout kills the job (Pachyderm's reason,
  JOB_TIMEOUT_REASON).
- The datum table written at the end holds every datum of the job (skipped ones inherited).
  While the job runs, a datum costs its `Datum` and, once it has a result, its table row
  (~0.2 KiB); its details row is written as the result arrives, and its task message is made
  only when the board reads it (pps.tasks.WINDOW at a time).
- A pachd shutdown interrupts a job without finishing it (state and output commit stay open);
  the master requeues it on start, and the rerun starts the output commit over from its base.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Optional

from pfs.core.filetree import WriteSession, entry_hash_size
from pfs.core.filetree import diff as fdiff
from pfs.glob import clean_glob, compile_glob
from pfs.errors import CommitNotFound, DiskFull, PfsError
from pfs.failpoints import failpoint
from pfs.model import Repo
from pps import datums as dm
from pps import planning
from pps.spec import CronInput, PfsInput, PipelineSpec, iter_inputs
from pps.store import (D_FAILED, D_RECOVERED, D_SKIPPED, D_SUCCESS, JOB_FAILURE, JOB_FINISHING,
                       JOB_KILLED, JOB_RUNNING, JOB_STARTING, JOB_SUCCESS, JOB_UNRUNNABLE,
                       TERMINAL, DatumRecord, JobRecord, LogRecord, PipelineRecord)
from pps.tasks import JobFeed
from proto.worker_v1 import tasks_pb2 as wpb

log = logging.getLogger("pps")


# Pachyderm's reason for a job killed by job_timeout, verbatim (worker registry.go: killJob)
JOB_TIMEOUT_REASON = " jobtimed out"


class JobKilled(Exception):
    def __init__(self, reason: str, state: str = JOB_KILLED):
        super().__init__(reason)
        self.reason = reason
        self.state = state  # JOB_KILLED, or the terminal state UpdateJobState asked for


class JobInterrupted(Exception):
    """pachd is shutting down: the job is left as it is (not terminal) and resumes after a
    restart (PpsMaster.start requeues it)."""


def input_file_to_pb(f: dm.InputFile) -> wpb.Input:
    return wpb.Input(name=f.name, project=f.project, repo=f.repo, branch=f.branch, commit=f.commit,
                     path=f.path, hash=f.file_hash, join_on=f.join_on, group_by=f.group_by,
                     lazy=f.lazy, empty_files=f.empty_files, s3=f.s3, size_bytes=f.size)


class JobRun:
    """State of one running job, shared between the runner thread and result callbacks."""

    def __init__(self, master, pipeline: PipelineRecord, spec: PipelineSpec, job: JobRecord):
        self.master = master
        self.pfs = master.pfs
        self.store = master.store
        self.pipeline = pipeline
        self.spec = spec
        self.job = job
        self.key = (job.project, job.pipeline)
        self.out_repo = Repo(job.project, job.pipeline, "user")
        self.cond = threading.Condition()
        # datums this job ran, as their table rows (id -> store.datum_summary, ~0.1 KiB);
        # their details rows are written as results arrive (`result`, `result_records`)
        self.summaries: dict[str, bytes] = {}
        self.failed: list[DatumRecord] = []
        self.outstanding: set[str] = set()
        self.kill_reason: Optional[str] = None
        self.kill_state: str = JOB_KILLED
        self.interrupted = False
        self.by_id: dict = {}  # datum id -> dm.Datum, for the datums this job runs

    # ---- control from other threads -------------------------------------------------------
    def kill(self, reason: str, state: str = JOB_KILLED) -> None:
        with self.cond:
            self.kill_reason, self.kill_state = reason, state
            self.cond.notify_all()

    def interrupt(self) -> None:
        """Stop working on the job without deciding its fate (pachd shutdown)."""
        with self.cond:
            self.interrupted = True
            self.cond.notify_all()

    def _check(self) -> None:
        if self.interrupted:
            raise JobInterrupted()
        if self.kill_reason is not None:
            raise JobKilled(self.kill_reason, self.kill_state)
        timeout = self.spec.job_timeout
        if timeout and self.job.started and time.time() - self.job.started > timeout:
            raise JobKilled(JOB_TIMEOUT_REASON)

    def _save(self, durable: bool = True) -> None:
        """Store the job record. Intermediate states pass durable=False: a crash may then show
        an earlier state (which a restart handles as it would a crash a moment earlier);
        the final state is synced, and with it everything written before."""
        self.store.put_job(self.job, durable)
        self.master.job_changed(self.job)

    # ---- the run ---------------------------------------------------------------------------
    def run(self) -> None:
        j = self.job
        try:
            ci = self.pfs.get_commit(self.out_repo, j.id)
            if ci is None:
                raise JobKilled("output commit removed")
            if ci.finished is not None:
                stored = self.store.get_job(j.project, j.pipeline, j.id)
                if stored is not None and stored.state in TERMINAL:
                    return  # stopped (StopJob) between being queued and starting
                # recovered after a restart: the commit decided
                self._finish_state(JOB_FAILURE if ci.error else JOB_SUCCESS, ci.error)
                return
            j.state, j.started = JOB_STARTING, j.started or time.time()
            self._save(durable=False)
            failed_inputs = self._wait_inputs(ci)
            if failed_inputs:
                reason = "unrunnable because the following upstream pipelines failed: " + ", ".join(failed_inputs)
                if self._fail_commit(reason):
                    self._finish_state(JOB_UNRUNNABLE, reason)
                return
            self.master.wait_while_stopped(self)
            self._process(ci)
        except JobInterrupted:
            self.master.board.retire_job(self.key, j.id)
        except JobKilled as k:
            self.master.board.retire_job(self.key, j.id)
            if self._fail_commit(k.reason):
                self._finish_state(k.state, k.reason)
        except DiskFull as e:  # a full disk under pachd: the job fails saying so, pachd serves on
            self.master.board.retire_job(self.key, j.id)
            log.warning("job %s/%s@%s failed: %s", j.project, j.pipeline, j.id, e)
            # if the output commit already failed (a datum's outputs filled the disk, then the
            # job's own bookkeeping met it too), the job keeps that reason: commit and job agree
            reason = self._commit_error() or str(e)
            if self._fail_commit(reason):
                self._finish_state(JOB_FAILURE, reason)
        except Exception as e:  # noqa: BLE001 - a job never takes the master down
            if self.interrupted:  # pfs closing under a shutdown: not the job's fault
                self.master.board.retire_job(self.key, j.id)
                return
            log.exception("job %s/%s@%s failed internally", j.project, j.pipeline, j.id)
            self.master.board.retire_job(self.key, j.id)
            reason = f"internal error: {e}"
            if self._fail_commit(reason):
                self._finish_state(JOB_FAILURE, reason)

    def _wait_inputs(self, ci) -> list[str]:
        """Wait for every input commit; the names of the inputs whose commit finished with
        an error (as Pachyderm's failedInputs: each pfs input in spec order, by input name)."""
        errored = []
        for p in ci.direct_provenance:
            if p.repo.type == "spec":
                continue
            while True:
                self._check()
                try:
                    pc = self.pfs.wait_commit(p.repo, p.id, timeout=0.5)
                except PfsError as e:
                    if isinstance(e, CommitNotFound):
                        errored.append(p)
                        break
                    continue
                if pc.error:
                    errored.append(p)
                break
        if not errored:
            return []
        keys = {(p.repo.project, p.repo.name, p.branch) for p in errored}
        names = [inp.name for inp in iter_inputs(self.spec.input)
                 if isinstance(inp, PfsInput) and (inp.project, inp.repo, inp.branch or "master") in keys]
        return names or [p.repo.name for p in errored]

    def _base(self, ci):
        cur = ci
        while cur.parent:
            cur = self.pfs.get_commit(self.out_repo, cur.parent)
            if cur is None:
                return None, {}
            if cur.finished is None or cur.error:
                continue
            bj = self.store.get_job(self.job.project, self.job.pipeline, cur.commit.id)
            if bj is not None and bj.state == JOB_SUCCESS:
                return cur, bj
        return None, None

    def _incremental_plan(self, ci, base_ci, base_job, commits: dict):
        """The datums that changed since the base job, planned from a structural diff of each
        pfs leaf's two input commits (shared index subtrees are skipped) by pps.planning,
        instead of enumerating and hashing every datum. None when this shortcut does not
        apply (the full classification then runs): an input pps.planning cannot plan, no base,
        a new salt or pipeline version, recovered datums to retry, or a base without the key
        index a join or group needs.

        Returns (to_process, to_delete ids, ids of changed datums the base had, total)."""
        inp = self.spec.input
        if base_ci is None or base_job is None or not planning.plannable(inp):
            return None
        if base_job.salt != self.pipeline.salt or base_job.data_recovered or not base_job.salt:
            return None
        if base_job.pipeline_version != self.job.pipeline_version:
            return None  # an update may have changed the input: its datums are not the base's
        keyed = next(planning.keyed_nodes(inp), None) is not None
        if keyed and not base_job.has_key_index:
            return None
        old_commits = _input_commits(self.spec, base_ci)
        diffs: dict = {}
        for node in iter_inputs(inp):
            leaf = dm.pfs_leaf(node)
            if leaf is None:
                continue
            key = (leaf.project, leaf.repo, leaf.branch)
            if key in diffs:
                continue
            new_id, old_id = commits.get(key), old_commits.get(key)
            if not new_id or not old_id:
                return None
            if new_id == old_id:
                diffs[key] = []
                continue
            repo = Repo(leaf.project, leaf.repo, leaf.repo_type or "user")
            new_ci, old_ci = self.pfs.get_commit(repo, new_id), self.pfs.get_commit(repo, old_id)
            if new_ci is None or old_ci is None:
                return None
            diffs[key] = list(fdiff(self.pfs.index, new_ci.root, old_ci.root, "/"))

        def changes(leaf: PfsInput):
            g = compile_glob(clean_glob(leaf.glob or "/"))
            changed, deleted = [], []
            for new, old in diffs[(leaf.project, leaf.repo, leaf.branch)]:
                k = (new or old)[0]
                if g.match_path(k) is None:
                    continue
                if new is None:
                    deleted.append(k)
                else:
                    changed.append((k, new[1].hash, new[1].size))
            return changed, deleted

        j = self.job
        tree = self.store.tree(j.project, j.pipeline)

        def old_members(pos: str, key: str) -> dict:
            lo, hi = planning.member_range(pos, key)
            out: dict = {}
            for k, raw in tree.items(base_job.key_root, lo, hi):
                c, e = planning.parse_member(k, raw)
                out.setdefault(c, []).append(e)
            return out

        delta = planning.plan_changes(inp, self._listing(commits), self._listing(old_commits), changes,
                                      commits, old_commits, old_members if keyed else None)
        if keyed:
            j.key_root = tree.update(base_job.key_root, delta.key_edits) if delta.key_edits else base_job.key_root
            j.has_key_index = True
        to_process = delta.dirty
        had = [d.id for d in to_process if self.store.summary(base_job, d.id) is not None]
        to_delete = [d.id for d in delta.gone if self.store.summary(base_job, d.id) is not None]
        total = base_job.data_total + (len(to_process) - len(had)) - len(to_delete)
        return to_process, to_delete, had, total

    def _build_key_index(self, commits: dict) -> None:
        """Without a usable base: the key index of the input's joins and groups, in full."""
        j = self.job
        inp = self.spec.input
        j.key_root, j.has_key_index = None, False
        if next(planning.keyed_nodes(inp), None) is None or not planning.plannable(inp):
            return
        items = planning.key_index_items(inp, self._listing(commits))
        j.key_root = self.store.tree(j.project, j.pipeline).build(items)
        j.has_key_index = True

    def _listing(self, commits: dict):
        def listing(inp: PfsInput):
            cid = commits.get((inp.project, inp.repo, inp.branch))
            if not cid:
                return []
            ic = self.pfs.get_commit(Repo(inp.project, inp.repo, inp.repo_type or "user"), cid)
            if ic is None:
                return []
            return [(k, *entry_hash_size(raw)) for k, raw in self.pfs.tree(ic).glob_raw(inp.glob or "/")]
        return listing

    def _process(self, ci) -> None:
        j = self.job
        commits = _input_commits(self.spec, ci)
        base_ci, base_job = self._base(ci)
        every_job = self.spec.reprocess_spec == "every_job" or bool(self.spec.s3_out)
        salt = self.pipeline.salt
        j.salt = salt
        plan = None if every_job else self._incremental_plan(ci, base_ci, base_job, commits)
        if plan is not None:
            to_process, to_delete, replaced, total = plan
            base_detail = {i: self.store.summary(base_job, i) for i in list(to_delete) + replaced}
        else:
            if not every_job:
                self._build_key_index(commits)
            datums = dm.enumerate_datums(self.spec.input, self._listing(commits), commits)
            total = len(datums)
            base = self.store.summaries(j.project, j.pipeline, base_job.id) if base_job else {}
            base_states = {i: (h, "success" if st in (D_SUCCESS, D_SKIPPED) else st.lower())
                           for i, (h, st, _) in base.items()}
            to_process, to_skip, to_delete = dm.classify(datums, base_states, salt, every_job)
            replaced = [d.id for d in to_process if d.id in base]
            base_detail = {i: base[i] for i in list(to_delete) + replaced}
        # start the output commit from the base's content minus outputs we are replacing
        # (s3_out: user code writes the whole output through S3 each job, so start empty)
        session = WriteSession(self.pfs.index, base_ci.root if base_ci and not self.spec.s3_out else None)
        for datum_id, row in base_detail.items():
            det = self.store.details(j.project, j.pipeline, row[2], datum_id) if row else None
            for path in (det[1] if det else []):
                session.delete(path)
        failpoint("job.output_base")
        self.pfs.set_commit_root(self.out_repo, j.id, session.apply())
        # every other datum of the base carries over unchanged: the job's datum table is the
        # base's minus the removed and re-run rows (their rows name the job that ran them, so
        # they read as skipped here); O(changed) tree edits, however many datums carry over
        inherit = base_job if base_job is not None and (plan is not None or to_skip) else None
        n_skipped = self.store.start_datum_table(j, inherit, list(to_delete) + [d.id for d in to_process])
        j.data_total = total
        j.data_skipped = n_skipped
        # a rerun (after a restart) starts over: counters from the interrupted run go
        j.data_processed = j.data_failed = j.data_recovered = 0
        j.download_time = j.process_time = j.upload_time = 0.0
        j.download_bytes = j.upload_bytes = 0
        j.state = JOB_RUNNING
        self._save(durable=False)
        if to_process:
            self._run_datums(to_process, salt)
        self._check()
        failpoint("job.datum_table")
        self.store.put_job_summaries(j, self.summaries.items())
        failed = self.failed
        if failed:
            collision = next((r.reason[r.reason.index("file / directory path collision"):].split(";")[0]
                              for r in failed if "file / directory path collision" in r.reason), "")
            reason = collision or f"datum {failed[0].id} failed"
            if not self._fail_commit(reason):
                raise JobInterrupted()
            self._finish_state(JOB_FAILURE, reason)
            return
        out_ci = self.pfs.get_commit(self.out_repo, j.id)
        problems = list(out_ci.problems) if out_ci is not None else []
        if problems:  # e.g. two datums wrote the same path (detected as they wrote it)
            if not self._fail_commit(problems[0]):
                raise JobInterrupted()
            self._finish_state(JOB_FAILURE, problems[0])
            return
        j.state = JOB_FINISHING
        self._save(durable=False)
        failpoint("job.finish")
        self.pfs.finish_commit(self.out_repo, j.id, force=True)
        failpoint("job.finished_state")
        self._finish_state(JOB_SUCCESS, "")

    def _run_datums(self, to_process: list, salt: str) -> None:
        j = self.job
        by_id = self.by_id = {d.id: d for d in to_process}
        with self.cond:
            self.outstanding = set(by_id)

        def on_results(results, logs):
            self._on_results(results, logs, by_id, salt)

        gateway, s3_env = self._s3_gateway(to_process)
        feed = JobFeed(job_id=j.id, output_commit=j.id, output_repo=j.output_repo,
                       output_branch=j.output_branch, pipeline_version=j.pipeline_version,
                       datum_timeout=self.spec.datum_timeout or 0.0,
                       datum_tries=self.spec.datum_tries or 3, on_results=on_results, env=s3_env)
        # task messages are made as the board reads them (pps.tasks.WINDOW at a time), not
        # all up front: one per datum of a 1,000,000-datum job was ~0.5 KiB each
        self.master.board.submit(self.key, feed, (wpb.Datum(id=d.id, inputs=[input_file_to_pb(f) for f in d.inputs])
                                                  for d in to_process), len(to_process))
        self.master.ensure_workers(self.pipeline, self.spec)
        try:
            with self.cond:
                last_ensure = time.monotonic()
                while self.outstanding:
                    self._check()
                    self.cond.wait(0.5)
                    if time.monotonic() - last_ensure > 2.0:  # workers replaced or crashed meanwhile
                        last_ensure = time.monotonic()
                        p = self.store.get_pipeline(*self.key)
                        if p is not None and not p.stopped:
                            self.cond.release()  # never hold the job's lock across the executor
                            try:
                                self.master.ensure_workers(p, self.master.spec_of(p))
                            finally:
                                self.cond.acquire()
                    if self.master.is_stopped(self.key):
                        self.cond.release()
                        try:
                            self.master.wait_while_stopped(self)
                        finally:
                            self.cond.acquire()
        finally:
            self.master.board.retire_job(self.key, j.id)
            if gateway is not None:
                gateway.stop()

    def _s3_gateway(self, to_process: list):
        """For `s3: true` inputs and `s3_out`: an S3 gateway serving this job's buckets only
        (each s3 input as a bucket named after the input, pinned to the job's input commit;
        `out` writing into the job's output commit), like Pachyderm's per-worker sidecar."""
        s3_inputs = {}
        for d in to_process:
            for f in d.inputs:
                if f.s3:
                    s3_inputs[f.name] = f
        if not s3_inputs and not self.spec.s3_out:
            return None, {}
        from pfs.s3gateway import S3Gateway, fixed_bucket
        buckets = {name: fixed_bucket(name, Repo(f.project, f.repo, "user"), f.commit, f.branch)
                   for name, f in s3_inputs.items()}
        if self.spec.s3_out:
            buckets["out"] = fixed_bucket("out", self.out_repo, self.job.id, self.job.output_branch, writable=True)
        token = self.master.auth_token or ""
        if not token and self.master.worker_token is not None:  # multi-user auth: the pipeline's own
            token = self.master.worker_token(self.job.project, self.job.pipeline) or ""
        # workers on this machine reach it on loopback; pods need PACH_JOB_S3_BIND (e.g. 0.0.0.0)
        # and PACH_JOB_S3_ADDRESS (an address pods can reach, e.g. the pachd pod IP)
        bind = os.environ.get("PACH_JOB_S3_BIND", "127.0.0.1")
        gw = S3Gateway(self.pfs, bind, 0, auth_token=token or None, buckets=buckets).start()
        host = os.environ.get("PACH_JOB_S3_ADDRESS", "127.0.0.1" if bind in ("0.0.0.0", "") else bind)
        key = token or "default"
        return gw, {"S3_ENDPOINT": f"http://{host}:{gw.port}", "AWS_ACCESS_KEY_ID": key,
                    "AWS_SECRET_ACCESS_KEY": key}

    def _on_results(self, results, logs, by_id, salt) -> None:
        j = self.job
        recs = []
        for lg in logs:
            recs.append(LogRecord(j.project, j.pipeline, j.id, lg.datum_id, lg.worker_id, False, lg.user,
                                  lg.ts.seconds + lg.ts.nanos / 1e9, lg.message,
                                  [[f.path, f.file_hash] for f in by_id[lg.datum_id].inputs] if lg.datum_id in by_id else []))
        self.store.add_logs(recs)
        if not results:
            return
        failpoint("job.bookkeeping")
        with self.cond:
            new = [r for r in results if r.datum_id in self.outstanding]
        recs = []
        for r in new:
            state = {wpb.SUCCESS: D_SUCCESS, wpb.RECOVERED: D_RECOVERED}.get(r.outcome, D_FAILED)
            d = by_id[r.datum_id]
            recs.append(DatumRecord(
                d.id, d.hash(salt), state, _inputs(d),
                list(r.outputs) if state == D_SUCCESS else [], r.reason,
                r.download_time.ToNanoseconds() / 1e9, r.process_time.ToNanoseconds() / 1e9,
                r.upload_time.ToNanoseconds() / 1e9, r.download_bytes, r.upload_bytes, r.attempts))
        # details first: if writing them fails, the worker retries and nothing is marked done
        self.store.put_datum_details(j, recs)
        with self.cond:
            for rec in recs:
                if rec.id not in self.outstanding:
                    continue  # recorded meanwhile (the same datum from a requeued task)
                state = rec.state
                self.summaries[rec.id] = self.store.datum_summary(j, rec)
                if state == D_FAILED:
                    self.failed.append(rec)
                self.outstanding.discard(rec.id)
                if state == D_SUCCESS:
                    j.data_processed += 1
                elif state == D_RECOVERED:
                    j.data_recovered += 1
                else:
                    j.data_failed += 1
                j.download_time += rec.download_time
                j.process_time += rec.process_time
                j.upload_time += rec.upload_time
                j.download_bytes += rec.download_bytes
                j.upload_bytes += rec.upload_bytes
            self.cond.notify_all()
        self._save(durable=False)  # progress counters; the details above are synced

    def result(self, datum_id: str) -> Optional[DatumRecord]:
        """The record of a datum this running job has a result for, or None."""
        with self.cond:
            row = self.summaries.get(datum_id)
        return None if row is None else self.store.record(self.job, datum_id, row)

    def result_records(self, skip: set) -> list[DatumRecord]:
        """The records of the datums this running job has results for, but those in `skip`."""
        with self.cond:
            rows = [(i, row) for i, row in self.summaries.items() if i not in skip]
        return [self.store.record(self.job, i, row) for i, row in rows]

    # ---- endings ---------------------------------------------------------------------------
    def _commit_error(self) -> str:
        """The error the job's output commit finished with ("" if open, clean or unreadable)."""
        try:
            ci = self.pfs.get_commit(self.out_repo, self.job.id)
        except PfsError:
            return ""
        return (ci.error or "") if ci is not None and ci.finished is not None else ""

    def _fail_commit(self, reason: str) -> bool:
        """Finish the output commit with `reason`. A full disk is waited out (retried with
        backoff, one warning) so the job never ends while its commit stays open; False only
        when pachd shuts down first (the job then reruns at the next start)."""
        delay, warned = 0.25, False
        while True:
            try:
                ci = self.pfs.get_commit(self.out_repo, self.job.id)
                if ci is not None and ci.finished is None:
                    self.pfs.finish_commit(self.out_repo, self.job.id, error=reason, force=True)
                return True
            except DiskFull as e:
                if not warned:
                    log.warning("job %s: the output commit cannot be finished yet, retrying until "
                                "there is space: %s", self.job.id, e)
                    warned = True
            except PfsError:
                log.exception("could not finish output commit of job %s", self.job.id)
                return True
            with self.cond:
                if self.interrupted or self.cond.wait_for(lambda: self.interrupted, timeout=delay):
                    return False
            delay = min(delay * 2, 5.0)

    def _finish_state(self, state: str, reason: str) -> None:
        j = self.job
        j.state, j.reason, j.finished = state, reason, time.time()
        if j.started is None:
            j.started = j.finished
        self._save()
        self.master.job_finished(self, state)


def _input_commits(spec: PipelineSpec, ci) -> dict:
    """{(project, repo, branch): commit id} of the input commits an output commit has as its
    direct provenance (a cron input reads its repo's master)."""
    commits = {(p.repo.project, p.repo.name, p.branch): p.id for p in ci.direct_provenance}
    for inp in iter_inputs(spec.input):
        if isinstance(inp, CronInput):
            for p in ci.direct_provenance:
                if p.repo.name == inp.repo and p.repo.project == inp.project:
                    commits[(inp.project, inp.repo, "master")] = p.id
    return commits


def _inputs(d: dm.Datum) -> list:
    return [[f.name, f.project, f.repo, f.branch, f.commit, f.path, f.file_hash, f.size] for f in d.inputs]
