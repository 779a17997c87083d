"""`pachctl mount-server`: Pachyderm's mount-server HTTP + JSON API over one FUSE mount.

Routes (Pachyderm's, as jupyterlab-pachyderm up to 2.8 drives them): GET /health, GET|PUT
/config, GET /repos, GET /projects, GET /mounts, PUT /_mount, PUT /_unmount, PUT /_commit,
PUT /_unmount_all, PUT /datums/_mount, PUT /datums/_next, PUT /datums/_prev, GET /datums,
PUT /auth/_login, PUT /auth/_login_token, PUT /auth/_logout. Errors are plain text with
Pachyderm's status codes (400 bad request, 404 not connected, 500 failed).

Invariants:
- The FUSE file system runs on the main thread (trio, as `pachctl mount`); HTTP requests
  are served on their own threads and change the file system only through `Manager`.
- The server ends on SIGINT/SIGTERM or when its mount is unmounted: writable mounts are
  committed (as `pachctl mount` does), then the HTTP server stops and the socket file is
  removed. Nothing outlives `serve()`.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import grpc

from pachctl.mount.manager import Manager, RequestError
from pachctl.mount.views import MountError

log = logging.getLogger("pachctl.mount")
MAX_BODY = 16 * 1024 * 1024


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", 0)


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class Handler(BaseHTTPRequestHandler):
    server_version = "pachctl-mount-server"
    protocol_version = "HTTP/1.1"
    manager: Manager = None  # set per server class

    def log_message(self, fmt, *args):  # requests go to the debug log, not stderr
        log.debug("mount-server: " + fmt, *args)

    # ---- helpers ----------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise RequestError(400, f"request body too large ({n} bytes)")
        return self.rfile.read(n) if n else b""

    def _json_body(self):
        raw = self._body()
        try:
            return json.loads(raw or b"null")
        except ValueError as e:
            raise RequestError(400, f"error decoding request: {e}") from None

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, (json.dumps(obj) + "\n").encode(), "application/json")

    def _error(self, status: int, msg: str) -> None:
        self._send(status, (msg + "\n").encode(), "text/plain; charset=utf-8")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        route = ROUTES.get((method, path))
        if route is None:
            self._body()
            self._error(404 if not any(p == path for _, p in ROUTES) else 405, "404 page not found"
                        if not any(p == path for _, p in ROUTES) else "method not allowed")
            return
        try:
            result = route(self)
        except RequestError as e:
            self._error(e.status, str(e))
        except MountError as e:
            self._error(400, str(e))
        except grpc.RpcError as e:
            self._error(500, (e.details() if hasattr(e, "details") else "") or str(e))
        except Exception as e:  # noqa: BLE001 - a request must always get an answer
            log.exception("mount-server: %s %s failed", method, path)
            self._error(500, str(e) or type(e).__name__)
        else:
            if result is not None:
                self._json(result)
            else:
                self._send(200, b"", "text/plain; charset=utf-8")

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    # ---- routes -----------------------------------------------------------------------------
    def health(self):
        return {"status": "running"}

    def get_config(self):
        return cluster_status(self.manager)

    def put_config(self):
        req = self._json_body()
        if not isinstance(req, dict):
            raise RequestError(400, "either empty or poorly formatted cluster endpoint")
        from pachctl.config import ConfigError, parse_address
        try:
            addr = parse_address(req.get("pachd_address") or "")
        except (ConfigError, ValueError):
            raise RequestError(400, "either empty or poorly formatted cluster endpoint") from None
        m = self.manager
        if addr.qualified != m.client.address.qualified:
            from pachctl.client import PachClient
            new = PachClient(addr, server_cas=req.get("server_cas") or "")
            if not new.healthy(timeout=5):
                new.close()
                raise RequestError(500, f"error creating new client: could not connect to {addr.qualified}")
            m.unmount_all()
            old = m.session.client
            m.session.client = new
            m.session.fs.client = new
            m.session.fs.remote.client = new
            m.session.fs.cache.clear()
            m.session.fs.heads.clear()
            old.close()
        return cluster_status(m)

    def repos(self):
        return self.manager.list_repos()

    def projects(self):
        return self.manager.list_projects()

    def mounts(self):
        return self.manager.list_mounts()

    def do_mount(self):
        req = self._json_body()
        if not isinstance(req, dict) or not isinstance(req.get("mounts"), list):
            raise RequestError(400, 'expected {"mounts": [...]}')
        self.manager.mount(req["mounts"])
        return self.manager.list_mounts()

    def do_unmount(self):
        req = self._json_body()
        if not isinstance(req, dict) or not isinstance(req.get("mounts"), list):
            raise RequestError(400, 'expected {"mounts": ["name", ...]}')
        self.manager.unmount([str(n) for n in req["mounts"]])
        return self.manager.list_mounts()

    def do_commit(self):
        req = self._json_body()
        if not isinstance(req, dict) or not req.get("mount"):
            raise RequestError(400, 'expected {"mount": "name"}')
        self.manager.commit(str(req["mount"]))
        return self.manager.list_mounts()

    def do_unmount_all(self):
        self._body()
        self.manager.unmount_all()
        return self.manager.list_mounts()

    def datums_mount(self):
        return self.manager.mount_datums(self._body())

    def datums_next(self):
        self._body()
        return self.manager.step(+1)

    def datums_prev(self):
        self._body()
        return self.manager.step(-1)

    def datums(self):
        return self.manager.datums_state()

    def auth_login(self):
        self._body()
        raise RequestError(500, "auth isn't activated on the cluster")

    def auth_login_token(self):
        self._body()
        from proto.auth_v2 import auth_pb2
        try:
            self.manager.client.auth.Authenticate(auth_pb2.AuthenticateRequest(oidc_state=""))
        except grpc.RpcError as e:
            raise RequestError(500, (e.details() if hasattr(e, "details") else "") or str(e)) from None
        raise RequestError(500, "auth isn't activated on the cluster")

    def auth_logout(self):
        self._body()
        self.manager.unmount_all()
        return None


ROUTES = {
    ("GET", "/health"): Handler.health,
    ("GET", "/config"): Handler.get_config,
    ("PUT", "/config"): Handler.put_config,
    ("GET", "/repos"): Handler.repos,
    ("GET", "/projects"): Handler.projects,
    ("GET", "/mounts"): Handler.mounts,
    ("PUT", "/_mount"): Handler.do_mount,
    ("PUT", "/_unmount"): Handler.do_unmount,
    ("PUT", "/_commit"): Handler.do_commit,
    ("PUT", "/_unmount_all"): Handler.do_unmount_all,
    ("PUT", "/datums/_mount"): Handler.datums_mount,
    ("PUT", "/datums/_next"): Handler.datums_next,
    ("PUT", "/datums/_prev"): Handler.datums_prev,
    ("GET", "/datums"): Handler.datums,
    ("PUT", "/auth/_login"): Handler.auth_login,
    ("PUT", "/auth/_login_token"): Handler.auth_login_token,
    ("PUT", "/auth/_logout"): Handler.auth_logout,
}


def cluster_status(m: Manager) -> dict:
    status = "INVALID"
    if m.client.healthy(timeout=5):
        from proto.auth_v2 import auth_pb2
        try:
            m.client.auth.WhoAmI(auth_pb2.WhoAmIRequest(), timeout=5)
            status = "AUTH_ENABLED"
        except grpc.RpcError as e:
            status = "AUTH_DISABLED" if "not activated" in ((e.details() or "") if hasattr(e, "details") else "") \
                else "AUTH_ENABLED"
    return {"cluster_status": status, "pachd_address": m.client.address.qualified}


def make_http_server(manager: Manager, sock_path: str = "", host: str = "127.0.0.1", port: int = 9002):
    handler = type("BoundHandler", (Handler,), {"manager": manager})
    if sock_path:
        if os.path.exists(sock_path):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(sock_path)
                raise MountError(f"{sock_path} is in use by a running server; stop it or pick another --sock-path")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(sock_path)  # a leftover of a server that is gone
            finally:
                probe.close()
        return _UnixHTTPServer(sock_path, handler)
    try:
        return _TCPServer((host, port), handler)
    except OSError as e:
        raise MountError(f"cannot listen on {host}:{port}: {e.strerror}; is another mount-server running? "
                         f"(--port picks another port, --sock-path a unix socket)") from None


def serve(app, mount_dir: str, *, sock_path: str = "", port: int = 9002, host: str = "127.0.0.1",
          allow_other: bool = False, err=None) -> int:
    import sys
    from pachctl.mount.session import Session, check_fuse

    err = err or sys.stderr
    check_fuse()
    os.makedirs(mount_dir, exist_ok=True)
    client = app.client()
    session = Session(client, [], mount_dir, allow_other=allow_other, err=err, dynamic=True)
    manager = Manager(session, os.path.abspath(mount_dir))
    httpd = make_http_server(manager, sock_path, host, port)
    thread: Optional[threading.Thread] = None

    async def ready(s) -> None:
        nonlocal thread
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="mount-server-http", daemon=True)
        thread.start()
        where = sock_path if sock_path else f"http://{host}:{httpd.server_address[1]}"
        s.say(f"mount-server: serving {where}; mounts go under {session.mountpoint}")

    try:
        return session.run(on_ready=ready)
    finally:
        httpd.shutdown() if thread is not None else None
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=10)
        if sock_path:
            try:
                os.unlink(sock_path)
            except FileNotFoundError:
                pass
