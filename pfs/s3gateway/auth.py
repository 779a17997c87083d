"""Request authentication: AWS Signature V4 (header, presigned, streaming chunks) and V2.

With no auth token configured every request is accepted, signed or not (Pachyderm's
behaviour with auth off). With a token, the access key must equal the token and the secret
is the token; a request passes only if the signature it carries is the one botocore computes
for the same canonical request. With an `access` (multi-user auth, given by pachd), any
live token of a user, robot or pipeline is an access key (secret = the same token), and the
request's `principal` is set to whom it belongs; what they may do is the gateway's check.

Invariants:
- Expected signatures come from botocore's own signers (`S3SigV4Auth`, `S3SigV4QueryAuth`,
  `HmacV1Auth`); the only things overridden are which headers are signed (exactly the
  request's SignedHeaders) and the request time (the request's own), so the canonical
  request is built by the same code the clients use. Chunk and trailer signatures of
  STREAMING-* payloads chain from the seed with botocore's `signature()`.
- The canonical URI is the request path decoded once and re-encoded S3-style, and the
  canonical query is rebuilt from the decoded parameters, so clients that percent-encode
  differently on the wire still verify.
- Comparisons are constant-time. Refusals: no/unknown credentials → AccessDenied; another
  key → InvalidAccessKeyId; a bad signature → SignatureDoesNotMatch; an expired presigned URL
  → AccessDenied "Request has expired"; a stale or future header date → RequestTimeTooSkewed.
"""
from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from email.utils import parsedate_tz, mktime_tz
from typing import Optional
from urllib.parse import quote, unquote, urlsplit

from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth, SIGV4_TIMESTAMP
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from pfs.s3gateway.errors import S3Error

MAX_SKEW = 15 * 60
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_V4_HEADER = re.compile(r"^AWS4-HMAC-SHA256\s+(.*)$", re.S)
_V2_HEADER = re.compile(r"^AWS\s+([^:\s]+):(\S+)$")
_SIGNED_CHUNKS = {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD": (True, False),
                  "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": (True, True),
                  "STREAMING-UNSIGNED-PAYLOAD-TRAILER": (False, False)}


class _Exact:
    """Mixin: sign exactly the headers the client listed in SignedHeaders."""

    signed: list[str] = []

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name in self.signed:
            for v in request.headers.get_all(name) or []:
                hm[name] = v
        return hm


class _HeaderV4(_Exact, S3SigV4Auth):
    pass


class _QueryV4(_Exact, S3SigV4QueryAuth):
    pass


class _V2(HmacV1Auth):
    def __init__(self, credentials, date: str):
        super().__init__(credentials)
        self._date = date

    def _get_date(self):
        return self._date


class StreamSigner:
    """Verifies the chained chunk (and trailer) signatures of a STREAMING-* payload."""

    def __init__(self, auth: S3SigV4Auth, request: AWSRequest, seed: str, chunks: bool, trailer: bool):
        self.auth, self.request, self.prev = auth, request, seed
        self.signs_chunks, self.signs_trailer = chunks, trailer
        self._ts = request.context["timestamp"]
        self._scope = auth.credential_scope(request)

    def _check(self, sts: str, sig: Optional[str], what: str) -> None:
        expected = self.auth.signature(sts, self.request)
        if not sig or not hmac.compare_digest(expected, sig):
            raise S3Error("SignatureDoesNotMatch", f"the {what} signature does not match")
        self.prev = sig

    def verify_chunk(self, sha256_hex: str, sig: Optional[str]) -> None:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", self._ts, self._scope, self.prev,
                         EMPTY_SHA256, sha256_hex])
        self._check(sts, sig, "chunk")

    def verify_trailer(self, canonical_trailer: str, sig: Optional[str]) -> None:
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", self._ts, self._scope, self.prev,
                         hashlib.sha256(canonical_trailer.encode()).hexdigest()])
        self._check(sts, sig, "trailer")


def _parse_amz_date(s: str) -> float:
    try:
        return calendar.timegm(time.strptime(s, SIGV4_TIMESTAMP))
    except (ValueError, TypeError):
        raise S3Error("AccessDenied", f"invalid request date {s!r}") from None


def _parse_http_date(s: str) -> Optional[float]:
    t = parsedate_tz(s) if s else None
    return None if t is None else float(mktime_tz(t))


class Authenticator:
    def __init__(self, token: Optional[str], clock=time.time, secret: Optional[str] = None, access=None):
        self.token = token
        self.secret = secret or token  # Pachyderm: the secret is the token too
        self.clock = clock
        self.access = access  # .active, .principal(access_key) -> subject or None

    @property
    def enabled(self) -> bool:
        return bool(self.token) or (self.access is not None and self.access.active)

    def check(self, req) -> Optional[StreamSigner]:
        """Verify `req` (a pfs.s3gateway.request.Request). Returns a StreamSigner for
        signed STREAMING-* bodies; raises S3Error when the request must be refused."""
        if not self.enabled:
            return None
        h = req.headers
        authz = h.get("Authorization")
        q = req.query
        if authz:
            if authz.startswith("AWS4-HMAC-SHA256"):
                return self._v4_header(req, authz)
            if authz.startswith("AWS "):
                return self._v2_header(req, authz)
            raise S3Error("AccessDenied", "unsupported authorization scheme "
                                          f"{authz.split(' ', 1)[0]!r} (use AWS Signature V4 or V2)")
        if "X-Amz-Signature" in q or "X-Amz-Algorithm" in q:
            return self._v4_query(req)
        if "Signature" in q and "AWSAccessKeyId" in q:
            return self._v2_query(req)
        raise S3Error("AccessDenied", "this gateway requires signed requests (auth is enabled): "
                                      "use the Pachyderm auth token as access key and secret key")

    # ---- helpers ---------------------------------------------------------------------------
    def _creds(self, access_key: str, req=None) -> Credentials:
        if not self.token:  # multi-user auth: the access key is the caller's own token
            principal = self.access.principal(access_key)
            if principal is None:
                raise S3Error("InvalidAccessKeyId", headers={}, AWSAccessKeyId=access_key[:8] + "...")
            if req is not None:
                req.principal = principal
            return Credentials(access_key, access_key)
        if not hmac.compare_digest(access_key.encode(), self.token.encode()):
            raise S3Error("InvalidAccessKeyId", headers={}, AWSAccessKeyId=access_key[:8] + "...")
        if req is not None:
            req.principal = "pach:root"
        return Credentials(self.token, self.secret)

    @staticmethod
    def _canonical_url(req) -> str:
        host = req.headers.get("Host") or "localhost"
        return f"http://{host}{quote(unquote(req.raw_path), safe='/~')}"

    def _scope(self, credential: str) -> tuple[str, str, str, str]:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise S3Error("AuthorizationHeaderMalformed", f"malformed credential {credential!r}")
        return parts[0], parts[1], parts[2], parts[3]

    # ---- SigV4, Authorization header ---------------------------------------------------
    def _v4_header(self, req, authz: str) -> Optional[StreamSigner]:
        m = _V4_HEADER.match(authz)
        fields = {}
        for item in (m.group(1) if m else "").split(","):
            k, _, v = item.strip().partition("=")
            fields[k.strip()] = v.strip()
        try:
            ak, day, region, service = self._scope(fields["Credential"])
            signed = [s.strip().lower() for s in fields["SignedHeaders"].split(";") if s.strip()]
            sig = fields["Signature"]
        except KeyError:
            raise S3Error("AuthorizationHeaderMalformed", "the Authorization header needs Credential, "
                                                          "SignedHeaders and Signature") from None
        creds = self._creds(ak, req)
        h = req.headers
        stamp = h.get("x-amz-date")
        if stamp:
            when = _parse_amz_date(stamp)
        else:
            when = _parse_http_date(h.get("Date", ""))
            if when is None:
                raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
            stamp = time.strftime(SIGV4_TIMESTAMP, time.gmtime(when))
        if abs(self.clock() - when) > MAX_SKEW:
            raise S3Error("RequestTimeTooSkewed")
        if stamp[:8] != day:
            raise S3Error("SignatureDoesNotMatch", "the credential scope date does not match the request date")
        payload = h.get("x-amz-content-sha256")
        if payload is None:
            raise S3Error("InvalidRequest", "missing required header for this request: x-amz-content-sha256")
        headers = HTTPHeaders()
        for name in signed:
            for v in h.get_all(name) or []:
                headers[name] = v
        if "x-amz-content-sha256" not in signed:
            headers["X-Amz-Content-SHA256"] = payload
        areq = AWSRequest(method=req.method, url=self._canonical_url(req), headers=headers,
                          params=list(req.query_pairs))
        areq.context["timestamp"] = stamp
        signer = _HeaderV4(creds, service, region)
        signer.signed = signed
        expected = signer.signature(signer.string_to_sign(areq, signer.canonical_request(areq)), areq)
        if not hmac.compare_digest(expected, sig):
            raise S3Error("SignatureDoesNotMatch")
        mode = _SIGNED_CHUNKS.get(payload.strip())
        if mode is None:
            if payload.startswith("STREAMING-"):
                raise S3Error("NotImplemented", f"payload signing {payload} is not supported")
            return None
        return StreamSigner(signer, areq, sig, *mode)

    # ---- SigV4, presigned URL ----------------------------------------------------------
    def _v4_query(self, req) -> None:
        q = req.query
        if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise S3Error("AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        try:
            ak, day, region, service = self._scope(q["X-Amz-Credential"])
            stamp, sig = q["X-Amz-Date"], q["X-Amz-Signature"]
            signed = [s.lower() for s in q["X-Amz-SignedHeaders"].split(";") if s]
            expires = int(q["X-Amz-Expires"])
        except (KeyError, ValueError):
            raise S3Error("AuthorizationQueryParametersError", "a presigned URL needs X-Amz-Credential, "
                          "X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature") from None
        if not 0 <= expires <= MAX_PRESIGN_EXPIRES:
            raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be between 0 and 604800")
        creds = self._creds(ak, req)
        when = _parse_amz_date(stamp)
        now = self.clock()
        if now > when + expires:
            raise S3Error("AccessDenied", "Request has expired")
        if when - now > MAX_SKEW:
            raise S3Error("AccessDenied", "Request is not valid yet")
        headers = HTTPHeaders()
        for name in signed:
            for v in req.headers.get_all(name) or []:
                headers[name] = v
        params = [(k, v) for k, v in req.query_pairs if k != "X-Amz-Signature"]
        areq = AWSRequest(method=req.method, url=self._canonical_url(req), headers=headers, params=params)
        areq.context["timestamp"] = stamp
        signer = _QueryV4(creds, service, region, expires=expires)
        signer.signed = signed
        expected = signer.signature(signer.string_to_sign(areq, signer.canonical_request(areq)), areq)
        if not hmac.compare_digest(expected, sig):
            raise S3Error("SignatureDoesNotMatch")
        return None

    # ---- SigV2 ---------------------------------------------------------------------------
    def _v2_verify(self, req, creds, date: str, sig: str, query_auth: bool) -> None:
        headers = HTTPHeaders()
        for name, v in req.headers.items():
            ln = name.lower()
            if ln in ("content-md5", "content-type") or ln.startswith("x-amz-"):
                headers[ln] = v
        if query_auth:  # presigned V2 URLs carry the x-amz-* "headers" as parameters
            for k, v in req.query_pairs:
                if k.lower().startswith("x-amz-") and k.lower() not in headers:
                    headers[k.lower()] = v
        split = urlsplit(f"http://h{req.raw_path}" + (f"?{req.raw_query}" if req.raw_query else ""))
        paths = [req.raw_path]
        if req.bucket and not req.key:  # a bucket's resource is "/bucket/" (botocore signs that)
            paths.append(req.raw_path.rstrip("/") + "/" if not req.raw_path.endswith("/") else req.raw_path.rstrip("/"))
        for path in paths:
            expected = _V2(creds, date).get_signature(req.method, split, headers, auth_path=path)
            if hmac.compare_digest(expected.encode(), sig.encode()):
                return
        raise S3Error("SignatureDoesNotMatch")

    def _v2_header(self, req, authz: str) -> None:
        m = _V2_HEADER.match(authz.strip())
        if not m:
            raise S3Error("AuthorizationHeaderMalformed", "expected 'AWS AccessKey:Signature'")
        creds = self._creds(m.group(1), req)
        amz_date = req.headers.get("x-amz-date")
        date = req.headers.get("Date", "")
        when = _parse_http_date(amz_date or date)
        if when is None:
            raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        if abs(self.clock() - when) > MAX_SKEW:
            raise S3Error("RequestTimeTooSkewed")
        self._v2_verify(req, creds, "" if amz_date else date, m.group(2), False)

    def _v2_query(self, req) -> None:
        q = req.query
        creds = self._creds(q["AWSAccessKeyId"], req)
        try:
            expires = int(q.get("Expires", ""))
        except ValueError:
            raise S3Error("AccessDenied", "a V2 presigned URL needs a numeric Expires") from None
        if self.clock() > expires:
            raise S3Error("AccessDenied", "Request has expired")
        self._v2_verify(req, creds, str(expires), q["Signature"], True)
