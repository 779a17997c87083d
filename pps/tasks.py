"""The master's side of the worker protocol (worker_v1.Tasks): a task board per pipeline.

Invariants:
- A datum is handed to at most one worker at a time. A task whose worker stops sending
  heartbeats for `LEASE_SECONDS` is taken back and its datums requeued (the worker is
  presumed dead; its partial uploads are harmless: outputs are only recorded on completion,
  and the job removes unrecorded outputs of requeued datums before it finishes).
- Results are delivered exactly once to the job that submitted the datums; results for a
  cancelled job or an unknown task are ignored. A task's lease is released only after its
  results were recorded: a failure to record them is the worker's error to retry, and the
  datums stay leased (requeued if the worker gives up), never lost.
- NextTask long-polls: an idle worker blocks (bounded) instead of spinning. A poll whose
  client is gone leases nothing, and a worker's NextTask takes back any lease still held under
  its id (a worker runs one task at a time, and ids are stable across restarts), so a lost
  task is requeued at once instead of after LEASE_SECONDS.
- A job's datums reach the board as an iterator (`submit`), read `WINDOW` at a time as the
  queue drains: the board never holds more than about `WINDOW` queued datums of a job (plus
  those leased), so a 1,000,000-datum job does not hold a million task messages.
"""
from __future__ import annotations

import collections
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

import grpc
from google.protobuf.duration_pb2 import Duration

from pfs.errors import PfsError
from pfs.service.errors import CODES

from proto.worker_v1 import tasks_pb2 as wpb
from proto.worker_v1 import tasks_pb2_grpc

LEASE_SECONDS = 30.0
MAX_TASK_DATUMS = 200
WINDOW = 2000  # queued datums of a job read from its iterator at a time


@dataclass
class JobFeed:
    """What the board needs to know about a job whose datums it hands out."""
    job_id: str
    output_commit: str
    output_repo: str
    output_branch: str
    pipeline_version: int
    datum_timeout: float
    datum_tries: int
    on_results: Callable[[list, list], None]  # (results, logs) -> None
    cancelled: bool = False
    restart: set = field(default_factory=set)
    env: dict = field(default_factory=dict)
    source: Optional[Iterator] = None  # the job's datums not read into the queue yet
    unread: int = 0  # how many (when the submitter said)


@dataclass
class Lease:
    task_id: str
    job_id: str
    worker_id: str
    datums: list  # list[wpb.Datum]
    heartbeat: float
    current: str = ""
    current_started: float = 0.0


class PipelineBoard:
    def __init__(self):
        self.pending: collections.deque = collections.deque()  # (job_id, wpb.Datum)
        self.jobs: dict[str, JobFeed] = {}
        self.leases: dict[str, Lease] = {}
        self.stop = False
        self.version = 0
        self.workers: dict[str, float] = {}  # worker id -> last seen


class TaskBoard(tasks_pb2_grpc.TasksServicer):
    def __init__(self):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._boards: dict[tuple[str, str], PipelineBoard] = {}
        self._task_index: dict[str, tuple[str, str]] = {}

    def _board(self, key) -> PipelineBoard:
        b = self._boards.get(key)
        if b is None:
            b = self._boards[key] = PipelineBoard()
        return b

    # ---- master API -------------------------------------------------------------------------
    def submit(self, key, feed: JobFeed, datums: Iterable, count: Optional[int] = None) -> None:
        """Queue a job's datums (wpb.Datum), read from `datums` lazily, WINDOW at a time;
        `count`: how many there are (for `queued`), if known."""
        with self._cond:
            b = self._board(key)
            b.stop = False
            b.jobs[feed.job_id] = feed
            feed.source = iter(datums)
            feed.unread = count if count is not None else (len(datums) if hasattr(datums, "__len__") else 0)
            self._refill(b)
            self._cond.notify_all()

    @staticmethod
    def _refill(b: PipelineBoard) -> None:
        """Top the queue up from the jobs' iterators (in submission order) while it holds
        fewer than WINDOW datums. Called with the board's lock held."""
        if len(b.pending) >= WINDOW // 2:
            return
        for feed in list(b.jobs.values()):
            while feed.source is not None and len(b.pending) < WINDOW:
                try:
                    d = next(feed.source)
                except StopIteration:
                    feed.source, feed.unread = None, 0
                    break
                b.pending.append((feed.job_id, d))
                feed.unread = max(0, feed.unread - 1)
            if len(b.pending) >= WINDOW:
                return

    def retire_job(self, key, job_id: str) -> None:
        """Forget a finished or cancelled job: drop its queued datums and leases."""
        with self._cond:
            b = self._board(key)
            feed = b.jobs.pop(job_id, None)
            if feed is not None:
                feed.cancelled = True
                feed.source, feed.unread = None, 0
            b.pending = collections.deque(x for x in b.pending if x[0] != job_id)
            for tid in [t for t, lease in b.leases.items() if lease.job_id == job_id]:
                b.leases.pop(tid)
                self._task_index.pop(tid, None)
            self._cond.notify_all()

    def restart_datums(self, key, job_id: str, datum_ids: set) -> int:
        with self._cond:
            b = self._board(key)
            feed = b.jobs.get(job_id)
            if feed is None:
                return 0
            feed.restart |= set(datum_ids)
            return len(datum_ids)

    def set_stop(self, key, stop: bool, version: Optional[int] = None) -> None:
        with self._cond:
            b = self._board(key)
            b.stop = stop
            if version is not None:
                b.version = version
            self._cond.notify_all()

    def drop(self, key) -> None:
        with self._cond:
            b = self._boards.pop(key, None)
            if b is not None:
                for tid in b.leases:
                    self._task_index.pop(tid, None)
            self._cond.notify_all()

    def reap(self, now: Optional[float] = None) -> int:
        """Requeue datums of leases whose worker went silent. Returns datums requeued."""
        now = now or time.monotonic()
        n = 0
        with self._cond:
            for b in self._boards.values():
                for tid, lease in list(b.leases.items()):
                    if now - lease.heartbeat > LEASE_SECONDS:
                        b.leases.pop(tid)
                        self._task_index.pop(tid, None)
                        if lease.job_id in b.jobs:
                            for d in reversed(lease.datums):
                                b.pending.appendleft((lease.job_id, d))
                                n += 1
                if n:
                    self._cond.notify_all()
        return n

    def worker_status(self, key) -> list[tuple[str, str, str, float, list]]:
        """(worker_id, job_id, datum_id, started, inputs) for workers busy on a datum."""
        with self._lock:
            b = self._boards.get(key)
            if b is None:
                return []
            out = []
            for lease in b.leases.values():
                inputs = []
                for d in lease.datums:
                    if d.id == lease.current:
                        inputs = [(i.path, i.hash) for i in d.inputs]
                out.append((lease.worker_id, lease.job_id, lease.current, lease.current_started, inputs))
            return out

    def queued(self, key) -> int:
        with self._lock:
            b = self._boards.get(key)
            return len(b.pending) + sum(f.unread for f in b.jobs.values()) if b else 0

    # ---- worker RPCs ----------------------------------------------------------------------
    def NextTask(self, request, context):
        key = (request.project or "default", request.pipeline)
        deadline = time.monotonic() + max(0.0, min(request.wait_seconds or 0.0, 30.0))
        with self._cond:
            self._requeue_worker(self._board(key), request.worker_id)
            while True:
                b = self._board(key)
                b.workers[request.worker_id] = time.monotonic()
                if b.stop:
                    return wpb.Task(stop=True)
                if not context.is_active():  # the worker gave up (or died): lease nothing
                    return wpb.Task()
                self._refill(b)
                if b.pending:
                    return self._lease(b, key, request)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return wpb.Task()
                self._cond.wait(min(remaining, 1.0))

    def _requeue_worker(self, b: PipelineBoard, worker_id: str) -> None:
        """A worker asking for work holds no task: any lease still under its id was lost
        (the worker restarted, or never received the task) and goes back to the queue now
        rather than after LEASE_SECONDS. Worker ids are stable across restarts."""
        for tid, lease in list(b.leases.items()):
            if lease.worker_id != worker_id:
                continue
            b.leases.pop(tid)
            self._task_index.pop(tid, None)
            if lease.job_id in b.jobs:
                for d in reversed(lease.datums):
                    b.pending.appendleft((lease.job_id, d))

    def _lease(self, b: PipelineBoard, key, request) -> wpb.Task:
        job_id = b.pending[0][0]
        feed = b.jobs[job_id]
        workers = max(1, len(b.workers))
        queued = len(b.pending) + sum(f.unread for f in b.jobs.values())
        want = max(1, min(request.max_datums or MAX_TASK_DATUMS, MAX_TASK_DATUMS,
                          queued // (2 * workers) or 1))
        datums = []
        while b.pending and len(datums) < want and b.pending[0][0] == job_id:
            datums.append(b.pending.popleft()[1])
        tid = uuid.uuid4().hex
        b.leases[tid] = Lease(tid, job_id, request.worker_id, datums, time.monotonic())
        self._task_index[tid] = key
        timeout = Duration()
        timeout.FromNanoseconds(int(feed.datum_timeout * 1e9))
        return wpb.Task(task_id=tid, job_id=job_id, output_commit=feed.output_commit,
                        pipeline_version=feed.pipeline_version, datums=datums,
                        datum_timeout=timeout, datum_tries=feed.datum_tries,
                        output_repo=feed.output_repo, output_branch=feed.output_branch, env=feed.env)

    def CompleteTask(self, request, context):
        # Record the results first, with the lease still held: if recording fails (e.g. the
        # metadata disk is full) the worker gets the error, retries, and the datums are never
        # lost (popping the lease first lost them: the job then waited forever).
        with self._cond:
            key = self._task_index.get(request.task_id)
            b = self._boards.get(key) if key else None
            lease = b.leases.get(request.task_id) if b else None
            feed = b.jobs.get(lease.job_id) if lease else None
        if feed is not None and not feed.cancelled:
            try:
                feed.on_results(list(request.results), list(request.logs))
            except PfsError as e:
                context.abort(CODES.get(e.code, grpc.StatusCode.UNAVAILABLE),
                              f"recording the results of task {request.task_id} failed: {e.message}")
        with self._cond:
            key = self._task_index.pop(request.task_id, None)
            b = self._boards.get(key) if key else None
            lease = b.leases.pop(request.task_id, None) if b else None
            feed = b.jobs.get(lease.job_id) if lease else None
            if lease is not None and feed is not None:
                done = {r.datum_id for r in request.results}
                for d in lease.datums:  # anything the worker did not report goes back
                    if d.id not in done:
                        b.pending.appendleft((lease.job_id, d))
            self._cond.notify_all()
        return wpb.CompleteTaskResponse()

    def Heartbeat(self, request, context):
        key = (request.project or "default", request.pipeline)
        logs = []
        feed = None
        with self._cond:
            b = self._board(key)
            b.workers[request.worker_id] = time.monotonic()
            lease = b.leases.get(request.task_id)
            resp = wpb.HeartbeatResponse()
            if request.task_id and lease is None:
                resp.cancel_task = True
            elif lease is not None:
                lease.heartbeat = time.monotonic()
                if request.datum_id != lease.current:
                    lease.current = request.datum_id
                    lease.current_started = time.time()
                feed = b.jobs.get(lease.job_id)
                if feed is None or feed.cancelled:
                    resp.cancel_task = True
                elif feed.restart:
                    ids = {d.id for d in lease.datums} & feed.restart
                    if ids:
                        resp.restart_datums.extend(sorted(ids))
                        feed.restart -= ids
            logs = list(request.logs)
        if logs and feed is not None:
            feed.on_results([], logs)
        return resp
