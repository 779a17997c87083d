"""R1 for jobs and R2: pachd (or one of its workers) is killed -9 while a pipeline processes an
input commit; after the restart every job resumes and succeeds with exactly the outputs its
input determines.

The pipeline (`PIPELINE`, glob `/*`, one datum per input file) writes, for input file `n`,
`/n.up` (the bytes upper-cased by `tr`) and `/n.len` (`wc -c`). Its outputs are therefore a
pure function of the input commit (`expected_outputs`): comparing an output commit with it is
comparing with an uncrashed run, byte for byte, for every job, including the datums a job
skipped and inherited from its base job.

After each restart `JobModel.check` waits for the job of every input commit made so far and
checks: state SUCCESS, no failed datum, processed + skipped = total = number of input files,
every datum listed once, and the output commit == expected_outputs(input) (so no datum's
output is missing, left over from a removed file, or written twice).
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import grpc

from proto.pps_v2 import pps_pb2
from tests.reliability.harness import CrashablePachd, Pach, commit_pb, dead

IN, PIPELINE = "in", "up"
JOB_WAIT = 180.0
SCRIPT = ('for f in /pfs/in/*; do n=$(basename "$f"); {sleep}'
          'tr a-z A-Z < "$f" > "/pfs/out/$n.up"; wc -c < "$f" > "/pfs/out/$n.len"; done')


def pipeline_spec(parallelism: int = 2, datum_tries: int = 3, sleep: float = 0.0) -> dict:
    script = SCRIPT.format(sleep=f"sleep {sleep}; " if sleep else "")
    return {"pipeline": {"name": PIPELINE}, "input": {"pfs": {"repo": IN, "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", script]},
            "parallelism_spec": {"constant": parallelism}, "datum_tries": datum_tries}


def expected_outputs(inputs: dict[str, bytes]) -> dict[str, bytes]:
    out = {}
    for path, data in inputs.items():
        out[path + ".up"] = data.upper()
        out[path + ".len"] = f"{len(data)}\n".encode()
    return out


class JobLost(AssertionError):
    """A job did not resume, or its outputs differ from what its input determines."""


@dataclass
class JobModel:
    seed: int
    files_per_commit: tuple = (3, 8)
    rng: random.Random = field(init=False)
    inputs: dict = field(default_factory=dict)      # current input tree {path: bytes}
    commits: list = field(default_factory=list)     # [(commit id, {path: bytes})], acknowledged
    checked: set = field(default_factory=set)       # commit ids whose job was checked
    jobs_checked: int = 0
    datums_checked: int = 0
    set_up: bool = False
    pending: Optional[dict] = None                 # the tree of a put pachd died during

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def _data(self) -> bytes:
        n = self.rng.choice([0, self.rng.randint(1, 200), self.rng.randint(1000, 300_000)])
        return bytes(self.rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 \n") for _ in range(min(n, 2000))) \
            * max(1, n // 2000)

    def setup(self, c: Pach, spec: dict) -> None:
        """The input repo and the pipeline; its first job (of the empty input) done."""
        c.create_repo(IN)
        c.create_pipeline(spec)
        deadline = time.monotonic() + JOB_WAIT
        while not c.jobs(PIPELINE):  # the master makes the first job a moment later
            if time.monotonic() > deadline:
                raise JobLost("the pipeline's first job never appeared")
            time.sleep(0.05)
        for j in c.jobs(PIPELINE):
            c.wait_job(PIPELINE, j.job.id, JOB_WAIT)
        self.set_up = True

    def put(self, c: Pach) -> str:
        """One input commit: new files, a changed one, sometimes a deleted one. Recorded once
        pachd acknowledged it."""
        tree = dict(self.inputs)
        puts = {}
        for _ in range(self.rng.randint(*self.files_per_commit)):
            puts[f"/f{self.rng.randint(0, 10 ** 6):07d}"] = self._data()
        if tree:
            puts[self.rng.choice(sorted(tree))] = self._data()
        deletes = [self.rng.choice(sorted(tree))] if tree and self.rng.random() < 0.4 else []
        deletes = [d for d in deletes if d not in puts]
        for d in deletes:
            tree.pop(d)
        tree.update(puts)
        self.pending = tree  # if pachd dies now, the commit may or may not exist: check decides
        c.modify(commit_pb(IN, branch="master"), puts, deletes)
        cid = c.branch_head(IN)
        self.pending = None
        self.inputs = tree
        self.commits.append((cid, tree))
        return cid

    def _adopt_in_flight(self, c: Pach) -> None:
        """After a crash during a put: the input commit is there whole (adopted, its job is
        checked too) or not at all; anything else is a partial commit."""
        if self.pending is None:
            return
        head = c.branch_head(IN)
        if head not in {cid for cid, _ in self.commits}:
            got = c.files(IN, head)
            if got != self.pending:
                raise JobLost(f"input commit {head}, made by a put pachd died during, is partial")
            self.inputs = got
            self.commits.append((head, got))
        self.pending = None

    def check(self, c: Pach, timeout: float = JOB_WAIT) -> None:
        """Every acknowledged input commit's job resumed and produced exactly its outputs."""
        self._adopt_in_flight(c)
        for cid, tree in self.commits:
            if cid in self.checked:
                continue
            try:
                j = c.wait_job(PIPELINE, cid, timeout)
            except grpc.RpcError as e:
                raise JobLost(f"job {cid}: {e.code()} {e.details()}") from e
            if j.state != pps_pb2.JOB_SUCCESS:
                raise JobLost(f"job {cid} ended {pps_pb2.JobState.Name(j.state)}: {j.reason}")
            total = len(tree)
            if (j.data_total, j.data_failed, j.data_processed + j.data_skipped) != (total, 0, total):
                raise JobLost(f"job {cid}: total {j.data_total} failed {j.data_failed} processed "
                              f"{j.data_processed} skipped {j.data_skipped}; {total} input files")
            ds = c.datums(PIPELINE, cid)
            ids = [d.datum.id for d in ds]
            if len(ids) != total or len(set(ids)) != total:
                raise JobLost(f"job {cid}: {len(ids)} datums listed ({len(set(ids))} distinct), {total} expected")
            bad = [d.datum.id for d in ds if d.state not in (pps_pb2.SUCCESS, pps_pb2.SKIPPED)]
            if bad:
                raise JobLost(f"job {cid}: datums not successful: {bad[:3]}")
            got = c.files(PIPELINE, cid)
            want = expected_outputs(tree)
            if got != want:
                missing = sorted(set(want) - set(got))[:3]
                extra = sorted(set(got) - set(want))[:3]
                diff = sorted(p for p in set(got) & set(want) if got[p] != want[p])[:3]
                raise JobLost(f"job {cid}: outputs differ from an uncrashed run: missing {missing}, "
                              f"unexpected {extra}, different {diff}")
            self.checked.add(cid)
            self.jobs_checked += 1
            self.datums_checked += total


class _DiedAtStart(Exception):
    pass


@dataclass
class JobRound:
    killed_by: str
    jobs_checked: int


def run_job_round(pd: CrashablePachd, model: JobModel, spec: dict, failpoint: str = "",
                  kill_after: Optional[float] = None, die_timeout: float = 60.0) -> JobRound:
    """Start pachd armed with `failpoint` (or kill it -9 `kill_after` seconds after the input
    commit), put one input commit, wait for the crash, restart unarmed, check every job."""
    if not model.set_up:
        pd.start()
        try:
            with pd.client() as c:
                model.setup(c, spec)
        finally:
            pd.stop()
    pd.start(failpoints=failpoint)
    killer = None
    try:
        if not pd.alive():  # the failpoint fired while pachd started (resuming a job)
            raise _DiedAtStart()
        with pd.client() as c:
            try:
                model.put(c)
            except grpc.RpcError as e:
                if not dead(e):
                    raise
            if kill_after is not None:
                killer = threading.Timer(kill_after, pd.kill9)
                killer.start()
            pd.wait_dead(kill_after + 30 if kill_after is not None else die_timeout)
    except _DiedAtStart:
        pass
    finally:
        if killer is not None:
            killer.cancel()
            killer.join()
    name = failpoint.split("@")[0]
    how = name if name and pd.fired(name) else ("random" if kill_after is not None and not pd.alive() else "none")
    pd.kill9()
    before = model.jobs_checked
    pd.start()
    try:
        with pd.client() as c:
            model.check(c)
    finally:
        pd.stop()
    return JobRound(how, model.jobs_checked - before)


# ---- R2: kill -9 of workers mid-datum -------------------------------------------------------------
def worker_pids(pachd_pid: int) -> list[int]:
    """Worker processes (python -m pps.worker, outside the sandbox) descending from pachd."""
    children: dict[int, list[int]] = {}
    cmd: dict[int, bytes] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd[int(d)] = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pachd_pid]
    while todo:
        p = todo.pop()
        for ch in children.get(p, []):
            todo.append(ch)
            argv = cmd.get(ch, b"").split(b"\0")
            if b"pps.worker" in argv and not argv[0].endswith(b"bwrap"):
                out.append(ch)
    return out


def kill_workers_during(pd: CrashablePachd, c: Pach, cid: str, kills: int, rng: random.Random,
                        window: tuple = (0.2, 1.0)) -> int:
    """While the job of `cid` runs, kill -9 a random worker `kills` times; returns kills done."""
    done = 0
    deadline = time.monotonic() + JOB_WAIT
    while done < kills and time.monotonic() < deadline:
        time.sleep(rng.uniform(*window))
        try:
            j = c.pps.InspectJob(pps_pb2.InspectJobRequest(job=pps_pb2.Job(
                pipeline=pps_pb2.Pipeline(name=PIPELINE), id=cid)), timeout=10)
        except grpc.RpcError:
            continue
        if j.state not in (pps_pb2.JOB_CREATED, pps_pb2.JOB_STARTING, pps_pb2.JOB_RUNNING):
            break
        pids = worker_pids(pd.proc.pid)
        if not pids:
            continue
        try:
            os.kill(rng.choice(pids), signal.SIGKILL)
            done += 1
        except ProcessLookupError:
            pass
    return done
