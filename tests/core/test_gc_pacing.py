"""The background collection loop (pachd.maintenance.GcLoop) paces itself: after a run it
waits at least PACE times that run's duration, so on a store whose mark takes long the
collector cannot take most of pachd's time, whatever --gc-period says."""
from __future__ import annotations

import time

from pachd.maintenance import GcLoop
from pfs.core.gc import GarbageCollector
from tests.core.helpers import R, put_files


def _wait_for(cond, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def test_the_next_background_run_waits_pace_times_the_last_runs_duration(pfs):
    r = R("paced")
    pfs.create_repo(r)
    put_files(pfs, r, "master", {f"/f{i}": b"x%d" % i for i in range(200)})
    collector = GarbageCollector(pfs)
    loop = GcLoop(collector, period=0.01)
    loop.PACE = 20.0  # a run takes >= 1 ms here: the pause is >= 20 ms, twice the period
    loop.start()
    try:
        _wait_for(lambda: collector.runs >= 1)
        first = collector.last
        _wait_for(lambda: collector.runs >= 2)
        second = collector.last
    finally:
        loop.stop()
    pause = second.started - (first.started + first.seconds)
    assert first.seconds > 0
    assert pause >= loop.PACE * first.seconds * 0.99, (pause, first.seconds)
    assert loop.next_wait() == max(loop.period, loop.PACE * loop.last_seconds)
