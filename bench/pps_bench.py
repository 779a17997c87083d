"""Pipeline benchmarks (B4, B5 of issue 6), each next to `make` doing the same work in the
same run (and `dvc repro` for B5 when dvc is installed).

B4: N one-file datums with a `cp` transform vs `make -j2` running the same N copies;
    also with `datum_batching` (one long-lived user process).
B4 scale: an N-datum job and its pachd peak RSS; 1 changed datum at two or more sizes N.
B5: add one file to an N-file input feeding a 3-stage chain: time from the input commit
    until all three jobs are done, vs `make` (and `dvc repro`) redoing the same.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Iterator

from bench.common import REPO_ROOT, Result, pachd, run, workdir
from proto.pfs_v2 import pfs_pb2 as pfs
from proto.pfs_v2 import pfs_pb2_grpc
from proto.pps_v2 import pps_pb2 as pps
from proto.pps_v2 import pps_pb2_grpc


def _repo(name: str) -> pfs.Repo:
    return pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))


def _put_dir(stub, repo: str, src: Path, dest: str = "/") -> None:
    commit = pfs.Commit(repo=_repo(repo), branch=pfs.Branch(repo=_repo(repo), name="master"))
    url = "file://" + urllib.parse.quote(str(src))
    stub.ModifyFile(iter([pfs.ModifyFileRequest(set_commit=commit),
                          pfs.ModifyFileRequest(add_file=pfs.AddFile(path=dest, url=pfs.AddFile.URLSource(URL=url, recursive=True)))]))


def _make_inputs(d: Path, n: int) -> Path:
    src = d / "in"
    src.mkdir()
    for i in range(n):
        (src / f"f{i:05d}").write_bytes(b"%d\n" % i)
    return src


def _make_baseline(d: Path, src: Path, jobs: int = 2) -> float:
    out = d / "make-out"
    out.mkdir()
    (d / "Makefile").write_text(
        f"SRC := $(wildcard {src}/*)\nOUT := $(patsubst {src}/%,{out}/%,$(SRC))\nall: $(OUT)\n"
        f"{out}/%: {src}/%\n\tcp $< $@\n")
    return run(["make", "-s", f"-j{jobs}", "-f", str(d / "Makefile")], cwd=d)


def _create(pps_stub, spec: dict) -> None:
    pps_stub.CreatePipelineV2(pps.CreatePipelineV2Request(create_pipeline_request_json=json.dumps(spec)))


def _wait_job(pps_stub, pipeline: str, job_id: str | None = None) -> pps.JobInfo:
    while True:
        jobs = list(pps_stub.ListJob(pps.ListJobRequest(pipeline=pps.Pipeline(name=pipeline))))
        if job_id:
            jobs = [j for j in jobs if j.job.id == job_id]
        if jobs:
            j = pps_stub.InspectJob(pps.InspectJobRequest(job=jobs[0].job, wait=True))
            return j
        time.sleep(0.05)


def _commit_and_wait(pfs_stub, pps_stub, pipeline: str, change: pfs.ModifyFileRequest) -> pps.JobInfo:
    """Make one commit on in@master holding `change`, then wait for `pipeline`'s job on it."""
    commit = pfs.Commit(repo=_repo("in"), branch=pfs.Branch(repo=_repo("in"), name="master"))
    pfs_stub.ModifyFile(iter([pfs.ModifyFileRequest(set_commit=commit), change]))
    head = pfs_stub.InspectCommit(pfs.InspectCommitRequest(commit=commit))
    return _wait_job(pps_stub, pipeline, head.commit.id)


def _stop(pps_stub, name: str) -> None:
    if name:
        pps_stub.StopPipeline(pps.StopPipelineRequest(pipeline=pps.Pipeline(name=name)))


def _skip_one_added(pfs_stub, pps_stub, name: str, inp: dict, cmd: list, path: str, what: str,
                    how: str) -> Result:
    """A pipeline over `inp` runs once; then one file is added to `in`: the skipping rate of
    the job that follows (its skipped datums over its whole run time, the one datum too)."""
    _create(pps_stub, {"pipeline": {"name": name}, "input": inp, "transform": {"cmd": cmd},
                       "parallelism_spec": {"constant": 2}})
    assert _wait_job(pps_stub, name).state == pps.JOB_SUCCESS
    j = _commit_and_wait(pfs_stub, pps_stub, name, pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=_bytes(b"x"))))
    t = _job_seconds(j)
    return Result("B4", f"skipping, {what}: 1 file added, {j.data_skipped:,} datums skipped", j.data_skipped / t,
                  "datums/s", None, "-", ">= 100,000 datums/s", j.data_skipped / t >= 100_000 and j.data_processed == 1,
                  notes=f"job took {t:.2f} s, {j.data_processed} processed ({how})")


def _job_seconds(j: pps.JobInfo) -> float:
    return (j.finished.seconds + j.finished.nanos / 1e9) - (j.created.seconds + j.created.nanos / 1e9)


BATCH_SCRIPT = r'''
import os, shutil, sys
sys.path.insert(0, os.environ["PACH_PROJECT_ROOT"])
import grpc
from proto.worker_v2 import worker_pb2, worker_pb2_grpc
stub = worker_pb2_grpc.WorkerStub(grpc.insecure_channel("127.0.0.1:" + os.environ["PPS_WORKER_GRPC_PORT"]))
while True:  # the worker ends this process when no datums are left
    stub.NextDatum(worker_pb2.NextDatumRequest())
    for name in os.listdir("/pfs/in"):
        shutil.copyfile(os.path.join("/pfs/in", name), os.path.join("/pfs/out", name))
'''


def b4_datums(quick: bool) -> list[Result]:
    n = 1_000 if quick else 10_000
    out = []
    with workdir() as d, pachd() as p:
        src = _make_inputs(d, n)
        t_make = _make_baseline(d, src)
        pfs_stub, pps_stub = pfs_pb2_grpc.APIStub(p.channel), pps_pb2_grpc.APIStub(p.channel)
        pfs_stub.CreateRepo(pfs.CreateRepoRequest(repo=_repo("in")))
        _put_dir(pfs_stub, "in", src)
        _create(pps_stub, {"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
                           "transform": {"cmd": ["cp", "-r", "/pfs/in/.", "/pfs/out/"]},
                           "parallelism_spec": {"constant": 2}})
        j = _wait_job(pps_stub, "copy")
        assert j.state == pps.JOB_SUCCESS and j.data_processed == n, (j.state, j.reason, j.data_processed)
        t_job = _job_seconds(j)
        out.append(Result("B4", f"{n:,} one-file datums, cp transform (parallelism 2)", t_job, "s", t_make,
                          "make -j2 running the same copies", "<= 1.5x make", t_job <= 1.5 * t_make))
        helper = _batching_available()
        if helper:
            _create(pps_stub, {"pipeline": {"name": "copy-batched"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
                               "transform": {"cmd": ["python3", "-c", BATCH_SCRIPT], "datum_batching": True,
                                             "env": {"PACH_PROJECT_ROOT": str(REPO_ROOT)}},
                               "parallelism_spec": {"constant": 2}})
            j2 = _wait_job(pps_stub, "copy-batched")
            ok = j2.state == pps.JOB_SUCCESS and j2.data_processed == n
            t2 = _job_seconds(j2)
            out.append(Result("B4", f"{n:,} one-file datums, datum_batching (one user process per worker)",
                              t2, "s", t_make, "make -j2 running the same copies", "< 1x make",
                              ok and t2 < t_make, notes="" if ok else f"job {pps.JobState.Name(j2.state)}: {j2.reason}"))
        # skipping rate: a new commit that changes nothing re-runs the job with every datum skipped.
        # Each skipping row measures its pipeline alone: the others reading `in` are stopped first
        # (otherwise every pipeline on `in` runs a job on the same commit, at the same time).
        _stop(pps_stub, "copy-batched" if helper else "")
        j3 = _commit_and_wait(pfs_stub, pps_stub, "copy", pfs.ModifyFileRequest(
            delete_file=pfs.DeleteFile(path="/nonexistent")))
        t_skip = _job_seconds(j3)
        out.append(Result("B4", f"skipping: a job whose {n:,} datums are all unchanged", n / t_skip, "datums/s",
                          None, "-", ">= 100,000 datums/s", n / t_skip >= 100_000,
                          notes=f"job took {t_skip:.2f} s; {j3.data_skipped:,} skipped (single pfs input: "
                                "changed datums found from a diff of the input commits)"))
        # cross input: planned from the diff of each input's commits (one file added)
        pfs_stub.CreateRepo(pfs.CreateRepoRequest(repo=_repo("cfg")))
        pfs_stub.ModifyFile(iter([pfs.ModifyFileRequest(set_commit=pfs.Commit(repo=_repo("cfg"), branch=pfs.Branch(
            repo=_repo("cfg"), name="master"))), pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/c", raw=_bytes(b"c")))]))
        crossed = {"cross": [{"pfs": {"repo": "in", "glob": "/*"}}, {"pfs": {"repo": "cfg", "glob": "/"}}]}
        _stop(pps_stub, "copy")
        out.append(_skip_one_added(pfs_stub, pps_stub, "crossed", crossed, ["cp", "-r", "/pfs/in/.", "/pfs/out/"],
                                   "/one-more", "cross input",
                                   "changed datums planned from a diff of each input's commits"))
        # joins and groups (and nested combinations) are planned from the same diffs: only the
        # keys of changed files are looked at (with the key index the base job carried forward)
        left = {"pfs": {"repo": "in", "name": "left", "glob": "/(*)", "join_on": "$1"}}
        right = {"pfs": {"repo": "in", "name": "right", "glob": "/(*)", "join_on": "$1"}}
        how = "changed datums planned from a diff of each input's commits and the carried key index"
        cases = [
            ("grouped", {"group": [{"pfs": {"repo": "in", "glob": "/(*)", "group_by": "$1"}}]}, "group input"),
            ("joined", {"join": [left, right]}, "join input"),
            ("outer-joined", {"join": [left, dict(right, pfs=dict(right["pfs"], outer_join=True))]},
             "outer join input"),
            ("group-x-cfg", {"cross": [{"group": [{"pfs": {"repo": "in", "glob": "/(*)", "group_by": "$1"}}]},
                                       {"pfs": {"repo": "cfg", "glob": "/"}}]}, "cross(group, pfs)"),
            ("join-u-cfg", {"union": [{"join": [left, right]}, {"pfs": {"repo": "cfg", "glob": "/*"}}]},
             "union(join, pfs)"),
        ]
        prev = "crossed"
        for i, (name, inp, what) in enumerate(cases):
            _stop(pps_stub, prev)
            out.append(_skip_one_added(pfs_stub, pps_stub, name, inp, ["true"], f"/one-more-{i}", what, how))
            prev = name
    return out


def _batching_available() -> bool:
    try:
        from proto.worker_v2 import worker_pb2_grpc  # noqa: F401
        return True
    except ImportError:
        return False


def b5_chain(quick: bool) -> list[Result]:
    n = 1_000 if quick else 10_000
    with workdir() as d, pachd() as p:
        src = _make_inputs(d, n)
        pfs_stub, pps_stub = pfs_pb2_grpc.APIStub(p.channel), pps_pb2_grpc.APIStub(p.channel)
        pfs_stub.CreateRepo(pfs.CreateRepoRequest(repo=_repo("raw")))
        _put_dir(pfs_stub, "raw", src)
        prev = "raw"
        for stage in ("s1", "s2", "s3"):
            _create(pps_stub, {"pipeline": {"name": stage}, "input": {"pfs": {"repo": prev, "glob": "/*"}},
                               "transform": {"cmd": ["cp", "-r", f"/pfs/{prev}/.", "/pfs/out/"]},
                               "parallelism_spec": {"constant": 2}})
            prev = stage
        for stage in ("s1", "s2", "s3"):
            assert _wait_job(pps_stub, stage).state == pps.JOB_SUCCESS
        # the measured step: one new file
        new = d / "new"
        new.write_bytes(b"new\n")
        commit = pfs.Commit(repo=_repo("raw"), branch=pfs.Branch(repo=_repo("raw"), name="master"))
        time.time()
        pfs_stub.ModifyFile(iter([pfs.ModifyFileRequest(set_commit=commit),
                                  pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/fnew", url=pfs.AddFile.URLSource(
                                      URL="file://" + urllib.parse.quote(str(new)))))]))
        head = pfs_stub.InspectCommit(pfs.InspectCommitRequest(commit=commit))
        t_commit = head.finished.seconds + head.finished.nanos / 1e9
        jobs = [_wait_job(pps_stub, s, head.commit.id) for s in ("s1", "s2", "s3")]
        t_done = max(j.finished.seconds + j.finished.nanos / 1e9 for j in jobs)
        lag = t_done - t_commit
        processed = [j.data_processed for j in jobs]
        # baseline: make over the same 3-stage chain, after touching one new input
        chain = d / "chain"
        chain.mkdir()
        mk = ["SRC := $(wildcard in/*)"]
        prev_dir = "in"
        for stage in ("s1", "s2", "s3"):
            mk.append(f"{stage.upper()} := $(patsubst {prev_dir}/%,{stage}/%,$(wildcard {prev_dir}/*))")
            prev_dir = stage
        mk = ["all: s3-all", "s1-all: $(patsubst in/%,s1/%,$(wildcard in/*))",
              "s2-all: s1-all\n\t@$(MAKE) -s -f Makefile.s2", "s3-all: s2-all\n\t@$(MAKE) -s -f Makefile.s3",
              "s1/%: in/%\n\t@mkdir -p s1; cp $< $@"]
        (chain / "Makefile").write_text("\n".join(mk) + "\n")
        (chain / "Makefile.s2").write_text("all: $(patsubst s1/%,s2/%,$(wildcard s1/*))\ns2/%: s1/%\n\t@mkdir -p s2; cp $< $@\n")
        (chain / "Makefile.s3").write_text("all: $(patsubst s2/%,s3/%,$(wildcard s2/*))\ns3/%: s2/%\n\t@mkdir -p s3; cp $< $@\n")
        shutil.copytree(src, chain / "in")
        run(["make", "-s", "-j2"], cwd=chain)
        (chain / "in" / "fnew").write_bytes(b"new\n")
        t_make = run(["make", "-s", "-j2"], cwd=chain)
    ok = processed == [1, 1, 1]
    lag1 = jobs[0].finished.seconds + jobs[0].finished.nanos / 1e9 - t_commit
    extra = Result("B4", f"1 file added to a {n:,}-file input: its job done after the input commit finished",
                   lag1, "s", None, "-", "<= 1 s", lag1 <= 1.0)
    return [extra, Result("B5", f"add 1 file to a {n:,}-file input, 3-stage chain: all jobs done after the commit",
                   lag, "s", t_make, "make -j2 redoing the same (incremental)", "<= 2 s",
                   ok and lag <= 2.0, notes=f"datums processed per stage {processed}")]


def b4_first_datum(quick: bool) -> list[Result]:
    """Commit finished -> the user's code is running on the first datum (read off the clock
    the user code itself writes)."""
    lags = []
    with pachd() as p:
        pfs_stub, pps_stub = pfs_pb2_grpc.APIStub(p.channel), pps_pb2_grpc.APIStub(p.channel)
        pfs_stub.CreateRepo(pfs.CreateRepoRequest(repo=_repo("tick")))
        _create(pps_stub, {"pipeline": {"name": "stamp"}, "input": {"pfs": {"repo": "tick", "glob": "/*"}},
                           "transform": {"cmd": ["sh", "-c", "date +%s.%N > /pfs/out/t$(ls /pfs/tick)"]},
                           "parallelism_spec": {"constant": 1}})
        _wait_job(pps_stub, "stamp")
        commit = pfs.Commit(repo=_repo("tick"), branch=pfs.Branch(repo=_repo("tick"), name="master"))
        for i in range(3 if quick else 10):
            pfs_stub.ModifyFile(iter([pfs.ModifyFileRequest(set_commit=commit),
                                      pfs.ModifyFileRequest(add_file=pfs.AddFile(path=f"/{i}", raw=_bytes(b"x")))]))
            head = pfs_stub.InspectCommit(pfs.InspectCommitRequest(commit=commit))
            _wait_job(pps_stub, "stamp", head.commit.id)
            got = b"".join(m.value for m in pfs_stub.GetFile(pfs.GetFileRequest(file=pfs.File(
                commit=pfs.Commit(repo=_repo("stamp"), branch=pfs.Branch(repo=_repo("stamp"), name="master")),
                path=f"/t{i}"))))
            lags.append(float(got) - (head.finished.seconds + head.finished.nanos / 1e9))
    lags.sort()
    med = lags[len(lags) // 2]
    return [Result("B4", "input commit finished -> first datum's user code running (median)", med * 1000, "ms",
                   None, "-", "<= 200 ms", med <= 0.2, notes=f"all: {', '.join(f'{x * 1000:.0f}' for x in lags)} ms")]


def _bytes(b: bytes):
    from google.protobuf import wrappers_pb2
    return wrappers_pb2.BytesValue(value=b)


def _scale_sizes(quick: bool) -> list[int]:
    env = os.environ.get("PPS_BENCH_SIZES", "")
    if env:
        return [int(x) for x in env.split(",") if x.strip()]
    return [1_000, 10_000] if quick else [10_000, 100_000]


def b4_scale(quick: bool) -> Iterator[Result]:
    """At each size N (PPS_BENCH_SIZES, e.g. "10000,100000,1000000"): an N-datum job (one-file
    datums, `datum_batching` copy) with pachd's peak RSS, next to `cp -r` of the same files;
    then one file added: that job's time, which must not grow with N (the plan and the datum
    table carried forward both cost O(changed)), next to the same job at the smallest size.
    Rows are yielded as each size finishes (a big size may take long)."""
    first_small = None
    for n in _scale_sizes(quick):
        with workdir() as d, pachd() as p:
            src = _make_inputs(d, n)
            t_cp = run(["cp", "-r", str(src), str(d / "cp-out")])
            pfs_stub, pps_stub = pfs_pb2_grpc.APIStub(p.channel), pps_pb2_grpc.APIStub(p.channel)
            pfs_stub.CreateRepo(pfs.CreateRepoRequest(repo=_repo("in")))
            _put_dir(pfs_stub, "in", src)
            rss_in = p.peak_rss()
            _create(pps_stub, {"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
                               "transform": {"cmd": ["python3", "-c", BATCH_SCRIPT], "datum_batching": True,
                                             "env": {"PACH_PROJECT_ROOT": str(REPO_ROOT)}},
                               "parallelism_spec": {"constant": 2}})
            j = _wait_job(pps_stub, "copy")
            ok = j.state == pps.JOB_SUCCESS and j.data_processed == n
            t_job = _job_seconds(j)
            rss = p.peak_rss()
            yield (Result("B4", f"{n:,}-datum job (one-file datums, datum_batching copy, parallelism 2)",
                              t_job, "s", t_cp, "cp -r of the same files", "reported", None,
                              notes="" if ok else f"job {pps.JobState.Name(j.state)}: {j.reason}"))
            yield (Result("B7", f"pachd peak RSS through a {n:,}-datum job", rss / (1 << 20), "MiB", None,
                              "-", "<= 300 MiB", rss <= 300 << 20,
                              notes=f"{rss_in / (1 << 20):.0f} MiB after ingesting the {n:,} files"))
            j2 = _commit_and_wait(pfs_stub, pps_stub, "copy", pfs.ModifyFileRequest(
                add_file=pfs.AddFile(path="/zz-one-more", raw=_bytes(b"x"))))
            t1 = _job_seconds(j2)
            ok = j2.state == pps.JOB_SUCCESS and j2.data_processed == 1 and j2.data_skipped == n
            if first_small is None:
                first_small = (n, t1)
            yield (Result("B4", f"1 datum changed out of {n + 1:,}: that job's time", t1, "s", first_small[1],
                              f"the same job at {first_small[0] + 1:,} datums", "does not grow with N (<= 2x)",
                              ok and t1 <= 2 * first_small[1],
                              notes=f"{j2.data_skipped:,} skipped, {j2.data_processed} processed"
                                    + ("" if ok else f"; job {pps.JobState.Name(j2.state)}: {j2.reason}")))


ALL = [b4_datums, b4_first_datum, b5_chain, b4_scale]
