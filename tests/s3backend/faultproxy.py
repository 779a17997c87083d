"""A real HTTP proxy in front of an S3 server that injects failures, for the retry tests.

`FaultProxy(upstream_url)` listens on 127.0.0.1:<free port> and forwards every request
verbatim (method, path, query, headers -- Host included, so SigV4 signatures stay valid --
and body) to the upstream S3 server over keep-alive connections, streaming the answer back.
What it injects is set with `configure(...)` on the live proxy (settings are read under one lock):

- `fail_every = {"PUT": n, "GET": m}`: every n-th PUT (m-th GET) of an object key (not
  bucket-level calls such as HeadBucket) is answered by the proxy itself, alternately
  ``503 SlowDown`` and ``500 InternalError`` (S3's XML error bodies), without reaching the
  server. `max_in_a_row` caps how often one (method, key) fails consecutively, so a client
  with that many retries always gets through.
- `fail_puts_after = k`: once k object PUTs have reached the server, every later PUT fails
  (`put_failure` = "503" answers SlowDown, "reset" closes the connection without an answer,
  as a server that died mid-upload). `fail_puts_after = None` recovers.
- `chaos_every = {"PUT": n, "GET": m}`: every n-th object PUT (m-th GET) gets the next fault
  of `chaos_kinds` in turn (same `max_in_a_row` cap): "503"/"500" (answered by the proxy),
  "reset" (the connection closes, no answer), "stall" (no answer for `stall_seconds`, then
  the connection closes: the client's read timeout fires), "slow" (forwarded, the answer
  trickles back at `slow_bytes_per_sec`), "ackloss" (forwarded and done by the server, then
  the connection closes before the answer: the client must retry a write that happened).
- counters: `forwarded` and `injected` per method, `kinds` per chaos kind (`stats()` copies
  them); `puts_ok()`.

Bodies are forwarded with Content-Length (S3 clients send one for PutObject); a chunked
request is refused with 501 so it cannot be half-forwarded. `close()` stops the server
thread and closes every socket.
"""
from __future__ import annotations

import http.client
import http.server
import socket
import threading
from collections import Counter
from typing import Optional
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_ERRORS = [(503, "SlowDown", "Please reduce your request rate."),
           (500, "InternalError", "We encountered an internal error. Please try again.")]


class FaultProxy:
    def __init__(self, upstream: str):
        u = urlsplit(upstream)
        self.upstream = (u.hostname, u.port or 80)
        self._lock = threading.Lock()
        self.fail_every: dict[str, int] = {}
        self.max_in_a_row: int = 3
        self.fail_puts_after: Optional[int] = None
        self.put_failure: str = "503"
        self.chaos_every: dict[str, int] = {}
        self.chaos_kinds: list = ["503", "500", "reset", "stall", "slow", "ackloss"]
        self.stall_seconds: float = 3.0
        self.slow_bytes_per_sec: int = 256 * 1024
        self.kinds: Counter = Counter()
        self._chaos_seen: Counter = Counter()
        self._closing = threading.Event()
        self.forwarded: Counter = Counter()
        self.injected: Counter = Counter()
        self._seen: Counter = Counter()  # per method, object requests only
        self._in_a_row: Counter = Counter()  # (method, path) -> consecutive injected failures
        self._puts_ok = 0
        self._clients: set[socket.socket] = set()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream_conn: Optional[http.client.HTTPConnection] = None

            def setup(self):
                super().setup()
                with proxy._lock:
                    proxy._clients.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                finally:
                    with proxy._lock:
                        proxy._clients.discard(self.connection)
                    if self.upstream_conn is not None:
                        self.upstream_conn.close()

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _any

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = False  # server_close() joins them
        self._server.block_on_close = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    # ---- policy ------------------------------------------------------------------------
    def configure(self, **settings) -> None:
        with self._lock:
            for k, v in settings.items():
                if not hasattr(self, k) or k.startswith("_"):
                    raise AttributeError(k)
                setattr(self, k, v)

    def puts_ok(self) -> int:
        with self._lock:
            return self._puts_ok

    def stats(self) -> dict:
        with self._lock:
            return {"forwarded": dict(self.forwarded), "injected": dict(self.injected), "kinds": dict(self.kinds)}

    def _decide(self, method: str, path: str) -> Optional[str]:
        """None (forward), "reset", or "err:<i>" (answer with _ERRORS[i])."""
        is_object = path.lstrip("/").count("/") >= 1 and not path.split("?")[0].endswith("/")
        with self._lock:
            if method == "PUT" and is_object and self.fail_puts_after is not None \
                    and self._puts_ok >= self.fail_puts_after:
                self.injected[method] += 1
                return "reset" if self.put_failure == "reset" else "err:0"
            chaos = self.chaos_every.get(method, 0)
            if chaos and is_object:
                self._chaos_seen[method] += 1
                key = ("chaos", method, path)
                if self._chaos_seen[method] % chaos == 0 and self._in_a_row[key] < self.max_in_a_row:
                    self._in_a_row[key] += 1
                    self.injected[method] += 1
                    kind = self.chaos_kinds[sum(self.kinds.values()) % len(self.chaos_kinds)]
                    self.kinds[kind] += 1
                    if kind in ("slow", "ackloss"):
                        self.forwarded[method] += 1
                    return {"503": "err:0", "500": "err:1"}.get(kind, kind)
                self._in_a_row.pop(key, None)
            every = self.fail_every.get(method, 0)
            if every and is_object:
                self._seen[method] += 1
                key = (method, path)
                if self._seen[method] % every == 0 and self._in_a_row[key] < self.max_in_a_row:
                    self._in_a_row[key] += 1
                    self.injected[method] += 1
                    return f"err:{self.injected[method] % 2}"
                self._in_a_row.pop(key, None)
            self.forwarded[method] += 1
            if method == "PUT" and is_object:
                self._puts_ok += 1
            return None

    # ---- forwarding --------------------------------------------------------------------
    def _conn(self, h) -> http.client.HTTPConnection:
        """The upstream connection of this client connection (one handler thread each)."""
        if h.upstream_conn is None:
            h.upstream_conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        return h.upstream_conn

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            h.send_error(501, "chunked request bodies are not supported by this proxy")
            h.close_connection = True
            return
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        action = self._decide(h.command, h.path.split("?", 1)[0])
        if action == "stall":
            self._closing.wait(self.stall_seconds)
            action = "reset"
        if action == "reset":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if action is not None and action.startswith("err:"):
            status, code, msg = _ERRORS[int(action.split(":")[1])]
            xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                   f"<Message>{msg}</Message><Resource>{h.path}</Resource>"
                   "<RequestId>fault-proxy</RequestId></Error>").encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(xml)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(xml)
            return
        for attempt in (0, 1):  # a kept-alive upstream connection may have gone stale
            c = self._conn(h)
            try:
                c.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
                for k, v in h.headers.items():
                    if k.lower() not in _HOP:
                        c.putheader(k, v)
                c.endheaders(body if body else None)
                resp = c.getresponse()
                break
            except (OSError, http.client.HTTPException):
                c.close()
                if attempt:
                    raise
        if action == "ackloss":  # the server did it; the client never hears so
            resp.read()
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        h.send_response(resp.status, resp.reason)
        chunked = resp.getheader("Content-Length") is None and h.command != "HEAD" \
            and resp.status not in (204, 304)
        data = resp.read() if chunked else None
        for k, v in resp.getheaders():
            if k.lower() not in _HOP and not (chunked and k.lower() == "content-length"):
                h.send_header(k, v)
        if chunked:
            h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command == "HEAD":
            resp.read()
            return
        if chunked:
            h.wfile.write(data)
            return
        if action == "slow":
            step = max(1, self.slow_bytes_per_sec // 20)
            while piece := resp.read(step):
                h.wfile.write(piece)
                h.wfile.flush()
                if self._closing.wait(len(piece) / self.slow_bytes_per_sec):
                    break
            return
        while piece := resp.read(1 << 20):
            h.wfile.write(piece)

    def close(self) -> None:
        """Stop accepting, end every client connection, join every handler thread."""
        self._closing.set()
        self._server.shutdown()
        with self._lock:
            clients = list(self._clients)
        for s in clients:  # idle keep-alive connections: wake their handler threads
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
