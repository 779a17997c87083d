"""Local disk full (ENOSPC) during a put and during a job: pachd's data root is a small tmpfs
in its own mount namespace, partly taken by a ballast file. When it fills up:
- a put fails with RESOURCE_EXHAUSTED naming the full store and saying what to do, whether
  the chunk store or the metadata store (RocksDB) hit the full disk first;
- everything acknowledged before is intact, pachd keeps serving reads;
- a job whose outputs do not fit ends (FAILURE, its reason says which datum) instead of
  hanging, its output commit is finished with that error;
- once space is freed (the ballast removed), writes and jobs work again, without a restart
  (regression: RocksDB refused every write after its first failed one, with INTERNAL, until
  pachd restarted, and pachd's shutdown then crashed on RocksDB's close).
"""
from __future__ import annotations

import os
import random

import grpc
import pytest

from proto.pps_v2 import pps_pb2
from pps.worker.sandbox import bwrap_usable
from tests.reliability.harness import CrashablePachd, commit_pb, tmpfs_usable

pytestmark = pytest.mark.skipif(not tmpfs_usable(), reason="needs root to mount a private tmpfs")
MiB = 1 << 20


def _fill(c, repo: str, sizes, rng, until: str) -> tuple[dict, list]:
    """One-off commits of files of `sizes`; failed puts are collected (and must change
    nothing) until one names `until`. Returns (acknowledged files, the errors)."""
    ok, errors = {}, []
    for i, n in enumerate(sizes):
        data = rng.randbytes(n)
        try:
            c.modify(commit_pb(repo, branch="master"), {f"/f{i:05d}": data})
        except grpc.RpcError as e:
            errors.append(e)
            if until in (e.details() or "") or len(errors) >= 300:
                return ok, errors
            continue
        ok[f"/f{i:05d}"] = data
    raise AssertionError(f"{len(ok)} puts fit on the small disk; {len(errors)} failed")


def _fill_metadata(c, repo: str) -> list:
    """Empty commits and new branches (no chunks) until one fails; [the error]."""
    for i in range(200_000):
        try:
            cid = c.start_commit(repo, f"b{i % 50}")
            c.finish_commit(repo, cid)
        except grpc.RpcError as e:
            if "metadata store" not in (e.details() or ""):
                raise
            return [e]
    raise AssertionError("the metadata store never filled the disk")


@pytest.mark.parametrize("first", ["chunks", "metadata"])
@pytest.mark.timeout(300)
def test_put_on_a_full_disk_is_a_clear_error_and_loses_nothing(tmp_path, first):
    rng = random.Random(first)
    pd = CrashablePachd(tmp_path, data_tmpfs_bytes=24 * MiB, ballast_bytes=6 * MiB).start()
    try:
        with pd.client() as c:
            c.create_repo("d")
            # big files fill the disk: the chunk store fails first
            ok, errors = _fill(c, "d", [MiB] * 40, rng, until="the disk of the local chunk store at")
            if first == "metadata":  # then commits and branches (metadata only) fill RocksDB's log
                errors += _fill_metadata(c, "d")
            for e in errors:  # every failed call: the clear error, whichever store was full
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
                assert "is full" in e.details() and "nothing was written" in e.details(), e.details()
            store = "local chunk store" if first == "chunks" else "metadata store"
            assert f"the disk of the {store} at {tmp_path / 'data'}" in errors[-1].details(), errors[-1].details()
            head = c.branch_head("d")
            assert c.files("d", head) == ok  # everything acknowledged, byte for byte
            with pytest.raises(grpc.RpcError) as again:  # still full: the same clear error
                c.modify(commit_pb("d", branch="master"), {"/big": rng.randbytes(4 * MiB)})
            assert again.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert c.branch_head("d") == head
            pd.free_ballast()
            c.modify(commit_pb("d", branch="master"), {"/after": b"space again"})
            assert c.files("d", c.branch_head("d")) == {**ok, "/after": b"space again"}
    finally:
        code = pd.stop()
    assert code == 0, pd.log_tail()
    assert "Traceback" not in pd.log(), pd.log_tail()


@pytest.mark.skipif(not bwrap_usable(), reason="bubblewrap (bwrap) not usable here")
@pytest.mark.timeout(300)
def test_a_job_whose_outputs_do_not_fit_fails_clearly_and_the_next_one_runs(tmp_path):
    pd = CrashablePachd(tmp_path, data_tmpfs_bytes=48 * MiB, ballast_bytes=20 * MiB).start()
    try:
        with pd.client() as c:
            c.create_repo("in")
            c.modify(commit_pb("in", branch="master"), {"/small": b"3", "/huge": b"40"})
            c.create_pipeline({"pipeline": {"name": "grow"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
                               "transform": {"cmd": ["sh", "-c",
                                             'n=$(cat /pfs/in/*); head -c ${n}M /dev/urandom > /pfs/out/$(ls /pfs/in)']},
                               "datum_tries": 1})
            [job] = c.jobs("grow")  # the pipeline's first job (its own commit set)
            first = job.job.id
            j = c.wait_job("grow", first, timeout=180)
            assert j.state == pps_pb2.JOB_FAILURE, pps_pb2.JobState.Name(j.state)
            bad = {d.datum.id: d.data[0].file.path for d in c.datums("grow", first) if d.state == pps_pb2.FAILED}
            assert "/huge" in bad.values()  # (/small may fail too while /huge's outputs fill the disk)
            # the datum whose outputs did not fit fails the job; or, when pachd's own bookkeeping
            # is the write that meets the full disk first, the job fails saying the disk is full
            assert j.reason in {f"datum {i} failed" for i in bad} or (
                j.reason.startswith("the disk of the ") and " is full" in j.reason), j.reason
            ci = c.inspect_commit("grow", first, wait=True, timeout=60)
            assert ci.HasField("finished") and ci.error == j.reason
            assert c.files("in", c.branch_head("in")) == {"/small": b"3", "/huge": b"40"}  # input intact
            # pachd keeps serving; with space again the next job runs
            pd.free_ballast()
            c.modify(commit_pb("in", branch="master"), {"/huge": b"5"})
            nxt = c.branch_head("in")
            j = c.wait_job("grow", nxt, timeout=180)
            assert j.state == pps_pb2.JOB_SUCCESS, j.reason
            out = c.files("grow", nxt)
            assert sorted(out) == ["/huge", "/small"] and len(out["/huge"]) == 5 * MiB and len(out["/small"]) == 3 * MiB
    finally:
        code = pd.stop()
    assert code == 0, pd.log_tail()
