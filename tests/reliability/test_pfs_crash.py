"""R1 (CI size) for pfs: pachd is killed -9 at each named pfs failpoint and at random moments
while a writer makes one-off commits, opens commits, streams files into them and finishes them;
after every restart nothing acknowledged is lost, nothing half is visible, open commits finish.
The long run is `python -m tests.reliability.run r1-pfs` (see docs/reliability.md)."""
from __future__ import annotations

import random

import pytest

from tests.reliability.harness import CrashablePachd
from tests.reliability.pfs_crash import Model, run_round

PFS_POINTS = ["modify_file.write", "commit.before_publish", "commit.after_publish",
              "finish_commit.before", "finish_commit.after"]


@pytest.mark.timeout(300)
def test_kill9_at_each_pfs_failpoint_and_at_random_moments_loses_nothing(tmp_path):
    rng = random.Random(17)
    pd = CrashablePachd(tmp_path)
    model = Model(seed=17)
    fired = []
    try:
        for name in PFS_POINTS:
            r = run_round(pd, model, failpoint=f"{name}@{rng.randint(1, 4)}")
            assert r.killed_by == name, f"failpoint {name} never fired ({r})"
            fired.append(name)
        for _ in range(2):
            r = run_round(pd, model, kill_after=rng.uniform(0.3, 1.2))
            assert r.killed_by == "random"
    finally:
        pd.kill9()
    assert fired == PFS_POINTS
    assert model.acked > 10 and len(model.commits) > 5  # the rounds did real work
