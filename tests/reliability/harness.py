"""The crash harness: a pachd process that can be killed (-9) and restarted on the same data
root, and a raw gRPC client with deadlines on every call.

- `CrashablePachd(root)`: `start(failpoints="", env=None)` runs `python -m pachd` on a free
  loopback port (a new port each start: a client of the old incarnation cannot reach the new
  one by accident), `kill9()` SIGKILLs it, `wait_dead()` waits for a failpoint to kill it,
  `fired(name)` tells whether a failpoint's line is in this incarnation's log, `stop()`
  (SIGTERM) ends it cleanly. The child dies with the test process (PDEATHSIG). Worker
  processes die with their pachd (bwrap --die-with-parent).
- `Pach(port)`: the pfs_v2/pps_v2 stubs with a deadline on every call, and the few calls the
  crash checks need (trees as {path: sha256}, full reads of every file).
- `dead(e)`: an RpcError that means "pachd is gone" (UNAVAILABLE, or a cancelled stream).
"""
from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import grpc

from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc
from proto.pps_v2 import pps_pb2, pps_pb2_grpc
from tests.s3servers import spawn_dying_with_parent

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
CALL = 30.0  # deadline of one call, seconds
PIECE = 256 * 1024  # bytes per add_file message of a streamed file


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class CrashablePachd:
    def __init__(self, root: Path, env: Optional[dict] = None, storage: Optional[str] = None,
                 data_tmpfs_bytes: int = 0, ballast_bytes: int = 0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.base_env = dict(env if env is not None else os.environ)
        self.base_env["PYTHONPATH"] = str(ROOT) + os.pathsep + self.base_env.get("PYTHONPATH", "")
        self.base_env.pop("PACH_FAILPOINTS", None)
        self.storage = storage
        # > 0: the data root is a tmpfs of this size, private to pachd's own mount namespace
        # (a small disk that fills up; gone when pachd exits). Needs root (see tmpfs_usable).
        self.data_tmpfs_bytes = data_tmpfs_bytes
        self.ballast_bytes = ballast_bytes  # a file on that tmpfs, removed by free_ballast()
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.incarnation = 0
        self.log_path: Optional[Path] = None

    # ---- life cycle ------------------------------------------------------------------------
    def start(self, failpoints: str = "", env: Optional[dict] = None) -> "CrashablePachd":
        assert self.proc is None or self.proc.poll() is not None, "pachd is still running"
        self.incarnation += 1
        self.log_path = self.root / f"pachd.{self.incarnation}.log"
        e = dict(self.base_env)
        e.update(env or {})
        if failpoints:
            e["PACH_FAILPOINTS"] = failpoints
        argv = [sys.executable, "-m", "pachd", "--port", "0", "--root", str(self.root / "data"),
                "--s3-gateway-port", "-1", "--host", "127.0.0.1"]
        if self.storage:
            argv += ["--storage", self.storage]
        if self.data_tmpfs_bytes:
            data = self.root / "data"
            data.mkdir(exist_ok=True)
            argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                    f'mount -t tmpfs -o size={self.data_tmpfs_bytes} pachd-data "$0" && '
                    f'head -c {self.ballast_bytes} /dev/zero > "$0/ballast" && exec "$@"',
                    str(data), *argv]
        argv, kw = spawn_dying_with_parent(argv)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=str(ROOT), env=e, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, **kw)
        try:
            self.port = self._wait_port()
        except BaseException:
            if failpoints and self.proc.poll() == -signal.SIGKILL and "failpoint " in self.log():
                self.port = 0  # an armed failpoint fired while pachd started (a resumed job): a crash
                return self
            self.kill9()
            raise
        return self

    def _wait_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if "pachd listening on" in line:
                    return int(line.rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                raise RuntimeError(f"pachd exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"pachd did not start in {START_TIMEOUT}s:\n{self.log_tail()}")

    def free_ballast(self) -> None:
        """Remove the ballast file from pachd's private tmpfs (frees that much disk)."""
        subprocess.run(["nsenter", "-t", str(self.proc.pid), "-m", "rm", "-f", str(self.root / "data" / "ballast")],
                       check=True, timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def wait_dead(self, timeout: float) -> bool:
        """True if pachd died (a failpoint fired) within timeout."""
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> Optional[int]:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode if self.proc is not None else None

    # ---- logs ------------------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def fired(self, name: str) -> bool:
        return f"failpoint {name} hit" in self.log()

    def client(self) -> "Pach":
        return Pach(self.port)


def tmpfs_usable() -> bool:
    """Can this process give a child a private tmpfs (root, unshare and mount allowed)?"""
    import shutil
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                        "mount -t tmpfs -o size=1m t /mnt"], capture_output=True, timeout=30)
    return r.returncode == 0


def dead(e: BaseException) -> bool:
    """Is this RpcError what a client sees when pachd died under it?"""
    return isinstance(e, grpc.RpcError) and e.code() in (
        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED)


# ---- messages ------------------------------------------------------------------------------------
def repo_pb(name: str, project: str = "default", type: str = "user") -> pb.Repo:
    return pb.Repo(name=name, type=type, project=pb.Project(name=project))


def branch_pb(repo: str, branch: str = "master", type: str = "user") -> pb.Branch:
    return pb.Branch(repo=repo_pb(repo, type=type), name=branch)


def commit_pb(repo: str, commit_id: str = "", branch: str = "", type: str = "user") -> pb.Commit:
    c = pb.Commit(repo=repo_pb(repo, type=type), id=commit_id)
    if branch:
        c.branch.CopyFrom(branch_pb(repo, branch, type))
    return c


def modify_stream(commit: pb.Commit, puts: dict[str, bytes], deletes: Iterable[str] = ()) -> Iterator[pb.ModifyFileRequest]:
    yield pb.ModifyFileRequest(set_commit=commit)
    for p in deletes:
        yield pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=p))
    for p, data in puts.items():
        yield pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=p))  # overwrite
        for i in range(0, max(len(data), 1), PIECE):
            yield pb.ModifyFileRequest(add_file=pb.AddFile(path=p, raw={"value": data[i:i + PIECE]}))


class Pach:
    """Raw stubs on one channel; every call has a deadline."""

    def __init__(self, port: int):
        self.port = port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}",
                                             options=[("grpc.max_receive_message_length", 64 << 20)])
        self.pfs = pfs_pb2_grpc.APIStub(self.channel)
        self.pps = pps_pb2_grpc.APIStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Pach":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- pfs ---------------------------------------------------------------------------------
    def create_repo(self, name: str) -> None:
        self.pfs.CreateRepo(pb.CreateRepoRequest(repo=repo_pb(name)), timeout=CALL)

    def start_commit(self, repo: str, branch: str = "master") -> str:
        return self.pfs.StartCommit(pb.StartCommitRequest(branch=branch_pb(repo, branch)), timeout=CALL).id

    def finish_commit(self, repo: str, commit_id: str) -> None:
        self.pfs.FinishCommit(pb.FinishCommitRequest(commit=commit_pb(repo, commit_id)), timeout=CALL)

    def modify(self, commit: pb.Commit, puts: dict[str, bytes], deletes: Iterable[str] = ()) -> None:
        self.pfs.ModifyFile(modify_stream(commit, puts, deletes), timeout=CALL)

    def inspect_commit(self, repo: str, commit_id: str = "", branch: str = "", wait: bool = False,
                       timeout: float = CALL, type: str = "user") -> pb.CommitInfo:
        req = pb.InspectCommitRequest(commit=commit_pb(repo, commit_id, branch, type),
                                      wait=pb.CommitState.FINISHED if wait else pb.CommitState.STARTED)
        return self.pfs.InspectCommit(req, timeout=timeout)

    def branch_head(self, repo: str, branch: str = "master") -> str:
        bi = self.pfs.InspectBranch(pb.InspectBranchRequest(branch=branch_pb(repo, branch)), timeout=CALL)
        return bi.head.id

    def list_commits(self, repo: str, type: str = "user") -> list[pb.CommitInfo]:
        return list(self.pfs.ListCommit(pb.ListCommitRequest(repo=repo_pb(repo, type=type), all=True),
                                        timeout=CALL))

    def files(self, repo: str, commit_id: str, type: str = "user") -> dict[str, bytes]:
        """Every file of a commit, read in full (one GetFileTAR of /)."""
        req = pb.GetFileRequest(file=pb.File(commit=commit_pb(repo, commit_id, type=type), path="/"))
        buf = io.BytesIO()
        try:
            for piece in self.pfs.GetFileTAR(req, timeout=CALL):
                buf.write(piece.value)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND and "file / not found" in (e.details() or ""):
                return {}  # an empty commit
            raise
        buf.seek(0)
        out = {}
        with tarfile.open(fileobj=buf, mode="r:") as tf:
            for m in tf:
                if m.isfile():
                    out["/" + m.name.lstrip("/")] = tf.extractfile(m).read()
        return out

    def tree(self, repo: str, commit_id: str, type: str = "user") -> dict[str, str]:
        """{path: sha256 of its bytes}, read in full."""
        return {p: sha(b) for p, b in self.files(repo, commit_id, type).items()}

    # ---- pps ---------------------------------------------------------------------------------
    def create_pipeline(self, spec: dict) -> None:
        import json
        self.pps.CreatePipelineV2(pps_pb2.CreatePipelineV2Request(create_pipeline_request_json=json.dumps(spec)),
                                  timeout=CALL)

    def jobs(self, pipeline: str) -> list[pps_pb2.JobInfo]:
        req = pps_pb2.ListJobRequest(pipeline=pps_pb2.Pipeline(name=pipeline, project=pb.Project(name="default")))
        return list(self.pps.ListJob(req, timeout=CALL))

    def wait_job(self, pipeline: str, job_id: str, timeout: float) -> pps_pb2.JobInfo:
        """The job once it ended; a job not created yet (the master makes it from the input
        commit a moment later) is waited for too."""
        req = pps_pb2.InspectJobRequest(job=pps_pb2.Job(pipeline=pps_pb2.Pipeline(
            name=pipeline, project=pb.Project(name="default")), id=job_id), wait=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.pps.InspectJob(req, timeout=max(1.0, deadline - time.monotonic()))
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def datums(self, pipeline: str, job_id: str) -> list[pps_pb2.DatumInfo]:
        req = pps_pb2.ListDatumRequest(job=pps_pb2.Job(pipeline=pps_pb2.Pipeline(
            name=pipeline, project=pb.Project(name="default")), id=job_id))
        return list(self.pps.ListDatum(req, timeout=CALL))
