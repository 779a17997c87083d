"""`pachd --storage s3://...` that cannot use its bucket refuses to start: exit code 1 and ONE
line on stderr naming the bucket and the endpoint and saying what to check. Each case runs
pachd as a subprocess, exactly as a user would."""
from __future__ import annotations

import time

import pytest

from tests.s3pachd import run_pachd, s3_env
from tests.s3servers import free_ports

pytestmark = pytest.mark.s3


def start_fails(tmp_path, storage: str, env: dict, budget: float = 30.0) -> str:
    t = time.monotonic()
    r = run_pachd(["--port", "0", "--root", str(tmp_path / "root"), "--storage", storage,
                   "--s3-gateway-port", "-1", "--host", "127.0.0.1"], env)
    took = time.monotonic() - t
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.stderr}"
    assert lines[0].startswith("pachd: cannot start: "), lines[0]
    assert took < budget, f"took {took:.1f}s"
    assert r.stdout == ""
    return lines[0]


def test_missing_bucket(seaweed_server, tmp_path):
    line = start_fails(tmp_path, "s3://missing-bucket", s3_env(seaweed_server))
    assert "'missing-bucket'" in line and seaweed_server.endpoint_url in line
    assert "does not exist" in line and "create it" in line


def test_missing_bucket_with_prefix(seaweed_server, tmp_path):
    line = start_fails(tmp_path, "s3://no-such-bucket-xyz/some/prefix", s3_env(seaweed_server))
    assert "'no-such-bucket-xyz'" in line and "does not exist" in line


def test_wrong_secret_key(seaweed_server, bucket, tmp_path):
    env = s3_env(seaweed_server, AWS_SECRET_ACCESS_KEY="not-the-secret")
    line = start_fails(tmp_path, f"s3://{bucket}/pfs", env)
    assert f"'{bucket}'" in line and seaweed_server.endpoint_url in line
    assert "denied" in line and "AWS_ACCESS_KEY_ID" in line and "AWS_SECRET_ACCESS_KEY" in line


def test_unknown_access_key(seaweed_server, bucket, tmp_path):
    env = s3_env(seaweed_server, AWS_ACCESS_KEY_ID="nobody", AWS_SECRET_ACCESS_KEY="nothing")
    line = start_fails(tmp_path, f"s3://{bucket}/pfs", env)
    assert f"'{bucket}'" in line and "denied" in line


def test_endpoint_nothing_listens_on(seaweed_server, tmp_path):
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    line = start_fails(tmp_path, "s3://some-bucket/pfs", s3_env(seaweed_server, url), budget=15)
    assert "'some-bucket'" in line and url in line
    assert "cannot reach" in line and "AWS_ENDPOINT_URL" in line


def test_no_credentials_at_all(seaweed_server, tmp_path):
    env = s3_env(None, AWS_ENDPOINT_URL=seaweed_server.endpoint_url, HOME=str(tmp_path),
                 AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                 AWS_EC2_METADATA_DISABLED="true")
    line = start_fails(tmp_path, "s3://some-bucket", env, budget=15)
    assert "no S3 credentials" in line and "AWS_ACCESS_KEY_ID" in line and "'some-bucket'" in line


def test_bad_retry_setting(seaweed_server, bucket, tmp_path):
    line = start_fails(tmp_path, f"s3://{bucket}", s3_env(seaweed_server, AWS_MAX_ATTEMPTS="lots"))
    assert "AWS_MAX_ATTEMPTS" in line


def test_good_settings_start_and_stop(seaweed_server, bucket, start_pachd, sdk):
    """The control: the same command with the right bucket and keys serves."""
    p = start_pachd(f"s3://{bucket}/pfs")
    assert sdk(p).get_version().major == 2
