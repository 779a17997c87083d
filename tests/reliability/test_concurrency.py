"""R4 (CI size): 8 writers for a few seconds on one branch, with readers and subscribers; no
lost write, no half commit seen, every commit delivered once in order (concurrency.py).
The long run: `scripts/reliability.py r4 --seconds 60`."""
from __future__ import annotations

import pytest

from tests.reliability import concurrency
from tests.reliability.harness import CrashablePachd


@pytest.mark.timeout(240)
def test_eight_writers_with_readers_and_subscribers_lose_nothing(tmp_path):
    pd = CrashablePachd(tmp_path).start()
    try:
        r = concurrency.run(pd, seconds=6, writers=8, readers=2, subscribers=2, min_commits=11, min_reads=6, min_ops=41)
    finally:
        pd.stop()
    assert r["ops_acked"] > 40 and r["commits"] > 10 and r["head_reads"] > 5, r
    assert {"modify-branch", "start", "finish", "read-head"} <= set(r["latency"]), r["latency"]
