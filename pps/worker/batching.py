"""Datum batching: one user process per JOB on this worker, stepped with worker_v2 NextDatum.

The worker serves Pachyderm's worker API (`pachyderm.worker.Worker`, proto/worker_v2) on
127.0.0.1:$PPS_WORKER_GRPC_PORT for its whole life; `pachctl next datum` and pachyderm-sdk's
`Client().worker.batch_datum()` / `@batch_all_datums` call it.

Invariants:
- A session belongs to one job. Its user process starts with the job env (no per-datum vars,
  no inputs mounted) and lives across that job's tasks on this worker: when a task's datums
  are done, its NextDatum call waits for the next task of the same job. A task of another job,
  an idle poll, a cancel or the worker's exit ends the session: the process is killed and its
  waiting call fails ("no datums left" -> the process is killed, as in Pachyderm).
- The first NextDatum call of a process means "ready". Every later call ends the datum handed
  out by the previous one: success (its /pfs/out is staged for upload) or, with `error`, a
  failed attempt. A call returns once the next datum's inputs, an empty /pfs/out and
  /pfs/.env are in place; the response carries the same env as "K=V".
- A failed attempt (error, datum_timeout, restart_datums, or the process exiting on its own:
  "user code exited prematurely") runs err_cmd, requeues the datum at the front while
  attempts remain, and kills + restarts the user process (as Pachyderm does on a datum error).
  A process that exits before asking charges the next datum an attempt, so a broken program
  cannot restart forever.
- At most one datum is handed out at a time; all state changes happen under one lock.
"""
from __future__ import annotations

import collections
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Optional

import grpc

from pps.worker.datum_io import Prefetcher, Staged
from pps.worker.upload import Uploader
from pps.worker.usercode import UserProcess, stdin_bytes
from proto.pps_v2 import pps_pb2
from proto.worker_v1 import tasks_pb2 as wpb
from proto.worker_v2 import worker_pb2, worker_pb2_grpc

PREMATURE = "user code exited prematurely"


@dataclass
class _Task:
    task: wpb.Task
    up: Uploader
    prefetch: Prefetcher
    results: dict = field(default_factory=dict)   # index -> DatumResult (final when outcome set)
    attempts: list = field(default_factory=list)
    recovered: list = field(default_factory=list)
    remaining: int = 0


@dataclass
class _Session:
    job_id: str
    pending: collections.deque = field(default_factory=collections.deque)  # (_Task, index)
    current: Optional[tuple] = None
    staged: Optional[Staged] = None
    handed_at: float = 0.0
    proc: Optional[UserProcess] = None
    ended: bool = False
    timer: Optional[threading.Timer] = None
    thread: Optional[threading.Thread] = None


class BatchServer(worker_pb2_grpc.WorkerServicer):
    def __init__(self, worker):
        self.w = worker
        self._cond = threading.Condition(threading.RLock())
        # run_task waits here, on the same lock: woken when its task is done or the session
        # ends, not by every datum's state change (a thread wake-up per datum costs more than
        # the bookkeeping it would do)
        self._task_done = threading.Condition(self._cond._lock)
        self.s: Optional[_Session] = None
        self.base: dict = {}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="nextdatum"))
        worker_pb2_grpc.add_WorkerServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.end_session()
        self.server.stop(0).wait()

    # ---- the worker API -----------------------------------------------------------------
    def NextDatum(self, request, context):
        with self._cond:
            s = self.s
            if s is None or s.ended:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no datums are being processed")
            if s.current is not None:
                if request.error:
                    self._fail(s, request.error, restart=True)
                    context.abort(grpc.StatusCode.ABORTED, f"datum failed: {request.error}")
                self._succeed(s)
            while True:
                if s.ended or self.s is not s:
                    if s.proc is not None:
                        s.proc.kill("ended")  # no datums left: the process is not needed any more
                    context.abort(grpc.StatusCode.CANCELLED, "no more datums")
                env = self._hand_out(s) if s.pending else None
                if env is not None:
                    return worker_pb2.NextDatumResponse(env=[f"{k}={v}" for k, v in env.items()])
                self._cond.wait(1.0)

    def Status(self, request, context):
        with self._cond:
            st = pps_pb2.WorkerStatus(worker_id=self.w.cfg.worker_id)
            if self.s is not None:
                st.job_id = self.s.job_id
            return st

    def Cancel(self, request, context):
        with self._cond:
            s = self.s
            if s is None or (request.job_id and request.job_id != s.job_id):
                return worker_pb2.CancelResponse(success=False)
        task = self.w.task
        if task is not None:
            self.w.cancel(task.task_id)
        return worker_pb2.CancelResponse(success=True)

    # ---- control from the worker --------------------------------------------------------
    def cancel_all(self) -> None:
        """Kill the user process now (safe in a signal handler); run_task ends the session."""
        s = self.s
        if s is not None and s.proc is not None:
            s.proc.kill("ended")

    def restart(self, datum_ids: set) -> None:
        with self._cond:
            s = self.s
            if s is not None and s.current is not None:
                t, i = s.current
                if t.task.datums[i].id in datum_ids:
                    self._fail(s, "datum restarted", restart=True)

    def end_session(self) -> None:
        with self._cond:
            s, self.s = self.s, None
            if s is None:
                return
            s.ended = True
            if s.timer is not None:
                s.timer.cancel()
            if s.proc is not None:
                s.proc.kill("ended")
            if s.current is not None:
                self._abandon_current(s)
            self._cond.notify_all()
            self._task_done.notify_all()
        if s.thread is not None:
            s.thread.join()

    # ---- state transitions (under the lock) ---------------------------------------------
    def _hand_out(self, s: _Session) -> Optional[dict]:
        while s.pending:
            t, i = s.pending.popleft()
            d = t.task.datums[i]
            staged = t.prefetch.get(i) if t.attempts[i] == 0 else \
                self.w.io.download([d], self.w.scratch / "in", i, f".{t.attempts[i]}")[0]
            t.attempts[i] += 1
            r = t.results[i]
            r.attempts = t.attempts[i]
            r.download_bytes += staged.nbytes
            _add(r.download_time, staged.seconds)
            s.current, s.staged, s.handed_at = (t, i), staged, time.monotonic()
            self.w.set_current(d.id)
            if staged.error:
                self._fail(s, staged.error, restart=False)
                continue
            env = self.w.datum_env(t.task, d)
            self.w.mount(staged, env)
            timeout = self.w.timeout(t.task)
            if timeout:
                s.timer = threading.Timer(timeout, self._timed_out, (s, t, i, t.attempts[i], timeout))
                s.timer.daemon = True
                s.timer.start()
            return env
        return None

    def _end_current(self, s: _Session) -> tuple:
        t, i = s.current
        if s.timer is not None:
            s.timer.cancel()
            s.timer = None
        _add(t.results[i].process_time, time.monotonic() - s.handed_at)
        s.current = None
        return t, i

    def _final(self, t: _Task, i: int, outcome, reason: str = "") -> None:
        r = t.results[i]
        r.outcome, r.reason = outcome, reason
        t.remaining -= 1
        self._cond.notify_all()  # nobody waits on it while a datum runs: no wake-up
        if t.remaining == 0:
            self._task_done.notify_all()

    def _succeed(self, s: _Session) -> None:
        t, i = s.current
        r = t.results[i]
        try:
            paths, nbytes = t.up.stage(r.datum_id, self.w.pfs / "out")
        except (ValueError, OSError) as e:
            self._fail(s, str(e), restart=False)
            return
        self._end_current(s)
        r.upload_bytes = nbytes
        r.outputs.extend(paths)
        self.w.unmount(s.staged, out_empty=True)
        s.staged = None
        self.w.set_current("")
        self._final(t, i, wpb.SUCCESS)

    def _fail(self, s: _Session, reason: str, restart: bool) -> None:
        """The current datum's attempt failed: err_cmd, then requeue or give up."""
        t, i = self._end_current(s)
        d, tr = t.task.datums[i], self.w.spec.transform
        self.w.logs.add(d.id, f"datum failed (attempt {t.attempts[i]}): {reason}", False)
        if tr.err_cmd and not self.w.cancelled:
            env = {**self.base, **self.w.datum_env(t.task, d)}
            ok, _ = self.w.run_user(d.id, [self.w.rewrite(a) for a in tr.err_cmd],
                                    stdin_bytes([self.w.rewrite(x) for x in tr.err_stdin]), env,
                                    self.w.timeout(t.task))
            t.recovered[i] = t.recovered[i] or ok
        if s.staged is not None:
            self.w.unmount(s.staged)
            s.staged = None
        self.w.set_current("")
        if t.attempts[i] < self.w.tries(t.task):
            s.pending.appendleft((t, i))
        else:
            self._final(t, i, wpb.RECOVERED if t.recovered[i] else wpb.FAILED, reason)
        if restart and s.proc is not None:
            s.proc.kill("restart")

    def _abandon_current(self, s: _Session) -> None:
        t, i = self._end_current(s)
        if s.staged is not None:
            self.w.unmount(s.staged)
            s.staged = None
        s.pending.appendleft((t, i))  # reported CANCELLED by run_task
        self.w.set_current("")

    def _timed_out(self, s: _Session, t: _Task, i: int, attempt: int, timeout: float) -> None:
        with self._cond:
            if s.current == (t, i) and t.attempts[i] == attempt and not s.ended:
                self._fail(s, f"datum timed out after {timeout:g}s", restart=True)

    # ---- the user process ----------------------------------------------------------------
    def _process_loop(self, s: _Session) -> None:
        w, tr = self.w, self.w.spec.transform
        argv = [w.rewrite(a) for a in tr.cmd]
        stdin = stdin_bytes([w.rewrite(x) for x in tr.stdin])
        cwd = w.rewrite(tr.working_dir) or None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: s.ended or (
                    (s.pending or s.current is not None) and not w.cancelled))
                if s.ended:
                    return
                p = s.proc = UserProcess(argv, self.base, cwd, stdin, self._on_line,
                                         pdeathsig=w.rewrite.active)
            why = ""
            try:
                p.run(None)
            except OSError as e:
                why = f"cannot start {argv[0] if argv else 'user code'}: {e}"
            with self._cond:
                s.proc = None
                if s.ended:
                    return
                if p.killed in ("restart", "ended") or w.cancelled:
                    continue
                if s.current is None and s.pending:  # died before asking: charge the next datum
                    t, i = s.pending.popleft()
                    t.attempts[i] += 1
                    t.results[i].attempts = t.attempts[i]
                    s.current, s.staged, s.handed_at = (t, i), None, time.monotonic()
                if s.current is not None:
                    self._fail(s, why or PREMATURE, restart=False)

    def _on_line(self, line: str) -> None:
        self.w.logs.add(self.w.current_datum, line, True)

    # ---- one task -----------------------------------------------------------------------
    def run_task(self, task: wpb.Task) -> list:
        w = self.w
        if self.s is not None and self.s.job_id != task.job_id:
            self.end_session()  # never called with the lock held: it joins the process thread
        n = len(task.datums)
        t = _Task(task, w.uploader(task), Prefetcher(w.io, task.datums, w.scratch / "in"),
                  attempts=[0] * n, recovered=[False] * n, remaining=n)
        for i, d in enumerate(task.datums):
            t.results[i] = wpb.DatumResult(datum_id=d.id)
        with self._cond:
            if self.s is None:
                self.base = w.job_env(task)
                s = self.s = _Session(task.job_id)
                s.thread = threading.Thread(target=self._process_loop, args=(s,), name="batch-user-code", daemon=True)
                s.thread.start()
            s = self.s
            s.pending.extend((t, i) for i in range(n))
            self._cond.notify_all()
            while t.remaining > 0 and not w.cancelled and not s.ended:
                self._task_done.wait(0.2)
        t.prefetch.close()
        if w.cancelled or t.remaining > 0:
            self.end_session()
            t.up.discard()
            return [wpb.DatumResult(datum_id=d.id, outcome=wpb.CANCELLED) for d in task.datums]
        results = [t.results[i] for i in range(n)]
        w.finish_uploads(t.up, results)
        return results


def _add(duration, seconds: float) -> None:
    duration.FromNanoseconds(duration.ToNanoseconds() + int(max(0.0, seconds) * 1e9))
