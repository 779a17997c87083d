"""File bytes through a pipe that pachd on this machine writes into (pfs.service.local_read),
instead of a GetFile stream: no gRPC messages, no protobuf and no TCP on either side.

The mount makes a pipe, hands its write end to pachd through pachd's local socket and starts
the ordinary GetFile call with URL `pachd-local-fd:<handle>` (the same auth check as a
streamed read); pachd writes the file from the offset into the pipe, waiting while it is
full, so the pipe's buffer is the read-ahead and a reader that stops holds pachd back.

Invariants:
- Used only when pachd is on loopback or a unix socket and offers local reads, and
  `PACHCTL_LOCAL_READ` is not 0/false/no; otherwise (or when pachd says local reads are not
  for us) `LocalReads.open` returns None, turns itself off, and the reader streams by gRPC.
- A `PipeStream` has the interface of reader._Stream (`offset`, `take`, `can_give`, `close`)
  plus `fd` and `waits_on_pipe` (to wait on with trio): the file system's thread reads a
  pipe without a worker thread. `can_give` never waits and never spins: it moves what the
  pipe holds into the next piece, so the next wait is for new bytes.
- Bytes are copied once: from the pipe straight into the piece a read returns (a bytearray
  the size of the read, handed to the kernel as it is).
- Bytes taken are exactly the file's from the stream's offset on: the end of the pipe is the
  end of the file only when the call ended OK; a call that failed raises its error (as a
  gRPC stream would) once the bytes before it are taken. A read pachd ended because the pipe
  sat full too long (ABORTED, ReaderStalled) goes on by itself with a new call.
- Memory per stream: the pipe (at most PIPE_SIZES[0]) plus the piece being filled (the size
  of the read asking for it: at most the kernel's largest read request, 1 MiB).
- `close()` cancels the call and closes the pipe (pachd's next write fails with EPIPE and it
  stops); the connection to pachd's socket is closed when the call ends, so pachd drops a
  handle it never took.
"""
from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import threading
from collections import deque
from typing import Callable, Optional

import grpc

from pachctl import local_read

PIPE_SIZES = (4 << 20, 1 << 20)  # asked of the kernel in turn (a normal user may get 1 MiB at most)
STALL_RESTARTS = 100             # calls ended by pachd for a full pipe, before giving up


class LocalUnavailable(Exception):
    """pachd will not write into our pipe (an older pachd, local reads off): use gRPC."""


def _enabled(client, env=None) -> bool:
    from pachctl.transfer import is_loopback
    env = os.environ if env is None else env
    return (env.get(local_read.LOCAL_READ_ENV, "1").lower() not in ("0", "false", "no")
            and hasattr(socket, "SCM_RIGHTS") and hasattr(fcntl, "F_SETPIPE_SZ") and is_loopback(client))


class LocalReads:
    """One mount's way to pachd's local reads: the socket's name (asked once), and whether
    they work at all (off for good after pachd refused one)."""

    def __init__(self, client, env=None):
        self.client = client
        self.enabled = _enabled(client, env)
        self._name: Optional[str] = None
        self._lock = threading.Lock()
        self.opened = 0  # streams pachd wrote into (tests look at it)

    def _socket(self, fresh: bool = False) -> Optional[str]:
        with self._lock:
            if self._name is None or fresh:
                try:
                    self._name = local_read.socket_name(self.client)
                except grpc.RpcError:
                    self._name = None  # pachd unreachable: this open streams (and fails as a stream does)
                    return None
                if self._name is None:
                    self.enabled = False
            return self._name

    def open(self, file_msg, offset: int) -> Optional["PipeStream"]:
        """A pipe pachd writes the file into from `offset`; None: read by gRPC instead."""
        if not self.enabled:
            return None
        for fresh in (False, True):  # a pachd restarted since has a new socket: ask once more
            name = self._socket(fresh)
            if name is None:
                return None
            r, w = os.pipe2(os.O_CLOEXEC)
            try:
                capacity = _size_pipe(w)
                started = local_read.start_into(self.client, name, file_msg, offset, w, timeout=None)
            except BaseException:
                os.close(r)
                raise
            finally:
                os.close(w)  # pachd holds its own copy now: the pipe ends when pachd is done with it
            if started is not None:
                self.opened += 1
                call, conn = started
                os.set_blocking(r, False)
                return PipeStream(r, call, conn, offset, lambda off: self._restart(file_msg, off), capacity)
            os.close(r)
        return None

    def _restart(self, file_msg, offset: int) -> "PipeStream":
        s = self.open(file_msg, offset)
        if s is None:
            raise LocalUnavailable("pachd's local socket went away")
        return s

    def refused(self) -> None:
        self.enabled = False


def _size_pipe(fd: int) -> int:
    """Make the pipe as big as PIPE_SIZES allows; its size."""
    for size in PIPE_SIZES:
        try:
            return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            continue
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


class PipeStream:
    def __init__(self, fd: int, call, conn, offset: int, restart: Callable[[int], "PipeStream"],
                 capacity: int = 65536):
        self.fd = fd
        self.capacity = capacity           # the pipe's buffer size
        self.call = call
        self.offset = offset               # file offset of the next byte taken
        self._conn = conn
        self._restart = restart
        self._buf: Optional[bytearray] = None  # the next piece, filled from the pipe as bytes come
        self._got = 0                      # bytes of it filled
        self._eof = False                  # the pipe has ended (pachd closed its end)
        self._done = threading.Event()     # the call has ended
        self._stalls = 0
        call.add_done_callback(self._call_ended)

    def _call_ended(self, _call=None) -> None:
        self._done.set()
        try:
            self._conn.close()  # an untaken handle (the call failed before pachd took it) is dropped: the pipe ends
        except OSError:
            pass

    # ---- taking bytes -----------------------------------------------------------------
    def _fill(self, want: int) -> bool:
        """Move what the pipe holds into the next piece (made `want` bytes long), never
        waiting; True when the piece is full or the pipe has ended."""
        buf = self._buf
        if buf is None:
            buf = self._buf = bytearray(max(want, 1))
            self._got = 0
        elif want > len(buf):
            buf.extend(bytes(want - len(buf)))
        view = memoryview(buf)
        try:
            while self._got < len(buf) and not self._eof and self.fd >= 0:
                try:
                    n = os.readv(self.fd, [view[self._got:]])
                except BlockingIOError:
                    return False
                if n == 0:
                    self._eof = True
                self._got += n
        finally:
            view.release()
        return True

    def ended_ok(self) -> bool:
        """Has the file ended (the pipe ended, the call over without error)?"""
        return self._eof and self._done.is_set() and self.call.code() == grpc.StatusCode.OK

    def can_give(self, n: int) -> bool:
        """Can `n` bytes (or the rest of the file, if fewer) be taken without waiting? Never
        waits: takes what the pipe holds into the next piece, so that a later wait for the
        pipe is a wait for new bytes."""
        if self.fd < 0:
            return False
        if not self._fill(n) or self._got < n and not self.ended_ok():
            return False
        return True

    def waits_on_pipe(self) -> bool:
        """Is more to come through the pipe (so waiting for it to be readable makes sense)?"""
        return not self._eof and self.fd >= 0

    def take(self, want: int = 1 << 20):
        """The next `want` bytes (fewer at the end of the file; blocking until they are
        here) as one piece, or None at the end of the file; the call's error after the bytes
        before it. The piece is never touched again here (it may be kept by reference)."""
        while True:
            if self._buf is not None and self._got and (self._got >= want or self._eof):
                buf, got = self._buf, self._got
                self._buf, self._got = None, 0
                if got < len(buf):
                    del buf[got:]
                return buf
            if not self._eof and self.fd >= 0:
                if not self._fill(want):
                    select.select([self.fd], [], [])
                continue
            self._buf, self._got = None, 0
            return self._end(want)

    def _end(self, want: int):
        self._done.wait()
        code = self.call.code()
        if code == grpc.StatusCode.OK:
            return None
        if code == grpc.StatusCode.ABORTED and self._stalls < STALL_RESTARTS:
            # pachd gave up on a full pipe (we stopped reading for a while): go on from here
            self._stalls += 1
            fresh = self._restart(self.offset)
            self._swap(fresh)
            return self.take(want)
        if local_read.is_fallback(self.call) or (code == grpc.StatusCode.INVALID_ARGUMENT
                                                 and "local read" in (self.call.details() or "")):
            raise LocalUnavailable(self.call.details() or code.name)
        raise self.call  # a grpc.RpcError: the reader maps it to an errno

    def _swap(self, fresh: "PipeStream") -> None:
        """Continue with `fresh` (a new call from our offset) in place of the ended one."""
        self._close_pipe()
        self.fd, self.call, self._conn, self.capacity = fresh.fd, fresh.call, fresh._conn, fresh.capacity
        self._eof, self._done = False, fresh._done
        fresh.fd = -1

    def _close_pipe(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        self.call.cancel()
        self._close_pipe()
        self._buf, self._got = None, 0
