"""datum_batching: one user process stepped through datums with `pachctl next datum` or
pachyderm-sdk's batch_all_datums, through the worker_v2 (pachyderm.worker.Worker) API."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pachctl.cmd_worker import next_datum, next_group
from proto.worker_v1 import tasks_pb2 as wpb
from tests.worker.conftest import ROOT, by_id, user_lines
NEXT = "python3 -c 'from pachctl.cmd_worker import next_datum; next_datum()'"
SDK_SCRIPT = """\
import os, shutil
from pachyderm_sdk import batch_all_datums
print("started", os.getpid(), flush=True)

@batch_all_datums
def main():
    src = os.environ["in"]
    print("datum", src, os.getpid(), flush=True)
    if src.endswith("bad"):
        raise ValueError("bad input " + src)
    shutil.copy(src, "/pfs/out/")

main()
"""


def _datums(env, names, repo="in"):
    c = env.repo(repo, {f"/{n}": n.encode() for n in names})
    return [env.datum((repo, repo, c, f"/{n}")) for n in names]


@pytest.mark.parametrize("sandbox", [None, "none"], ids=["sandbox", "none"])
def test_pachctl_next_datum_loop(env, sandbox):
    ds = _datums(env, ["a", "b", "c"])
    tr = {"cmd": ["bash"], "datum_batching": True,
          "stdin": [f"echo pid $$; while {NEXT}; do", ". /pfs/.env", "echo got $in", "cp $in /pfs/out/", "done",
                    "echo unreachable"]}
    done, files = env.run("nd", tr, ds, sandbox=sandbox)
    assert [r.outcome for r in done.results] == [wpb.SUCCESS] * 3
    assert files == {f"/{n}": (n.encode(), d.id) for n, d in zip("abc", ds)}
    lines = user_lines(env.master.logs(done.task_id))
    assert sum(ln.startswith("pid ") for ln in lines) == 1  # one process for all datums
    assert "unreachable" not in lines  # killed once no datums were left
    assert [ln.split("/")[-1] for ln in lines if ln.startswith("got ")] == ["a", "b", "c"]


def test_sdk_batch_all_datums_with_errors_and_retries(env, tmp_path):
    img = tmp_path / "images" / "batcher"
    img.mkdir(parents=True)
    (img / "batch.py").write_text(SDK_SCRIPT)
    ds = _datums(env, ["a", "bad", "c"])
    tr = {"image": "me/batcher:1", "cmd": ["python3", "/batch.py"], "datum_batching": True}
    done, files = env.run("sdk", tr, ds, image_dirs=[tmp_path / "images"], tries=2)
    r = by_id(done)
    assert r[ds[0].id].outcome == wpb.SUCCESS and r[ds[2].id].outcome == wpb.SUCCESS
    assert (r[ds[1].id].outcome, r[ds[1].id].attempts) == (wpb.FAILED, 2)
    assert r[ds[1].id].reason == "ValueError('bad input /pfs/in/bad')"
    assert files == {"/a": (b"a", ds[0].id), "/c": (b"c", ds[2].id)}
    starts = [ln for ln in user_lines(env.master.logs(done.task_id)) if ln.startswith("started")]
    assert len(starts) == 3  # first start + a restart after each failed attempt


def test_batching_err_cmd_recovers_and_premature_exit(env):
    ds = _datums(env, ["a", "b"])
    # processes datum a; exits on its own while holding b
    tr = {"cmd": ["bash"], "datum_batching": True, "err_cmd": ["true"],
          "stdin": [f"while {NEXT}; do", "if [ -e /pfs/in/a ]; then cp /pfs/in/a /pfs/out/; else exit 0; fi", "done"]}
    done, files = env.run("premature", tr, ds, tries=2)
    r = by_id(done)
    assert r[ds[0].id].outcome == wpb.SUCCESS
    assert r[ds[1].id].outcome == wpb.RECOVERED and r[ds[1].id].reason == "user code exited prematurely"
    assert files == {"/a": (b"a", ds[0].id)}


def test_batching_process_lives_across_tasks_of_one_job(env):
    ds = _datums(env, ["a", "b", "c", "d"])
    out = env.output_commit("multi")
    tr = {"cmd": ["bash"], "datum_batching": True,
          "stdin": ["echo pid $$", f"while {NEXT}; do cp /pfs/in/* /pfs/out/; done"]}
    env.start("multi", tr)
    t1 = env.master.submit("multi", env.task("multi", out, ds[:2]))
    t2 = env.master.submit("multi", env.task("multi", out, ds[2:]))
    d1, d2 = env.master.wait(t1), env.master.wait(t2)
    assert all(r.outcome == wpb.SUCCESS for r in [*d1.results, *d2.results])
    lines = user_lines([*env.master.heartbeat_logs, *d1.logs, *d2.logs])
    assert sum(ln.startswith("pid ") for ln in lines) == 1
    assert sorted(env.output_files("multi", out)) == ["/a", "/b", "/c", "/d"]


def test_next_datum_outside_a_worker_fails_cleanly(monkeypatch):
    monkeypatch.delenv("PPS_WORKER_GRPC_PORT", raising=False)
    out = subprocess.run([sys.executable, "-c", "from pachctl.cmd_worker import next_group; next_group()", "datum"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1 and "PPS_WORKER_GRPC_PORT is not set" in out.stderr
    assert next_datum.name == "datum" and next_group.get_command(None, "datum") is next_datum
