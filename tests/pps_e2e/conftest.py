"""Fixtures for the pps end-to-end tests: ONE real pachd (gRPC + pps master + LocalExecutor
with sandboxed worker processes) for the whole session, driven by the unmodified
pachyderm-sdk 2.12.2 client and, where the SDK has no timeout, by the raw pps_v2 stubs.

- `pachd`: session-scoped; PACH_LOCAL_IMAGES points at `images_dir`, where tests write local
  images (`<images_dir>/<name>/` serves `transform.image: <registry>/<name>:<tag>`).
- `pach`: per test; an `E2E` helper on a fresh SDK client. Pipelines it created are deleted
  when the test ends (their workers stop), repos stay (names are unique per test).
- Waiting is always on pachd (InspectJob/InspectCommit with wait, log streams with follow,
  SubscribeJob), bounded by a gRPC deadline, never on sleeps. "Still waiting" is asserted as
  a wait that runs into a short deadline.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Optional

import grpc
import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps

from pachd.server import Pachd
from tests.tools import BEST_SANDBOX, needs_sandbox
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from proto.pps_v2 import pps_pb2, pps_pb2_grpc

WAIT = 60.0  # seconds any single wait may take before the test fails


@pytest.fixture(scope="session")
def images_dir():
    d = Path(tempfile.mkdtemp(prefix="pps-e2e-images-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def start_pachd(root: Path, images_dir: Path) -> Pachd:
    """A pachd with pps and local workers on `root`; local images are read from images_dir."""
    old = os.environ.get("PACH_LOCAL_IMAGES")
    os.environ["PACH_LOCAL_IMAGES"] = str(images_dir)
    try:
        return Pachd(root, port=0, host="127.0.0.1").start()
    finally:
        if old is None:
            os.environ.pop("PACH_LOCAL_IMAGES", None)
        else:
            os.environ["PACH_LOCAL_IMAGES"] = old


@pytest.fixture(scope="session")
def pachd(images_dir):
    if BEST_SANDBOX == "none":
        pytest.skip(needs_sandbox.kwargs["reason"])
    root = Path(tempfile.mkdtemp(prefix="pps-e2e-pachd-"))
    p = start_pachd(root / "pachd", images_dir)
    try:
        yield p
    finally:
        p.stop(grace=0.5)
        shutil.rmtree(root, ignore_errors=True)


class E2E:
    def __init__(self, pd: Pachd, images_dir: Path):
        self.pd = pd
        self.images_dir = images_dir
        self.client = Client(host="localhost", port=pd.port)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{pd.port}")
        self.pps = pps_pb2_grpc.APIStub(self.channel)
        self.pfs = pfs_pb2_grpc.APIStub(self.channel)
        self.tag = uuid.uuid4().hex[:6]
        self.pipelines: list[str] = []

    def close(self) -> None:
        for name in reversed(self.pipelines):
            try:
                self.client.pps.delete_pipeline(pipeline=pps.Pipeline(name=name), force=True)
            except grpc.RpcError:
                pass
        self.client._channel.close()
        self.channel.close()

    # ---- names and data -------------------------------------------------------------------
    def name(self, base: str) -> str:
        return f"{base}-{self.tag}"

    def repo(self, base: str, files: Optional[dict] = None) -> str:
        """A new input repo `in-<base>-<tag>` (never clashes with a pipeline's name)."""
        name = self.name("in-" + base)
        self.client.pfs.create_repo(repo=pfs.Repo(name=name))
        if files:
            self.put(name, files)
        return name

    def put(self, repo: str, files: dict, delete: Iterable[str] = ()) -> str:
        """One finished commit on repo@master: delete paths, then write files. Returns its id."""
        with self.client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as c:
            for path in delete:
                c.delete_file(path=path)
            for path, data in files.items():
                c.put_file_from_bytes(path=path, data=data.encode() if isinstance(data, str) else data)
        return c.id

    def files(self, repo: str, commit: str = "master") -> dict[str, bytes]:
        """{path: content} of every file in repo@commit (commit id or branch)."""
        c = pfs.Commit.from_uri(f"{repo}@{commit}")
        out = {}
        for fi in self.client.pfs.walk_file(file=pfs.File(commit=c, path="/")):
            if fi.file_type == pfs.FileType.FILE:
                with self.client.pfs.pfs_file(file=fi.file) as f:
                    out[fi.file.path] = f.read()
        return out

    # ---- pipelines -----------------------------------------------------------------------------
    def pipeline(self, base: str, input: dict, cmd=None, stdin=None, sh: Optional[str] = None,
                 parallelism: int = 1, update: bool = False, reprocess: bool = False, **extra) -> str:
        """Create (or update) a pipeline from a Pachyderm JSON spec; returns its name.
        `sh` is a shell script run as `sh -c`."""
        name = base if update else self.name(base)
        transform = dict(extra.pop("transform", {}))
        if sh is not None:
            transform["cmd"] = ["sh", "-c", sh]
        elif cmd is not None:
            transform["cmd"] = cmd
        if stdin is not None:
            transform["stdin"] = stdin
        spec = {"pipeline": {"name": name}, "transform": transform, "input": input,
                "parallelism_spec": {"constant": parallelism}, **extra}
        self.client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec),
                                           update=update, reprocess=reprocess)
        if name not in self.pipelines:
            self.pipelines.append(name)
        return name

    def spec_commit(self, pipeline: str) -> str:
        return self.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=pipeline)).spec_commit.id

    # ---- waiting (raw stubs: bounded by a deadline) ----------------------------------------
    def job(self, pipeline: str, job_id: str, wait: bool = True, details: bool = False) -> pps_pb2.JobInfo:
        req = pps_pb2.InspectJobRequest(job=pps_pb2.Job(pipeline=pps_pb2.Pipeline(name=pipeline), id=job_id),
                                        wait=wait, details=details)
        return self.pps.InspectJob(req, timeout=WAIT)

    def job_ids(self, pipeline: str) -> list[str]:
        """Ids of every job of the pipeline (all versions), newest first."""
        req = pps_pb2.ListJobRequest(pipeline=pps_pb2.Pipeline(name=pipeline), history=-1)
        return [j.job.id for j in self.pps.ListJob(req, timeout=WAIT)]

    def first_job(self, pipeline: str) -> pps_pb2.JobInfo:
        """The job started by creating the pipeline, waited for."""
        ids = self.job_ids(pipeline)
        assert len(ids) >= 1, f"no job for {pipeline}"
        return self.job(pipeline, ids[-1])

    def commit(self, repo: str, commit_id: str, wait: bool = True) -> pfs_pb2.CommitInfo:
        req = pfs_pb2.InspectCommitRequest(
            commit=pfs_pb2.Commit(repo=pfs_pb2.Repo(name=repo, type="user"), id=commit_id),
            wait=pfs_pb2.FINISHED if wait else pfs_pb2.COMMIT_STATE_UNKNOWN)
        return self.pfs.InspectCommit(req, timeout=WAIT)

    def datums(self, pipeline: str, job_id: str, states=()) -> list[pps_pb2.DatumInfo]:
        req = pps_pb2.ListDatumRequest(job=pps_pb2.Job(pipeline=pps_pb2.Pipeline(name=pipeline), id=job_id))
        if states:
            req.filter.state.extend(states)
        return list(self.pps.ListDatum(req, timeout=WAIT))

    def logs(self, pipeline: str = "", job_id: str = "", datum_id: str = "", master: bool = False,
             user_only: bool = True) -> list[pps_pb2.LogMessage]:
        req = pps_pb2.GetLogsRequest(master=master)
        if datum_id:
            req.datum.id = datum_id
            req.datum.job.id = job_id
            req.datum.job.pipeline.name = pipeline
        elif job_id:
            req.job.id = job_id
            req.job.pipeline.name = pipeline
        else:
            req.pipeline.name = pipeline
        out = list(self.pps.GetLogs(req, timeout=WAIT))
        return [m for m in out if m.user or not user_only or master]


@pytest.fixture
def pach(pachd, images_dir):
    e = E2E(pachd, images_dir)
    try:
        yield e
    finally:
        e.close()


def pfs_in(repo: str, glob: str = "/*", **kw) -> dict:
    return {"pfs": {"repo": repo, "glob": glob, **kw}}
