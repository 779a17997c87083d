"""S3ChunkStore specifics: start-up checks and error messages, prefixes, configuration."""
from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pfs.errors import StorageError
from pfs.storage import open_chunkstore
from pfs.storage.s3 import S3ChunkStore
from tests.s3servers import free_ports


def test_core_does_not_import_boto3():
    code = ("import sys, pfs.storage, pfs.storage.local, pfs.storage.metadata, pfs.storage.rocks; "
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


@pytest.mark.s3
@pytest.mark.parametrize("server", ["moto_server", "seaweed_server"])
def test_missing_bucket(request, server):
    s = request.getfixturevalue(server)
    with pytest.raises(StorageError) as ei:
        s.store(bucket="no-such-bucket-here")
    msg = str(ei.value)
    assert "no-such-bucket-here" in msg and s.endpoint_url in msg and "does not exist" in msg


@pytest.mark.s3
def test_wrong_secret_is_rejected(seaweed_server):
    s = seaweed_server
    bucket = s.new_bucket()
    with pytest.raises(StorageError) as ei:
        S3ChunkStore(bucket, endpoint_url=s.endpoint_url, access_key=s.access_key,
                     secret_key="not-the-secret")
    msg = str(ei.value)
    assert bucket in msg and s.endpoint_url in msg and "denied" in msg and "access key" in msg


@pytest.mark.s3
def test_unknown_access_key_is_rejected(seaweed_server):
    s = seaweed_server
    with pytest.raises(StorageError, match="denied"):
        S3ChunkStore(s.new_bucket(), endpoint_url=s.endpoint_url, access_key="nobody",
                     secret_key="nothing")


def test_unreachable_endpoint_fails_fast_with_hint():
    (port,) = free_ports(1)  # nothing listens there
    url = f"http://127.0.0.1:{port}"
    t = time.monotonic()
    with pytest.raises(StorageError) as ei:
        S3ChunkStore("some-bucket", endpoint_url=url, access_key="a", secret_key="b")
    assert time.monotonic() - t < 10
    msg = str(ei.value)
    assert "cannot reach" in msg and "some-bucket" in msg and url in msg and "AWS_ENDPOINT_URL" in msg


@pytest.mark.s3
def test_prefixes_isolate_stores(moto_server):
    bucket = moto_server.new_bucket()
    a = moto_server.store(bucket, prefix="repo-a/")
    b = moto_server.store(bucket, prefix="repo-b")
    root = moto_server.store(bucket)
    try:
        a.put("k/1", b"a1")
        b.put("k/1", b"b1")
        assert a.get("k/1") == b"a1" and b.get("k/1") == b"b1"
        assert list(a.iterate()) == ["k/1"]
        assert list(root.iterate()) == ["repo-a/k/1", "repo-b/k/1"]
        a.delete("k/1")
        assert b.exists("k/1")
    finally:
        for s in (a, b, root):
            s.close()


@pytest.mark.s3
def test_from_url_and_env_endpoint(moto_server, monkeypatch):
    bucket = moto_server.new_bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s = open_chunkstore(f"s3://{bucket}/some/prefix")
    try:
        assert isinstance(s, S3ChunkStore)
        assert (s.bucket, s.prefix) == (bucket, "some/prefix")
        assert s.endpoint_url.rstrip("/") == moto_server.endpoint_url
        s.put("x/y", b"z")
        raw = moto_server.client()
        try:
            assert raw.get_object(Bucket=bucket, Key="some/prefix/x/y")["Body"].read() == b"z"
        finally:
            raw.close()
    finally:
        s.close()
    with pytest.raises(ValueError):
        S3ChunkStore.from_url("http://bucket/x")


@pytest.mark.s3
def test_retry_configuration(moto_server):
    s = moto_server.store()
    try:
        retries = s._client.meta.config.retries
        assert retries["mode"] in ("adaptive", "standard")
        assert retries.get("max_attempts", retries.get("total_max_attempts")) >= 7
    finally:
        s.close()


@pytest.mark.s3
def test_bucket_deleted_under_the_store(moto_server):
    bucket = moto_server.new_bucket()
    s = moto_server.store(bucket)
    try:
        raw = moto_server.client()
        raw.delete_bucket(Bucket=bucket)
        raw.close()
        with pytest.raises(StorageError, match=bucket):
            s.put("a/b", b"x")
    finally:
        s.close()


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers each method's first request with a retryable error, then succeeds."""

    protocol_version = "HTTP/1.1"
    failures = {"PUT": (503, "SlowDown"), "GET": (500, "InternalError")}
    seen: dict = {}

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        count = self.seen[self.command] = self.seen.get(self.command, 0) + 1
        if count == 1 and self.command in self.failures:
            status, code = self.failures[self.command]
            body = f"<Error><Code>{code}</Code><Message>try again</Message></Error>".encode()
            return self._reply(status, body, [("Content-Type", "application/xml")])
        if self.command == "GET":
            return self._reply(200, b"payload", [("ETag", '"x"')])
        self._reply(200, b"", [("ETag", '"x"')])

    do_GET = do_PUT = do_HEAD = _handle

    def log_message(self, *args):
        pass


def test_throttling_and_5xx_are_retried():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    _Flaky.seen = {}
    try:
        s = S3ChunkStore("bucket", endpoint_url=f"http://127.0.0.1:{srv.server_port}",
                         access_key="a", secret_key="b", check=False)
        try:
            s.put("a/b", b"data")
            assert s.get("a/b") == b"payload"
        finally:
            s.close()
        assert _Flaky.seen == {"PUT": 2, "GET": 2}
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()
