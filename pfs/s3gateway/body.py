"""Request bodies, streamed: HTTP framing, aws-chunked decoding, and integrity checks.

Layers, each a `read(n)`/`readline(limit)` stream over the one below:
  socket file → `_Sized` (Content-Length) or `_HttpChunked` (Transfer-Encoding: chunked)
             → `_AwsChunked` (Content-Encoding aws-chunked / STREAMING-* payloads)
             → `Body`, which hashes what passes through and checks it at the end.

Invariants:
- Nothing is buffered beyond one read (≤ `PIECE` bytes) plus a header line: a body of any
  size flows through in constant memory.
- Every digest the client declared (x-amz-content-sha256 hex, Content-MD5,
  x-amz-checksum-{crc32,sha1,sha256} in a header or an aws-chunked trailer, chunk
  signatures, x-amz-decoded-content-length) is verified; a mismatch raises `S3Error` from the
  read that reaches the end of the body, i.e. before the consumer can publish anything.
- A truncated body raises IncompleteBody, never a silent short object.
- A body is exhausted only once every layer is at its end (an aws-chunked body inside HTTP
  chunked framing also consumes the framing's last chunk): a keep-alive connection's next
  request is never parsed from leftover framing.
- `Expect: 100-continue` is answered lazily by the first read, so a request refused before
  its body is needed never makes the client send the body.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from typing import Callable, Iterator, Optional

from pfs.s3gateway.errors import S3Error

PIECE = 1 << 20
MAX_LINE = 8192
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
STREAMING_PREFIX = "STREAMING-"


class _Sized:
    def __init__(self, rfile, length: int, start: Callable[[], None]):
        self.f, self.remaining, self._start = rfile, length, start

    def read(self, n: int) -> bytes:
        if self._start:
            self._start()
            self._start = None
        n = min(n, self.remaining)
        if n <= 0:
            return b""
        data = self.f.read(n)
        if len(data) < n:
            self.remaining = 0
            raise S3Error("IncompleteBody")
        self.remaining -= n
        return data

    def readline(self, limit: int = MAX_LINE) -> bytes:
        if self._start:
            self._start()
            self._start = None
        line = self.f.readline(min(limit, self.remaining))
        self.remaining -= len(line)
        return line


class _HttpChunked:
    """Transfer-Encoding: chunked (RFC 9112 §7.1); trailers are read and discarded."""

    def __init__(self, rfile, start: Callable[[], None]):
        self.f, self._start = rfile, start
        self.left = 0
        self.done = False

    def _next_chunk(self) -> None:
        line = self.f.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise S3Error("IncompleteBody", "truncated chunked transfer encoding")
        try:
            self.left = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise S3Error("InvalidRequest", "malformed chunked transfer encoding") from None
        if self.left == 0:
            while True:
                t = self.f.readline(MAX_LINE)
                if t in (b"\r\n", b"\n", b""):
                    break
            self.done = True

    def read(self, n: int) -> bytes:
        if self._start:
            self._start()
            self._start = None
        if self.done:
            return b""
        if self.left == 0:
            self._next_chunk()
            if self.done:
                return b""
        data = self.f.read(min(n, self.left))
        if not data:
            raise S3Error("IncompleteBody")
        self.left -= len(data)
        if self.left == 0 and self.f.readline(MAX_LINE) not in (b"\r\n", b"\n"):
            raise S3Error("InvalidRequest", "malformed chunked transfer encoding")
        return data

    def readline(self, limit: int = MAX_LINE) -> bytes:
        out = bytearray()
        while len(out) < limit and not out.endswith(b"\n"):
            b = self.read(1)
            if not b:
                break
            out += b
        return bytes(out)


class _AwsChunked:
    """S3's aws-chunked content encoding: `hex-size[;chunk-signature=sig]\\r\\n data \\r\\n`…,
    a zero-size chunk, then optional trailer lines and a blank line."""

    def __init__(self, inner, signer=None):
        self.inner, self.signer = inner, signer
        self.left = 0
        self.sig: Optional[str] = None
        self.hasher = None
        self.done = False
        self.trailers: dict[str, str] = {}

    def _line(self) -> str:
        line = self.inner.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise S3Error("IncompleteBody", "truncated aws-chunked body")
        return line.decode("latin-1").rstrip("\r\n")

    def _header(self) -> None:
        line = self._line()
        size_s, _, ext = line.partition(";")
        try:
            self.left = int(size_s.strip(), 16)
        except ValueError:
            raise S3Error("InvalidRequest", f"malformed aws-chunked chunk header {line[:80]!r}") from None
        self.sig = None
        if ext.startswith("chunk-signature="):
            self.sig = ext[len("chunk-signature="):].strip()
        if self.signer is not None and self.signer.signs_chunks and not self.sig:
            raise S3Error("SignatureDoesNotMatch", "an aws-chunked chunk has no chunk-signature")
        self.hasher = hashlib.sha256() if self.signer is not None and self.signer.signs_chunks else None
        if self.left == 0:
            self._end_chunk()
            self._trailer()
            self.done = True

    def _end_chunk(self) -> None:
        if self.hasher is not None:
            self.signer.verify_chunk(self.hasher.hexdigest(), self.sig)

    def _trailer(self) -> None:
        lines = []
        while True:
            line = self._line() if not self._at_eof() else ""
            if line == "":
                break
            lines.append(line)
        sig = None
        for line in lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "x-amz-trailer-signature":
                sig = value.strip()
            else:
                self.trailers[name] = value.strip()
        if self.signer is not None and self.signer.signs_trailer:
            if sig is None:
                raise S3Error("SignatureDoesNotMatch", "the trailer has no x-amz-trailer-signature")
            canon = "".join(f"{k}:{v}\n" for k, v in self.trailers.items())
            self.signer.verify_trailer(canon, sig)

    def _at_eof(self) -> bool:
        return getattr(self.inner, "remaining", 1) == 0

    def read(self, n: int) -> bytes:
        if self.done:
            return b""
        if self.left == 0:
            self._header()
            if self.done:
                return b""
        data = self.inner.read(min(n, self.left))
        if not data:
            raise S3Error("IncompleteBody")
        if self.hasher is not None:
            self.hasher.update(data)
        self.left -= len(data)
        if self.left == 0:
            if self.inner.readline(MAX_LINE) not in (b"\r\n", b"\n"):
                raise S3Error("InvalidRequest", "malformed aws-chunked body (missing CRLF after data)")
            self._end_chunk()
        return data


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class _Crc32:
    def __init__(self):
        self.v = 0

    def update(self, b: bytes) -> None:
        self.v = zlib.crc32(b, self.v)

    def digest(self) -> bytes:
        return self.v.to_bytes(4, "big")


_CHECKSUMS = {"crc32": _Crc32, "sha1": hashlib.sha1, "sha256": hashlib.sha256}


class Body:
    """The decoded payload of one request. Iterate `chunks()` or call `read_all()`."""

    def __init__(self, stream, headers, signer=None):
        self.stream = stream
        self.exhausted = False
        self.length = 0
        self.declared = None
        self._checks: list[tuple[str, object, str]] = []  # (what, hasher, expected)
        self._trailer_algos: list[str] = []
        self._aws = stream if isinstance(stream, _AwsChunked) else None
        sha = (headers.get("x-amz-content-sha256") or "").strip()
        if _HEX64.match(sha):
            self._checks.append(("x-amz-content-sha256", hashlib.sha256(), sha.lower()))
        md5 = headers.get("Content-MD5")
        if md5:
            try:
                raw = base64.b64decode(md5, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 16:
                raise S3Error("InvalidDigest")
            self._checks.append(("Content-MD5", hashlib.md5(), _b64(raw)))
        for algo, make in _CHECKSUMS.items():
            v = headers.get(f"x-amz-checksum-{algo}")
            if v:
                self._checks.append((f"x-amz-checksum-{algo}", make(), v.strip()))
        trailer = (headers.get("x-amz-trailer") or "").lower()
        for algo in _CHECKSUMS:
            if f"x-amz-checksum-{algo}" in trailer:
                self._trailer_algos.append(algo)
                self._checks.append((f"x-amz-checksum-{algo}", _CHECKSUMS[algo](), ""))
        dec = headers.get("x-amz-decoded-content-length")
        if dec is not None and self._aws is not None:
            try:
                self.declared = int(dec)
            except ValueError:
                raise S3Error("InvalidArgument", "x-amz-decoded-content-length is not a number") from None

    def read(self, n: int = PIECE) -> bytes:
        if self.exhausted:
            return b""
        data = self.stream.read(n)
        if data:
            self.length += len(data)
            for _, h, _ in self._checks:
                h.update(data)
            return data
        if self._aws is not None:
            # the aws-chunked body ended; finish the framing around it too (an HTTP chunked
            # body's last "0\r\n\r\n"), so the next request on the connection starts clean
            if self._aws.inner.read(PIECE):
                raise S3Error("InvalidRequest", "bytes after the end of the aws-chunked body")
        self.exhausted = True
        self._verify()
        return b""

    def _verify(self) -> None:
        if self.declared is not None and self.declared != self.length:
            raise S3Error("IncompleteBody", f"x-amz-decoded-content-length says {self.declared} bytes, "
                                            f"the body had {self.length}")
        trailers = self._aws.trailers if self._aws is not None else {}
        for what, h, expected in self._checks:
            if not expected:
                expected = trailers.get(what, "")
                if not expected:
                    continue
            if what == "x-amz-content-sha256":
                if h.hexdigest() != expected:
                    raise S3Error("XAmzContentSHA256Mismatch")
            elif _b64(h.digest()) != expected:
                raise S3Error("BadDigest", f"the {what} you specified did not match the body received")

    def chunks(self, size: int = PIECE) -> Iterator[bytes]:
        while True:
            data = self.read(size)
            if not data:
                return
            yield data

    def read_all(self, limit: int) -> bytes:
        out = bytearray()
        for c in self.chunks():
            out += c
            if len(out) > limit:
                raise S3Error("EntityTooLarge", f"this request's body may be at most {limit} bytes")
        return bytes(out)

    @property
    def pending(self) -> Optional[int]:
        """Bytes of framing left unread (None if unknown: chunked)."""
        s = self.stream.inner if self._aws is not None else self.stream
        if isinstance(s, _Sized):
            return s.remaining
        return 0 if getattr(s, "done", False) else None


def open_body(rfile, headers, start: Callable[[], None], signer=None) -> Body:
    """Build the stream stack for a request's body (an empty body when it has none)."""
    te = (headers.get("Transfer-Encoding") or "").lower()
    if te and te != "identity":
        if "chunked" not in te:
            raise S3Error("NotImplemented", f"Transfer-Encoding {te} is not supported")
        framed = _HttpChunked(rfile, start)
    else:
        cl = headers.get("Content-Length")
        try:
            n = int(cl) if cl is not None else 0
        except ValueError:
            raise S3Error("InvalidArgument", "Content-Length is not a number") from None
        if n < 0:
            raise S3Error("InvalidArgument", "Content-Length is negative")
        framed = _Sized(rfile, n, start if n > 0 else (lambda: None))
    sha = (headers.get("x-amz-content-sha256") or "").strip()
    enc = (headers.get("Content-Encoding") or "").lower()
    if sha.startswith(STREAMING_PREFIX) or "aws-chunked" in enc:
        return Body(_AwsChunked(framed, signer), headers, signer)
    return Body(framed, headers, signer)
