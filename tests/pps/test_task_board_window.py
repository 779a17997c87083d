"""The task board reads a job's datums from an iterator a window at a time (pps.tasks.WINDOW):
a big job never has all its task messages in memory, and every datum is still handed out
exactly once, in order, with `queued` counting the unread ones."""
from __future__ import annotations

from pps import tasks
from pps.tasks import JobFeed, TaskBoard
from proto.worker_v1 import tasks_pb2 as wpb

KEY = ("default", "p")


class Ctx:
    def is_active(self) -> bool:
        return True


def test_datums_are_read_a_window_at_a_time_and_each_is_handed_out_once():
    n = 3 * tasks.WINDOW + 7
    made = []

    def datums():
        for i in range(n):
            made.append(i)
            yield wpb.Datum(id=f"d{i:06d}")

    done = []
    tb = TaskBoard()
    feed = JobFeed(job_id="j", output_commit="j", output_repo="p", output_branch="master", pipeline_version=1,
                   datum_timeout=0, datum_tries=3, on_results=lambda results, logs: None)
    tb.submit(KEY, feed, datums(), n)
    assert len(made) == tasks.WINDOW, "only one window is read up front"
    assert tb.queued(KEY) == n
    while True:
        t = tb.NextTask(wpb.NextTaskRequest(project="default", pipeline="p", worker_id="w0"), Ctx())
        if not t.datums:
            break
        assert len(made) - len(done) <= tasks.WINDOW + tasks.MAX_TASK_DATUMS
        done += [d.id for d in t.datums]
        tb.CompleteTask(wpb.CompleteTaskRequest(task_id=t.task_id, worker_id="w0", results=[
            wpb.DatumResult(datum_id=d.id, outcome=wpb.SUCCESS) for d in t.datums]), Ctx())
    assert done == [f"d{i:06d}" for i in range(n)]
    assert tb.queued(KEY) == 0


def test_a_retired_job_stops_reading_its_datums():
    made = []

    def datums():
        for i in range(10 * tasks.WINDOW):
            made.append(i)
            yield wpb.Datum(id=str(i))

    tb = TaskBoard()
    feed = JobFeed(job_id="j", output_commit="j", output_repo="p", output_branch="master", pipeline_version=1,
                   datum_timeout=0, datum_tries=3, on_results=lambda results, logs: None)
    tb.submit(KEY, feed, datums(), 10 * tasks.WINDOW)
    tb.retire_job(KEY, "j")
    assert tb.queued(KEY) == 0
    t = tb.NextTask(wpb.NextTaskRequest(project="default", pipeline="p", worker_id="w0"), Ctx())
    assert not t.datums and len(made) == tasks.WINDOW
