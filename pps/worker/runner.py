"""The worker's life: NextTask (long poll) -> run the task's datums -> CompleteTask, plus heartbeats.

Invariants:
- One task at a time. Datums run through `DatumRunner` (datum_loop.py) or, with
  `transform.datum_batching`, through `BatchServer` (batching.py).
- Heartbeat every ~1 s while a task is held: carries the running datum and the logs produced
  since the last one (user stdout/stderr lines and worker messages, tagged with datum id and
  worker id, in chunks of ~2 MB); its answer may cancel the task (kill user code, upload
  nothing, report every datum CANCELLED) or restart datums (kill the running attempt, which
  counts as a failed attempt). CompleteTask carries the results and the remaining logs.
- The spec comes from --spec-file, $PPS_SPEC_JSON or pps_v2 InspectPipeline; a task for another
  pipeline version ($PPS_PIPELINE_VERSION) makes the worker re-read it through InspectPipeline.
- Master unreachable: retried with backoff; after `unreachable_timeout` seconds the worker
  exits (status 2). Task.stop: exits 0. SIGTERM: kills user code, hands the task back
  (CompleteTask with no results, so the master requeues its datums at once), exits 0.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from pps.spec import PipelineSpec, normalize_spec
from pps.worker.datum_io import PfsIO
from pps.worker.datum_loop import DatumRunner
from pps.worker.sandbox import PathRewriter
from pps.worker.scratch import Dirs
from pps.worker.usercode import UserProcess
from proto.pps_v2 import pps_pb2, pps_pb2_grpc
from proto.worker_v1 import tasks_pb2 as wpb
from proto.worker_v1 import tasks_pb2_grpc

log = logging.getLogger("pps.worker")
HEARTBEAT_SECONDS = 1.0
LOG_CHUNK = 2 << 20  # bytes of log messages per Heartbeat / CompleteTask
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.CANCELLED,
              grpc.StatusCode.RESOURCE_EXHAUSTED)  # pachd's disk full: retry until space is freed


@dataclass
class Config:
    pachd: str
    project: str
    pipeline: str
    worker_id: str
    pfs_root: str = "/pfs"
    image_dir: Optional[str] = None
    spec_file: Optional[str] = None
    max_datums: int = 200
    wait_seconds: float = 10.0
    unreachable_timeout: float = 60.0
    auth_token: str = ""
    secret_mounts: dict = field(default_factory=dict)  # fallback mode: mount path -> host dir


class Logs:
    """LogLines waiting to be sent (thread-safe)."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        self._lines: list[wpb.LogLine] = []
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, datum_id: str, message: str, user: bool) -> None:
        ts = Timestamp()
        ts.GetCurrentTime()
        line = wpb.LogLine(datum_id=datum_id, user=user, ts=ts, message=message, worker_id=self.worker_id)
        with self._lock:
            self._lines.append(line)
            self._bytes += len(message) + 64
        if not user:
            log.info("%s%s", f"[{datum_id[:12]}] " if datum_id else "", message)

    def take(self, max_bytes: int = LOG_CHUNK) -> list[wpb.LogLine]:
        """The oldest lines, at most ~max_bytes of messages (always at least one line)."""
        with self._lock:
            n, size = 0, 0
            while n < len(self._lines) and (n == 0 or size + len(self._lines[n].message) <= max_bytes):
                size += len(self._lines[n].message) + 64
                n += 1
            out, self._lines = self._lines[:n], self._lines[n:]
            self._bytes -= size
        return out

    def pending(self) -> int:
        """Bytes (approximately) waiting to be sent."""
        return self._bytes

    def put_back(self, lines: list[wpb.LogLine]) -> None:
        with self._lock:
            self._lines[:0] = lines
            self._bytes += sum(len(ln.message) + 64 for ln in lines)


class Worker(DatumRunner):
    def __init__(self, cfg: Config, spec: Optional[PipelineSpec] = None):
        self.cfg = cfg
        self.md = (("authn-token", cfg.auth_token),) if cfg.auth_token else ()
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        ca = os.environ.get("PACHD_TLS_CA_PEM")  # pachd serves TLS: trust this certificate (PEM text;
        if ca:                                    # a sandboxed worker may not see pachd's files)
            creds = grpc.ssl_channel_credentials(ca.encode())
            self.channel = grpc.secure_channel(cfg.pachd, creds, options=opts)
        else:
            self.channel = grpc.insecure_channel(cfg.pachd, options=opts)
        self.tasks = tasks_pb2_grpc.TasksStub(self.channel)
        self.pfs = Path(cfg.pfs_root)
        self.scratch = self.pfs / ".scratch"
        self.dirs = Dirs(self.scratch / "pool")
        self.io = PfsIO(self.channel, self.dirs, self.md)
        self.rewrite = PathRewriter(cfg.pfs_root, Path(cfg.image_dir) if cfg.image_dir else None,
                                    cfg.secret_mounts)
        self.logs = Logs(cfg.worker_id)
        self.version = int(os.environ.get("PPS_PIPELINE_VERSION", "0") or 0)
        self.spec = spec or self.load_spec()  # InspectPipeline sets self.version too
        self.stopping = threading.Event()
        self.task: Optional[wpb.Task] = None
        self.cancelled = False
        self.current_datum = ""
        self.current_started: Optional[Timestamp] = None
        self.current_proc: Optional[UserProcess] = None
        self._lock = threading.Lock()
        self.batch_server = None
        self._out_ready = False
        self._poll = None
        self._threads = [threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)]

    # ---- spec ---------------------------------------------------------------------------
    def load_spec(self, fetch: bool = False) -> PipelineSpec:
        text = ""
        if not fetch and self.cfg.spec_file:
            text = Path(self.cfg.spec_file).read_text()
        elif not fetch and os.environ.get("PPS_SPEC_JSON"):
            text = os.environ["PPS_SPEC_JSON"]
        else:
            stub = pps_pb2_grpc.APIStub(self.channel)
            req = pps_pb2.InspectPipelineRequest(details=True, pipeline=pps_pb2.Pipeline(
                name=self.cfg.pipeline, project={"name": self.cfg.project}))
            info = stub.InspectPipeline(req, metadata=self.md, timeout=30)
            text = info.effective_spec_json or info.user_spec_json
            self.version = info.version
        d = json.loads(text)
        d.setdefault("pipeline", {"name": self.cfg.pipeline, "project": {"name": self.cfg.project}})
        return normalize_spec(d, project=self.cfg.project, strict=False)

    # ---- lifecycle ----------------------------------------------------------------------
    def run(self) -> int:
        self.clear_pfs()
        for t in self._threads:
            t.start()
        self._ensure_batch_server()
        try:
            return self._loop()
        finally:
            self.stopping.set()
            if self.batch_server is not None:
                self.batch_server.stop()
            for t in self._threads:
                t.join(timeout=5)
            self.io.close()
            self.dirs.close()
            self.channel.close()

    def _ensure_batch_server(self) -> None:
        if self.spec.transform.datum_batching and self.batch_server is None:
            from pps.worker.batching import BatchServer
            self.batch_server = BatchServer(self)

    def terminate(self, *_args) -> None:
        """SIGTERM: stop after handing the current task back."""
        self.stopping.set()
        self.cancelled = True
        poll = self._poll
        if poll is not None:
            poll.cancel()
        self.kill_current("worker stopping")
        if self.batch_server is not None:
            self.batch_server.cancel_all()

    def _loop(self) -> int:
        backoff, down_since = 0.1, None
        while not self.stopping.is_set():
            req = wpb.NextTaskRequest(project=self.cfg.project, pipeline=self.cfg.pipeline,
                                      worker_id=self.cfg.worker_id, max_datums=self.cfg.max_datums,
                                      wait_seconds=self.cfg.wait_seconds)
            try:
                task = self._next_task(req)
                if task is None:
                    break  # stopping
            except grpc.RpcError as e:
                now = time.monotonic()
                down_since = down_since or now
                if now - down_since > self.cfg.unreachable_timeout:
                    log.error("pachd unreachable for %.0fs (%s): exiting", now - down_since, e.code().name)
                    return 2
                if e.code() not in _TRANSIENT:
                    log.warning("NextTask: %s: %s", e.code().name, e.details())
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff, down_since = 0.1, None
            if task.stop:
                log.info("the master says stop: exiting")
                return 0
            if task.task_id:
                self.execute(task)
            else:  # idle
                if self.batch_server is not None:
                    self.batch_server.end_session()  # the job's user process is not needed
                self.dirs.free_buried()  # no user code is left that could write to them
        return 0

    def _next_task(self, req: wpb.NextTaskRequest) -> Optional[wpb.Task]:
        """NextTask as a future, so SIGTERM (terminate) can cut the long poll short."""
        fut = self.tasks.NextTask.future(req, metadata=self.md, timeout=self.cfg.wait_seconds + 10)
        done = threading.Event()
        fut.add_done_callback(lambda _f: done.set())
        self._poll = fut
        try:
            while not done.wait(0.5):
                if self.stopping.is_set():
                    fut.cancel()
            if fut.cancelled():
                return None
            return fut.result()
        finally:
            self._poll = None

    def execute(self, task: wpb.Task) -> None:
        if task.pipeline_version and self.version and task.pipeline_version != self.version:
            try:
                self.spec = self.load_spec(fetch=True)
            except (grpc.RpcError, ValueError) as e:
                log.warning("task for pipeline version %d, worker has %d; could not reload the spec: %s",
                            task.pipeline_version, self.version, e)
        self._ensure_batch_server()
        with self._lock:
            self.task, self.cancelled = task, False
        try:
            if self.spec.transform.datum_batching and self.batch_server is not None:
                results = self.batch_server.run_task(task)
            else:
                results = self.run_task(task)
        except Exception as e:
            log.exception("task %s failed", task.task_id)
            self.logs.add("", f"internal worker error: {e!r}", False)
            results = []  # unreported datums go back to the queue
        finally:
            with self._lock:
                self.task = None
                self.current_datum = ""
        if self.stopping.is_set():
            results = [r for r in results if r.outcome != wpb.CANCELLED]
        self.complete(task, results)
        self.clear_pfs()

    def complete(self, task: wpb.Task, results: list) -> None:
        while self.logs.pending() > LOG_CHUNK:  # keep CompleteTask small: big logs go first
            if self._heartbeat(task) is None:
                break
        req = wpb.CompleteTaskRequest(task_id=task.task_id, worker_id=self.cfg.worker_id,
                                      results=results, logs=self.logs.take(LOG_CHUNK * 2))
        delay, deadline = 0.1, time.monotonic() + self.cfg.unreachable_timeout
        while True:
            try:
                self.tasks.CompleteTask(req, metadata=self.md, timeout=30)
                return
            except grpc.RpcError as e:
                if e.code() not in _TRANSIENT or time.monotonic() > deadline:
                    log.error("CompleteTask %s: %s %s (dropped)", task.task_id, e.code().name, e.details())
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # ---- heartbeats, cancellation -------------------------------------------------------
    def _heartbeats(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            with self._lock:
                task, datum, started = self.task, self.current_datum, self.current_started
            if task is None:
                continue
            resp = self._heartbeat(task, datum, started)
            while resp is not None and self.logs.pending() > LOG_CHUNK and not resp.cancel_task:
                resp = self._heartbeat(task, datum, started)  # a chatty datum: catch up
            if resp is None:
                continue
            if resp.cancel_task:
                self.cancel(task.task_id)
            if resp.restart_datums:
                self.restart(task.task_id, set(resp.restart_datums))

    def _heartbeat(self, task: wpb.Task, datum: str = "", started=None) -> Optional[wpb.HeartbeatResponse]:
        lines = self.logs.take()
        req = wpb.HeartbeatRequest(project=self.cfg.project, pipeline=self.cfg.pipeline,
                                   worker_id=self.cfg.worker_id, task_id=task.task_id,
                                   datum_id=datum, datum_started=started, logs=lines)
        try:
            return self.tasks.Heartbeat(req, metadata=self.md, timeout=10)
        except grpc.RpcError:
            self.logs.put_back(lines)
            return None

    def cancel(self, task_id: str) -> None:
        with self._lock:
            if self.task is None or self.task.task_id != task_id:
                return
            self.cancelled = True
        self.kill_current("task cancelled")
        if self.batch_server is not None:
            self.batch_server.cancel_all()

    def restart(self, task_id: str, datum_ids: set) -> None:
        with self._lock:
            if self.task is None or self.task.task_id != task_id or self.current_datum not in datum_ids:
                return
        if self.batch_server is not None and self.spec.transform.datum_batching:
            self.batch_server.restart(datum_ids)
        else:
            self.kill_current("datum restarted")

    def kill_current(self, reason: str) -> None:
        p = self.current_proc
        if p is not None:
            p.kill(reason)

    def set_current(self, datum_id: str) -> None:
        ts = None
        if datum_id:
            ts = Timestamp()
            ts.GetCurrentTime()
        with self._lock:
            self.current_datum, self.current_started = datum_id, ts



def install_signal_handlers(worker: Worker) -> None:
    signal.signal(signal.SIGTERM, worker.terminate)
    signal.signal(signal.SIGINT, worker.terminate)
