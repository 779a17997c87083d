#!/usr/bin/env python3
"""Long runs of the reliability harness (tests/reliability), with figures for docs/reliability.md.

    .venv/bin/python scripts/reliability.py r1-pfs  --rounds 20   # per failpoint, + random kills
    .venv/bin/python scripts/reliability.py r1-jobs --rounds 20
    .venv/bin/python scripts/reliability.py r2      --rounds 20
    .venv/bin/python scripts/reliability.py r3      --cases 1000
    .venv/bin/python scripts/reliability.py r3-atheris --seconds 60   # per coverage-guided target
    .venv/bin/python scripts/reliability.py r4      --seconds 60 --writers 8
    .venv/bin/python scripts/reliability.py faults  --rounds 20
    .venv/bin/python scripts/reliability.py all     # everything above with those defaults

Each prints one JSON line of figures per part (rounds, operations acknowledged, faults injected,
losses found) and exits non-zero on the first loss, with what was lost.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _report(part: str, t0: float, **figures) -> dict:
    out = {"part": part, "seconds": round(time.monotonic() - t0, 1), **figures}
    print(json.dumps(out), flush=True)
    return out


def r1_pfs(rounds: int, seed: int, fresh_every: int = 15) -> dict:
    """`rounds` kills at each pfs failpoint plus `rounds` at random moments, in a shuffled
    order. Every `fresh_every` rounds the run moves to a new data root and a new model: the
    read-back after each restart grows with the history, and a long run would otherwise spend
    its time re-reading old commits instead of crashing pachd."""
    from tests.reliability.harness import CrashablePachd
    from tests.reliability.pfs_crash import Model, run_round
    from tests.reliability.test_pfs_crash import PFS_POINTS
    rng, t0 = random.Random(seed), time.monotonic()
    kills: dict[str, int] = {}
    plan = [f"{p}@{rng.randint(1, 6)}" for p in PFS_POINTS for _ in range(rounds)]
    plan += [""] * rounds
    rng.shuffle(plan)
    acked = commits = files_read = 0
    with tempfile.TemporaryDirectory(prefix="r1-pfs-") as d:
        for first in range(0, len(plan), fresh_every):
            pd = CrashablePachd(Path(d) / f"history-{first // fresh_every}")
            model = Model(seed + first, sample_old=20)
            try:
                for i, fp in enumerate(plan[first:first + fresh_every], start=first):
                    r = run_round(pd, model, failpoint=fp, kill_after=None if fp else rng.uniform(0.2, 3.0))
                    kills[r.killed_by] = kills.get(r.killed_by, 0) + 1
                    files_read += r.after["files_read"]
                    if (i + 1) % 10 == 0:
                        print(f"  r1-pfs {i + 1}/{len(plan)} rounds, {acked + model.acked} ops acknowledged, "
                              f"{time.monotonic() - t0:.0f} s, kills {kills}", file=sys.stderr)
            finally:
                pd.kill9()
            acked += model.acked
            commits += len(model.commits)
        return _report("r1-pfs", t0, rounds=len(plan), kills=kills, ops_acked=acked, commits=commits,
                       files_read_back=files_read, fresh_every=fresh_every, losses=0)


def r1_jobs(rounds: int, seed: int) -> dict:
    from tests.reliability.harness import CrashablePachd
    from tests.reliability.jobs_crash import JobModel, pipeline_spec, run_job_round
    from tests.reliability.test_jobs_crash import JOB_POINTS
    rng, t0 = random.Random(seed), time.monotonic()
    kills: dict[str, int] = {}
    names = [p.split("@")[0] for p in JOB_POINTS]
    plan = [f"{n}@{rng.randint(1, 3)}" if n in ("job.outputs", "job.bookkeeping") else f"{n}@1"
            for n in names for _ in range(rounds)] + [""] * rounds
    rng.shuffle(plan)
    with tempfile.TemporaryDirectory(prefix="r1-jobs-") as d:
        pd = CrashablePachd(Path(d))
        model = JobModel(seed)
        spec = pipeline_spec(parallelism=2)
        try:
            for i, fp in enumerate(plan):
                r = run_job_round(pd, model, spec, failpoint=fp,
                                  kill_after=None if fp else rng.uniform(0.1, 3.0))
                kills[r.killed_by] = kills.get(r.killed_by, 0) + 1
                if (i + 1) % 10 == 0:
                    print(f"  r1-jobs {i + 1}/{len(plan)} rounds", file=sys.stderr)
        finally:
            pd.kill9()
        return _report("r1-jobs", t0, rounds=len(plan), kills=kills, jobs_checked=model.jobs_checked,
                       datums_checked=model.datums_checked, losses=0)


def r2(rounds: int, seed: int) -> dict:
    from tests.reliability.harness import CrashablePachd
    from tests.reliability.jobs_crash import JobModel, kill_workers_during, pipeline_spec
    rng, t0 = random.Random(seed), time.monotonic()
    kills = 0
    with tempfile.TemporaryDirectory(prefix="r2-") as d:
        pd = CrashablePachd(Path(d))
        model = JobModel(seed, files_per_commit=(10, 16))
        pd.start()
        try:
            with pd.client() as c:
                model.setup(c, pipeline_spec(parallelism=2, datum_tries=1, sleep=0.3))
                for i in range(rounds):
                    cid = model.put(c)
                    kills += kill_workers_during(pd, c, cid, kills=2, rng=rng, window=(0.3, 1.0))
                    model.check(c)
        finally:
            pd.stop()
        return _report("r2", t0, rounds=rounds, worker_kills=kills, jobs_checked=model.jobs_checked,
                       datums_checked=model.datums_checked, losses=0)


def r3(cases: int, seed: int) -> dict:
    """The hypothesis suites of tests/reliability/test_fuzz.py with `cases` examples per kind."""
    import subprocess
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="r3-") as d:
        report = Path(d) / "fuzz.json"
        env = {**os.environ, "FUZZ_EXAMPLES": str(cases), "FUZZ_RANDOM": "1", "FUZZ_REPORT": str(report)}
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                            "--timeout", "0", "tests/reliability/test_fuzz.py", "-k", "not regression"],
                           cwd=ROOT, env=env)
        figures = json.loads(report.read_text()) if report.exists() else {}
    if p.returncode != 0:
        raise SystemExit(f"r3: the fuzzing found a bad answer (pytest exit {p.returncode}); see above")
    return _report("r3", t0, cases_per_kind=cases, answers=figures, bad_answers=0)


def r3_atheris(seconds: float, seed: int) -> dict:
    """Each coverage-guided target of tests/reliability/coverage_fuzz.py for `seconds` seconds."""
    import re
    import subprocess
    from tests.reliability.coverage_fuzz import TARGETS
    t0 = time.monotonic()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="r3-atheris-") as d:
        for name in TARGETS:
            if name == "selftest":
                continue
            p = subprocess.run([sys.executable, "-m", "tests.reliability.coverage_fuzz", name,
                                f"-max_total_time={int(seconds)}", f"-seed={seed}", f"-artifact_prefix={d}/"],
                               cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            out = p.stdout + p.stderr
            if p.returncode != 0:
                print(out[-4000:], file=sys.stderr)
                raise SystemExit(f"r3-atheris: target {name} found an input answered wrongly (above)")
            done = re.findall(r"Done (\d+) runs", out)
            cov = re.findall(r"cov: (\d+)", out)
            figures[name] = {"runs": int(done[-1]) if done else 0, "coverage_edges": int(cov[-1]) if cov else 0}
            print(f"  r3-atheris {name}: {figures[name]}", file=sys.stderr)
    return _report("r3-atheris", t0, seconds_per_target=seconds, targets=figures, findings=0)


def r4(seconds: float, writers: int, seed: int) -> dict:
    from tests.reliability import concurrency
    from tests.reliability.harness import CrashablePachd
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="r4-") as d:
        pd = CrashablePachd(Path(d)).start()
        try:
            r = concurrency.run(pd, seconds=seconds, writers=writers, seed=seed)
        finally:
            pd.stop()
    return _report("r4", t0, **r)


def faults(rounds: int, seed: int) -> dict:
    """`rounds` rounds of 40 writes + 2 jobs through the fault proxy, each followed by a
    restart and a full read-back (tests/reliability/test_storage_faults.py at length)."""
    import subprocess
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-") as d:
        report = Path(d) / "faults.json"
        env = {**os.environ, "FAULTS_ROUNDS": str(rounds), "FAULTS_OPS": "40", "FAULTS_JOBS": "2",
               "FAULTS_REPORT": str(report)}
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                            "--timeout", "0", "tests/reliability/test_storage_faults.py", "-k", "survive"],
                           cwd=ROOT, env=env)
        figures = json.loads(report.read_text()) if report.exists() else {}
    if p.returncode != 0:
        raise SystemExit(f"faults: something was lost or failed (pytest exit {p.returncode}); see above")
    return _report("faults", t0, rounds=rounds, **figures, losses=0)


PARTS = {"r1-pfs": r1_pfs, "r1-jobs": r1_jobs, "r2": r2, "r3": r3, "r3-atheris": r3_atheris, "r4": r4,
         "faults": faults}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=[*PARTS, "all"])
    ap.add_argument("--rounds", type=int, default=20, help="rounds per failpoint / kill kind (default 20)")
    ap.add_argument("--cases", type=int, default=1000, help="r3: hypothesis cases per kind of input (default 1000)")
    ap.add_argument("--seconds", type=float, default=60, help="r4: how long the writers write; r3-atheris: seconds per target (default 60)")
    ap.add_argument("--writers", type=int, default=8, help="r4: concurrent writers (default 8)")
    ap.add_argument("--fresh-every", type=int, default=15,
                    help="r1-pfs: start a new data root every N rounds (default 15)")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "1")))
    a = ap.parse_args(argv)
    parts = list(PARTS) if a.part == "all" else [a.part]
    for p in parts:
        if p == "r3":
            r3(a.cases, a.seed)
        elif p == "r3-atheris":
            r3_atheris(a.seconds, a.seed)
        elif p == "r4":
            r4(a.seconds, a.writers, a.seed)
        elif p == "r1-pfs":
            r1_pfs(a.rounds, a.seed, a.fresh_every)
        else:
            PARTS[p](a.rounds, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
