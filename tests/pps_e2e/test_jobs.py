"""Jobs end to end beyond the happy path: back-to-back commits, StopJob, stopping a pipeline
mid-job, job sets, ListJob by input commit, DeleteJob, an empty input, parallel workers."""
from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from proto.pps_v2 import pps_pb2
from tests.pps_e2e.conftest import WAIT, E2E, pfs_in, start_pachd

# user code that blocks until the repo given as argument has a file (a flag set by the test
# through pachd, which user code reaches with the SDK's in-cluster client)
WAIT_PY = """\
import sys, time
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs
c = Client.new_in_cluster()
print("waiting for", sys.argv[1], flush=True)
while True:
    try:
        if list(c.pfs.list_file(file=pfs.File.from_uri(sys.argv[1] + "@master:/"))):
            break
    except Exception:
        pass
    time.sleep(0.05)
print("go", flush=True)
"""


@pytest.fixture
def flag(pach):
    """(image, flag repo, set()): user code running `python3 /wait.py <repo>` blocks until set()."""
    img = pach.images_dir / f"waiter{pach.tag}"
    img.mkdir()
    (img / "wait.py").write_text(WAIT_PY)
    repo = pach.repo("flag")
    return f"waiter{pach.tag}:1", repo, lambda: pach.put(repo, {"/go": "1"})


def _wait_log(pach, pipeline, job_id, text):
    req = pps_pb2.GetLogsRequest(job=pps_pb2.Job(pipeline=pps_pb2.Pipeline(name=pipeline), id=job_id), follow=True)
    stream = pach.pps.GetLogs(req, timeout=WAIT)
    for m in stream:
        if m.message.startswith(text):
            stream.cancel()
            return m
    raise AssertionError(f"log line {text!r} never came")


def _still_running(pach, pipeline, job_id, seconds=1.5):
    req = pps_pb2.InspectJobRequest(job=pps_pb2.Job(pipeline=pps_pb2.Pipeline(name=pipeline), id=job_id), wait=True)
    with pytest.raises(grpc.RpcError) as e:
        pach.pps.InspectJob(req, timeout=seconds)
    return e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_back_to_back_commits_run_in_order(pach):
    src = pach.repo("b2b")
    p = pach.pipeline("b2b", pfs_in(src, name="in"), sh="for f in /pfs/in/*; do cp $f /pfs/out/; done")
    ids = [pach.put(src, {f"/f{i}": str(i)}) for i in range(4)]
    jobs = [pach.job(p, i) for i in ids]
    assert [j.state for j in jobs] == [pps_pb2.JOB_SUCCESS] * 4, [j.reason for j in jobs]
    assert [(j.data_total, j.data_processed, j.data_skipped) for j in jobs] == [
        (1, 1, 0), (2, 1, 1), (3, 1, 2), (4, 1, 3)]
    assert [j.started.ToNanoseconds() >= prev.finished.ToNanoseconds()
            for prev, j in zip(jobs, jobs[1:])] == [True] * 3  # one at a time, in commit order
    assert pach.files(p) == {f"/f{i}": str(i).encode() for i in range(4)}
    # ListJob by input commit finds exactly the job that read it
    listed = list(pach.client.pps.list_job(pipeline=pps.Pipeline(name=p),
                                           input_commit=[pfs.Commit.from_uri(f"{src}@{ids[2]}")]))
    assert [j.job.id for j in listed] == [ids[2]]


def test_stop_job_kills_it_and_the_next_job_builds_on_the_last_good_one(pach, flag):
    image, flag_repo, go = flag
    src = pach.repo("stopjob", {"/a": "a"})
    p = pach.pipeline("stopjob", pfs_in(src, name="in"), sh=f"python3 /wait.py {flag_repo} && cp /pfs/in/* /pfs/out/",
                      transform={"image": image})
    go()
    first = pach.first_job(p)
    assert first.state == pps_pb2.JOB_SUCCESS, first.reason
    pach.client.pfs.delete_repo(repo=pfs.Repo(name=flag_repo), force=True)  # user code blocks again
    pach.client.pfs.create_repo(repo=pfs.Repo(name=flag_repo))
    cid = pach.put(src, {"/b": "b"})
    _wait_log(pach, p, cid, "waiting for")
    pach.client.pps.stop_job(job=pps.Job(pipeline=pps.Pipeline(name=p), id=cid), reason="enough")
    j = pach.job(p, cid)
    assert (j.state, j.reason) == (pps_pb2.JOB_KILLED, "enough")
    assert pach.commit(p, cid).error == "enough"
    go()
    cid2 = pach.put(src, {"/c": "c"})
    j = pach.job(p, cid2)
    # the killed job is not a base: /b is processed again, /a skipped from the first job
    assert (j.state, j.data_processed, j.data_skipped) == (pps_pb2.JOB_SUCCESS, 2, 1)
    assert pach.files(p, cid2) == {"/a": b"a", "/b": b"b", "/c": b"c"}


def test_stopping_a_pipeline_mid_job_pauses_the_job(pach, flag):
    image, flag_repo, go = flag
    src = pach.repo("midstop", {"/a": "a"})
    p = pach.pipeline("midstop", pfs_in(src, name="in"), sh=f"python3 /wait.py {flag_repo} && cp /pfs/in/* /pfs/out/",
                      transform={"image": image})
    [jid] = pach.job_ids(p)
    _wait_log(pach, p, jid, "waiting for")
    pach.client.pps.stop_pipeline(pipeline=pps.Pipeline(name=p))
    go()
    assert _still_running(pach, p, jid)  # the flag is set, but the pipeline is stopped
    assert pach.job(p, jid, wait=False).state not in (pps_pb2.JOB_SUCCESS, pps_pb2.JOB_FAILURE,
                                                      pps_pb2.JOB_KILLED)
    pach.client.pps.start_pipeline(pipeline=pps.Pipeline(name=p))
    j = pach.job(p, jid)
    assert (j.state, j.data_processed) == (pps_pb2.JOB_SUCCESS, 1), j.reason
    assert pach.files(p, jid) == {"/a": b"a"}


def test_updating_a_pipeline_kills_its_unfinished_jobs(pach, flag):
    image, flag_repo, go = flag
    src = pach.repo("updkill", {"/a": "a"})
    p = pach.pipeline("updkill", pfs_in(src, name="in"), transform={"image": image},
                      sh=f"python3 /wait.py {flag_repo} && echo v1 > /pfs/out/$(ls /pfs/in)")
    [old] = pach.job_ids(p)
    _wait_log(pach, p, old, "waiting for")
    pach.pipeline(p, pfs_in(src, name="in"), update=True, transform={"image": image},
                  sh=f"python3 /wait.py {flag_repo} && echo v2 > /pfs/out/$(ls /pfs/in)")
    j = pach.job(p, old)
    assert j.state == pps_pb2.JOB_KILLED
    assert j.reason == "all jobs killed because pipeline was updated for user unknown_username"
    assert pach.commit(p, old).error == j.reason
    go()
    new = pach.spec_commit(p)
    j = pach.job(p, new)
    assert (j.state, j.pipeline_version, j.data_processed) == (pps_pb2.JOB_SUCCESS, 2, 1), j.reason
    assert pach.files(p, new) == {"/a": b"v2\n"}


def test_job_set_across_a_dag_and_delete_job(pach):
    src = pach.repo("jset", {"/a": "a"})
    a = pach.pipeline("jsa", pfs_in(src, name="in"), sh="cp /pfs/in/* /pfs/out/")
    b = pach.pipeline("jsb", pfs_in(src, name="in"), sh="cp /pfs/in/* /pfs/out/")
    c = pach.pipeline("jsc", {"cross": [pfs_in(a, "/", name="a"), pfs_in(b, "/", name="b")]},
                      sh="cat /pfs/a/* /pfs/b/* > /pfs/out/ab")
    cid = pach.put(src, {"/b": "b"})
    jobs = list(pach.client.pps.inspect_job_set(job_set=pps.JobSet(id=cid), wait=True))
    assert sorted(j.job.pipeline.name for j in jobs) == sorted([a, b, c])
    assert all(j.state == pps.JobState.JOB_SUCCESS for j in jobs), [j.reason for j in jobs]
    # the diamond's bottom ran once, on both branches' outputs of the same commit set
    assert pach.files(c, cid) == {"/ab": b"abab"}
    ci = pach.commit(c, cid)
    assert {(p.repo.name, p.id) for p in ci.direct_provenance if p.repo.type == "user"} == {(a, cid), (b, cid)}
    pach.client.pps.delete_job(job=pps.Job(pipeline=pps.Pipeline(name=c), id=cid))
    with pytest.raises(grpc.RpcError) as e:
        pach.job(c, cid, wait=False)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert cid not in pach.job_ids(c)


def test_pipeline_on_an_empty_repo_runs_a_zero_datum_job(pach):
    src = pach.repo("empty")
    p = pach.pipeline("empty", pfs_in(src, name="in"), sh="cp /pfs/in/* /pfs/out/")
    j = pach.first_job(p)
    assert (j.state, j.data_total) == (pps_pb2.JOB_SUCCESS, 0)
    assert pach.files(p, j.job.id) == {}
    cid = pach.put(src, {"/x": "x"})
    assert pach.job(p, cid).state == pps_pb2.JOB_SUCCESS
    assert pach.files(p, cid) == {"/x": b"x"}


def test_parallel_workers_share_the_datums(pach):
    src = pach.repo("par", {f"/f{i:02d}": str(i) for i in range(40)})
    p = pach.pipeline("par", pfs_in(src, name="in"), parallelism=2,
                      sh='echo "$PPS_POD_NAME"; sleep 0.05; for f in /pfs/in/*; do cp $f /pfs/out/; done')
    j = pach.first_job(p)
    assert (j.state, j.data_processed) == (pps_pb2.JOB_SUCCESS, 40)
    assert len(pach.files(p, j.job.id)) == 40
    workers = {m.worker_id for m in pach.logs(p, j.job.id)}
    assert len(workers) == 2, workers
    info = pach.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
    assert info.parallelism == 2 and info.details.workers_requested == 2


def test_a_job_interrupted_by_a_pachd_restart_resumes(tmp_path, images_dir, pachd):
    """pachd stops mid-job (its workers go with it); the next pachd on the same data reruns
    the job, which neither ends KILLED nor double-counts its datums."""
    first = start_pachd(tmp_path / "pachd", images_dir)
    pach = E2E(first, images_dir)
    try:
        img = images_dir / f"waiter{pach.tag}"
        img.mkdir()
        (img / "wait.py").write_text(WAIT_PY)
        flag_repo = pach.repo("flag")
        src = pach.repo("restart", {"/a": "a", "/b": "b"})
        p = pach.pipeline("restart", pfs_in(src, name="in"), transform={"image": f"waiter{pach.tag}:1"},
                          sh=f'[ $(basename /pfs/in/*) = b ] && python3 /wait.py {flag_repo}; cp /pfs/in/* /pfs/out/')
        [jid] = pach.job_ids(p)
        _wait_log(pach, p, jid, "waiting for")
        assert pach.job(p, jid, wait=False).data_processed == 1  # /a done, /b blocked
    finally:
        pach.pipelines.clear()  # keep the pipeline for the next pachd
        pach.close()
        first.stop(grace=0.5)
    second = start_pachd(tmp_path / "pachd", images_dir)
    pach2 = E2E(second, images_dir)
    try:
        pach2.pipelines.append(p)
        pach2.put(flag_repo, {"/go": "1"})
        j = pach2.job(p, jid)
        assert (j.state, j.restart, j.data_total, j.data_processed, j.data_failed) == (
            pps_pb2.JOB_SUCCESS, 1, 2, 2, 0), j.reason
        assert pach2.files(p, jid) == {"/a": b"a", "/b": b"b"}
    finally:
        pach2.close()
        second.stop(grace=0.5)
