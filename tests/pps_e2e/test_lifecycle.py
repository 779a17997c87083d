"""Pipeline lifecycle end to end: stop/start, delete (with and without keep_repo), cron."""
from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from proto.pps_v2 import pps_pb2
from tests.pps_e2e.conftest import WAIT, pfs_in

CP = "cp /pfs/in/* /pfs/out/"


def _not_found(fn, **kw) -> str:
    with pytest.raises(grpc.RpcError) as e:
        fn(**kw)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()
    return e.value.details()


def test_stop_and_start_pipeline(pach):
    src = pach.repo("ss", {"/a": "a"})
    p = pach.pipeline("ss", pfs_in(src, name="in"), sh=CP)
    assert pach.first_job(p).state == pps_pb2.JOB_SUCCESS
    pach.client.pps.stop_pipeline(pipeline=pps.Pipeline(name=p))
    info = pach.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p))
    assert info.stopped and info.state == pps.PipelineState.PIPELINE_PAUSED

    cid = pach.put(src, {"/b": "b"})
    # while stopped the job exists but does not run: waiting for it runs out of time
    req = pps_pb2.InspectJobRequest(job=pps_pb2.Job(pipeline=pps_pb2.Pipeline(name=p), id=cid), wait=True)
    with pytest.raises(grpc.RpcError) as e:
        pach.pps.InspectJob(req, timeout=1.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    j = pach.job(p, cid, wait=False)
    assert j.state in (pps_pb2.JOB_CREATED, pps_pb2.JOB_STARTING)
    assert not pach.commit(p, cid, wait=False).HasField("finished")

    pach.client.pps.start_pipeline(pipeline=pps.Pipeline(name=p))
    info = pach.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p))
    assert not info.stopped and info.state == pps.PipelineState.PIPELINE_RUNNING
    j = pach.job(p, cid)
    assert (j.state, j.data_processed, j.data_skipped) == (pps_pb2.JOB_SUCCESS, 1, 1)
    assert pach.files(p, cid) == {"/a": b"a", "/b": b"b"}


def test_delete_pipeline_removes_output_and_spec_repos(pach):
    src = pach.repo("del", {"/a": "a"})
    p = pach.pipeline("del", pfs_in(src, name="in"), sh=CP)
    assert pach.first_job(p).state == pps_pb2.JOB_SUCCESS
    assert pach.client.pfs.repo_exists(pfs.Repo(name=p, type="spec"))
    pach.client.pps.delete_pipeline(pipeline=pps.Pipeline(name=p))
    _not_found(pach.client.pps.inspect_pipeline, pipeline=pps.Pipeline(name=p))
    assert not pach.client.pfs.repo_exists(pfs.Repo(name=p))
    assert not pach.client.pfs.repo_exists(pfs.Repo(name=p, type="spec"))
    assert p not in [pi.pipeline.name for pi in pach.client.pps.list_pipeline()]
    assert pach.files(src) == {"/a": b"a"}  # the input is untouched
    # a new commit to the input starts nothing and the name is free again
    pach.put(src, {"/b": "b"})
    q = pach.pipeline(p, pfs_in(src, name="in"), sh=CP, update=False)
    j = pach.first_job(q)
    assert (j.state, j.data_processed) == (pps_pb2.JOB_SUCCESS, 2)
    assert len(pach.job_ids(q)) == 1  # no job of the deleted pipeline is listed


def test_delete_pipeline_keep_repo_keeps_the_data(pach):
    src = pach.repo("keep", {"/a": "a"})
    p = pach.pipeline("keep", pfs_in(src, name="in"), sh=CP)
    assert pach.first_job(p).state == pps_pb2.JOB_SUCCESS
    pach.client.pps.delete_pipeline(pipeline=pps.Pipeline(name=p), keep_repo=True)
    _not_found(pach.client.pps.inspect_pipeline, pipeline=pps.Pipeline(name=p))
    assert not pach.client.pfs.repo_exists(pfs.Repo(name=p, type="spec"))
    assert pach.files(p) == {"/a": b"a"}
    # the kept repo is a plain input repo now: no provenance, writable
    b = pach.client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{p}@master"))
    assert list(b.direct_provenance) == []
    pach.put(p, {"/mine": "m"})
    assert pach.files(p) == {"/a": b"a", "/mine": b"m"}


def _subscribe_jobs(pach, pipeline, n):
    """The first n jobs of `pipeline` to finish, as SubscribeJob streams them."""
    req = pps_pb2.SubscribeJobRequest(pipeline=pps_pb2.Pipeline(name=pipeline))
    stream = pach.pps.SubscribeJob(req, timeout=WAIT)
    out = []
    for j in stream:
        out.append(j)
        if len(out) == n:
            break
    stream.cancel()
    return out


def _ticks(pach, repo, commit="master"):
    return sorted(pach.files(repo, commit))


def test_cron_every_2s_appends_and_overwrites(pach):
    append = pach.pipeline("cron", {"cron": {"name": "tick", "spec": "@every 2s"}},
                           sh="for f in /pfs/tick/*; do echo ran > /pfs/out/$(basename $f); done")
    over = pach.pipeline("crono", {"cron": {"name": "tick", "spec": "@every 2s", "overwrite": True}},
                         sh="for f in /pfs/tick/*; do echo ran > /pfs/out/$(basename $f); done")
    for p in (append, over):
        # the creation job (no ticks yet) and then two ticks
        jobs = _subscribe_jobs(pach, p, 3)
        assert [j.state for j in jobs] == [pps_pb2.JOB_SUCCESS] * 3, [j.reason for j in jobs]
        assert [j.data_processed for j in jobs] == [0, 1, 1]
        tick_repo = f"{p}_tick"
        last = jobs[-1].job.id
        # each tick is a commit of the cron repo in the job's commit set
        assert pach.commit(tick_repo, last).commit.id == last
        ticks = _ticks(pach, tick_repo, last)
        out = sorted(pach.files(p, last))
        if p == append:
            assert len(ticks) == 2 and out == ticks
            assert jobs[-1].data_skipped == 1  # the older tick is skipped
        else:
            assert len(ticks) == 1 and out == ticks  # only the latest tick, its output only
            assert jobs[-1].data_skipped == 0
        assert all(t.startswith("/20") and t.endswith("Z") for t in ticks)


def test_run_cron_forces_a_tick(pach):
    p = pach.pipeline("runcron", {"cron": {"name": "t", "spec": "@every 1h"}},
                      sh="ls /pfs/t > /pfs/out/seen")
    first = pach.first_job(p)
    assert (first.state, first.data_total) == (pps_pb2.JOB_SUCCESS, 0)
    pach.client.pps.run_cron(pipeline=pps.Pipeline(name=p))
    [second] = [i for i in pach.job_ids(p) if i != first.job.id]
    j = pach.job(p, second)
    assert (j.state, j.data_processed) == (pps_pb2.JOB_SUCCESS, 1)
    [tick] = _ticks(pach, f"{p}_t", second)
    assert pach.files(p, second) == {"/seen": tick.lstrip("/").encode() + b"\n"}
