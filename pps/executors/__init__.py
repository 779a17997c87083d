"""Executors: how pipeline workers come to exist. The master knows only `Executor` (base.py).

- `local.LocalExecutor`: worker processes on this machine, each inside one bubblewrap
  sandbox for its lifetime (or the documented no-sandbox fallback, see pps.worker.sandbox).
- a Kubernetes executor (pods via the official client) implements the same Protocol with the
  same worker program (`python -m pps.worker`), which talks to pachd only over gRPC.

Invariant: nothing here decides WHAT a worker does; that comes from pachd's task board
(worker_v1.Tasks). An executor only keeps N copies of the worker running per pipeline.
"""
from pps.executors.base import Executor, WorkerStatus

__all__ = ["Executor", "WorkerStatus"]
