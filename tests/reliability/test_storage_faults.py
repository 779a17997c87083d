"""Storage faults: pachd's chunks in SeaweedFS behind a FaultProxy (tests/s3backend/faultproxy.py)
that answers every third object request with a fault in turn: 503 SlowDown, 500, a reset
connection, a stall past the client's read timeout, a slow trickle, and a lost
acknowledgement (the server did the write, the client never heard).
- with faults the retries absorb: writes (one-off and open commits, 3 MiB files) and a
  pipeline's job succeed; every file reads back byte for byte after a restart (reads through
  the faults too); job outputs equal the input's function;
- when the retries run out (every PUT stalls): a clear UNAVAILABLE naming the bucket, the
  branch does not move, nothing half committed; once S3 recovers the same put works.
The long run: `scripts/reliability.py faults`."""
from __future__ import annotations

import json
import os

import grpc
import pytest

from pps.worker.sandbox import bwrap_usable
from tests.reliability.harness import CrashablePachd, commit_pb
from tests.reliability.jobs_crash import JobModel, pipeline_spec
from tests.reliability.pfs_crash import Model
from tests.s3backend.faultproxy import FaultProxy
from tests.s3pachd import s3_env

pytestmark = pytest.mark.s3
KINDS = ["503", "500", "reset", "stall", "slow", "ackloss"]


@pytest.fixture
def proxy(seaweed_server):
    p = FaultProxy(seaweed_server.endpoint_url)
    try:
        yield p
    finally:
        p.close()


def faulty_pachd(tmp_path, seaweed_server, proxy, **env) -> CrashablePachd:
    bucket = seaweed_server.new_bucket()
    e = s3_env(seaweed_server, proxy.url, **{"PACHD_S3_READ_TIMEOUT": "1", "PACHD_S3_CONNECT_TIMEOUT": "1",
                                             "AWS_MAX_ATTEMPTS": "10", **env})
    return CrashablePachd(tmp_path, env=e, storage=f"s3://{bucket}/pach")


def run_with_faults(pd: CrashablePachd, proxy: FaultProxy, ops: int, seed: int, jobs: int = 0) -> dict:
    """Writes (and jobs) through the faults, a restart, everything read back; the figures."""
    model = Model(seed)
    jm = JobModel(seed, files_per_commit=(2, 4))
    pd.start()
    try:
        with pd.client() as c:
            c.create_repo("data")
            if jobs:
                jm.setup(c, pipeline_spec(parallelism=1))
            proxy.configure(chaos_every={"PUT": 3, "GET": 3}, chaos_kinds=KINDS, stall_seconds=2.0,
                            slow_bytes_per_sec=512 * 1024)
            for _ in range(ops):
                model.step(c)
            for _ in range(jobs):
                jm.put(c)
                jm.check(c)
    finally:
        pd.stop()
    pd.start()  # a new process: nothing cached in memory, reads go through the faults too
    try:
        with pd.client() as c:
            after = model.reconcile(c)
            jm.check(c)
    finally:
        pd.stop()
    return {"ops_acked": model.acked, "files_read": after["files_read"], "jobs_checked": jm.jobs_checked,
            **proxy.stats()}


ROUNDS = int(os.environ.get("FAULTS_ROUNDS", "1"))


@pytest.mark.skipif(not bwrap_usable(), reason="bubblewrap (bwrap) not usable here")
@pytest.mark.timeout(400 * ROUNDS)  # per round: the long run sets FAULTS_ROUNDS
def test_writes_jobs_and_reads_survive_5xx_resets_stalls_slow_reads_and_lost_acks(tmp_path, seaweed_server, proxy):
    """FAULTS_ROUNDS / FAULTS_OPS / FAULTS_JOBS (default 1 / 20 / 1) size it; the long run
    (scripts/reliability.py faults) sets them and reads the totals from FAULTS_REPORT."""
    rounds = ROUNDS
    ops, jobs = (int(os.environ.get(k, d)) for k, d in (("FAULTS_OPS", 20), ("FAULTS_JOBS", 1)))
    totals: dict = {"ops_acked": 0, "files_read": 0, "jobs_checked": 0, "kinds": {}, "injected": {}}
    for i in range(rounds):
        p = proxy if i == 0 else FaultProxy(seaweed_server.endpoint_url)
        try:
            r = run_with_faults(faulty_pachd(tmp_path / f"r{i}", seaweed_server, p), p, ops=ops, seed=3 + i, jobs=jobs)
        finally:
            if p is not proxy:
                p.close()
        assert r["ops_acked"] == ops and r["jobs_checked"] == jobs
        assert all(r["kinds"].get(k, 0) >= 1 for k in KINDS), r["kinds"]  # every kind of fault happened
        assert r["injected"].get("GET", 0) >= 1 and r["injected"].get("PUT", 0) >= 3, r
        for k in ("ops_acked", "files_read", "jobs_checked"):
            totals[k] += r[k]
        for k in ("kinds", "injected"):
            for n, v in r[k].items():
                totals[k][n] = totals[k].get(n, 0) + v
    if os.environ.get("FAULTS_REPORT"):
        with open(os.environ["FAULTS_REPORT"], "w") as f:
            json.dump(totals, f)


@pytest.mark.timeout(300)
def test_when_retries_run_out_the_put_fails_clearly_and_commits_nothing(tmp_path, seaweed_server, proxy):
    pd = faulty_pachd(tmp_path, seaweed_server, proxy, AWS_MAX_ATTEMPTS="3")
    pd.start()
    try:
        with pd.client() as c:
            c.create_repo("data")
            c.modify(commit_pb("data", branch="master"), {"/before": b"kept"})
            head = c.branch_head("data")
            proxy.configure(chaos_every={"PUT": 1}, chaos_kinds=["stall", "reset", "503"], max_in_a_row=1000,
                            stall_seconds=2.0)
            with pytest.raises(grpc.RpcError) as ei:
                c.modify(commit_pb("data", branch="master"), {"/new": b"n" * (3 << 20)})
            assert ei.value.code() == grpc.StatusCode.UNAVAILABLE, ei.value.details()
            assert "s3://" in ei.value.details() and "attempts" in ei.value.details(), ei.value.details()
            assert c.branch_head("data") == head and len(c.list_commits("data")) == 1
            proxy.configure(chaos_every={})
            c.modify(commit_pb("data", branch="master"), {"/new": b"n" * (3 << 20)})
            assert c.files("data", c.branch_head("data")) == {"/before": b"kept", "/new": b"n" * (3 << 20)}
    finally:
        code = pd.stop()
    assert code == 0, pd.log_tail()
