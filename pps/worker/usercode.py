"""Running the user's code: one process (group) per attempt, as Pachyderm's RunUserCode does.

Invariants:
- `cmd` is exec'd directly (argv, no shell). The process leads a NEW process group; when it
  exits, times out or is killed, the whole group gets SIGKILL, so no child outlives it (a child
  that escapes with setsid still dies with the worker's PID namespace under bwrap).
- stdin is the given bytes (Pachyderm: `transform.stdin` lines joined with "\\n" plus a final
  "\\n"); a closed pipe (EPIPE) is ignored.
- stdout and stderr share one pipe; every complete line is handed to `on_line` as it arrives
  (decoded as UTF-8 with replacement, trailing "\\r" dropped, overlong lines split at 64 KiB);
  a last unterminated line is delivered at EOF.
- `kill(reason)` is safe from any thread, before, during or after the run; the first reason wins
  and is reported as the failure reason.
- No thread per process: one epoll loop over the output pipe and a pidfd. No preexec_fn in
  the normal path, so Popen can use vfork (a fork() runs gRPC's atfork hooks: ~ms each).
- `pdeathsig` (fallback mode, no PID namespace): the process gets SIGKILL when the worker
  dies, via `setpriv --pdeathsig KILL` (or a preexec_fn when setpriv is missing).
"""
from __future__ import annotations

import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from typing import Callable, Mapping, Optional, Sequence

MAX_LINE = 64 * 1024
_PR_SET_PDEATHSIG = 1


def _pdeathsig() -> None:  # runs in the child (fallback mode without setpriv only)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_SETPRIV = shutil.which("setpriv")


class UserProcess:
    """One attempt of user code. `run()` blocks until it is over and returns the exit code."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Optional[str],
                 stdin: Optional[bytes], on_line: Callable[[str], None],
                 pdeathsig: bool = False):
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.stdin = stdin
        self.on_line = on_line
        self.pdeathsig = pdeathsig
        self.killed: str = ""  # why we killed it ("" = not killed)
        self.returncode: Optional[int] = None
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self._done = False
        self._buf = b""

    # ---- control ------------------------------------------------------------------------
    def kill(self, reason: str) -> None:
        with self._lock:
            if not self.killed:
                self.killed = reason
            if self._proc is not None and not self._done:
                _killpg(self._proc.pid)

    def start(self) -> None:
        """Spawn the process (raises OSError if the command cannot be started)."""
        if not self.argv:
            raise OSError("no command given (transform.cmd is empty)")
        with self._lock:
            if self.killed:
                return
            argv, preexec = self.argv, None
            if self.pdeathsig:  # a preexec_fn forces fork() (slow with gRPC's atfork hooks)
                if _SETPRIV:
                    argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
                else:
                    preexec = _pdeathsig
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                process_group=0, bufsize=0,
                preexec_fn=preexec)
        if self.stdin:
            self._feed_stdin()

    def _feed_stdin(self) -> None:
        p = self._proc
        try:
            if len(self.stdin) <= 65536:  # fits the pipe buffer: never blocks
                p.stdin.write(self.stdin)
            else:
                threading.Thread(target=self._write_big, args=(p.stdin, self.stdin), daemon=True).start()
                return
        except (BrokenPipeError, OSError):
            pass
        try:
            p.stdin.close()
        except OSError:
            pass

    @staticmethod
    def _write_big(pipe, data: bytes) -> None:
        try:
            pipe.write(data)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def run(self, timeout: Optional[float] = None) -> int:
        """Start (if needed), stream output, enforce `timeout`; return the exit code
        (negative: killed by that signal)."""
        if self._proc is None:
            self.start()
        p = self._proc
        if p is None:  # killed before it started
            self.returncode = -signal.SIGKILL
            return self.returncode
        deadline = time.monotonic() + timeout if timeout else None
        out = p.stdout
        pidfd = os.pidfd_open(p.pid)
        sel = selectors.EpollSelector()
        try:
            sel.register(out, selectors.EVENT_READ, "out")
            sel.register(pidfd, selectors.EVENT_READ, "pid")
            exited = False
            while not exited:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                events = sel.select(wait)
                if not events and deadline is not None and time.monotonic() >= deadline:
                    self.kill(f"datum timed out after {timeout:g}s")
                    deadline = None
                    continue
                for key, _ in events:
                    if key.data == "pid":
                        exited = True
                    elif not self._read(out):
                        sel.unregister(out)
            with self._lock:
                _killpg(p.pid)  # leftovers of the group; the leader is a zombie, pid not reusable
                self._done = True
            self.returncode = p.wait()
        finally:
            sel.close()
            os.close(pidfd)
        self._drain(out)
        return self.returncode

    # ---- output -------------------------------------------------------------------------
    def _read(self, out) -> bool:
        data = os.read(out.fileno(), 65536)
        if not data:
            return False
        buf = self._buf + data
        *lines, self._buf = buf.split(b"\n")
        for line in lines:
            self._emit(line)
        while len(self._buf) > MAX_LINE:
            self._emit(self._buf[:MAX_LINE])
            self._buf = self._buf[MAX_LINE:]
        return True

    def _emit(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self.on_line(line.decode("utf-8", "replace"))

    def _drain(self, out) -> None:
        """Read what is left in the pipe after the group is dead (EOF soon: writers are gone)."""
        try:
            os.set_blocking(out.fileno(), False)
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:
                try:
                    if not self._read(out):
                        break
                except BlockingIOError:
                    # an escaped grandchild may still hold the pipe: wait briefly, then give up
                    sel = selectors.PollSelector()
                    sel.register(out, selectors.EVENT_READ)
                    ready = sel.select(max(0.0, deadline - time.monotonic()))
                    sel.close()
                    if not ready:
                        break
        finally:
            if self._buf:
                self._emit(self._buf)
                self._buf = b""
            out.close()
            if self._proc.stdin is not None and not self.stdin:
                self._proc.stdin.close()


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stdin_bytes(lines: Sequence[str]) -> bytes:
    """Pachyderm feeds `strings.Join(stdin, "\\n") + "\\n"` to every process."""
    return ("\n".join(lines) + "\n").encode()


def describe_exit(code: int, accepted: Sequence[int] = ()) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
