"""TLS: pachd --tls-cert/--tls-key serves gRPC and the S3 gateway over TLS; pachyderm_sdk,
pachctl (a grpcs:// context with --server-cas) and boto3 connect with auth on; pipeline
workers reach pachd over TLS too."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import grpc
import pytest
from botocore.exceptions import ClientError
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps

from pachd.server import Pachd
from tests.tlscerts import make_cert


@pytest.fixture
def certs(tmp_path):
    return make_cert(tmp_path / "tls")


@pytest.fixture
def tls_pachd(tmp_path, certs):
    cert, key = certs
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", s3_gateway_port=0,
              tls_cert=str(cert), tls_key=str(key)).start()
    try:
        yield p
    finally:
        p.stop(grace=1.0)


def test_sdk_over_tls_with_auth_and_a_pipeline(tls_pachd, certs):
    roots = certs[0].read_bytes()
    clients = []
    try:
        anon = Client(host="localhost", port=tls_pachd.port, tls=True, root_certs=roots)
        clients.append(anon)
        root = anon.auth.activate().pach_token
        c = Client(host="localhost", port=tls_pachd.port, tls=True, root_certs=roots, auth_token=root)
        clients.append(c)
        assert c.auth.who_am_i().username == "pach:root"
        c.pfs.create_repo(repo=pfs.Repo(name="in"))
        c.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("in@master"), path="/x", data=b"tls")
        c.pps.create_pipeline(pipeline=pps.Pipeline(name="up"),
                              input=pps.Input(pfs=pps.PfsInput(repo="in", glob="/*")),
                              transform=pps.Transform(cmd=[sys.executable, "-c",
                                                           "open('/pfs/out/x','w').write(open('/pfs/in/x').read().upper())"]))
        job = next(iter(c.pps.list_job(pipeline=pps.Pipeline(name="up"))))
        info = c.pps.inspect_job(job=job.job, wait=True)
        assert info.state == pps.JobState.JOB_SUCCESS, info.reason
        with c.pfs.pfs_file(file=pfs.File.from_uri("up@master:/x")) as f:
            assert f.read() == b"TLS"
        # a plaintext client cannot talk to the TLS port
        plain = Client(host="localhost", port=tls_pachd.port, auth_token=root)
        clients.append(plain)
        with pytest.raises(ConnectionError) as ei:  # the SDK's name for UNAVAILABLE
            plain.pfs.inspect_repo(repo=pfs.Repo(name="in"))
        assert "UNAVAILABLE" in str(ei.value.__cause__)
    finally:
        for cl in clients:
            cl._channel.close()


def test_pachctl_grpcs_context_with_server_cas(tls_pachd, certs, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACH", "PACHD"))}
    env.update(HOME=str(tmp_path / "home"), PACH_CONFIG=str(tmp_path / "config.json"), PACHCTL_NO_AUTOSTART="1",
               NO_COLOR="1")

    def pachctl(*args, input=None):
        return subprocess.run([sys.executable, "-m", "pachctl", *args], env=env, input=input,
                              capture_output=True, text=True, timeout=120)

    cas = base64.b64encode(certs[0].read_bytes()).decode()
    r = pachctl("config", "update", "context", "--pachd-address", f"grpcs://localhost:{tls_pachd.port}",
                "--server-cas", cas)
    assert r.returncode == 0, r.stderr
    r = pachctl("auth", "activate")
    assert r.returncode == 0, r.stderr
    root = r.stdout.splitlines()[2]
    r = pachctl("auth", "whoami")
    assert r.stdout == 'You are "pach:root"\n', r.stderr
    assert pachctl("create", "repo", "secure").returncode == 0
    assert "secure" in pachctl("list", "repo").stdout
    with open(env["PACH_CONFIG"]) as f:
        ctx = json.load(f)["v2"]["contexts"]
    (only,) = ctx.values()
    assert only["session_token"] == root and only["server_cas"] == cas
    # pachyderm_sdk reads the same context: address, server_cas and the session token
    sdk = Client.from_config(env["PACH_CONFIG"])
    try:
        assert sdk.auth.who_am_i().username == "pach:root"
        assert [r.repo.name for r in sdk.pfs.list_repo()] == ["secure"]
    finally:
        sdk._channel.close()
    # without the CA the server's certificate is not trusted: a clear failure, not a hang
    r = pachctl("config", "update", "context", "--server-cas", "")
    r = pachctl("list", "repo")
    assert r.returncode == 1


def test_s3_gateway_over_https(tls_pachd, certs):
    import boto3
    from botocore.config import Config
    anon = Client(host="localhost", port=tls_pachd.port, tls=True, root_certs=certs[0].read_bytes())
    try:
        root = anon.auth.activate().pach_token
    finally:
        anon._channel.close()
    url = tls_pachd.s3_gateway.endpoint_url
    assert url.startswith("https://")
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=root,
                      aws_secret_access_key=root, verify=str(certs[0]), config=cfg)
    try:
        s3.create_bucket(Bucket="master.web")
        s3.put_object(Bucket="master.web", Key="k", Body=b"over https")
        assert s3.get_object(Bucket="master.web", Key="k")["Body"].read() == b"over https"
    finally:
        s3.close()
    bad = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x" * 32,
                       aws_secret_access_key="x" * 32, verify=str(certs[0]), config=cfg)
    try:
        with pytest.raises(ClientError) as ei:
            bad.list_buckets()
        assert ei.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    finally:
        bad.close()


def test_tls_flags_need_both(tmp_path, certs):
    with pytest.raises(ValueError, match="both --tls-cert and --tls-key"):
        Pachd(tmp_path / "p", port=0, tls_cert=str(certs[0]))
