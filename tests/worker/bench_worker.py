"""Per-datum overhead of ONE worker: `python -m tests.worker.bench_worker [N] [bwrap|userns|none] [glob] [batch]`.

A real pachd (in this process) + the test task master hand N one-file datums, in tasks of
200, to one worker started by the LocalExecutor; the transform copies the file to /pfs/out
(`cp`, or pachyderm-sdk's batch_all_datums with `batch`). Prints wall time per datum, the same
copies run as bare subprocesses, and the worker's and user code's CPU seconds (from the
worker's log). `glob` lets pachd's GetFileTAR take brace globs (test-side stand-in) so the
worker downloads a batch of datums in one call. Not a test: run it by hand.
"""
from __future__ import annotations

import glob as globlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.worker.conftest import Env

BATCH_CODE = ("import os, shutil\nfrom pachyderm_sdk import batch_all_datums\n@batch_all_datums\n"
              "def f():\n    shutil.copy(os.environ['in'], '/pfs/out/')\nf()")


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv and argv[0].isdigit() else 1000
    mode = next((m for m in ("none", "userns") if m in argv), "bwrap")
    batch, glob = "batch" in argv, "glob" in argv
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    env = Env(tmp, glob_tar=glob)
    try:
        c = env.repo("in", {f"/f{i:05d}": b"x" * 100 for i in range(n)})
        out = env.output_commit("cp")
        tr = ({"cmd": ["python3", "-c", BATCH_CODE], "datum_batching": True} if batch
              else {"cmd": ["cp", "-r", "/pfs/in/.", "/pfs/out/"]})
        env.start("cp", tr, sandbox=mode)
        env.master.wait_for(lambda: env.master.polls, 30)
        datums = [env.datum(("in", "in", c, f"/f{i:05d}")) for i in range(n)]
        t0 = time.perf_counter()
        ids = [env.master.submit("cp", env.task("cp", out, datums[k:k + 200])) for k in range(0, n, 200)]
        for tid in ids:
            done = env.master.wait(tid, 600)
            assert all(r.outcome == 1 for r in done.results), done.results[0]
        dt = time.perf_counter() - t0
        assert len(env.output_files("cp", out)) == n
        env.master.stop.add("cp")
        with env.master.cond:
            env.master.cond.notify_all()
        raw_dir = tmp / "raw"
        raw_dir.mkdir()
        (raw_dir / "a").write_bytes(b"x" * 100)
        t1 = time.perf_counter()
        for i in range(n):
            subprocess.run(["cp", "-r", str(raw_dir / "a"), str(raw_dir / f"b{i}")], check=True)
        raw = time.perf_counter() - t1
        time.sleep(1.0)
        print(f"{mode} batching={batch} glob_tar={glob}: {n} datums in {dt:.2f}s = {dt / n * 1e3:.3f} ms/datum")
        print(f"bare subprocess cp: {raw / n * 1e3:.3f} ms each; difference {(dt - raw) / n * 1e3:.3f} ms/datum")
        for log in globlib.glob(str(tmp / "workers0" / "*" / "*.log")):
            for line in Path(log).read_text().splitlines():
                if "cpu seconds" in line:
                    print(line.split(": ", 1)[-1])
    finally:
        env.close()


if __name__ == "__main__":
    main(sys.argv[1:])
