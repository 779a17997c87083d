"""pachd as a user runs it with chunks in S3: `pachd --storage s3://bucket/prefix` in its own
process, credentials and endpoint in the standard AWS_* variables.

- `s3_env(server, endpoint=None, **extra)`: the environment a user would export (every
  inherited AWS_*/PACHD_* variable removed first, so the host's settings cannot leak in).
- `PachdProc(root, storage, env)`: starts `python -m pachd --port 0 ...`, waits for
  "pachd listening on", exposes `.port`/`.address`; `stop()` sends SIGTERM (then SIGKILL) and
  returns the exit code; its stderr goes to `<root>.log` (`log_tail()` for failure messages).
  The child gets a parent-death signal, so it dies with the test process.
- `run_pachd(args, env)`: run pachd to completion (for start-up failures), returns
  CompletedProcess.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from tests.s3servers import S3Server, spawn_dying_with_parent

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0

__all__ = ["s3_env", "PachdProc", "run_pachd", "pachd_argv"]


def s3_env(server: Optional[S3Server], endpoint: Optional[str] = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PACHD_"))}
    env["PYTHONPATH"] = str(ROOT)
    if server is not None:
        env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
                   AWS_DEFAULT_REGION=server.region, AWS_ENDPOINT_URL=endpoint or server.endpoint_url)
    env.update(extra)
    return env


def pachd_argv(root: Path, storage: Optional[str], port: int = 0) -> list[str]:
    argv = [sys.executable, "-m", "pachd", "--port", str(port), "--root", str(root),
            "--s3-gateway-port", "-1", "--host", "127.0.0.1"]
    if storage:
        argv += ["--storage", storage]
    return argv


def run_pachd(argv_tail: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    argv, spawn_kw = spawn_dying_with_parent([sys.executable, "-m", "pachd", *argv_tail])
    return subprocess.run(argv, cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, **spawn_kw)


class PachdProc:
    """A pachd process on a free loopback port (see the module docstring)."""

    def __init__(self, root: Path, storage: Optional[str], env: dict):
        self.root = Path(root)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root.parent / f"{self.root.name}.log"
        self._log = open(self.log_path, "w+b")
        argv, spawn_kw = spawn_dying_with_parent(pachd_argv(self.root, storage))
        try:
            self.proc = subprocess.Popen(argv, cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=self._log, **spawn_kw)
        except BaseException:
            self._log.close()
            raise
        try:
            self.port = self._wait_port()
        except BaseException:
            self.stop()
            raise

    def _wait_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if "pachd listening on" in line:
                    return int(line.rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                raise RuntimeError(f"pachd exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"pachd did not start in {START_TIMEOUT}s:\n{self.log_tail()}")

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30) -> Optional[int]:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit code. Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "PachdProc":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_in(procs: list, server, root: Path, storage: Optional[str], **env) -> "PachdProc":
    """A `PachdProc` on `server`'s credentials (extra `env` on top), appended to `procs` (the
    s3backend `procs` fixture stops them at the end)."""
    p = PachdProc(root, storage, s3_env(server, **env))
    procs.append(p)
    return p
