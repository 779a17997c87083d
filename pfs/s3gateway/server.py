"""The HTTP server: connection handling, request → operation → response, and lifecycle.

Invariants:
- One thread per connection (HTTP/1.1 keep-alive); the core is thread-safe and every
  operation is synchronous, so a blocking server maps onto it without adapters.
- Bodies stream both ways: requests through `pfs.s3gateway.body`, responses from iterators
  written chunk by chunk with a Content-Length known up front. The first chunk of a
  response is produced before the status line is sent, so most read failures still become
  proper S3 errors; a failure after that closes the connection (the client sees a short body).
- Authentication runs before the body is touched (and before `100 Continue` is sent); so
  does authorization with multi-user auth (`access`, given by pachd): the signer's roles on
  the bucket's repo must grant the operation, else AccessDenied naming what is missing.
- With an `ssl_context` every connection is TLS; the handshake runs in the connection's
  own thread, never in the accepting one.
- After any response whose request body was not fully read, the connection is drained (small
  bodies) or closed, so the next request on it is never parsed from leftover body bytes.
- `stop()` stops accepting, shuts down every open connection and joins every thread:
  nothing (socket, thread) outlives it.
"""
from __future__ import annotations

import itertools
import logging
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from pfs.errors import PfsError
from pfs.s3gateway import names, xmlutil
from pfs.s3gateway.auth import Authenticator
from pfs.s3gateway.body import open_body
from pfs.s3gateway.errors import S3Error, from_pfs
from pfs.s3gateway.mpstore import MultipartStore
from pfs.s3gateway.ops import Ctx, route
from pfs.s3gateway.request import Request, Response
from pfs.s3gateway.xmlutil import el
from pfs.storage.local import LocalChunkStore

log = logging.getLogger("pfs.s3gateway")
DRAIN_LIMIT = 1 << 20
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


# statuses http.server answers on its own -> the S3 error code of the document
_HTTP_SERVER_ERRORS = {400: "InvalidRequest", 414: "InvalidURI", 431: "RequestHeaderSectionTooLarge",
                       501: "NotImplemented", 505: "HttpVersionNotSupported"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PachydermS3Gateway"
    rbufsize = 1 << 16
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms stalls
    timeout = 300  # idle/slow-client limit per socket operation

    # A request line too broken to name its version is answered as HTTP/1.0, with a status
    # line (http.server's default, HTTP/0.9, answers with a bare body no client can read).
    default_request_version = "HTTP/1.0"

    # ---- http.server hooks -------------------------------------------------------------
    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Errors http.server finds itself (a broken request line, an unknown method, headers
        too long) answered as S3 error documents like every other error."""
        s3code = _HTTP_SERVER_ERRORS.get(code, "InvalidRequest")
        text = message or explain or s3code
        body = xmlutil.document(el("Error", ("Code", s3code), ("Message", text),
                                   ("RequestId", uuid.uuid4().hex[:16].upper())), namespace=False)
        self.close_connection = True
        self.send_response(code, message)
        self.send_header("Connection", "close")
        if getattr(self, "command", "") != "HEAD" and code >= 200 and code not in (204, 304):
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.end_headers()

    def parse_request(self) -> bool:
        self._expect = False
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        self._expect = True  # answered by the first body read, after authentication
        return True

    def _continue(self) -> None:
        if self._expect:
            self._expect = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = lambda self: self._handle()

    # ---- one request -------------------------------------------------------------------
    def _handle(self) -> None:
        gw = self.server.gw
        req = Request.parse(self.command, self.path, self.headers, uuid.uuid4().hex[:16].upper())
        try:
            try:
                signer = gw.auth.check(req)
                name, op = route(req.method, req.bucket, req.key, req.query, req.headers)
                new_repo = gw.authorize(req, name)
                req.body = open_body(self.rfile, self.headers, self._continue, signer)
                resp = op(Ctx(gw, req))
                if new_repo is not None:  # only a CreateBucket that succeeded owns what it made
                    gw.access.created(req.principal, *new_repo)
                if not isinstance(resp.body, (bytes, bytearray)):
                    it = iter(resp.body)
                    first = next(it, b"")
                    resp.body = itertools.chain([first], it) if first else it
            except S3Error as e:
                resp = self._error(e, req)
            except PfsError as e:
                resp = self._error(from_pfs(e, key=req.key, bucket=req.bucket,
                                            version=bool(req.query.get("versionId"))), req)
            self._finish_body(req)
            self._send(resp, req)
        except _GONE:
            self.close_connection = True
        except Exception:  # a bug: answer 500 and keep serving
            log.exception("s3 gateway: %s %s failed", self.command, self.path)
            self.close_connection = True
            try:
                self._send(self._error(S3Error("InternalError"), req), req)
            except Exception:
                pass

    def _error(self, e: S3Error, req: Request) -> Response:
        if e.status >= 500:
            log.warning("s3 gateway: %s %s -> %s %s", req.method, req.raw_path, e.code, e.message)
        root = el("Error", ("Code", e.code), ("Message", e.message), *e.extra.items(),
                  ("Resource", req.resource), ("RequestId", req.request_id))
        resp = Response(e.status, {"Content-Type": "application/xml"}, xmlutil.document(root, namespace=False))
        resp.headers.update(e.headers)
        return resp

    def _finish_body(self, req: Request) -> None:
        """Leave the connection at the start of the next request, or mark it for closing."""
        body = req.body
        if body is not None and body.exhausted:
            return
        if self._expect:
            self.close_connection = True  # the client still holds the body back
            return
        if body is not None:
            pending = body.pending
        elif self.headers.get("Transfer-Encoding"):
            pending = None
        else:
            try:
                pending = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                pending = None
        if pending is None or pending > DRAIN_LIMIT:
            self.close_connection = True
            return
        while pending > 0:
            got = self.rfile.read(min(pending, 1 << 16))
            if not got:
                self.close_connection = True
                return
            pending -= len(got)

    def _send(self, resp: Response, req: Request) -> None:
        head = req.method == "HEAD"
        no_body = head or resp.status in (204, 304)
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("x-amz-request-id", req.request_id)
        if resp.status not in (204, 304):
            if isinstance(resp.body, (bytes, bytearray)) and not (head and resp.length is not None):
                self.send_header("Content-Length", str(len(resp.body)))
            else:
                self.send_header("Content-Length", str(resp.length or 0))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            return
        if isinstance(resp.body, (bytes, bytearray)):
            self.wfile.write(resp.body)
            return
        sent = 0
        body = resp.body
        try:
            for chunk in body:
                self.wfile.write(chunk)
                sent += len(chunk)
        except _GONE:
            raise
        except Exception:
            log.exception("s3 gateway: streaming %s failed after %d bytes", req.raw_path, sent)
            self.close_connection = True
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if sent != (resp.length or 0):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, gw):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.gw = gw
        self._live: dict[threading.Thread, socket.socket] = {}
        self._live_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request(self, request, client_address):
        t = threading.Thread(target=self._serve_one, args=(request, client_address),
                             name=f"s3gw-conn-{client_address[1]}", daemon=True)
        with self._live_lock:
            self._live[t] = request
        t.start()

    def _serve_one(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._live_lock:
                self._live.pop(threading.current_thread(), None)

    def handle_error(self, request, client_address):
        log.debug("s3 gateway: connection from %s ended with an error", client_address, exc_info=True)

    def close_all(self, timeout: float) -> None:
        with self._live_lock:
            live = list(self._live.items())
        for _, sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t, _ in live:
            t.join(timeout)


class S3Gateway:
    """An S3 endpoint over a `pfs.core.Pfs`. `start()` serves in background threads."""

    def __init__(self, pfs, host: str = "0.0.0.0", port: int = 30600,
                 auth_token: Optional[str] = None, region: str = "us-east-1",
                 buckets: Optional[dict] = None, access=None, ssl_context=None):
        """`buckets`: serve only these {name: names.fixed_bucket(...)} (a pipeline worker's
        gateway); None serves every branch under its `[[commit.]branch.]repo[.project]` name.
        `access`: multi-user auth (pachd's): `.active`, `.principal(token)`,
        `.authorize(principal, operation, project, repo)` -> None or why not,
        `.repo_is_new(project, repo)`, `.created(principal, project, repo)` (after a
        CreateBucket made the repo), `.can_list(principal, project, repo)`. `ssl_context`: serve HTTPS."""
        self.pfs = pfs
        self.buckets = dict(buckets) if buckets is not None else None
        self.host = host
        self.requested_port = port
        self.region = region
        self.auth = Authenticator(auth_token, access=access)
        self.access = access
        self.ssl_context = ssl_context
        self.uploads = MultipartStore(pfs)
        # Parallel read-ahead pays off when every chunk read is a network round trip.
        self.read_ahead = not isinstance(pfs.chunks, LocalChunkStore)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def resolve_bucket(self, name: str) -> names.BucketRef:
        if self.buckets is None:
            return names.parse_bucket(name)
        b = self.buckets.get(name)
        if b is None:
            raise S3Error("NoSuchBucket", f"this gateway serves only the buckets {sorted(self.buckets)}",
                          BucketName=name)
        return b

    def _checks_roles(self) -> bool:
        return not self.auth.token and self.access is not None and self.access.active

    def authorize(self, req, operation: str):
        """Refuse (AccessDenied) an operation the signer's roles do not grant. For a
        CreateBucket of a new repo, the (project, repo) whose creator is recorded once the
        operation succeeded; else None."""
        if not self._checks_roles() or operation == "ListBuckets":
            return None
        targets = [(operation, self.resolve_bucket(req.bucket))]
        src = req.headers.get("x-amz-copy-source")
        if src and operation in ("CopyObject", "UploadPartCopy"):
            from urllib.parse import unquote
            src_bucket = unquote(src).lstrip("/").split("/", 1)[0]
            targets.append(("GetObject", self.resolve_bucket(src_bucket)))
        for op, b in targets:
            why = self.access.authorize(req.principal, op, b.repo.project, b.repo.name)
            if why:
                raise S3Error("AccessDenied", why)
        b = targets[0][1]
        if operation == "CreateBucket" and self.access.repo_is_new(b.repo.project, b.repo.name):
            return (b.repo.project, b.repo.name)
        return None

    def can_list(self, req, repo) -> bool:
        return not self._checks_roles() or self.access.can_list(req.principal, repo.project, repo.name)

    def start(self) -> "S3Gateway":
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.requested_port), self)
        if self.ssl_context is not None:
            self._server.socket = self.ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="s3gw-accept", daemon=True)
        self._thread.start()
        log.info("s3 gateway listening on %s", self.endpoint_url)
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the S3 gateway is not started")
        return self._server.server_address[1]

    @property
    def endpoint_url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "", "::") else "127.0.0.1"
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_all(timeout)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "S3Gateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
