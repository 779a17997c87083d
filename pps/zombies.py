"""Zombie files: files in a pipeline's output commit that no datum of its job produced
(Pachyderm's `pachctl fsck --zombie COMMIT` / `--zombie-all`).

Every file a worker writes is tagged with the id of the datum that wrote it, and a job's
datum table lists every datum of the job (skipped ones included, with the same ids). A file in
the output commit whose datum id is not in that table -- e.g. the output of an input file
that was deleted, left behind because removing it failed -- is a zombie. So is a file with no
datum tag at all (written into the output repo by hand).

Invariants:
- Read only; one file entry at a time (the output commit's index is walked, never loaded).
- Only a successfully finished job's output commit is checked: before that, its datum table
  is not complete and every output would look like a zombie. `--zombie` on anything else is a
  FAILED_PRECONDITION naming why; `--zombie-all` checks the head of every pipeline's output
  branch whose job succeeded and skips the rest.
"""
from __future__ import annotations

from typing import Iterator

from pfs.errors import FailedPrecondition, PfsError
from pfs.model import Repo
from pps.store import JOB_SUCCESS


def zombie_files(pfs, store, repo: Repo, commit_id: str = "", branch: str = "") -> Iterator[str]:
    """One message per zombie file in the output commit `repo@commit_id` (or the head of
    `branch`)."""
    ci = pfs.commit_for_read(repo, commit_id, branch)
    cid = ci.commit.id
    job = store.get_job(repo.project, repo.name, cid)
    if job is None:
        raise FailedPrecondition(f"commit {repo}@{cid} is not the output commit of a pipeline job; "
                                 "--zombie takes a pipeline's output commit")
    if job.state != JOB_SUCCESS or ci.finished is None:
        raise FailedPrecondition(f"job {repo.project}/{job.pipeline}@{cid} is {job.state.removeprefix('JOB_')}, "
                                 "not finished successfully: its datum list is not complete, so zombie files "
                                 "cannot be told apart")
    yield from _check(pfs, store, ci, job)


def zombie_files_all(pfs, store) -> Iterator[str]:
    for p in store.list_pipelines():
        jobs = store.list_jobs(p.project, p.name)
        if not jobs:
            continue
        repo = Repo(p.project, p.name, "user")
        try:
            ci = pfs.commit_for_read(repo, "", jobs[0].output_branch or "master")  # newest first
        except PfsError:  # no output commit yet, or the repo is gone: nothing to check
            continue
        job = store.get_job(p.project, p.name, ci.commit.id)
        if job is None or job.state != JOB_SUCCESS or ci.finished is None:
            continue
        yield from _check(pfs, store, ci, job)


def _check(pfs, store, ci, job) -> Iterator[str]:
    datums = store.summaries(job.project, job.pipeline, job.id)
    where = f"{ci.commit.repo}@{ci.commit.id}"
    for path, entry in pfs.tree(ci).files("/"):
        if not entry.datum:
            yield f"zombie file: {where}:{path} was written by no datum (not by a worker of job {job.id})"
        elif entry.datum not in datums:
            yield (f"zombie file: {where}:{path} was written by datum {entry.datum}, which is not one of the "
                   f"{len(datums)} datums of job {job.pipeline}@{job.id}")
