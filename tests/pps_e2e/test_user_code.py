"""What user code sees and leaves behind, end to end: environment variables, the /pfs layout,
logs (per datum, job, pipeline, master), ListDatum/InspectDatum, and datum batching with the
SDK's batch_all_datums in a local image."""
from __future__ import annotations

import json

from pachyderm_sdk.api import pps

from proto.pps_v2 import pps_pb2
from tests.pps_e2e.conftest import pfs_in

# runs with the project's venv python (first on PATH inside the sandbox)
SHOW_ENV = r"""
import json, os
names = ["PACH_JOB_ID", "PACH_DATUM_ID", "PACH_OUTPUT_COMMIT_ID", "left", "left_COMMIT",
         "right", "right_COMMIT", "whole", "FOO", "PPS_PIPELINE_NAME"]
env = {k: os.environ.get(k) for k in names}
files = sorted(os.path.join(d, f) for d, _, fs in os.walk("/pfs", followlinks=True) for f in fs
               if not d.startswith(("/pfs/.scratch", "/pfs/out")) and not f.startswith("."))
dirs = sorted(e for e in os.listdir("/pfs") if not e.startswith("."))
out_empty = os.listdir("/pfs/out") == []
with open("/pfs/out/" + os.environ["PACH_DATUM_ID"] + ".json", "w") as f:
    json.dump({"env": env, "files": files, "dirs": dirs, "out_empty": out_empty,
               "dotenv": open("/pfs/.env").read()}, f)
"""


def test_environment_and_pfs_layout(pach):
    left = pach.repo("envl", {"/x": "x", "/y": "y"})
    right = pach.repo("envr", {"/dir/p": "p", "/dir/q": "q", "/other": "o"})
    whole = pach.repo("envw", {"/top": "t", "/d/e/deep": "d"})
    p = pach.pipeline("env", {"cross": [pfs_in(left, "/*", name="left"), pfs_in(right, "/dir/*", name="right"),
                                        pfs_in(whole, "/", name="whole")]},
                      cmd=["python3", "-c", SHOW_ENV], transform={"env": {"FOO": "bar"}})
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    lc = pach.client.pfs.inspect_branch(branch=_branch(left)).head.id
    rc = pach.client.pfs.inspect_branch(branch=_branch(right)).head.id
    datums = {d.datum.id: d for d in pach.datums(p, j.job.id)}
    out = pach.files(p, j.job.id)
    assert sorted(out) == sorted(f"/{i}.json" for i in datums) and len(out) == 4
    for did, d in datums.items():
        seen = json.loads(out[f"/{did}.json"])
        lpath, rpath, wpath = [f.file.path for f in d.data]
        assert wpath == "/"
        assert seen["env"] == {
            "PACH_JOB_ID": j.job.id, "PACH_DATUM_ID": did, "PACH_OUTPUT_COMMIT_ID": j.job.id,
            "left": f"/pfs/left{lpath}", "left_COMMIT": lc,
            "right": f"/pfs/right{rpath}", "right_COMMIT": rc,
            "whole": "/pfs/whole",  # glob "/": the input's directory itself
            "FOO": "bar", "PPS_PIPELINE_NAME": p}
        # only this datum's files are present, at their full repo paths
        assert seen["files"] == sorted([f"/pfs/left{lpath}", f"/pfs/right{rpath}",
                                        "/pfs/whole/top", "/pfs/whole/d/e/deep"])
        assert seen["dirs"] == ["left", "out", "right", "whole"]
        assert seen["out_empty"]
        assert f"PACH_DATUM_ID={did}\n" in seen["dotenv"]


def _branch(repo):
    from pachyderm_sdk.api import pfs
    return pfs.Branch.from_uri(f"{repo}@master")


def test_logs_per_datum_job_pipeline_and_master(pach):
    src = pach.repo("logs", {"/a": "A", "/b": "B"})
    p = pach.pipeline("logs", pfs_in(src, name="in"),
                      sh='n=$(basename /pfs/in/*); echo "out $n"; echo "err $n" >&2; cp /pfs/in/$n /pfs/out/')
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    ids = {[f.file.path for f in d.data][0]: d.datum.id for d in pach.datums(p, j.job.id)}
    # by pipeline, through the SDK
    msgs = [m for m in pach.client.pps.get_logs(pipeline=pps.Pipeline(name=p)) if m.user]
    assert sorted(m.message for m in msgs) == ["err a", "err b", "out a", "out b"]
    assert {(m.message, m.datum_id) for m in msgs} == {
        ("out a", ids["/a"]), ("err a", ids["/a"]), ("out b", ids["/b"]), ("err b", ids["/b"])}
    assert {(m.pipeline_name, m.job_id) for m in msgs} == {(p, j.job.id)}
    # by job, and by datum
    assert sorted(m.message for m in pach.logs(p, j.job.id)) == ["err a", "err b", "out a", "out b"]
    assert sorted(m.message for m in pach.logs(p, j.job.id, datum_id=ids["/b"])) == ["err b", "out b"]
    # by input path (data filters), through the SDK
    by_path = [m.message for m in pach.client.pps.get_logs(
        job=pps.Job(pipeline=pps.Pipeline(name=p), id=j.job.id), data_filters=["/a"]) if m.user]
    assert sorted(by_path) == ["err a", "out a"]
    # the master's log says how the job ended; user lines are not in it
    master = [m.message for m in pach.logs(p, master=True)]
    assert f"job {j.job.id} finished: JOB_SUCCESS" in master
    assert not {"out a", "err a"} & set(master)
    # tail
    assert len([m for m in pach.client.pps.get_logs(pipeline=pps.Pipeline(name=p), tail=1)]) == 1


def test_list_and_inspect_datum(pach):
    src = pach.repo("ld", {"/ok1": "1", "/ok2": "2", "/bad": "3"})
    p = pach.pipeline("ld", pfs_in(src, name="in"), datum_tries=1,
                      sh='n=$(basename /pfs/in/*); [ $n = bad ] && exit 1; cp /pfs/in/$n /pfs/out/')
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_FAILURE
    all_ = pach.datums(p, j.job.id)
    assert sorted(pps_pb2.DatumState.Name(d.state) for d in all_) == ["FAILED", "SUCCESS", "SUCCESS"]
    [failed] = pach.datums(p, j.job.id, states=[pps_pb2.FAILED])
    assert [f.file.path for f in failed.data] == ["/bad"]
    assert len(pach.datums(p, j.job.id, states=[pps_pb2.SUCCESS])) == 2
    assert pach.datums(p, j.job.id, states=[pps_pb2.SKIPPED]) == []
    # InspectDatum through the SDK
    info = pach.client.pps.inspect_datum(datum=pps.Datum(
        job=pps.Job(pipeline=pps.Pipeline(name=p), id=j.job.id), id=failed.datum.id))
    assert info.state == pps.DatumState.FAILED and info.datum.id == failed.datum.id
    assert info.datum.job.id == j.job.id and [f.file.path for f in info.data] == ["/bad"]
    assert info.data[0].file.commit.repo.name == src and info.data[0].size_bytes == 1
    # a failed job is never a base: the next job processes everything again
    cid = pach.put(src, {"/new": "4"})
    j = pach.job(p, cid)
    assert (j.state, j.data_skipped, j.data_processed, j.data_failed) == (pps_pb2.JOB_FAILURE, 0, 3, 1)
    # once a job succeeds, the next one skips what it processed
    cid = pach.put(src, {}, delete=["/bad"])
    j = pach.job(p, cid)
    assert (j.state, j.data_skipped, j.data_processed) == (pps_pb2.JOB_SUCCESS, 0, 3)
    cid = pach.put(src, {"/ok3": "5"})
    j = pach.job(p, cid)
    assert (j.state, j.data_skipped, j.data_processed) == (pps_pb2.JOB_SUCCESS, 3, 1)
    assert len(pach.datums(p, cid, states=[pps_pb2.SKIPPED])) == 3


BATCH = """\
import os, shutil
from pachyderm_sdk import batch_all_datums

print("started", os.getpid(), flush=True)


@batch_all_datums
def main():
    src = os.environ["in"]
    with open(os.path.join("/pfs/out", os.path.basename(src)), "w") as f:
        f.write(open(src).read() + " pid=" + str(os.getpid()))


main()
"""


def test_datum_batching_with_sdk_batch_all_datums(pach):
    img = pach.images_dir / f"batcher{pach.tag}"
    img.mkdir()
    (img / "batch.py").write_text(BATCH)
    src = pach.repo("batch", {"/a": "A", "/b": "B", "/c": "C"})
    p = pach.pipeline("batch", pfs_in(src, name="in"), cmd=["python3", "/batch.py"],
                      transform={"image": f"example.com/batcher{pach.tag}:1.0", "datum_batching": True})
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_processed, j.data_failed) == (3, 0)
    out = pach.files(p, j.job.id)
    assert sorted(out) == ["/a", "/b", "/c"]
    assert [v.split(b" ")[0] for _, v in sorted(out.items())] == [b"A", b"B", b"C"]
    pids = {v.split(b"pid=")[1] for v in out.values()}
    assert len(pids) == 1  # one user process served every datum
    started = [m.message for m in pach.logs(p) if m.message.startswith("started")]
    assert started == [f"started {pids.pop().decode()}"]
    # incremental with batching too
    cid = pach.put(src, {"/d": "D"})
    j = pach.job(p, cid)
    assert (j.state, j.data_processed, j.data_skipped) == (pps_pb2.JOB_SUCCESS, 1, 3)
    assert pach.files(p, cid)["/d"].startswith(b"D pid=")
