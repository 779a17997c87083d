"""`get file` on pachd's machine: pachd writes the bytes into our output itself.

The client side of pfs.service.local_read: ask pachd for its local socket, hand it the output
descriptor, then make the ordinary GetFile call (same auth check as a streamed read) with URL
`pachd-local-fd:<handle>`. No file bytes cross gRPC or this process.

Invariants:
- Used only when pachd is on loopback or a unix socket, the output is a regular file or a
  character device (/dev/null), and `PACHCTL_LOCAL_READ` is not 0/false/no.
- Falls back (returns False, nothing written) whenever the fast path is not there: an older
  or remote pachd (UNIMPLEMENTED, FAILED_PRECONDITION), no abstract unix sockets, a socket
  that cannot be reached (another network namespace), a handle pachd does not know.
- Any other error (file not found, permission denied, DATA_LOSS) is raised as the streamed
  call would raise it.
"""
from __future__ import annotations

import array
import os
import socket
import stat
from typing import Optional

import grpc

from proto.pfs_v2 import pfs_pb2 as pfs

LOCAL_READ_ENV = "PACHCTL_LOCAL_READ"
URL_SCHEME = "pachd-local-fd:"
SOCKET_METHOD = "/pachd_local.LocalRead/Socket"
CLIENT_DEFAULT = object()  # start_into's timeout: the client's default deadline
_FALLBACK_HINTS = ("local read handle", "only for clients on pachd's machine", "local reads are off")


def usable_output(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISCHR(mode)


def allowed(client, fd: int, env=None) -> bool:
    from pachctl.transfer import is_loopback
    env = os.environ if env is None else env
    return (env.get(LOCAL_READ_ENV, "1").lower() not in ("0", "false", "no") and hasattr(socket, "SCM_RIGHTS")
            and is_loopback(client) and usable_output(fd))


def _fallback(e: grpc.RpcError) -> bool:
    code = e.code()
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return True
    return code == grpc.StatusCode.FAILED_PRECONDITION and any(h in (e.details() or "") for h in _FALLBACK_HINTS)


def _socket_name(client, timeout: Optional[float]) -> Optional[str]:
    call = client.channel.unary_unary(SOCKET_METHOD, request_serializer=None, response_deserializer=None)
    try:
        return call(b"", metadata=client.metadata or None, timeout=timeout or 10).decode()
    except grpc.RpcError as e:
        if _fallback(e):
            return None
        raise


def _hand_over(name: str, fd: int) -> Optional[tuple[socket.socket, str]]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(10)
        s.connect("\0" + name)
        s.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        reply = b""
        while not reply.endswith(b"\n"):
            more = s.recv(128)
            if not more:
                break
            reply += more
    except OSError:
        s.close()
        return None
    handle = reply.strip().decode(errors="replace")
    if not reply.endswith(b"\n") or handle.startswith("ERR") or not handle:
        s.close()
        return None
    return s, handle


def get_into(client, file_msg: pfs.File, offset: int, fd: int, timeout: Optional[float] = None) -> bool:
    """Have pachd write the file (from `offset`) into `fd` at its current position. True when
    done; False when the fast path is not available (nothing was written): stream instead."""
    name = _socket_name(client, timeout)
    if not name:
        return False
    started = start_into(client, name, file_msg, offset, fd)
    if started is None:
        return False
    call, conn = started
    try:
        for _ in call:
            pass
        return True
    except grpc.RpcError as e:
        if _fallback(e):
            return False
        raise
    finally:
        conn.close()


def socket_name(client, timeout: Optional[float] = None) -> Optional[str]:
    """The name of pachd's local socket, or None when pachd offers no local reads (an older
    or remote pachd, or local reads turned off in it)."""
    return _socket_name(client, timeout)


def start_into(client, name: str, file_msg: pfs.File, offset: int, fd: int, timeout=CLIENT_DEFAULT):
    """`get_into` without waiting: hand `fd` to pachd through its local socket `name` and
    start the GetFile call. (call, connection): iterate the call (or ask its code()) for its
    end, and close the connection once it is over (pachd then drops a handle it did not
    use, closing its copy of `fd`). `timeout`: the call's deadline (None: none; by default
    the client's). None when pachd took no handle (nothing started)."""
    got = _hand_over(name, fd)
    if got is None:
        return None
    conn, handle = got
    req = pfs.GetFileRequest(file=file_msg, offset=offset, URL=URL_SCHEME + handle)
    try:
        return (client.pfs.GetFile(req) if timeout is CLIENT_DEFAULT else client.pfs.GetFile(req, timeout=timeout)), conn
    except BaseException:
        conn.close()
        raise


def is_fallback(e: grpc.RpcError) -> bool:
    """Does this error of a local read mean "not here: stream instead" (nothing written)?"""
    return _fallback(e)
