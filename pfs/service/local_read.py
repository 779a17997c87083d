"""Short-circuit reads for clients on pachd's machine: pachd writes a file's bytes straight
into a file descriptor the client handed it, instead of streaming them through gRPC (HDFS's
short-circuit reads pass descriptors over a unix socket the same way, in the other direction).

How a client uses it (pachctl.local_read is the client side):
1. It asks `/pachd_local.LocalRead/Socket` (an ordinary gRPC call, authenticated like any
   other) for the name of pachd's local socket: an abstract unix socket with a random name,
   bound by pachd before it is told to anyone, so no other process can hold that name.
2. It connects and sends one byte carrying its open output descriptor (SCM_RIGHTS); pachd
   answers with a handle (32 hex digits and a newline).
3. It calls GetFile with URL `pachd-local-fd:<handle>`. That is the normal GetFile: auth
   checks REPO_READ on the file's repo exactly as for a streamed read. pachd writes the
   file's bytes from `offset` into the descriptor (at its current position) and returns an
   empty stream.

The descriptor may be the write end of a pipe (the FUSE mount reads a file that way: the
pipe's buffer is its read-ahead, and a full pipe holds pachd back). pachd writes a pipe
without blocking: it waits for room at most `stall_limit` seconds at a time (then the call
ends with ABORTED, ReaderStalled, and the client reads on with a new call), and stops at
once, with nothing more written, when the reader closes its end or cancels the call.

The same handles serve local puts the other way round: ModifyFile's AddFile with URL
`pachd-local-fd:<handle>` makes pachd read the client's open file (a regular file only) as
it reads a file:// source. pachd.local_put registers the descriptors of lean `put file`
requests here and uses them that way.

Invariants:
- pachd writes only into descriptors the client opened itself: it never opens a path for a
  client and never hands out its own files (a pack holds chunks of many files and repos).
- Only callers on this machine (loopback or unix peers) are told the socket's name or may
  use a handle; anyone else gets FAILED_PRECONDITION and streams as before.
- A handle is used at most once. It and its descriptor are dropped when used, when its
  connection closes, or after HANDLE_TTL seconds, whichever comes first. At most
  MAX_CONNECTIONS connections are served at once (a connection beyond is closed at once and
  its client streams), so no local process can make pachd hold unbounded descriptors or
  threads.
- Only regular files, character devices (/dev/null) and, for reads, pipes are accepted: a
  socket (or a put from anything but a regular file) is refused. A pipe never holds a pachd
  thread longer than `stall_limit` seconds without its reader taking bytes.
- The bytes are exactly a streamed GetFile's: the same read path, every chunk checked
  against its hash. A corrupt chunk fails the call with DATA_LOSS after the bytes before it
  were written, as a stream would have delivered them.
- A bad handle (unknown, used, expired) fails with FAILED_PRECONDITION before anything is
  written, so the client can fall back to streaming.
"""
from __future__ import annotations

import array
import logging
import os
import secrets
import select
import socket
import stat
import threading
import time
from typing import Iterable, Optional

from pfs.errors import FailedPrecondition, InvalidArgument, ReaderStalled

log = logging.getLogger("pachd.local_read")
URL_SCHEME = "pachd-local-fd:"
SOCKET_METHOD = "/pachd_local.LocalRead/Socket"
HANDLE_TTL = 60.0
MAX_CONNECTIONS = 256  # handles (and connections) open at once; more are refused: the client streams
HANDLE_BAD = "the local read handle is unknown, used or expired"
POLL_EVERY = 0.5  # seconds between checks that the call is still wanted while a pipe is full
STALL_LIMIT = 60.0  # seconds a pipe's reader may take nothing before pachd ends the call


def is_local_peer(peer: str) -> bool:
    """A gRPC peer string on this machine (loopback TCP or a unix socket)."""
    return peer.startswith(("ipv4:127.", "ipv6:[::1]", "ipv6:%5B::1%5D", "unix:"))


class _Handle:
    def __init__(self, fd: int):
        self.fd = fd
        self.born = time.monotonic()


class LocalReadServer:
    """The abstract unix socket that takes client descriptors, and the handles for them."""

    def __init__(self):
        self._handles: dict[str, _Handle] = {}
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.name = ""  # the abstract socket's name, without its leading NUL
        self.used = 0  # handles taken by GetFile calls (tests and benchmarks look at it)
        self.stall_limit = STALL_LIMIT  # see write_all (tests lower it)

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> bool:
        """Bind and serve; False where abstract unix sockets or SCM_RIGHTS do not exist."""
        if not hasattr(socket, "AF_UNIX") or not hasattr(socket, "SCM_RIGHTS") or not os.path.exists("/proc/net/unix"):
            return False
        name = "pachd-local-read-" + secrets.token_hex(16)
        served = serve_abstract(name, self._serve, self._slots, "local-read", "local reads")
        if served is None:
            return False
        (self._sock, self._thread), self.name = served, name
        return True

    def stop(self) -> None:
        s, self._sock = self._sock, None
        stop_serving(s, self._thread)
        with self._lock:
            handles, self._handles = self._handles, {}
        for h in handles.values():
            os.close(h.fd)

    # ---- the socket ------------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        key = None
        try:
            conn.settimeout(HANDLE_TTL)
            fds = array.array("i")
            msg, anc, _flags, _addr = conn.recvmsg(1, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
            if msg != b"F" or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                conn.sendall(b"ERR send one byte 'F' with exactly one descriptor\n")
                return
            key = self.register(fds[0])
            conn.sendall(key.encode() + b"\n")
            conn.recv(1)  # the client closes the connection when done (or the TTL passes)
        except OSError:
            pass
        finally:
            conn.close()
            if key is not None:
                self.drop(key)
            self._slots.release()

    def register(self, fd: int) -> str:
        """A new handle for `fd` (now owned here until taken or dropped)."""
        key = secrets.token_hex(16)
        now = time.monotonic()
        with self._lock:
            for k in [k for k, h in self._handles.items() if now - h.born > HANDLE_TTL]:
                os.close(self._handles.pop(k).fd)
            self._handles[key] = _Handle(fd)
        return key

    def drop(self, key: str) -> None:
        """Forget a handle and close its descriptor, unless a call already took it."""
        with self._lock:
            h = self._handles.pop(key, None)
        if h is not None:
            os.close(h.fd)

    # ---- use ---------------------------------------------------------------------------
    def take(self, url: str, peer: str, for_put: bool = False) -> int:
        """The descriptor behind a `pachd-local-fd:` URL, now owned by the caller (who closes
        it); FailedPrecondition for a remote peer or a bad handle, before anything is written.
        For a put (pachd reads the descriptor) it must be a regular file."""
        if not is_local_peer(peer):
            raise FailedPrecondition("local reads are only for clients on pachd's machine; stream the file instead")
        key = url[len(URL_SCHEME):]
        with self._lock:
            h = self._handles.pop(key, None)
        if h is None or time.monotonic() - h.born > HANDLE_TTL:
            if h is not None:
                os.close(h.fd)
            raise FailedPrecondition(f"{HANDLE_BAD}; stream the file instead")
        mode = os.fstat(h.fd).st_mode
        if for_put and not stat.S_ISREG(mode):
            os.close(h.fd)
            raise InvalidArgument("a local put reads only from a regular file, not a pipe, socket, "
                                  "device or directory; stream its bytes instead")
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            os.close(h.fd)
            raise InvalidArgument("a local read writes only into a regular file, a character device "
                                  "(such as /dev/null) or a pipe, not a socket or directory")
        self.used += 1
        return h.fd


def serve_abstract(name: str, serve_conn, slots: threading.BoundedSemaphore, thread_name: str, what: str):
    """Listen on the abstract unix socket `name`; a daemon thread accepts connections and
    runs `serve_conn(conn)` on a thread of its own for each, while `slots` has room (a full
    house closes the connection: that client uses gRPC). serve_conn releases its slot.
    (socket, accepting thread), or None (logged, saying `what` is off) when it cannot bind."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.bind("\0" + name)
        s.listen(64)
    except OSError as e:
        s.close()
        log.warning("%s are off: cannot bind the unix socket @%s (%s); clients use gRPC", what, name, e)
        return None

    def accept() -> None:
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return  # stopped (stop_serving closed the socket)
            if not slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=serve_conn, args=(conn,), name=f"{thread_name}-conn", daemon=True).start()

    t = threading.Thread(target=accept, name=thread_name, daemon=True)
    t.start()
    return s, t


def stop_serving(sock, thread) -> None:
    """Stop a listener from serve_abstract: no new connections; its accept thread ends."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
    if thread is not None:
        thread.join(timeout=5)


def write_all(fd: int, pieces: Iterable, alive=lambda: True, stall_limit: float = STALL_LIMIT) -> int:
    """Write every piece (bytes-like) to `fd`; the number of bytes written. Stops early (and
    returns) when `alive()` turns false: the client went away. A pipe is written by
    `_write_pipe` (never blocking for long)."""
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        return _write_pipe(fd, pieces, alive, stall_limit)
    n = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            w = os.write(fd, view)
            view = view[w:]
            n += w
        if not alive():
            break
    return n


def _write_pipe(fd: int, pieces: Iterable, alive, stall_limit: float) -> int:
    """`write_all` into a pipe: non-blocking writes; while the pipe is full, wait for room up
    to `stall_limit` seconds (checking `alive()` every POLL_EVERY), then raise ReaderStalled.
    A reader that closed its end (EPIPE) ends the writing quietly: it wants no more."""
    os.set_blocking(fd, False)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    n = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            try:
                w = os.write(fd, view)
            except BlockingIOError:
                waited_since = time.monotonic()
                while not poller.poll(POLL_EVERY * 1000):
                    if not alive():
                        return n
                    if time.monotonic() - waited_since >= stall_limit:
                        raise ReaderStalled(f"the reader of the pipe took nothing for {stall_limit:g} s; "
                                            f"pachd ended the read after {n} bytes (read on with a new call)")
                continue
            except BrokenPipeError:
                return n
            view = view[w:]
            n += w
        if not alive():
            break
    return n


def add_socket_service(server, local_reads: LocalReadServer) -> None:
    """Serve `/pachd_local.LocalRead/Socket`: the socket's name (raw UTF-8, no protobuf), for
    callers on this machine; FAILED_PRECONDITION for others or when local reads are off."""
    import grpc

    def socket_name(_request: bytes, ctx) -> bytes:
        if not local_reads.name:
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "local reads are off in this pachd")
        if not is_local_peer(ctx.peer() or ""):
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      "local reads are only for clients on pachd's machine; stream the file instead")
        return local_reads.name.encode()

    service, method = SOCKET_METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {
        method: grpc.unary_unary_rpc_method_handler(socket_name)})])
