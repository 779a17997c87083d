"""Failures end to end: retries and a failed job (with the error cascading downstream),
RestartDatum, err_cmd, accept_return_code, datum_timeout, job_timeout and duplicate outputs."""
from __future__ import annotations

import grpc
import pytest

from proto.pps_v2 import pps_pb2
from tests.pps_e2e.conftest import WAIT, pfs_in

# fails on any file named bad*; says which attempt it is (the sandbox's /tmp lives as long as
# the worker, so a counter there survives retries)
FLAKY = ('n=$(basename /pfs/in/*); echo x >> /tmp/tries-$PACH_DATUM_ID; '
         'echo "attempt $(wc -l < /tmp/tries-$PACH_DATUM_ID) on $n"; '
         'case $n in bad*) echo "cannot process $n" >&2; exit 1;; esac; cp /pfs/in/$n /pfs/out/')


def _datum_for(pach, pipeline, job_id, path):
    [d] = [d for d in pach.datums(pipeline, job_id) if [f.file.path for f in d.data] == [path]]
    return d


def test_failing_datum_with_retries_fails_job_and_downstream_is_unrunnable(pach):
    src = pach.repo("fail", {"/good": "g"})
    p = pach.pipeline("flaky", pfs_in(src, name="in"), sh=FLAKY, datum_tries=2)
    down = pach.pipeline("after", pfs_in(p, name="in"), sh="cp /pfs/in/* /pfs/out/")
    last = pach.pipeline("last", pfs_in(down), sh="cp /pfs/*/* /pfs/out/")
    assert pach.first_job(p).state == pps_pb2.JOB_SUCCESS

    cid = pach.put(src, {"/bad": "b"})
    j = pach.job(p, cid)
    bad = _datum_for(pach, p, cid, "/bad")
    assert j.state == pps_pb2.JOB_FAILURE
    assert j.reason == f"datum {bad.datum.id} failed"
    assert (j.data_total, j.data_failed, j.data_skipped, j.data_processed) == (2, 1, 1, 0)
    assert bad.state == pps_pb2.FAILED
    assert _datum_for(pach, p, cid, "/good").state == pps_pb2.SKIPPED
    # the output commit finished with the job's reason as its error
    ci = pach.commit(p, cid)
    assert ci.error == j.reason and ci.HasField("finished")
    # two attempts, both logged with the datum's id; stderr kept too
    lines = [m.message for m in pach.logs(p, cid, datum_id=bad.datum.id)]
    assert [ln for ln in lines if ln.startswith("attempt")] == ["attempt 1 on bad", "attempt 2 on bad"]
    assert lines.count("cannot process bad") == 2
    # the downstream job of the same commit set cannot run
    dj = pach.job(down, cid)
    assert dj.state == pps_pb2.JOB_UNRUNNABLE
    # Pachyderm names the failed INPUT (here "in"), not the repo
    assert dj.reason == "unrunnable because the following upstream pipelines failed: in"
    assert pach.commit(down, cid).error == dj.reason
    lj = pach.job(last, cid)  # and the error cascades down the DAG
    assert (lj.state, lj.reason) == (
        pps_pb2.JOB_UNRUNNABLE, f"unrunnable because the following upstream pipelines failed: {down}")

    # fixing the input: the next job builds on the last good one, the downstream runs again
    cid = pach.put(src, {}, delete=["/bad"])
    j = pach.job(p, cid)
    assert (j.state, j.data_total, j.data_skipped, j.data_processed) == (pps_pb2.JOB_SUCCESS, 1, 1, 0)
    assert pach.files(p, cid) == {"/good": b"g"}
    assert pach.job(down, cid).state == pps_pb2.JOB_SUCCESS
    assert pach.files(down, cid) == {"/good": b"g"}
    assert pach.job(last, cid).state == pps_pb2.JOB_SUCCESS


def test_restart_datum_kills_the_running_attempt_and_retries(pach):
    src = pach.repo("restart", {"/a-stuck": "s", "/b-slow": "b"})
    # attempts 1 and 2 on /a-stuck announce themselves and hang; attempt 3 succeeds.
    # /b-slow, queued behind it, takes long enough for a heartbeat to reach its worker
    p = pach.pipeline("restart", pfs_in(src, name="in"), sh=(
        'n=$(basename /pfs/in/*); echo x >> /tmp/tries-$PACH_DATUM_ID; t=$(wc -l < /tmp/tries-$PACH_DATUM_ID); '
        'echo "attempt $t on $n"; '
        'if [ $n = a-stuck ] && [ $t -lt 3 ]; then echo "hanging $t"; exec sleep 600; fi; '
        '[ $n = b-slow ] && sleep 1.5; echo $t > /pfs/out/$n'))
    [jid] = pach.job_ids(p)
    # wait (on the log stream, not a clock) until a stuck attempt is running, then restart it
    req = pps_pb2.GetLogsRequest(job=pps_pb2.Job(pipeline=pps_pb2.Pipeline(name=p), id=jid), follow=True)
    stream = pach.pps.GetLogs(req, timeout=WAIT)
    hangs = 0
    for m in stream:
        if m.message.startswith("hanging"):
            hangs += 1
            assert m.message == f"hanging {hangs}"
            assert pach.job(p, jid, wait=False).state == pps_pb2.JOB_RUNNING
            job = pach.client.pps.inspect_job(job=_sdk_job(p, jid)).job
            if hangs == 1:  # by input path
                pach.client.pps.restart_datum(job=job, data_filters=["/a-stuck"])
            else:  # every running datum: only /a-stuck runs, queued /b-slow is left alone
                pach.client.pps.restart_datum(job=job)
                break
    stream.cancel()
    j = pach.job(p, jid)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_processed, j.data_failed) == (2, 0)
    assert pach.files(p, jid) == {"/a-stuck": b"3\n", "/b-slow": b"1\n"}  # attempt numbers
    stuck = _datum_for(pach, p, jid, "/a-stuck")
    lines = [m.message for m in pach.logs(p, jid, datum_id=stuck.datum.id, user_only=False)]
    assert [ln for ln in lines if ln.startswith("attempt")] == [
        "attempt 1 on a-stuck", "attempt 2 on a-stuck", "attempt 3 on a-stuck"]
    assert any("retrying datum (attempt 3" in ln for ln in lines)
    slow = _datum_for(pach, p, jid, "/b-slow")
    assert [m.message for m in pach.logs(p, jid, datum_id=slow.datum.id)] == ["attempt 1 on b-slow"]


def _sdk_job(pipeline, job_id):
    from pachyderm_sdk.api import pps
    return pps.Job(pipeline=pps.Pipeline(name=pipeline), id=job_id)


def test_err_cmd_recovers_a_failed_datum(pach):
    src = pach.repo("rec", {"/good": "g", "/bad": "b"})
    p = pach.pipeline("recover", pfs_in(src, name="in"), sh=FLAKY, datum_tries=1,
                      transform={"err_cmd": ["sh", "-c", 'echo "recovering $PACH_DATUM_ID"']})
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_total, j.data_processed, j.data_recovered, j.data_failed) == (2, 1, 1, 0)
    bad = _datum_for(pach, p, j.job.id, "/bad")
    assert bad.state == pps_pb2.RECOVERED
    assert pach.datums(p, j.job.id, states=[pps_pb2.RECOVERED])[0].datum.id == bad.datum.id
    assert pach.files(p, j.job.id) == {"/good": b"g"}  # a recovered datum outputs nothing
    assert f"recovering {bad.datum.id}" in [m.message for m in pach.logs(p, j.job.id, datum_id=bad.datum.id)]
    # a recovered datum is not skipped next time
    cid = pach.put(src, {"/more": "m"})
    j = pach.job(p, cid)
    assert (j.state, j.data_processed, j.data_recovered, j.data_skipped) == (pps_pb2.JOB_SUCCESS, 1, 1, 1)


def test_accept_return_code(pach):
    src = pach.repo("arc", {"/three": "3", "/four": "4"})
    p = pach.pipeline("arc", pfs_in(src, name="in"), datum_tries=1,
                      sh='n=$(cat /pfs/in/*); echo out > /pfs/out/$n; exit $n',
                      transform={"accept_return_code": [3]})
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_FAILURE
    four = _datum_for(pach, p, j.job.id, "/four")
    assert j.reason == f"datum {four.datum.id} failed"
    assert four.state == pps_pb2.FAILED
    assert _datum_for(pach, p, j.job.id, "/three").state == pps_pb2.SUCCESS
    assert (j.data_processed, j.data_failed) == (1, 1)


def test_datum_timeout_fails_the_slow_datum(pach):
    src = pach.repo("dto", {"/fast": "f", "/slow": "s"})
    p = pach.pipeline("dto", pfs_in(src, name="in"), datum_tries=1, datum_timeout="1s",
                      sh='n=$(basename /pfs/in/*); [ $n = slow ] && sleep 600; cp /pfs/in/$n /pfs/out/')
    j = pach.first_job(p)
    slow = _datum_for(pach, p, j.job.id, "/slow")
    assert j.state == pps_pb2.JOB_FAILURE
    assert j.reason == f"datum {slow.datum.id} failed"
    assert slow.state == pps_pb2.FAILED
    assert _datum_for(pach, p, j.job.id, "/fast").state == pps_pb2.SUCCESS
    worker_lines = [m.message for m in pach.logs(p, j.job.id, datum_id=slow.datum.id, user_only=False)]
    assert any("timed out" in ln for ln in worker_lines), worker_lines
    assert pach.files(p, j.job.id) == {"/fast": b"f"}


def test_job_timeout_kills_the_job(pach):
    src = pach.repo("jto", {"/a": "a"})
    p = pach.pipeline("jto", pfs_in(src, name="in"), job_timeout="2s", sh="exec sleep 600")
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_KILLED
    assert j.reason == " jobtimed out"  # Pachyderm's text, verbatim
    ci = pach.commit(p, j.job.id)
    assert ci.error == j.reason
    assert 2 <= j.finished.seconds + j.finished.nanos / 1e9 - (j.started.seconds + j.started.nanos / 1e9) < 10


def test_duplicate_output_paths_fail_the_job(pach):
    src = pach.repo("dup", {"/a": "a", "/b": "b"})
    p = pach.pipeline("dup", pfs_in(src, name="in"), sh="cat /pfs/in/* > /pfs/out/same")
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_FAILURE
    ids = sorted(d.datum.id for d in pach.datums(p, j.job.id))
    assert j.reason.startswith("duplicate path output by different datums (/same from ")
    assert sorted(j.reason.rstrip(")").replace(" and ", " from ").split(" from ")[1::2]) == ids
    assert pach.commit(p, j.job.id).error == j.reason


def test_a_new_datum_colliding_with_a_skipped_datums_output_fails_the_job(pach):
    src = pach.repo("coll2", {"/a": "same"})
    q = pach.pipeline("coll2", pfs_in(src, name="in"), sh="cp /pfs/in/* /pfs/out/$(cat /pfs/in/*)")
    assert pach.first_job(q).state == pps_pb2.JOB_SUCCESS
    cid = pach.put(src, {"/b": "same"})
    j = pach.job(q, cid)
    assert (j.state, j.data_skipped, j.data_processed) == (pps_pb2.JOB_FAILURE, 1, 1)
    assert j.reason.startswith("duplicate path output by different datums (/same from ")
    assert pach.commit(q, cid).error == j.reason


def test_a_file_directory_collision_between_datums_fails_the_job(pach):
    src = pach.repo("coll", {"/f": "x", "/g": "x/y"})
    p = pach.pipeline("coll", pfs_in(src, name="in"), datum_tries=1,  # /f writes /x, /g /x/y
                      sh='t=/pfs/out/$(cat /pfs/in/*); mkdir -p $(dirname $t); echo > $t')
    j = pach.first_job(p)
    assert (j.state, j.reason) == (pps_pb2.JOB_FAILURE, "file / directory path collision (/x)")


def test_unknown_job_is_not_found(pach):
    src = pach.repo("nf", {"/a": "a"})
    p = pach.pipeline("nf", pfs_in(src), sh="true")
    try:
        pach.job(p, "0" * 32)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("expected NOT_FOUND")
