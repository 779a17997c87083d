"""Regression (found by test_disk_full): a worker's results that pachd could not record
(CompleteTask failing, e.g. on a full metadata disk) were lost: the lease was released before
recording, the worker dropped the task after the error, and the job waited forever. Now the
lease is released only after the results were recorded; the worker gets a clear, retryable
status, and its retry delivers them (or, if it gives up, its next NextTask requeues them)."""
from __future__ import annotations

import grpc
import pytest

from pfs.errors import DiskFull
from pps.tasks import JobFeed, TaskBoard
from proto.worker_v1 import tasks_pb2 as wpb

KEY = ("default", "p")


class Aborted(Exception):
    pass


class Ctx:
    def is_active(self) -> bool:
        return True

    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted(details)


def _board(fail_times: int):
    got = []
    calls = {"n": 0}

    def on_results(results, logs):
        calls["n"] += 1
        if calls["n"] <= fail_times:
            raise DiskFull("the disk of the metadata store at /x is full; nothing was written")
        got.extend(r.datum_id for r in results)

    tb = TaskBoard()
    feed = JobFeed(job_id="j", output_commit="j", output_repo="p", output_branch="master", pipeline_version=1,
                   datum_timeout=0, datum_tries=3, on_results=on_results)
    tb.submit(KEY, feed, [wpb.Datum(id="d1")])
    task = tb.NextTask(wpb.NextTaskRequest(project="default", pipeline="p", worker_id="w0", max_datums=2), Ctx())
    assert [d.id for d in task.datums] == ["d1"]
    return tb, task, got


def _complete(tb, task):
    return tb.CompleteTask(wpb.CompleteTaskRequest(task_id=task.task_id, worker_id="w0", results=[
        wpb.DatumResult(datum_id="d1", outcome=wpb.SUCCESS)]),
        Ctx())


def test_results_that_could_not_be_recorded_are_delivered_by_the_retry():
    tb, task, got = _board(fail_times=1)
    ctx = Ctx()
    with pytest.raises(Aborted):
        tb.CompleteTask(wpb.CompleteTaskRequest(task_id=task.task_id, worker_id="w0", results=[
            wpb.DatumResult(datum_id="d1", outcome=wpb.SUCCESS)]), ctx)
    assert ctx.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "metadata store at /x is full" in ctx.details
    assert [w[0] for w in tb.worker_status(KEY)] == ["w0"]  # still leased, nothing requeued or lost
    assert tb.queued(KEY) == 0
    _complete(tb, task)
    assert got == ["d1"] and tb.worker_status(KEY) == [] and tb.queued(KEY) == 0


def test_a_worker_that_gave_up_gets_its_datums_requeued_on_its_next_poll():
    tb, task, got = _board(fail_times=10)
    with pytest.raises(Aborted):
        _complete(tb, task)
    again = tb.NextTask(wpb.NextTaskRequest(project="default", pipeline="p", worker_id="w0", max_datums=2), Ctx())
    assert [d.id for d in again.datums] == ["d1"] and got == []
