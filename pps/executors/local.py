"""LocalExecutor: pipeline workers as processes on this machine, one sandbox each.

Invariants (beyond the Executor contract in base.py):
- One reconciler thread owns every worker process: it alone spawns, reaps and kills them
  (bwrap's --die-with-parent and PDEATHSIG are tied to the spawning THREAD, so a long-lived
  owner thread is what keeps workers alive exactly as long as the executor). Public methods
  change the desired state and wait until the thread has applied it.
- Worker `i` of a pipeline is `<project>-<pipeline>-w<i>` (stable across restarts). Its scratch
  dir `<scratch_root>/<project>.<pipeline>/<worker id>/pfs` is wiped before every start and
  removed by stop; its stdout/stderr are appended to `<worker id>.log` beside it (kept).
- Sandbox: "bwrap" requires bubblewrap, "userns" the user-namespace launcher that stands in for
  it, "none" uses neither, "auto" takes the first usable of bwrap, userns, none (see
  pps.worker.sandbox for what the fallback means). Both sandboxes have the same process tree.
- Crashed workers (non-zero exit) restart after 0.5 s, doubling to 30 s; the delay resets
  after a worker stayed up 60 s. A worker that exited 0 waits for the next ensure_workers.
- Secrets (`transform.secrets`): resolved from the secret store at each worker start. An
  `env_var` secret is put in the worker's environment (so user code sees it); a `mount_path`
  secret is written as one file per key (mode 0600, in a 0700 directory inside the worker's
  scratch dir, removed with it) and bound read-only at `mount_path` in the sandbox (fallback
  mode: the worker rewrites `mount_path` to that directory like /pfs). Values are never
  logged; a missing secret or key counts as a crash whose reason (names only) goes to the
  worker's log, so the pipeline shows CRASHING with it.
- Stopping: SIGTERM to the worker (it hands its task back), then SIGKILL to the sandbox after
  `grace` seconds; the PID namespace takes every process inside with it. close() leaves no
  process behind.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Mapping, Optional, Sequence

from pps.executors.base import (
    CRASHING,
    EXITED,
    RUNNING,
    STARTING,
    STOPPED,
    WorkerStatus,
)
from pps.worker import sandbox as sb

log = logging.getLogger("pps.executor")
BACKOFF_START, BACKOFF_MAX, HEALTHY_AFTER = 0.5, 30.0, 60.0
RUNNING_AFTER = 1.0


@dataclass
class _Slot:
    index: int
    worker_id: str
    dir: Path
    proc: Optional[subprocess.Popen] = None
    state: str = STARTING
    started: Optional[float] = None
    restarts: int = 0
    exit_code: Optional[int] = None
    not_before: float = 0.0
    spec_hash: str = ""
    delay: float = BACKOFF_START

    @property
    def log_path(self) -> Path:
        return self.dir.parent / f"{self.worker_id}.log"


@dataclass
class _Pool:
    project: str
    pipeline: str
    spec_json: str
    env: dict
    n: int
    image: str
    hash: str
    slots: list[_Slot] = field(default_factory=list)


class LocalExecutor:
    def __init__(self, pachd_address: str, scratch_root: Path | str,
                 local_image_dirs: Sequence[Path] = (), sandbox: str = "auto",
                 grace: float = 3.0, worker_args: Sequence[str] = (), secrets=None):
        self.pachd_address = pachd_address
        self.scratch_root = Path(scratch_root).absolute()
        self.local_image_dirs = [Path(p) for p in local_image_dirs]
        self.mode = sb.choose_sandbox(sandbox)
        self.grace = grace
        self.worker_args = list(worker_args)
        self.secrets = secrets  # a pps.secrets.SecretStore (or None: pipelines with secrets crash)
        self._pools: dict[Hashable, _Pool] = {}
        self._cond = threading.Condition()
        self._wanted = 0   # generation of desired state
        self._applied = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="local-executor", daemon=True)
        self._thread.start()

    # ---- Executor API -------------------------------------------------------------------
    def ensure_workers(self, pipeline_key: Hashable, spec_json: str, n: int,
                       env: Mapping[str, str] = {}) -> None:
        spec = json.loads(spec_json)
        pipe = spec.get("pipeline") or {}
        project = ((pipe.get("project") or {}).get("name")) or "default"
        name = pipe.get("name") or ""
        if not name:
            raise ValueError("spec_json has no pipeline name")
        image = ((spec.get("transform") or {}).get("image")) or ""
        h = hashlib.sha256((spec_json + "\0" + json.dumps(dict(env), sort_keys=True)).encode()).hexdigest()[:12]
        with self._cond:
            pool = self._pools.get(pipeline_key)
            if pool is None:
                pool = self._pools[pipeline_key] = _Pool(project, name, spec_json, dict(env), n, image, h)
            pool.spec_json, pool.env, pool.n, pool.image, pool.hash = spec_json, dict(env), max(0, n), image, h
            for s in pool.slots:
                if s.state == EXITED:
                    s.state, s.not_before = STARTING, 0.0
        self._apply()

    def stop_workers(self, pipeline_key: Hashable) -> None:
        with self._cond:
            pool = self._pools.get(pipeline_key)
            if pool is not None:
                pool.n = -1  # the reconciler stops and forgets it
        self._apply()

    def workers(self, pipeline_key: Hashable) -> list[WorkerStatus]:
        with self._cond:
            pool = self._pools.get(pipeline_key)
            if pool is None:
                return []
            return [WorkerStatus(id=s.worker_id, state=s.state, pid=s.proc.pid if s.proc else None,
                                 started=s.started, restarts=s.restarts, exit_code=s.exit_code,
                                 log_path=str(s.log_path), spec_hash=s.spec_hash)
                    for s in pool.slots]

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            for pool in self._pools.values():
                pool.n = -1
        self._apply()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the reconciler thread ----------------------------------------------------------
    def _apply(self, timeout: float = 60.0) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("executor is closed")
            self._wanted += 1
            gen = self._wanted
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._applied >= gen or self._closed, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if self._applied >= self._wanted:
                    self._cond.wait(0.2)
                gen = self._wanted
            try:
                self._reconcile()
            except Exception:
                log.exception("local executor: reconcile failed")
            with self._cond:
                self._applied = max(self._applied, gen)
                self._cond.notify_all()

    def _reconcile(self) -> None:
        now = time.monotonic()
        to_stop: list[_Slot] = []
        with self._cond:
            pools = list(self._pools.items())
        for key, pool in pools:
            for s in pool.slots:
                self._reap(s, now)
            keep = max(pool.n, 0)
            to_stop.extend(pool.slots[keep:])
            for s in pool.slots[:keep]:
                if s.proc is not None and s.spec_hash != pool.hash:
                    to_stop.append(s)  # replaced below once it is gone
        self._stop(to_stop)
        with self._cond:
            for key, pool in pools:
                if pool.n < 0:
                    self._pools.pop(key, None)
                    for f in self._pool_dir(pool).glob("spec-*.json"):
                        f.unlink(missing_ok=True)
                    continue
                del pool.slots[pool.n:]
                while len(pool.slots) < pool.n:
                    i = len(pool.slots)
                    wid = f"{pool.project}-{pool.pipeline}-w{i}"
                    pool.slots.append(_Slot(i, wid, self._pool_dir(pool) / wid))
        for key, pool in pools:
            if pool.n < 0:
                continue
            for s in pool.slots:
                if s.proc is None and s.state in (STARTING, CRASHING, STOPPED) and now >= s.not_before:
                    self._start(pool, s)
                elif s.proc is not None and s.state == STARTING and time.time() - (s.started or 0) > RUNNING_AFTER:
                    s.state = RUNNING

    def _pool_dir(self, pool: _Pool) -> Path:
        return self.scratch_root / f"{pool.project}.{pool.pipeline}"

    def _reap(self, s: _Slot, now: float) -> None:
        if s.proc is None or s.proc.poll() is None:
            return
        code, s.proc = s.proc.returncode, None
        s.exit_code = code
        if code == 0:
            s.state = EXITED
            log.info("worker %s exited", s.worker_id)
            return
        up = time.time() - (s.started or time.time())
        s.delay = BACKOFF_START if up > HEALTHY_AFTER else min(s.delay * 2, BACKOFF_MAX) if s.restarts else BACKOFF_START
        s.state, s.not_before = CRASHING, now + s.delay
        log.warning("worker %s exited with status %s; restarting in %.1fs (log: %s)",
                    s.worker_id, code, s.delay, s.log_path)

    def _start(self, pool: _Pool, s: _Slot) -> None:
        pfs_dir = s.dir / "pfs"
        if s.dir.exists():
            shutil.rmtree(s.dir, ignore_errors=True)
        pfs_dir.mkdir(parents=True)
        spec_file = self._pool_dir(pool) / f"spec-{pool.hash}.json"
        if not spec_file.exists():
            tmp = spec_file.with_suffix(".tmp")
            tmp.write_text(pool.spec_json)
            os.replace(tmp, spec_file)
        image_dir = sb.resolve_image(pool.image, self.local_image_dirs)
        argv = [sys.executable, "-m", "pps.worker", "--pachd", self.pachd_address,
                "--project", pool.project, "--pipeline", pool.pipeline, "--worker-id", s.worker_id,
                *self.worker_args]
        if s.state == CRASHING:
            s.restarts += 1
        try:
            secret_env, secret_dirs = self._secrets(pool, s)
        except Exception as e:  # noqa: BLE001 - a missing secret: the worker cannot start
            reason = getattr(e, "message", None) or f"{type(e).__name__}"
            with open(s.log_path, "a") as logf:
                logf.write(f"worker {s.worker_id} not started: {reason}\n")
            log.warning("worker %s not started: %s", s.worker_id, reason)
            s.delay = min(s.delay * 2, BACKOFF_MAX) if s.restarts else BACKOFF_START
            s.state, s.not_before, s.exit_code = CRASHING, time.monotonic() + s.delay, 1
            return
        worker_env = {**pool.env, **secret_env}
        if self.mode != "none":
            argv += ["--spec-file", "/pps/spec.json"]
            ro = {str(spec_file): "/pps/spec.json", **{str(d): m for m, d in secret_dirs.items()}}
            cmd = sb.sandbox_command(self.mode, argv, pfs_dir, image_dir, ro)
            env = sb.worker_env(worker_env, home="/tmp")
            cwd = None
        else:
            argv += ["--spec-file", str(spec_file), "--pfs-root", str(pfs_dir)]
            if image_dir is not None:
                argv += ["--image-dir", str(image_dir)]
            for m, d in secret_dirs.items():
                argv += ["--secret-mount", f"{m}={d}"]
            home = s.dir / "home"
            home.mkdir(exist_ok=True)
            cmd, env, cwd = argv, sb.worker_env(worker_env, home=str(home)), str(home)
        with open(s.log_path, "ab") as logf:
            s.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                      env=env, cwd=cwd, start_new_session=True)
        s.state, s.started, s.spec_hash, s.exit_code = STARTING, time.time(), pool.hash, None
        log.info("started worker %s (pid %d, %s)", s.worker_id, s.proc.pid,
                 self.mode if self.mode != "none" else "no sandbox")

    def _secrets(self, pool: _Pool, s: _Slot) -> tuple[dict, dict]:
        """(env vars, {mount path: host dir}) for the pipeline's transform.secrets."""
        from pps.secrets import resolve
        from pps.spec import SecretMount
        raw = ((json.loads(pool.spec_json).get("transform") or {}).get("secrets")) or []
        mounts = [SecretMount(name=m.get("name", ""), key=m.get("key", ""),
                              mount_path=m.get("mount_path", ""), env_var=m.get("env_var", "")) for m in raw]
        env, files = resolve(self.secrets, mounts)
        dirs: dict[str, Path] = {}
        for i, (mount_path, data) in enumerate(sorted(files.items())):
            d = s.dir / "secrets" / str(i)
            d.mkdir(parents=True, mode=0o700)
            os.chmod(d.parent, 0o700)
            for key, value in data.items():
                fd = os.open(d / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(value)
            dirs[mount_path] = d
        return env, dirs

    def _stop(self, slots: list[_Slot]) -> None:
        live = [s for s in slots if s.proc is not None]
        for s in live:
            for pid in _worker_pids(s.proc.pid) if self.mode != "none" else [s.proc.pid]:
                _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for s in live:
            try:
                s.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for s in live:
            if s.proc.poll() is None:
                try:
                    os.killpg(s.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                s.proc.wait()
        for s in slots:
            s.proc, s.state = None, STOPPED
            shutil.rmtree(s.dir, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _worker_pids(bwrap_pid: int) -> list[int]:
    """The worker inside a sandbox: the grandchild of the sandbox process (bwrap -> bwrap as
    the namespace's init -> worker; the same for pps/worker/userns.py), found by scanning /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return [g for c in children.get(bwrap_pid, []) for g in children.get(c, [])]
