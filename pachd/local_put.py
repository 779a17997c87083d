"""`put file` for a client on pachd's machine that does not speak gRPC: the far end of
pachctl.lean_put.

A pachctl that would spend most of a mid-sized put starting itself (importing grpc, protobuf
and click takes longer than pachd takes to store 64 MiB) connects instead to this abstract
unix socket, `pachd-local-put-<gRPC port>`, sends one JSON line describing the put with its
open source file attached (SCM_RIGHTS), and reads one JSON line back.

pachd then makes exactly the calls the full CLI would make, on its own gRPC port, with the
metadata (auth token, transaction) the client sent: InspectRepo of the target repo, then one
ModifyFile (set_commit; delete_file unless appending; an empty add_file; an add_file whose
URL is a `pachd-local-fd:` handle for the descriptor, see pfs.service.local_read). So auth,
permission checks, errors and the result are those of a normal put; only the bytes come from
the client's own descriptor (pachd never opens a path for it).

Request: {"v": 1, "metadata": [[key, value], ...], "repo": <pfs_v2.Repo as JSON>,
          "commit": <pfs_v2.Commit as JSON>, "path": "/dest", "append": false}
Reply:   {"ok": true} | {"code": "NOT_FOUND", "details": "..."} | {"fallback": "why"}

Invariants:
- Served only when pachd listens on loopback or all interfaces without TLS, and local reads
  (the descriptor handles) are on; otherwise the socket does not exist and clients use gRPC.
- `fallback` means nothing happened (pachd is shutting down, or the request was not
  understood by this version): the client runs the normal gRPC path instead.
- A client that disconnects before the reply cancels its ModifyFile, as a cancelled gRPC
  stream does: the put is atomic, so nothing of it is written.
- At most MAX_CONNECTIONS connections are served at once; one beyond is closed at once (its
  client falls back to gRPC). Each descriptor is closed when its put ends, or when the
  connection does.
"""
from __future__ import annotations

import array
import json
import logging
import os
import socket
import threading
from typing import Optional

import grpc
from google.protobuf import json_format, wrappers_pb2

from pfs.service.local_read import URL_SCHEME, LocalReadServer, serve_abstract, stop_serving
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

log = logging.getLogger("pachd.local_put")
SOCKET_PREFIX = "pachd-local-put-"
MAX_CONNECTIONS = 64
MAX_REQUEST = 1 << 20  # bytes of one JSON request line
PROTOCOL_VERSION = 1


def socket_name(port: int) -> str:
    """The abstract socket's name (without its leading NUL) for pachd's gRPC port."""
    return f"{SOCKET_PREFIX}{port}"


def loopback_target(host: str, port: int) -> Optional[str]:
    """The address pachd's own gRPC port answers on from this machine; None when pachd
    listens on one other interface only (then no local client can tell it is local)."""
    if host in ("", "0.0.0.0", "localhost") or host.startswith("127."):
        return f"{'127.0.0.1' if host in ('', '0.0.0.0', 'localhost') else host}:{port}"
    if host in ("::", "::1", "[::]", "[::1]"):
        return f"[::1]:{port}"
    return None


class _BadRequest(ValueError):
    pass


def _parse(header: bytes) -> dict:
    try:
        req = json.loads(header)
    except ValueError as e:
        raise _BadRequest(f"the request is not JSON: {e}") from None
    if not isinstance(req, dict) or req.get("v") != PROTOCOL_VERSION:
        raise _BadRequest(f"this pachd speaks version {PROTOCOL_VERSION} of the local put protocol")
    md = req.get("metadata", [])
    if not (isinstance(md, list) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
                                         for p in md)):
        raise _BadRequest("metadata must be a list of [key, value] strings")
    if not isinstance(req.get("path"), str) or not isinstance(req.get("append", False), bool):
        raise _BadRequest("path must be a string and append a boolean")
    try:
        req["repo"] = json_format.ParseDict(req.get("repo") or {}, pb.Repo())
        req["commit"] = json_format.ParseDict(req.get("commit") or {}, pb.Commit())
    except json_format.ParseError as e:
        raise _BadRequest(f"repo or commit is not a pfs_v2 message: {e}") from None
    req["metadata"] = tuple((k, v) for k, v in md)
    return req


class LocalPutServer:
    """The abstract unix socket taking lean `put file` requests, and their threads."""

    def __init__(self, port: int, target: str, local_reads: LocalReadServer):
        self.port, self.target, self.local_reads = port, target, local_reads
        self.name = socket_name(port)
        self._sock: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._channel: Optional[grpc.Channel] = None
        self._channel_lock = threading.Lock()
        self.served = 0  # puts that reached ModifyFile (tests and benchmarks look at it)

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> bool:
        if not self.local_reads.name:
            return False
        served = serve_abstract(self.name, self._serve, self._slots, "local-put", "local puts")
        if served is None:
            return False
        self._sock, self._thread = served
        return True

    def stop(self) -> None:
        """Accept no more puts (those under way go on: close() after the gRPC server's grace)."""
        s, self._sock = self._sock, None
        stop_serving(s, self._thread)

    def close(self) -> None:
        self.stop()
        with self._channel_lock:
            ch, self._channel = self._channel, None
        if ch is not None:
            ch.close()

    def _stub(self) -> pfs_pb2_grpc.APIStub:
        with self._channel_lock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(self.target, options=[("grpc.max_send_message_length", 64 << 20)])
            return pfs_pb2_grpc.APIStub(self._channel)

    # ---- the socket ------------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        fds = array.array("i")
        try:
            header = self._read_request(conn, fds)
            if header is None:
                return
            if len(fds) != 1:
                self._reply(conn, {"fallback": "send the request with exactly one descriptor"})
                return
            try:
                req = _parse(header)
            except _BadRequest as e:
                self._reply(conn, {"fallback": str(e)})
                return
            key = self.local_reads.register(fds.pop())
            try:
                self._reply(conn, self._put(conn, req, key))
            finally:
                self.local_reads.drop(key)  # closes the descriptor unless ModifyFile took it
        except OSError:
            pass  # the client went away
        except Exception:  # noqa: BLE001 - one bad request must not end the accept loop
            log.exception("local put failed")
            try:
                self._reply(conn, {"code": "INTERNAL", "details": "pachd failed to serve a local put; see its log"})
            except OSError:
                pass
        finally:
            for fd in fds:
                os.close(fd)
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes the watcher's recv (_cancel_when_gone)
            except OSError:
                pass
            conn.close()
            self._slots.release()

    @staticmethod
    def _read_request(conn: socket.socket, fds: array.array) -> Optional[bytes]:
        conn.settimeout(30)  # the client sends its request at once
        data, anc, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
        while not data.endswith(b"\n"):
            if len(data) > MAX_REQUEST:
                LocalPutServer._reply(conn, {"fallback": "the request is too long"})
                return None
            more = conn.recv(65536)
            if not more:
                return None
            data += more
        conn.settimeout(None)  # a put takes as long as it takes
        return data

    @staticmethod
    def _reply(conn: socket.socket, body: dict) -> None:
        conn.sendall(json.dumps(body).encode() + b"\n")

    # ---- the put -----------------------------------------------------------------------
    def _put(self, conn: socket.socket, req: dict, key: str) -> dict:
        stub, md = self._stub(), req["metadata"] or None
        try:
            stub.InspectRepo(pb.InspectRepoRequest(repo=req["repo"]), metadata=md)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                return {"fallback": f"pachd is not serving: {e.details()}"}
            return _status(e)
        path = req["path"]
        msgs = [pb.ModifyFileRequest(set_commit=req["commit"])]
        if not req.get("append"):
            msgs.append(pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=path)))
        msgs.append(pb.ModifyFileRequest(add_file=pb.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=b""))))
        msgs.append(pb.ModifyFileRequest(add_file=pb.AddFile(path=path, url=pb.AddFile.URLSource(URL=URL_SCHEME + key))))
        self.served += 1
        call = stub.ModifyFile.future(iter(msgs), metadata=md)
        threading.Thread(target=_cancel_when_gone, args=(conn, call), name="local-put-watch", daemon=True).start()
        try:
            call.result()
        except grpc.RpcError as e:
            return _status(e)
        except grpc.FutureCancelledError:
            return {"code": "CANCELLED", "details": "the client went away"}
        return {"ok": True}


def _status(e: grpc.RpcError) -> dict:
    code = e.code()
    return {"code": code.name if code is not None else "UNKNOWN", "details": e.details() or ""}


def _cancel_when_gone(conn: socket.socket, call) -> None:
    """Cancel `call` if the client closes its end before the call is done (the client sends
    nothing after its request, so recv returns only at its close or at our shutdown)."""
    try:
        conn.recv(1)
    except OSError:
        pass
    call.cancel()  # a no-op once the call is done
