"""Zero setup: start a local pachd in the background when nothing answers, and stop it.

When the active context is the default local one (`grpc://localhost:30650`, or
`PACHD_ADDRESS` naming a loopback host) and nothing accepts connections there, pachctl
starts `pachd` detached (its own session, stdin from /dev/null, stdout+stderr appended to
`~/.pachyderm/pachd.log`, data in `~/.pachyderm/data`), says so on stderr in one line, waits
until gRPC health reports SERVING, and then runs the command. `pachctl shutdown` (same as
`pachctl daemon stop`) sends SIGTERM to the pid recorded in `~/.pachyderm/pachd.pid` and
waits for it to exit.

Invariants:
- `~` is `$HOME`, so tests isolate everything with HOME (and PACH_CONFIG for the config).
- Autostart only for the IMPLICIT default: no `PACHD_ADDRESS`, and the active context names no
  address or is pachctl's own `default` context at `grpc://localhost:30650`. An address named
  explicitly (`PACHD_ADDRESS`, or any other context) is somebody's own pachd, perhaps started
  with its own `--root`: when it is down (crashed), a fresh pachd on ~/.pachyderm/data must
  not silently answer in its place, so pachctl says that nothing answers there and starts
  nothing, unless `PACHCTL_AUTOSTART=1` asks for autostart at that (loopback) address.
- `PACHCTL_NO_AUTOSTART=1` disables autostart; remote addresses, TLS and unix sockets never
  autostart. `PACHCTL_AUTOSTART_TIMEOUT` (seconds, default 20) bounds the wait.
- The one-line notice of a start names the address, the pid, the data root and the log.
- Starting is serialised by an flock on `~/.pachyderm/pachd.lock`, and the port is probed
  again under the lock, so concurrent pachctl invocations start at most one pachd.
- pachd runs as `<this python> -m pachd`, with this checkout on PYTHONPATH, so it
  is always the pachd that matches this pachctl, installed or not.
- The pid file is only trusted for a live process whose command line is a pachd.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, TextIO

from pachctl.config import (ADDRESS_ENV, DEFAULT_ADDRESS, DEFAULT_CONTEXT, DEFAULT_PORT, Config, PachdAddress,
                            normalize_address)

NO_AUTOSTART_ENV = "PACHCTL_NO_AUTOSTART"
AUTOSTART_ENV = "PACHCTL_AUTOSTART"
TIMEOUT_ENV = "PACHCTL_AUTOSTART_TIMEOUT"
DEFAULT_TIMEOUT = 20.0
LOOPBACK = ("localhost", "127.0.0.1", "::1", "ip6-localhost")
_DEFAULT_ADDRESSES = {normalize_address(f"{h}:{DEFAULT_PORT}") for h in ("localhost", "127.0.0.1")}
_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


class DaemonError(Exception):
    """A user-facing failure to start or stop the background pachd."""


@dataclass(frozen=True)
class Paths:
    state: Path

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def log(self) -> Path:
        return self.state / "pachd.log"

    @property
    def pid(self) -> Path:
        return self.state / "pachd.pid"

    @property
    def lock(self) -> Path:
        return self.state / "pachd.lock"


def paths(env: Optional[Mapping[str, str]] = None) -> Paths:
    env = os.environ if env is None else env
    return Paths(Path(env.get("HOME") or os.path.expanduser("~")) / ".pachyderm")


# ---- deciding --------------------------------------------------------------------------------
def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "") not in ("", "0", "false", "no")


def _decide(config: Config, env: Mapping[str, str]) -> tuple[Optional[PachdAddress], str]:
    """(address to autostart at or None, and when None for a loopback address named
    explicitly: what named it, for the error text)."""
    if _flag(env, NO_AUTOSTART_ENV):
        return None, ""
    addr = config.pachd_address(env)
    if addr.secured or addr.unix_socket or addr.host not in LOOPBACK:
        return None, ""
    if _flag(env, AUTOSTART_ENV):
        return addr, ""
    if env.get(ADDRESS_ENV):
        return None, f"{ADDRESS_ENV}={env[ADDRESS_ENV]}"
    name, ctx = config.active_context(env, error_on_no_active=False)
    ctx_addr = (ctx or {}).get("pachd_address", "")
    if ctx_addr and not (name == DEFAULT_CONTEXT and normalize_address(ctx_addr) == DEFAULT_ADDRESS):
        return None, f"the context {name!r}"
    return addr, ""


def autostart_address(config: Config, env: Optional[Mapping[str, str]] = None) -> Optional[PachdAddress]:
    """The address to start a pachd on, or None when autostart does not apply."""
    return _decide(config, os.environ if env is None else env)[0]


def not_started_hint(config: Config, env: Optional[Mapping[str, str]] = None) -> str:
    """For a loopback address named explicitly where nothing answered: why pachctl started no
    pachd there, and how to get one ("" when that does not apply)."""
    env = os.environ if env is None else env
    try:
        addr, named_by = _decide(config, env)
    except ValueError:
        return ""
    if addr is not None or not named_by:
        return ""
    return (f"; {named_by} names this address, so pachctl did not start a pachd of its own there "
            f"(it would not have your data): start your pachd again with its --root, or set "
            f"{AUTOSTART_ENV}=1 to start one with data in {paths(env).data}")


def answers(addr: PachdAddress, timeout: float = 1.0) -> bool:
    """Does anything accept TCP connections at addr? (Refused connections fail at once.)"""
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_pachd(config: Config, env: Optional[Mapping[str, str]] = None,
                 err: Optional[TextIO] = None) -> Optional[int]:
    """Start a background pachd if autostart applies and nothing answers; its pid, or None."""
    env = os.environ if env is None else env
    addr = autostart_address(config, env)
    if addr is None or answers(addr):
        return None
    return start(addr, env, err)


# ---- pid file --------------------------------------------------------------------------------
def read_pid_file(p: Paths) -> Optional[dict]:
    try:
        info = json.loads(p.pid.read_text())
        return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def alive(pid: int) -> bool:
    """Running (not a zombie). Reaps pid first if it is our own exited child."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_pachd(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc: trust the pid file
    return b"pachd" in cmdline


def running(env: Optional[Mapping[str, str]] = None) -> Optional[dict]:
    """The pid-file record of a live background pachd, else None."""
    info = read_pid_file(paths(env))
    if info and alive(info["pid"]) and _is_pachd(info["pid"]):
        return info
    return None


# ---- starting --------------------------------------------------------------------------------
def _bind_host(addr: PachdAddress) -> str:
    return f"[{addr.host}]" if ":" in addr.host else addr.host


def _child_env(env: Mapping[str, str]) -> dict:
    child = dict(env)
    pp = child.get("PYTHONPATH", "")
    child["PYTHONPATH"] = _PROJECT_ROOT + (os.pathsep + pp if pp else "")
    child["PYTHONUNBUFFERED"] = "1"
    return child


def _timeout(env: Mapping[str, str]) -> float:
    try:
        return float(env.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT


def start(addr: PachdAddress, env: Optional[Mapping[str, str]] = None,
          err: Optional[TextIO] = None) -> int:
    """Spawn pachd for addr, announce it on err, wait until it serves; returns its pid."""
    env = os.environ if env is None else env
    err = sys.stderr if err is None else err
    p = paths(env)
    p.state.mkdir(parents=True, exist_ok=True)
    with open(p.lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if answers(addr):  # another pachctl started it while we waited for the lock
                return (running(env) or {}).get("pid", 0)
            other = running(env)
            if other is not None and other.get("port") != addr.port:
                raise DaemonError(
                    f"a pachd started by pachctl (pid {other['pid']}) already uses {p.data} on port "
                    f"{other.get('port')}; stop it with `pachctl shutdown` or set PACHD_ADDRESS=localhost:"
                    f"{other.get('port')}")
            pid = other["pid"] if other is not None else _spawn(addr, env, p)
            if other is None:
                print(f"pachctl: no pachd answered at {addr.target}, so one was started in the background "
                      f"(pid {pid}; data in {p.data}; log in {p.log}; stop it with `pachctl shutdown`)",
                      file=err, flush=True)
            _wait_ready(addr, pid, p, _timeout(env))
            return pid
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _spawn(addr: PachdAddress, env: Mapping[str, str], p: Paths) -> int:
    argv = [sys.executable, "-m", "pachd", "--port", str(addr.port),
            "--root", str(p.data), "--host", _bind_host(addr)]
    if addr.port != DEFAULT_PORT and not env.get("PACHD_S3_GATEWAY_PORT"):
        argv += ["--s3-gateway-port", "-1"]  # 30600 belongs to the default pachd
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(p.log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        pid = os.posix_spawn(sys.executable, argv, _child_env(env), file_actions=actions, setsid=True)
    except OSError as e:
        raise DaemonError(f"could not start pachd: {e}") from None
    record = {"pid": pid, "port": addr.port, "host": addr.host, "data": str(p.data),
              "log": str(p.log), "started": time.time()}
    tmp = p.pid.with_suffix(".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, p.pid)
    return pid


def _log_tail(log: Path, lines: int = 3) -> str:
    try:
        tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("\n" + "\n".join("  " + t for t in tail)) if tail else ""


def _wait_ready(addr: PachdAddress, pid: int, p: Paths, timeout: float) -> None:
    from pachctl.client import PachClient

    deadline = time.monotonic() + timeout
    with PachClient(addr) as c:
        while True:
            if c.healthy(timeout=1.0):
                return
            if not alive(pid):
                p.pid.unlink(missing_ok=True)
                raise DaemonError(f"pachd exited while starting; see its log at {p.log}{_log_tail(p.log)}")
            if time.monotonic() >= deadline:
                raise DaemonError(f"pachd (pid {pid}) did not become ready within {timeout:g}s; "
                                  f"see its log at {p.log}")
            time.sleep(0.1)


# ---- stopping --------------------------------------------------------------------------------
def stop(env: Optional[Mapping[str, str]] = None, timeout: float = 30.0) -> int:
    """SIGTERM the background pachd and wait for it to exit; returns its pid."""
    p = paths(env)
    info = read_pid_file(p)
    if info is None:
        raise DaemonError(f"no pachd started by pachctl is running (no pid file at {p.pid})")
    pid = info["pid"]
    if not alive(pid) or not _is_pachd(pid):
        p.pid.unlink(missing_ok=True)
        raise DaemonError(f"no pachd started by pachctl is running (pid {pid} has exited)")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
            break
        time.sleep(0.05)
    p.pid.unlink(missing_ok=True)
    return pid
