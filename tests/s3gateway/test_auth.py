"""Authentication with an auth token: SigV4 (header, presigned, streaming) and V2.

Every unsigned, wrongly signed, wrong-key, skewed or expired request is refused (counted:
100%), and every correctly signed one passes.
"""
from __future__ import annotations

import calendar
import hashlib
import http.client
import io
import time
import urllib.parse

import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from pfs.s3gateway.auth import Authenticator
from pfs.s3gateway.body import open_body
from pfs.s3gateway.request import Request
from tests.s3gateway.conftest import TOKEN, boto3_client

B = "master.data"


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def operations(c):
    """A spread of read and write calls; each returns normally only if authorised."""
    return [
        lambda: c.list_buckets(),
        lambda: c.list_objects_v2(Bucket=B),
        lambda: c.list_objects(Bucket=B, Prefix="dir/"),
        lambda: c.get_object(Bucket=B, Key="a.txt")["Body"].read(),
        lambda: c.head_object(Bucket=B, Key="a.txt"),
        lambda: c.put_object(Bucket=B, Key="w.txt", Body=b"written"),
        lambda: c.copy_object(Bucket=B, Key="c.txt", CopySource={"Bucket": B, "Key": "a.txt"}),
        lambda: c.delete_object(Bucket=B, Key="c.txt"),
        lambda: c.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "w.txt"}]}),
        lambda: c.abort_multipart_upload(Bucket=B, Key="m", UploadId=c.create_multipart_upload(
            Bucket=B, Key="m")["UploadId"]),
        lambda: c.get_bucket_location(Bucket=B),
        lambda: c.create_bucket(Bucket="master.newrepo"),
    ]


def test_correct_signatures_pass(auth_gateway, repo):
    for sig in ("s3v4", "s3"):  # SigV4 and V2
        c = boto3_client(auth_gateway.endpoint_url, TOKEN, TOKEN, signature_version=sig)
        try:
            for op in operations(c)[:-1]:
                op()
        finally:
            c.close()


@pytest.mark.parametrize("kind,expected", [
    ("unsigned", {"AccessDenied"}),
    ("wrong-secret", {"SignatureDoesNotMatch"}),
    ("wrong-key", {"InvalidAccessKeyId"}),
    ("wrong-secret-v2", {"SignatureDoesNotMatch"}),
    ("wrong-key-v2", {"InvalidAccessKeyId"}),
])
def test_bad_credentials_always_refused(auth_gateway, pfs, repo, kind, expected):
    url = auth_gateway.endpoint_url
    c = {"unsigned": lambda: boto3_client(url, signature_version=UNSIGNED),
         "wrong-secret": lambda: boto3_client(url, TOKEN, TOKEN + "x"),
         "wrong-key": lambda: boto3_client(url, "someone-else", TOKEN),
         "wrong-secret-v2": lambda: boto3_client(url, TOKEN, "nope", signature_version="s3"),
         "wrong-key-v2": lambda: boto3_client(url, "someone", TOKEN, signature_version="s3")}[kind]()
    commits = len(pfs.list_commits(repo))
    refused = 0
    ops = operations(c)
    try:
        for op in ops:
            with pytest.raises(ClientError) as ei:
                op()
            status = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
            assert status == 403 and (code(ei.value) in expected or code(ei.value) == "403"), code(ei.value)
            refused += 1
    finally:
        c.close()
    assert refused == len(ops)  # 100%
    assert len(pfs.list_commits(repo)) == commits
    assert all(r.repo.name != "newrepo" for r in pfs.list_repos())


def test_clock_skew_refused(auth_gateway, repo):
    auth_gateway.auth.clock = lambda: time.time() + 3600
    c = boto3_client(auth_gateway.endpoint_url, TOKEN, TOKEN)
    try:
        with pytest.raises(ClientError) as ei:
            c.list_objects_v2(Bucket=B)
        assert code(ei.value) == "RequestTimeTooSkewed"
    finally:
        c.close()


def fetch(url: str, method: str = "GET", body: bytes | None = None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        c.request(method, u.path + ("?" + u.query if u.query else ""), body=body)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_presigned_urls(auth_gateway, pfs, repo):
    good = boto3_client(auth_gateway.endpoint_url, TOKEN, TOKEN, signature_version="s3v4")
    bad = boto3_client(auth_gateway.endpoint_url, TOKEN, "wrong", signature_version="s3v4")
    v2 = boto3_client(auth_gateway.endpoint_url, TOKEN, TOKEN, signature_version="s3")
    try:
        url = good.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a.txt"}, ExpiresIn=60)
        assert "X-Amz-Signature=" in url and fetch(url) == (200, b"alpha")
        put = good.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "up.txt"}, ExpiresIn=60)
        assert fetch(put, "PUT", b"uploaded")[0] == 200
        assert good.get_object(Bucket=B, Key="up.txt")["Body"].read() == b"uploaded"
        assert fetch(v2.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a.txt"}))[0] == 200
        refused = 0
        cases = [
            bad.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a.txt"}),
            url.replace("a.txt", "dir/b.csv"),  # tampered path
            url.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),  # tampered expiry
            url.split("&X-Amz-Signature")[0],  # no signature
            v2.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a.txt"}).replace("a.txt", "dir/b.csv"),
            v2.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a.txt"}).replace(
                "AWSAccessKeyId=", "AWSAccessKeyId=x"),
        ]
        for u in cases:
            status, body = fetch(u)
            assert status in (400, 403), (u, status, body)
            refused += 1
        assert refused == len(cases)
        # expiry: valid URLs (V4 and V2) stop working once the server's clock passes them
        fresh = [good.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a.txt"}, ExpiresIn=60),
                 v2.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "a.txt"}, ExpiresIn=60)]
        assert [fetch(u)[0] for u in fresh] == [200, 200]
        auth_gateway.auth.clock = lambda: time.time() + 120
        for u in fresh:
            status, body = fetch(u)
            assert status == 403 and b"AccessDenied" in body and b"expired" in body
    finally:
        good.close()
        bad.close()
        v2.close()


# ---- streaming (chunk-signed) payloads --------------------------------------------------
AWS_EXAMPLE = {  # AWS's published example of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload
    "key": "AKIAIOSFODNN7EXAMPLE", "secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "seed": "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    "chunks": ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
               "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
               "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"],
}


def _example(chunk_sigs):
    e = AWS_EXAMPLE
    hdr = ("Host: s3.amazonaws.com\r\nx-amz-date: 20130524T000000Z\r\n"
           "x-amz-storage-class: REDUCED_REDUNDANCY\r\n"
           f"Authorization: AWS4-HMAC-SHA256 Credential={e['key']}/20130524/us-east-1/s3/aws4_request,"
           "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
           f"x-amz-decoded-content-length;x-amz-storage-class,Signature={e['seed']}\r\n"
           "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\nContent-Encoding: aws-chunked\r\n"
           "x-amz-decoded-content-length: 66560\r\nContent-Length: 66824\r\n\r\n")
    headers = http.client.parse_headers(io.BytesIO(hdr.encode()))
    body = (b"10000;chunk-signature=%s\r\n" % chunk_sigs[0].encode() + b"a" * 65536 + b"\r\n"
            + b"400;chunk-signature=%s\r\n" % chunk_sigs[1].encode() + b"a" * 1024 + b"\r\n"
            + b"0;chunk-signature=%s\r\n\r\n" % chunk_sigs[2].encode())
    auth = Authenticator(e["key"], clock=lambda: calendar.timegm((2013, 5, 24, 0, 0, 0)), secret=e["secret"])
    req = Request.parse("PUT", "/examplebucket/chunkObject.txt", headers, "t")
    signer = auth.check(req)
    return open_body(io.BufferedReader(io.BytesIO(body)), headers, lambda: None, signer)


def test_streaming_signature_matches_aws_example():
    assert b"".join(_example(AWS_EXAMPLE["chunks"]).chunks()) == b"a" * 66560
    for i in range(3):
        sigs = list(AWS_EXAMPLE["chunks"])
        sigs[i] = "0" * 64
        with pytest.raises(Exception) as ei:
            b"".join(_example(sigs).chunks())
        assert getattr(ei.value, "code", "") == "SignatureDoesNotMatch"


def _signed_stream_put(gw, key: str, data: bytes, tamper: bool = False):
    """A chunk-signed PUT built with botocore's SigV4 signer (seed) and the chained chunk rule."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    url = f"{gw.endpoint_url}/{B}/{key}"
    pieces = [data[i:i + 8192] for i in range(0, len(data), 8192)] + [b""]
    framed_len = sum(len(b"%x;chunk-signature=" % len(p)) + 64 + 2 + len(p) + 2 for p in pieces)
    req = AWSRequest("PUT", url, headers={
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)), "Content-Length": str(framed_len),
        "Host": f"127.0.0.1:{gw.port}", "x-amz-date": stamp})
    signer = S3SigV4Auth(Credentials(TOKEN, TOKEN), "s3", "us-east-1")
    req.context["timestamp"] = stamp
    seed = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    req.headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={TOKEN}/{stamp[:8]}/us-east-1/s3/aws4_request, "
                                    f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(req))}, "
                                    f"Signature={seed}")
    scope = signer.credential_scope(req)
    prev, body = seed, b""
    for p in pieces:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", stamp, scope, prev,
                         hashlib.sha256(b"").hexdigest(), hashlib.sha256(p).hexdigest()])
        prev = signer.signature(sts, req)
        if tamper and p:
            p = p[:-1] + bytes([p[-1] ^ 1])
        body += b"%x;chunk-signature=%s\r\n" % (len(p), prev.encode()) + p + b"\r\n"
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        c.request("PUT", f"/{B}/{key}", body=body, headers=dict(req.headers.items()))
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_streaming_signed_put_live(auth_gateway, pfs, repo):
    data = bytes(range(256)) * 200
    assert _signed_stream_put(auth_gateway, "streamed", data)[0] == 200
    ci = pfs.commit_for_read(repo, "", "master")
    assert b"".join(pfs.read_file(ci, "/streamed")[1]) == data
    n = len(pfs.list_commits(repo))
    status, body = _signed_stream_put(auth_gateway, "tampered", data, tamper=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body
    assert len(pfs.list_commits(repo)) == n


def test_auth_off_accepts_anything(gateway, repo):
    for c in (boto3_client(gateway.endpoint_url, signature_version=UNSIGNED),
              boto3_client(gateway.endpoint_url, "x", "y"),
              boto3_client(gateway.endpoint_url, "x", "y", signature_version="s3")):
        try:
            assert c.get_object(Bucket=B, Key="a.txt")["Body"].read() == b"alpha"
        finally:
            c.close()
