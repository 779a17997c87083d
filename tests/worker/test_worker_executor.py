"""LocalExecutor: start, scale, restart crashed workers, replace on spec change, stop; no
process is ever left behind (every test's Env checks /proc for its marker at teardown)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from pps.executors import Executor, WorkerStatus
from pps.executors.local import LocalExecutor
from proto.worker_v1 import tasks_pb2 as wpb
from tests.worker.conftest import marked_processes, spec_json

KEY = ("default", "scaler")


def _wait(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def test_scale_restart_replace_and_stop(env):
    ex = env.executor()  # the best sandbox here
    assert isinstance(ex, Executor)
    spec = spec_json("scaler", {"cmd": ["true"]})
    ex.ensure_workers(KEY, spec, 2, env.env())
    ws = ex.workers(KEY)
    assert [w.id for w in ws] == ["default-scaler-w0", "default-scaler-w1"]
    assert all(isinstance(w, WorkerStatus) and w.pid for w in ws)
    _wait(lambda: all(env.master.polls[w.id] for w in ws), what="both workers polling")
    ex.ensure_workers(KEY, spec, 2, env.env())  # idempotent: nothing restarted
    assert [w.pid for w in ex.workers(KEY)] == [w.pid for w in ws]

    ex.ensure_workers(KEY, spec, 1, env.env())
    assert [w.id for w in ex.workers(KEY)] == ["default-scaler-w0"]
    _wait(lambda: not _alive(ws[1].pid), what="w1 gone")

    os.kill(ws[0].pid, signal.SIGKILL)  # the sandbox dies: the executor restarts it
    _wait(lambda: ex.workers(KEY)[0].restarts == 1 and ex.workers(KEY)[0].pid not in (None, ws[0].pid),
          what="w0 restarted")
    env.master.polls.clear()
    _wait(lambda: env.master.polls["default-scaler-w0"] > 0, what="restarted w0 polling")

    before = ex.workers(KEY)[0]
    ex.ensure_workers(KEY, spec_json("scaler", {"cmd": ["false"]}), 1, env.env())  # new spec
    after = ex.workers(KEY)[0]
    assert after.spec_hash != before.spec_hash and after.pid != before.pid

    ex.stop_workers(KEY)
    assert ex.workers(KEY) == []
    _wait(lambda: not marked_processes(env.marker), what="no processes left")


def test_fallback_crash_backoff_and_close(env, tmp_path):
    # pachd "unreachable": the worker exits 2 quickly; the executor restarts it with backoff
    ex = LocalExecutor("127.0.0.1:1", tmp_path / "w", sandbox="none",
                       worker_args=["--unreachable-timeout", "0.2", "--wait-seconds", "0.1"])
    env.executors.append(ex)
    ex.ensure_workers(KEY, spec_json("scaler", {"cmd": ["true"]}), 1, env.env())
    _wait(lambda: ex.workers(KEY)[0].restarts >= 2, what="two restarts")
    w = ex.workers(KEY)[0]
    assert w.exit_code == 2 or w.state in ("starting", "running")
    log = Path(w.log_path).read_text()
    assert "unreachable" in log
    ex.close()
    assert not marked_processes(env.marker)
    with pytest.raises(RuntimeError):
        ex.ensure_workers(KEY, spec_json("scaler", {"cmd": ["true"]}), 1, {})


@pytest.mark.parametrize("sandbox", [None, "none"], ids=["sandbox", "none"])
def test_stopping_a_busy_worker_kills_its_user_code(env, sandbox):
    c = env.repo("in", {"/a": b""})
    d = env.datum(("in", "in", c, "/a"))
    out = env.output_commit("busy")
    ex = env.start("busy", {"cmd": ["sh", "-c", "sleep 60 & sleep 60"]}, sandbox=sandbox)
    tid = env.master.submit("busy", env.task("busy", out, [d]))
    _wait(lambda: any(h.datum_id == d.id for h in env.master.heartbeats), what="user code running")
    assert any(_cmdline(p).startswith("sleep") for p in marked_processes(env.marker))
    t0 = time.monotonic()
    ex.stop_workers(("default", "busy"))
    assert time.monotonic() - t0 < 5
    _wait(lambda: not marked_processes(env.marker), 5, what="everything gone")
    done = env.master.completed.get(tid)
    assert done is None or not [r for r in done.results if r.outcome == wpb.SUCCESS]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
