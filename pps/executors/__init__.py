"""Executors: how pipeline workers come to exist. The master knows only `Executor` (base.py).

- `local.LocalExecutor`: worker processes on this machine, each inside one bubblewrap
  sandbox for its lifetime (without bubblewrap, the same sandbox made by pps/worker/userns.py
  in a user namespace; or the documented no-sandbox fallback, see pps.worker.sandbox).
- `kubernetes.KubernetesExecutor`: one pod per worker via the official client (the only
  module importing it); the pod manifest is plain data built by `k8s_pods`. Same Protocol,
  same worker program (`python -m pps.worker`), which talks to pachd only over gRPC.

Invariant: nothing here decides WHAT a worker does; that comes from pachd's task board
(worker_v1.Tasks). An executor only keeps N copies of the worker running per pipeline.
"""
from pps.executors.base import Executor, WorkerStatus

__all__ = ["Executor", "WorkerStatus"]
