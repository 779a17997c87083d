"""pachd's OIDC callback: the HTTP endpoint an identity provider sends the browser back to
(Pachyderm's `/authorization-code/callback` on its OIDC port, 1657; 30657 on Kubernetes).

Invariants:
- GET /authorization-code/callback?code=...&state=... completes that login (auth.oidc
  OIDCLogins.callback) and answers a short page for the person in the browser: 200 "You are
  now logged in. Go back to the terminal to use Pachyderm!", or 400/401/409/503 saying what
  was wrong. Neither the page nor the log carries a code, a token or a whole state (logs show
  half of it, as Pachyderm's).
- GET / answers 200 (a health check, as Pachyderm's). Anything else is 404.
- With pachd's TLS pair the endpoint serves HTTPS.
"""
from __future__ import annotations

import html
import logging
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from auth.model import AuthError
from auth.oidc import CALLBACK_PATH, OIDCLogins, half

log = logging.getLogger("pachd.auth.oidc")
DEFAULT_PORT = 1657
SUCCESS = "You are now logged in. Go back to the terminal to use Pachyderm!"
_STATUS = {"UNAUTHENTICATED": HTTPStatus.UNAUTHORIZED, "INVALID_ARGUMENT": HTTPStatus.BAD_REQUEST,
           "FAILED_PRECONDITION": HTTPStatus.SERVICE_UNAVAILABLE, "UNIMPLEMENTED": HTTPStatus.CONFLICT,
           "RESOURCE_EXHAUSTED": HTTPStatus.SERVICE_UNAVAILABLE}


class _Handler(BaseHTTPRequestHandler):
    server_version = "pachd-oidc"
    timeout = 30  # seconds a silent connection may hold its thread
    logins: OIDCLogins
    active = staticmethod(lambda: True)

    def log_message(self, fmt, *args):  # the query string carries the code: never log it
        log.debug("oidc callback %s %s", self.command, urlsplit(self.path).path)

    def _answer(self, status: int, text: str) -> None:
        body = (f"<!doctype html><title>Pachyderm login</title><p>{html.escape(text, quote=False)}</p>\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        if url.path == "/":
            return self._answer(HTTPStatus.OK, "200 OK")
        if url.path != CALLBACK_PATH:
            return self._answer(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")
        if not self.active():
            return self._answer(HTTPStatus.CONFLICT,
                                "auth is not active on this pachd, so there is no login to complete")
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        state = q.get("state", "")
        try:
            self.logins.callback(state, q.get("code", ""), q.get("error", ""), q.get("error_description", ""))
        except AuthError as e:
            where = f" (OIDC state token: {half(state)!r})" if state else ""
            return self._answer(_STATUS.get(e.code, HTTPStatus.INTERNAL_SERVER_ERROR),
                                f"authorization failed{where}: {e}")
        except Exception:  # noqa: BLE001 - the browser gets a page, the log the details
            log.exception("OIDC callback for %s failed", half(state))
            return self._answer(HTTPStatus.INTERNAL_SERVER_ERROR,
                                f"temporary error during authorization (OIDC state token: {half(state)!r}; "
                                "pachd's log has more information)")
        self._answer(HTTPStatus.OK, SUCCESS)


class OIDCCallbackServer:
    def __init__(self, logins: OIDCLogins, host: str, port: int, active=lambda: True,
                 ssl_context: Optional[ssl.SSLContext] = None):
        handler = type("Handler", (_Handler,), {"logins": logins, "active": staticmethod(active)})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        if ssl_context is not None:
            # the handshake happens in the connection's own thread, not in the accepting one
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True,
                                                          do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "OIDCCallbackServer":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="oidc-callback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
