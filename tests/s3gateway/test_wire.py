"""The gateway at the HTTP level: body encodings, integrity checks, keep-alive, error XML."""
from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import xml.etree.ElementTree as ET
import zlib

import pytest

B = "master.data"


def conn(gw) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)


def request(gw, method, path, body=None, headers=None):
    c = conn(gw)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def commits(pfs, repo) -> int:
    return len(pfs.list_commits(repo))


def test_error_document(gateway, repo):
    status, headers, body = request(gateway, "GET", f"/{B}/missing/key")
    assert status == 404 and headers["Content-Type"] == "application/xml"
    root = ET.fromstring(body)
    assert root.tag == "Error"
    assert root.findtext("Code") == "NoSuchKey" and root.findtext("Resource") == f"/{B}/missing/key"
    assert root.findtext("RequestId") == headers["x-amz-request-id"]
    status, _, body = request(gateway, "OPTIONS", f"/{B}")
    assert status == 405 and b"MethodNotAllowed" in body
    status, _, body = request(gateway, "GET", "/master.nosuchrepo/x")
    assert status == 404 and ET.fromstring(body).findtext("Code") == "NoSuchBucket"


def test_http_chunked_put(gateway, pfs, repo):
    c = conn(gateway)
    try:
        c.request("PUT", f"/{B}/chunked", body=iter([b"abc", b"defg", b"h" * 100000]),
                  encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        r = c.getresponse()
        r.read()
        assert r.status == 200
    finally:
        c.close()
    ci = pfs.commit_for_read(repo, "", "master")
    assert b"".join(pfs.read_file(ci, "/chunked")[1]) == b"abcdefg" + b"h" * 100000


def aws_chunked(data: bytes, piece: int, trailer: bytes = b"") -> bytes:
    out = b""
    for i in range(0, len(data), piece):
        c = data[i:i + piece]
        out += b"%x\r\n" % len(c) + c + b"\r\n"
    return out + b"0\r\n" + trailer + b"\r\n"


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_aws_chunked_unsigned_trailer(gateway, pfs, repo):
    data = bytes(range(256)) * 1000
    body = aws_chunked(data, 65536, f"x-amz-checksum-crc32:{crc32_b64(data)}\r\n".encode())
    hdrs = {"Content-Encoding": "aws-chunked", "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(len(data)), "x-amz-trailer": "x-amz-checksum-crc32",
            "Content-Length": str(len(body))}
    status, _, _ = request(gateway, "PUT", f"/{B}/awschunked", body, hdrs)
    assert status == 200
    ci = pfs.commit_for_read(repo, "", "master")
    assert b"".join(pfs.read_file(ci, "/awschunked")[1]) == data
    n = commits(pfs, repo)
    bad = aws_chunked(data, 65536, f"x-amz-checksum-crc32:{crc32_b64(b'other')}\r\n".encode())
    status, _, body = request(gateway, "PUT", f"/{B}/awschunked2", bad, dict(hdrs, **{"Content-Length": str(len(bad))}))
    assert status == 400 and b"BadDigest" in body
    short = aws_chunked(data[:-1], 65536)
    status, _, body = request(gateway, "PUT", f"/{B}/awschunked3", short, dict(hdrs, **{"Content-Length": str(len(short))}))
    assert status == 400 and b"IncompleteBody" in body
    assert commits(pfs, repo) == n


def test_aws_chunked_inside_http_chunked_keeps_the_connection_usable(gateway, pfs, repo):
    """What boto3 sends over HTTPS: an aws-chunked body with a checksum trailer, framed with
    Transfer-Encoding: chunked. The framing's last chunk must be consumed with the body, or the
    next request on the connection is parsed from it (it was: 'Bad request syntax ('0')')."""
    data = b"over https" * 1000
    body = aws_chunked(data, 4096, f"x-amz-checksum-crc32:{crc32_b64(data)}\r\n".encode())
    hdrs = {"Content-Encoding": "aws-chunked", "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(len(data)), "x-amz-trailer": "x-amz-checksum-crc32",
            "Transfer-Encoding": "chunked"}
    c = conn(gateway)
    try:
        c.request("PUT", f"/{B}/framed", body=iter([body]), encode_chunked=True, headers=hdrs)
        r = c.getresponse()
        r.read()
        assert r.status == 200
        c.request("GET", f"/{B}/framed")  # the same connection
        r = c.getresponse()
        assert (r.status, r.read()) == (200, data)
    finally:
        c.close()


@pytest.mark.parametrize("header,value,code", [
    ("Content-MD5", base64.b64encode(hashlib.md5(b"other").digest()).decode(), b"BadDigest"),
    ("Content-MD5", "not base64!", b"InvalidDigest"),
    ("x-amz-content-sha256", hashlib.sha256(b"other").hexdigest(), b"XAmzContentSHA256Mismatch"),
    ("x-amz-checksum-sha256", base64.b64encode(hashlib.sha256(b"other").digest()).decode(), b"BadDigest"),
    ("x-amz-checksum-crc32", crc32_b64(b"other"), b"BadDigest"),
])
def test_digest_mismatch_publishes_nothing(gateway, pfs, repo, header, value, code):
    n = commits(pfs, repo)
    status, _, body = request(gateway, "PUT", f"/{B}/digest", b"payload" * 1000, {header: value})
    assert status == 400 and code in body
    assert commits(pfs, repo) == n
    good = {"Content-MD5": base64.b64encode(hashlib.md5(b"payload").digest()).decode(),
            "x-amz-content-sha256": hashlib.sha256(b"payload").hexdigest(),
            "x-amz-checksum-crc32": crc32_b64(b"payload")}
    assert request(gateway, "PUT", f"/{B}/digest", b"payload", good)[0] == 200


def test_client_disconnect_mid_body_publishes_nothing(gateway, pfs, repo):
    n = commits(pfs, repo)
    s = socket.create_connection(("127.0.0.1", gateway.port))
    try:
        s.sendall(f"PUT /{B}/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n".encode() + b"x" * 5000)
    finally:
        s.close()
    status, _, _ = request(gateway, "GET", f"/{B}/cut")  # the server is still fine
    assert status == 404
    assert commits(pfs, repo) == n


def test_keep_alive_across_errors(gateway, repo):
    c = conn(gateway)
    try:
        for i in range(5):
            c.request("PUT", f"/{B}/bad//key", body=b"z" * 1000)  # InvalidArgument before the body is read
            r = c.getresponse()
            assert r.status == 400
            r.read()
            c.request("GET", f"/{B}/a.txt")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"alpha"
    finally:
        c.close()


def test_expect_continue_refused_without_body(auth_gateway, repo):
    """Unauthenticated PUT with Expect: 100-continue is refused before the body is sent."""
    s = socket.create_connection(("127.0.0.1", auth_gateway.port), timeout=10)
    try:
        s.sendall(f"PUT /{B}/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
                  "Expect: 100-continue\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 403") and b"100 Continue" not in data
    finally:
        s.close()


def test_head_has_no_body_but_length(gateway, repo):
    status, headers, body = request(gateway, "HEAD", f"/{B}/a.txt")
    assert status == 200 and headers["Content-Length"] == "5" and body == b""
    status, headers, body = request(gateway, "HEAD", f"/{B}/none")
    assert status == 404 and body == b""
