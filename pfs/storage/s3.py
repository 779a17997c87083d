"""S3ChunkStore: a chunk store in an S3 bucket (AWS, MinIO, SeaweedFS, moto ...).

Layout: the object with key ``"packs/ab/abcdef"`` is ``s3://<bucket>/<prefix>/packs/ab/abcdef``.

Invariants (on top of those of `pfs.storage.chunkstore`):
- This is the only module of the core that imports boto3/botocore.
- Credentials and endpoint come from the arguments, else from boto3's standard chain
  (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance roles) and
  ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``. With a custom endpoint, path-style
  addressing is used (MinIO/SeaweedFS do not serve virtual-host buckets by default).
- The constructor makes one cheap call (HeadBucket, with few retries) so a missing bucket,
  an unreachable endpoint or rejected credentials fail at start-up with a `StorageError`
  that names the bucket and the endpoint and says what to check -- not at the first put.
- Every request retries throttling, 5xx and connection errors with botocore's
  ``standard`` retry mode (exponential backoff with jitter, `max_attempts`, a retry quota
  against retry storms). Unless given as arguments, `max_attempts` (tries in total, the
  first included) and the mode come from the standard ``AWS_MAX_ATTEMPTS`` /
  ``AWS_RETRY_MODE`` variables, else 8 and ``standard``. A request that stalls counts as a
  failed attempt after ``PACHD_S3_READ_TIMEOUT`` seconds without data (default 60;
  ``PACHD_S3_CONNECT_TIMEOUT``, default 5, for connecting). (``adaptive`` adds a client-wide
  rate limiter: after a few SlowDowns it slows every request of the process -- measured
  here, a 32 MiB read of 64 range GETs, one in three answered SlowDown/500, took 30 s in
  adaptive mode and 8 s in standard mode -- so it is opt-in: AWS_RETRY_MODE=adaptive.) When the attempts run out, the `StorageError` says
  what kept failing (the S3 error code and HTTP status, or the connection failure) and
  what to check.
- A single PutObject is atomic on S3: readers see the old or the whole new object. Objects
  are ≤ ~16 MiB, so no multipart upload is ever used (that would not be atomic anyway).
- `iterate` lists one '/'-level at a time (Delimiter="/") and sorts each level itself, so
  keys come out in string order on every server: AWS and MinIO list in binary key order,
  but SeaweedFS lists like a directory walk ("a/b" before "a-c"). It holds one level's
  names in memory: fine for the sharded ``packs/ab/...`` layout, not for a flat million.
- One boto3 client per store, created once; botocore clients are thread-safe (sessions are
  not, so the session is used only in the constructor). `close()` closes its pool.
"""
from __future__ import annotations

import os
from typing import Iterator
from urllib.parse import urlparse

import boto3
import botocore.exceptions as bx
from botocore.config import Config

from pfs.errors import ObjectNotFound, StorageError
from pfs.storage.chunkstore import ObjectInfo, check_key, check_range

__all__ = ["S3ChunkStore"]

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_RETRY_MODE = "standard"
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_CRED_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}


def _code(e: bx.ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: bx.ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StorageError(f"{name}={raw!r} is not a whole number") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        v = float(raw)
    except ValueError:
        raise StorageError(f"{name}={raw!r} is not a number of seconds") from None
    if not v > 0:
        raise StorageError(f"{name}={raw!r} must be more than 0 seconds")
    return v


class S3ChunkStore:
    """Chunk store over one bucket (and an optional key prefix inside it)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        session_token: str | None = None,
        max_attempts: int | None = None,
        retry_mode: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_pool_connections: int = 32,
        addressing_style: str | None = None,
        check: bool = True,
    ):
        if not bucket:
            raise ValueError("S3ChunkStore needs a bucket name")
        if connect_timeout is None:
            connect_timeout = _env_float("PACHD_S3_CONNECT_TIMEOUT", 5.0)
        if read_timeout is None:
            read_timeout = _env_float("PACHD_S3_READ_TIMEOUT", 60.0)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._kp = self.prefix + "/" if self.prefix else ""
        env_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if addressing_style is None:
            addressing_style = "path" if (endpoint_url or env_endpoint) else "auto"
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region,
        )
        base = dict(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            s3={"addressing_style": addressing_style},
            # Only checksum when the operation needs it: some S3-compatible servers reject
            # the newer default CRC trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        if region is None and session.region_name is None:
            base["region_name"] = "us-east-1"
        if max_attempts is None:
            max_attempts = _env_int("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)
        retry_mode = retry_mode or os.environ.get("AWS_RETRY_MODE") or DEFAULT_RETRY_MODE
        if max_attempts < 1 or retry_mode not in ("standard", "adaptive", "legacy"):
            raise StorageError(f"invalid S3 retry settings: max_attempts={max_attempts} (>= 1), "
                               f"mode={retry_mode!r} (standard, adaptive or legacy); "
                               "check AWS_MAX_ATTEMPTS / AWS_RETRY_MODE")
        self.max_attempts = max_attempts
        # total_max_attempts counts the first try too (AWS_MAX_ATTEMPTS's meaning);
        # botocore's "max_attempts" key would count only the retries.
        cfg = Config(retries={"total_max_attempts": max_attempts, "mode": retry_mode}, **base)
        self._client = session.client("s3", endpoint_url=endpoint_url, config=cfg)
        self.endpoint_url = self._client.meta.endpoint_url
        self._paginator = self._client.get_paginator("list_objects_v2")
        if check:
            probe_cfg = Config(retries={"total_max_attempts": 2, "mode": "standard"},
                               **{**base, "connect_timeout": min(connect_timeout, 3.0),
                                  "read_timeout": min(read_timeout, 10.0)})
            probe = session.client("s3", endpoint_url=endpoint_url, config=probe_cfg)
            try:
                self._check_bucket(probe)
            except BaseException:
                self._client.close()
                raise
            finally:
                probe.close()

    @classmethod
    def from_url(cls, url: str, **kwargs) -> "S3ChunkStore":
        """``s3://bucket/some/prefix`` → store (other settings as keyword arguments)."""
        u = urlparse(url)
        if u.scheme != "s3" or not u.netloc:
            raise ValueError(f"expected a URL like s3://bucket/prefix, got {url!r}")
        return cls(u.netloc, u.path.strip("/"), **kwargs)

    def __repr__(self) -> str:
        return f"S3ChunkStore({self._where()})"

    def _where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} at {self.endpoint_url}"

    # -- errors ------------------------------------------------------------------------
    def _check_bucket(self, client) -> None:
        what = f"S3 bucket {self.bucket!r} at endpoint {self.endpoint_url}"
        try:
            client.head_bucket(Bucket=self.bucket)
        except bx.ClientError as e:
            code = _code(e)
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket", "NotFound") or status == 404:
                raise StorageError(
                    f"{what} does not exist: create it (e.g. `aws s3 mb s3://{self.bucket}`) "
                    "or fix the bucket name / endpoint in the storage configuration"
                ) from e
            if code in _CRED_CODES or status == 403:
                raise StorageError(
                    f"access to {what} was denied (HTTP 403): check the access key and secret "
                    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the storage configuration), "
                    "that they are valid for this endpoint, and that they may read and write the bucket"
                ) from e
            raise StorageError(f"checking {what} failed: {e}") from e
        except bx.NoCredentialsError as e:
            raise StorageError(
                f"no S3 credentials found for {what}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or an AWS profile / instance role), or pass them explicitly"
            ) from e
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError,
                bx.ReadTimeoutError) as e:
            raise StorageError(
                f"cannot reach {what}: {e}. Check that the S3 server is running, the endpoint "
                "URL (AWS_ENDPOINT_URL) and port are right, and that this host can reach it"
            ) from e
        except bx.BotoCoreError as e:
            raise StorageError(f"checking {what} failed: {e}") from e

    def _fail(self, op: str, key: str, e: Exception) -> Exception:
        if isinstance(e, bx.ClientError):
            code = _code(e)
            if code in _NOT_FOUND_CODES:
                return ObjectNotFound(
                    f"object {key!r} not found in the chunk store {self._where()} "
                    "(was the bucket emptied, or is pachd pointed at a different bucket/prefix?)"
                )
            if code == "NoSuchBucket":
                return StorageError(f"{op} of {key!r}: bucket {self.bucket!r} no longer exists at {self.endpoint_url}")
            if code in _CRED_CODES:
                return StorageError(
                    f"{op} of {key!r} in {self._where()} was denied ({code}): check the credentials "
                    "and the bucket policy")
            status = _status(e)
            if status >= 500 or code in ("SlowDown", "Throttling", "ThrottlingException",
                                         "RequestTimeout", "ServiceUnavailable"):
                # tries actually made (fewer than max_attempts if the retry quota ran out)
                tries = int(e.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
                return StorageError(
                    f"{op} of {key!r} in {self._where()} failed: the S3 server kept answering "
                    f"{code or 'an error'} (HTTP {status}) through {tries} attempts with "
                    "backoff; it is overloaded or failing: check its health and logs, then retry")
        elif isinstance(e, (bx.EndpointConnectionError, bx.ConnectionClosedError,
                            bx.ConnectTimeoutError, bx.ReadTimeoutError)):
            return StorageError(
                f"{op} of {key!r} in {self._where()} failed after up to {self.max_attempts} attempts: "
                f"{e}. Check that the S3 server is running and reachable (AWS_ENDPOINT_URL), then retry")
        return StorageError(f"{op} of {key!r} in {self._where()} failed: {e}")

    # -- operations --------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        k = self._kp + check_key(key)
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)  # botocore takes bytes, bytearray or a file
        try:
            self._client.put_object(Bucket=self.bucket, Key=k, Body=data)
        except (bx.ClientError, bx.BotoCoreError) as e:
            raise self._fail("put", key, e) from e

    def get(self, key: str) -> bytes:
        k = self._kp + check_key(key)
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=k)["Body"]
            with body:
                return body.read()
        except (bx.ClientError, bx.BotoCoreError) as e:
            raise self._fail("get", key, e) from e

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        if length == 0:
            if not self.exists(key):
                raise self._fail("get_range", key, _missing())
            return b""
        k = self._kp + check_key(key)
        try:
            body = self._client.get_object(
                Bucket=self.bucket, Key=k, Range=f"bytes={offset}-{offset + length - 1}")["Body"]
            with body:
                return body.read()
        except bx.ClientError as e:
            if _code(e) == "InvalidRange":  # offset at/after the end of an existing object
                return b""
            raise self._fail("get_range", key, e) from e
        except bx.BotoCoreError as e:
            raise self._fail("get_range", key, e) from e

    def exists(self, key: str) -> bool:
        k = self._kp + check_key(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=k)
            return True
        except bx.ClientError as e:
            if _code(e) in _NOT_FOUND_CODES:
                return False
            raise self._fail("exists", key, e) from e
        except bx.BotoCoreError as e:
            raise self._fail("exists", key, e) from e

    def delete(self, key: str) -> None:
        k = self._kp + check_key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=k)
        except bx.ClientError as e:
            if _code(e) in _NOT_FOUND_CODES:
                return
            raise self._fail("delete", key, e) from e
        except bx.BotoCoreError as e:
            raise self._fail("delete", key, e) from e

    def iterate(self, prefix: str = "") -> Iterator[str]:
        for info in self.iterate_info(prefix):
            yield info.key

    def iterate_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            yield from self._walk(self._kp + prefix)
        except (bx.ClientError, bx.BotoCoreError) as e:
            raise self._fail("listing", prefix + "*", e) from e

    def _walk(self, list_prefix: str) -> Iterator[ObjectInfo]:
        """One '/'-level at a time, each level sorted here (see the module docstring)."""
        names: list[tuple[str, int, float]] = []  # (name, size, mtime); size -1: a prefix
        for page in self._paginator.paginate(Bucket=self.bucket, Prefix=list_prefix, Delimiter="/"):
            # Keys ending in '/' are directory markers (SeaweedFS lists empty directories
            # that way), never our objects: check_key forbids a trailing '/'.
            names.extend((k, int(o.get("Size", 0)), o["LastModified"].timestamp())
                         for o in page.get("Contents", ()) if not (k := o["Key"]).endswith("/"))
            names.extend((p, -1, 0.0) for c in page.get("CommonPrefixes", ())
                         if len(p := c["Prefix"]) > len(list_prefix))
        names.sort()  # a common prefix "d/" sorts exactly where its keys belong
        n = len(self._kp)
        for name, size, mtime in names:
            if size < 0:
                yield from self._walk(name)
            else:
                yield ObjectInfo(name[n:], size, mtime)

    def close(self) -> None:
        self._client.close()


def _missing() -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": "NoSuchKey", "Message": "not found"}}, "HeadObject")
