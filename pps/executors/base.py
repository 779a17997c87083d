"""The Executor interface: the only thing the pipeline master knows about workers.

Contract (every implementation, local processes or Kubernetes pods):
- `ensure_workers(key, spec_json, n, env)` is idempotent and declarative: afterwards exactly
  `n` workers for `key` exist or are being started, all running `spec_json` with `env`. Missing
  workers are started, extra ones stopped, workers started with a different spec or env are
  replaced, and workers that exited are started again. Workers that crash (non-zero exit) are
  restarted by the executor itself with exponential backoff (a Kubernetes ReplicationController
  does the same); a worker that exited 0 (told to stop by the master) waits for the next
  `ensure_workers`. It returns once processes/pods are created, not when they are ready.
- `stop_workers(key)` stops and forgets every worker of `key` (no-op if none); it returns when
  they are gone. `close()` does that for every key; the executor is unusable afterwards.
- `workers(key)` reports without side effects.
- `key` is an opaque hashable id of a pipeline (the master uses `(project, name)`); names
  (project, pipeline) come from `spec_json` (a pipeline spec as JSON, Pachyderm's shape).
- `env` is added to each worker's environment (and so visible to user code, as pod env is in
  Pachyderm), e.g. `PPS_PIPELINE_VERSION`, `PPS_SPEC_COMMIT`, `PACHD_AUTH_TOKEN` (the worker
  uses that one for pachd and keeps it from user code).
- Every worker runs `python -m pps.worker --pachd ADDR --project P --pipeline NAME
  --worker-id ID [--spec-file F]` and talks to pachd only over gRPC; the master hands it work.
- Thread-safe; may be called from any thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Mapping, Optional, Protocol, runtime_checkable

# WorkerStatus.state values
STARTING = "starting"    # created, not yet known to be healthy
RUNNING = "running"
CRASHING = "crashing"    # exited non-zero; restart pending (backoff)
EXITED = "exited"        # exited 0 (the master said stop); restarted by the next ensure_workers
STOPPED = "stopped"


@dataclass(frozen=True)
class WorkerStatus:
    id: str                       # the worker id it uses with the master (pod name on Kubernetes)
    state: str
    pid: Optional[int] = None     # local: the sandbox (or worker) process id
    pod: Optional[str] = None     # kubernetes: the pod name
    started: Optional[float] = None  # unix time of the current (re)start
    restarts: int = 0
    exit_code: Optional[int] = None  # of the last exit, if any
    log_path: Optional[str] = None   # local: the worker's stdout/stderr
    spec_hash: str = ""           # which spec/env the worker runs


@runtime_checkable
class Executor(Protocol):
    def ensure_workers(self, pipeline_key: Hashable, spec_json: str, n: int,
                       env: Mapping[str, str]) -> None: ...

    def stop_workers(self, pipeline_key: Hashable) -> None: ...

    def workers(self, pipeline_key: Hashable) -> list[WorkerStatus]: ...

    def close(self) -> None: ...
