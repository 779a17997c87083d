"""R1 for jobs and R2 (CI size).

R1: pachd is killed -9 at each named job failpoint (setting the output commit's base, publishing
a worker's outputs, recording results, writing the datum table, finishing the output commit,
saving the final state) and at a random moment; after the restart every job resumes and its
outputs equal an uncrashed run's (a pure function of the input, see jobs_crash.py).
R2: workers are killed -9 mid-datum; the job succeeds with the same outputs, no datum twice,
and a kill does not use up a datum's tries (datum_tries 1).
Long runs: `python -m tests.reliability.run r1-jobs` / `r2` (docs/reliability.md)."""
from __future__ import annotations

import random

import pytest

from pps.worker.sandbox import bwrap_usable
from tests.reliability.harness import CrashablePachd
from tests.reliability.jobs_crash import JobModel, kill_workers_during, pipeline_spec, run_job_round

JOB_POINTS = ["job.output_base@1", "job.outputs@2", "job.bookkeeping@2", "job.datum_table@1",
              "job.finish@1", "job.finished_state@1"]

pytestmark = pytest.mark.skipif(not bwrap_usable(), reason="bubblewrap (bwrap) not usable here")


@pytest.mark.timeout(400)
def test_kill9_of_pachd_at_each_job_failpoint_jobs_resume_with_identical_outputs(tmp_path):
    pd = CrashablePachd(tmp_path)
    model = JobModel(seed=17)
    spec = pipeline_spec(parallelism=2)
    try:
        for fp in JOB_POINTS:
            r = run_job_round(pd, model, spec, failpoint=fp)
            assert r.killed_by == fp.split("@")[0], f"failpoint {fp} never fired"
            assert r.jobs_checked == 1
        r = run_job_round(pd, model, spec, kill_after=random.Random(17).uniform(0.3, 1.5))
    finally:
        pd.kill9()
    assert model.jobs_checked == len(JOB_POINTS) + 1
    assert model.datums_checked >= 4 * len(JOB_POINTS)


@pytest.mark.timeout(300)
def test_kill9_of_workers_mid_datum_job_succeeds_once_per_datum(tmp_path):
    rng = random.Random(5)
    pd = CrashablePachd(tmp_path)
    model = JobModel(seed=5, files_per_commit=(10, 14))
    spec = pipeline_spec(parallelism=2, datum_tries=1, sleep=0.3)
    kills = 0
    try:
        pd.start()
        with pd.client() as c:
            model.setup(c, spec)
            for _ in range(2):
                cid = model.put(c)
                kills += kill_workers_during(pd, c, cid, kills=3, rng=rng, window=(0.3, 0.8))
                model.check(c)
    finally:
        pd.stop()
    assert kills >= 4, f"only {kills} workers were killed while a job ran"
    assert model.jobs_checked == 2
