"""The gateway's view of one HTTP exchange: a parsed `Request` and the `Response` to send.

Invariants:
- Path-style addressing only: the first path segment (percent-decoded) is the bucket, the
  rest is the key, byte for byte (no normalisation here; `names` validates keys).
- `query` keeps the first value of each parameter; `query_pairs` keeps all, in order, for
  signature checks. Parameters without '=' (`?uploads`) have the value "".
- A `Response` body is bytes or an iterator of bytes with a known `length`; the server sends
  Content-Length for both and never chunks responses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Union
from urllib.parse import parse_qsl, unquote

from pfs.s3gateway import xmlutil


@dataclass
class Request:
    method: str
    raw_path: str
    raw_query: str
    headers: object  # http.client.HTTPMessage
    request_id: str
    query_pairs: list = field(default_factory=list)
    query: dict = field(default_factory=dict)
    bucket: str = ""
    key: str = ""
    body: object = None  # pfs.s3gateway.body.Body, set after authentication
    principal: Optional[str] = None  # who signed it (multi-user auth), set by authentication

    @classmethod
    def parse(cls, method: str, target: str, headers, request_id: str) -> "Request":
        path, _, raw_query = target.partition("?")
        if path.startswith(("http://", "https://")):  # absolute-form request target
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        query: dict = {}
        for k, v in pairs:
            query.setdefault(k, v)
        decoded = unquote(path)
        rest = decoded[1:] if decoded.startswith("/") else decoded
        bucket, _, key = rest.partition("/")
        return cls(method.upper(), path, raw_query, headers, request_id, pairs, query, bucket, key)

    def header(self, name: str, default: str = "") -> str:
        v = self.headers.get(name)
        return default if v is None else v

    @property
    def resource(self) -> str:
        return "/" + self.bucket + ("/" + self.key if self.key else "")


@dataclass
class Response:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: Union[bytes, Iterator[bytes]] = b""
    length: Optional[int] = None

    @classmethod
    def xml(cls, root, status: int = 200, headers: Optional[dict] = None) -> "Response":
        h = {"Content-Type": "application/xml"}
        h.update(headers or {})
        return cls(status, h, xmlutil.document(root))

    @classmethod
    def empty(cls, status: int = 200, headers: Optional[dict] = None) -> "Response":
        return cls(status, dict(headers or {}), b"")
