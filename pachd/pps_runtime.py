"""Wiring the pipeline system into pachd: the master, its gRPC services, the executor.

Invariants:
- pachd calls `add_pps(pachd)` while building its gRPC server; the returned object is
  started after the server listens (workers need its address) and stopped before the
  stores close.
- The executor is chosen here and only here: the local one (sandboxed worker processes)
  unless PACHD_EXECUTOR says otherwise; the master only sees the Executor interface.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pps.master import PpsMaster
from pps.secrets import LocalSecrets
from pps.service import PpsServicer
from pps.zombies import zombie_files, zombie_files_all
from proto.pps_v2 import pps_pb2_grpc
from proto.worker_v1 import tasks_pb2_grpc

log = logging.getLogger("pps")


class Zombies:
    """`pachctl fsck --zombie/--zombie-all` over the pipeline store (pps.zombies)."""

    def __init__(self, pfs, store):
        self.pfs, self.store = pfs, store

    def target(self, repo, commit_id: str, branch: str):
        return zombie_files(self.pfs, self.store, repo, commit_id, branch)

    def all(self):
        return zombie_files_all(self.pfs, self.store)


class PpsRuntime:
    def __init__(self, pachd):
        self.pachd = pachd
        self.master = PpsMaster(pachd.pfs)
        self.master.auth_token = pachd.auth_token
        self.master.secrets = LocalSecrets(pachd.root / "secrets")
        self.servicer = PpsServicer(self.master)
        pps_pb2_grpc.add_APIServicer_to_server(self.servicer, pachd.server)
        pachd.authn.wire_pps(self.master, self.servicer)  # workers get a `pipeline:` token
        if pachd.tls is not None:  # workers reach pachd over TLS, trusting its certificate
            self.master.worker_env["PACHD_TLS_CA_PEM"] = pachd.tls.cert.decode()
        tasks_pb2_grpc.add_TasksServicer_to_server(self.master.board, pachd.server)
        pachd.pfs_servicer.zombies = Zombies(pachd.pfs, self.master.store)  # fsck --zombie[-all]

    def start(self) -> None:
        self.master.executor = make_executor(self.pachd, self.master.secrets)
        kube_secrets = getattr(self.master.executor, "secret_store", None)
        if kube_secrets is not None:  # with Kubernetes, secrets are real Secret objects
            self.master.secrets = kube_secrets()
        self.master.start()

    def stop(self) -> None:
        self.master.stop()


def local_image_dirs() -> list[Path]:
    raw = os.environ.get("PACH_LOCAL_IMAGES", "")
    dirs = [Path(p) for p in raw.split(os.pathsep) if p]
    repo_root = Path(__file__).resolve().parent.parent
    for sub in ("examples/beginner_tutorial/images", "examples/image_quality/images"):
        d = repo_root / sub
        if d.is_dir():
            dirs.append(d)
    return dirs


def make_executor(pachd, secrets=None):
    kind = os.environ.get("PACHD_EXECUTOR", "local")
    if kind == "none":
        return None
    if kind == "kubernetes":
        from pps.executors.kubernetes import KubernetesExecutor  # noqa: WPS433
        return KubernetesExecutor.from_environment(pachd)
    try:
        from pps.executors.local import LocalExecutor  # noqa: WPS433
    except ImportError:
        log.warning("local executor not available; pipelines will not run")
        return None
    return LocalExecutor(pachd_address=f"localhost:{pachd.port}",
                         scratch_root=pachd.root / "workers",
                         local_image_dirs=local_image_dirs(),
                         sandbox=os.environ.get("PACH_SANDBOX", "auto"),
                         secrets=secrets)


def add_pps(pachd) -> PpsRuntime:
    return PpsRuntime(pachd)
