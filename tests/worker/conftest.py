"""Fixtures for worker tests: a real pachd (pfs_v2) plus a TEST-SIDE task master.

- `TaskMaster` implements worker_v1.Tasks on pachd's own gRPC server (workers use one address):
  tests queue tasks built from real commits and read back CompleteTask / Heartbeat traffic.
  It is a test kubelet, not the product's master (pps/tasks.py).
- `env`: pachd + master + helpers to make input repos, output commits and tasks, and to start
  workers through the real LocalExecutor: in the best sandbox here (bwrap, else the user
  namespace launcher; a test that needs one skips, naming what is missing, where neither
  works) unless a test asks for a mode.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

import pytest

from pfs.model import Branch, Repo
from pachd.server import Pachd
from pps.executors.local import LocalExecutor
from proto.worker_v1 import tasks_pb2 as wpb
from proto.worker_v1 import tasks_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
from tests.tools import BEST_SANDBOX, needs_bwrap, needs_sandbox  # noqa: F401 (used by the tests)


def sandbox_mode(mode: Optional[str]) -> str:
    """`mode`, or the best sandbox here for None (skipping the test where there is none)."""
    if mode is not None:
        return mode
    if BEST_SANDBOX == "none":
        pytest.skip(needs_sandbox.kwargs["reason"])
    return BEST_SANDBOX


class TaskMaster(tasks_pb2_grpc.TasksServicer):
    def __init__(self):
        self.cond = threading.Condition()
        self.queues: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.completed: dict[str, wpb.CompleteTaskRequest] = {}
        self.heartbeats: list[wpb.HeartbeatRequest] = []
        self.heartbeat_logs: list[wpb.LogLine] = []
        self.cancel: set[str] = set()
        self.restart: dict[str, set] = {}
        self.stop: set[str] = set()
        self.handed: dict[str, str] = {}  # task id -> worker id
        self.polls: collections.Counter = collections.Counter()

    def submit(self, pipeline: str, task: wpb.Task) -> str:
        with self.cond:
            self.queues[pipeline].append(task)
            self.cond.notify_all()
        return task.task_id

    def wait(self, task_id: str, timeout: float = 30.0) -> wpb.CompleteTaskRequest:
        with self.cond:
            if not self.cond.wait_for(lambda: task_id in self.completed, timeout):
                raise TimeoutError(f"task {task_id} not completed in {timeout}s")
            return self.completed[task_id]

    def wait_for(self, pred, timeout: float = 30.0) -> None:
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise TimeoutError("condition not reached")

    def NextTask(self, request, context):
        deadline = time.monotonic() + min(request.wait_seconds, 2.0)
        with self.cond:
            self.polls[request.worker_id] += 1
            self.cond.notify_all()
            while True:
                if request.pipeline in self.stop:
                    return wpb.Task(stop=True)
                q = self.queues[request.pipeline]
                if q:
                    t = q.popleft()
                    self.handed[t.task_id] = request.worker_id
                    return t
                left = deadline - time.monotonic()
                if left <= 0 or not context.is_active():
                    return wpb.Task()
                self.cond.wait(min(left, 0.2))

    def CompleteTask(self, request, context):
        with self.cond:
            self.completed[request.task_id] = request
            self.cond.notify_all()
        return wpb.CompleteTaskResponse()

    def Heartbeat(self, request, context):
        with self.cond:
            self.heartbeats.append(request)
            self.heartbeat_logs.extend(request.logs)
            resp = wpb.HeartbeatResponse(cancel_task=request.task_id in self.cancel)
            ids = self.restart.pop(request.task_id, set())
            resp.restart_datums.extend(sorted(ids))
            self.cond.notify_all()
            return resp

    def logs(self, task_id: str) -> list[wpb.LogLine]:
        done = self.completed.get(task_id)
        return [*self.heartbeat_logs, *(done.logs if done else [])]


def disable_glob_tar(pachd: Pachd) -> None:
    """TEST-SIDE stand-in for an older pachd whose GetFileTAR refuses globs, so the worker's
    per-path fallback is exercised (pachd itself serves globs, as Pachyderm's does)."""
    from pfs import ancestry
    from pfs.errors import InvalidArgument

    core = pachd.pfs
    plain = core.tar_stream

    def tar_stream(ci, path, chunk_size=1 << 20):
        if ancestry.is_glob(path):
            raise InvalidArgument(f"path ({path}) invalid: globbing character not allowed in path")
        return plain(ci, path, chunk_size)

    core.tar_stream = tar_stream


class Env:
    def __init__(self, tmp: Path, glob_tar: bool = True):
        self.tmp = tmp
        self.master = TaskMaster()
        self.pachd = Pachd(tmp / "pachd", port=0, host="127.0.0.1", enable_pps=False)
        if not glob_tar:
            disable_glob_tar(self.pachd)
        tasks_pb2_grpc.add_TasksServicer_to_server(self.master, self.pachd.server)
        self.pachd.start()
        self.address = f"127.0.0.1:{self.pachd.port}"
        self.pfs = self.pachd.pfs
        self.executors: list[LocalExecutor] = []
        self.marker = uuid.uuid4().hex  # in every worker's (and user process's) environment

    def close(self) -> None:
        for ex in self.executors:
            ex.close()
        self.pachd.stop(grace=0.2)
        leaked = marked_processes(self.marker)
        for pid in leaked:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert not leaked, f"processes left behind: {leaked}"

    # ---- data ---------------------------------------------------------------------------
    def repo(self, name: str, files: dict[str, bytes]) -> str:
        """A repo with one finished commit holding `files`; returns the commit id."""
        repo = Repo("default", name)
        self.pfs.create_repo(repo)
        ci = self.pfs.start_commit(Branch(repo, "master"))
        with self.pfs.open_writer(repo, ci.commit.id) as w:
            for path, data in files.items():
                w.put(path, [data])
        self.pfs.finish_commit(repo, ci.commit.id)
        return ci.commit.id

    def output_commit(self, pipeline: str) -> str:
        repo = Repo("default", pipeline)
        self.pfs.create_repo(repo)
        return self.pfs.start_commit(Branch(repo, "master")).commit.id

    def output_files(self, pipeline: str, commit: str) -> dict[str, tuple[bytes, str]]:
        """{path: (content, datum)} of the output commit (finished here)."""
        repo = Repo("default", pipeline)
        self.pfs.finish_commit(repo, commit)
        ci = self.pfs.commit_for_read(repo, commit)
        out = {}
        for fi in self.pfs.walk_file(ci, "/"):
            if not fi.is_dir:
                _, it = self.pfs.read_file(ci, fi.path)
                out[fi.path] = (b"".join(it), fi.datum)
        return out

    @staticmethod
    def datum(*inputs: tuple[str, str, str, str]) -> wpb.Datum:
        """A datum from (input name, repo, commit, path) tuples; the id is a test id."""
        ins = [wpb.Input(name=n, project="default", repo=r, branch="master", commit=c, path=p)
               for n, r, c, p in inputs]
        return wpb.Datum(id=uuid.uuid4().hex, inputs=ins)

    def task(self, pipeline: str, output_commit: str, datums: list, tries: int = 3,
             timeout: float = 0.0) -> wpb.Task:
        t = wpb.Task(task_id=uuid.uuid4().hex, job_id=output_commit, output_commit=output_commit,
                     pipeline_version=1, datums=datums, datum_tries=tries,
                     output_repo=pipeline, output_branch="master")
        t.datum_timeout.FromNanoseconds(int(timeout * 1e9))
        return t

    # ---- workers ------------------------------------------------------------------------
    def executor(self, sandbox: Optional[str] = None, image_dirs=(), **kw) -> LocalExecutor:
        ex = LocalExecutor(self.address, self.tmp / f"workers{len(self.executors)}", list(image_dirs),
                           sandbox=sandbox_mode(sandbox), **kw)
        self.executors.append(ex)
        return ex

    def start(self, pipeline: str, transform: dict, n: int = 1, sandbox: Optional[str] = None,
              image_dirs=(), env: Optional[dict] = None, **kw) -> LocalExecutor:
        ex = self.executor(sandbox, image_dirs, **kw)
        ex.ensure_workers(("default", pipeline), spec_json(pipeline, transform), n, self.env(env))
        return ex

    def env(self, extra: Optional[dict] = None) -> dict:
        return {**(extra or {}), "PPS_TEST_MARKER": self.marker}

    def run(self, pipeline: str, transform: dict, datums: list, sandbox: Optional[str] = None,
            image_dirs=(), tries: int = 3, timeout: float = 0.0, wait: float = 30.0):
        """Start one worker, run one task, return (CompleteTaskRequest, output files)."""
        out = self.output_commit(pipeline)
        self.start(pipeline, transform, sandbox=sandbox, image_dirs=image_dirs)
        tid = self.master.submit(pipeline, self.task(pipeline, out, datums, tries, timeout))
        done = self.master.wait(tid, wait)
        return done, self.output_files(pipeline, out)


def marked_processes(marker: str) -> list[int]:
    """Pids whose environment carries PPS_TEST_MARKER=marker."""
    needle = f"PPS_TEST_MARKER={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def spec_json(pipeline: str, transform: dict, **extra) -> str:
    return json.dumps({"pipeline": {"name": pipeline, "project": {"name": "default"}},
                       "transform": transform, "input": {"pfs": {"repo": "in", "glob": "/*"}}, **extra})


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.close()


def by_id(done: wpb.CompleteTaskRequest) -> dict[str, wpb.DatumResult]:
    return {r.datum_id: r for r in done.results}


def user_lines(lines, datum_id: Optional[str] = None) -> list[str]:
    return [ln.message for ln in lines if ln.user and (datum_id is None or ln.datum_id == datum_id)]
