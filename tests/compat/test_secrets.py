"""Secrets (pps_v2 Create/Delete/Inspect/ListSecret) through both official clients and
pachctl, and a pipeline's `transform.secrets` reaching user code in local workers as an env
var and as mounted files, in the bwrap sandbox and in the no-sandbox fallback, with the
values in no log."""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import textwrap

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from pachd.server import Pachd
from pps.worker.sandbox import bwrap_usable
from tests.compat.helpers import run_pp
from tests.sdk_clients import sdk_clients
from tests.service.helpers import expect_error

VALUE = "s3cr3t-Value-7f3a"
FILE_VALUE = "file-secret-9c1e"


def manifest(name: str, **data: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                       "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}).encode()


def raw_create(port: int, body: bytes):
    from proto.pps_v2 import pps_pb2, pps_pb2_grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        pps_pb2_grpc.APIStub(ch).CreateSecret(pps_pb2.CreateSecretRequest(file=body))


def test_secret_crud_through_pachyderm_sdk(pps_client, pachd_pps):
    c = pps_client
    c.pps.create_secret(name="db-creds", data={"password": VALUE}, labels={"team": "a"})
    raw_create(pachd_pps.port, b"apiVersion: v1\nkind: Secret\nmetadata: {name: yaml-one}\nstringData: {k: v}\n")
    info = c.pps.inspect_secret(secret=pps.Secret(name="db-creds"))
    assert info.secret.name == "db-creds" and info.type == "Opaque" and info.creation_timestamp.year >= 2024
    assert VALUE not in repr(info)
    assert sorted(s.secret.name for s in c.pps.list_secret().secret_info) == ["db-creds", "yaml-one"]
    msg = expect_error(grpc.StatusCode.UNKNOWN, c.pps.create_secret, name="db-creds", data={"password": "x"})
    assert msg == 'failed to create secret: secrets "db-creds" already exists'
    c.pps.delete_secret(secret=pps.Secret(name="db-creds"))
    msg = expect_error(grpc.StatusCode.UNKNOWN, c.pps.inspect_secret, secret=pps.Secret(name="db-creds"))
    assert msg == 'failed to get secret: secrets "db-creds" not found'
    msg = expect_error(grpc.StatusCode.UNKNOWN, c.pps.delete_secret, secret=pps.Secret(name="db-creds"))
    assert msg == 'failed to delete secret: secrets "db-creds" not found'
    msg = expect_error(grpc.StatusCode.INVALID_ARGUMENT, c.pps.create_secret, name="Bad_Name", data={"k": "v"})
    assert "Bad_Name" in msg and "RFC 1123" in msg
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, raw_create, pachd_pps.port, b"{not json")
    # pps DeleteAll removes the user's secrets too, as in Pachyderm
    c.pps.delete_all()
    assert c.pps.list_secret().secret_info == []


def test_secret_files_are_private_on_disk(pachd_pps, pps_client):
    pps_client.pps.create_secret(name="private", data={"k": VALUE})
    d = pachd_pps.root / "secrets"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    files = list(d.iterdir())
    assert [f.name for f in files] == ["private.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    # encrypted at rest: neither the value nor its base64 is in the file; the key is apart
    raw = files[0].read_bytes()
    assert VALUE.encode() not in raw and base64.b64encode(VALUE.encode()) not in raw
    key = pachd_pps.root / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_plain_secrets_are_migrated_and_tampering_is_caught(tmp_path):
    from pps.secrets import LocalSecrets, SecretError, parse_manifest
    d = tmp_path / "secrets"
    d.mkdir()
    # a secret as stored before encryption at rest (values base64 in `data`)
    (d / "old.json").write_text(json.dumps({"name": "old", "type": "Opaque", "labels": {}, "annotations": {},
                                            "created": 1.0, "data": {"k": base64.b64encode(VALUE.encode()).decode()}}))
    store = LocalSecrets(d)
    assert store.data("old") == {"k": VALUE.encode()}  # still read...
    raw = (d / "old.json").read_text()
    assert "sealed" in raw and base64.b64encode(VALUE.encode()).decode() not in raw  # ...and rewritten sealed
    assert [i.name for i in store.list()] == ["old"]
    # a fresh store over the same files (pachd restarted) reads them with the same key
    store.create(parse_manifest(manifest("new", k=FILE_VALUE)))
    again = LocalSecrets(d)
    assert again.data("new") == {"k": FILE_VALUE.encode()} and again.data("old") == {"k": VALUE.encode()}
    # a file copied over another secret's name does not decrypt (the name is bound in)
    (d / "new.json").write_text((d / "old.json").read_text().replace('"name": "old"', '"name": "new"'))
    with pytest.raises(SecretError) as e:
        again.data("new")
    assert "cannot be decrypted" in str(e.value) and VALUE not in str(e.value)
    # with another key nothing decrypts, and the error names no value
    (tmp_path / "secrets.key").write_bytes(os.urandom(32))
    with pytest.raises(SecretError) as e:
        LocalSecrets(d).data("old")
    assert VALUE not in str(e.value)
    # a damaged key is refused with a clear message
    (tmp_path / "secrets.key").write_bytes(b"short")
    with pytest.raises(Exception) as e:
        LocalSecrets(d)
    assert "damaged" in str(e.value)


MODES = ["none"] + (["bwrap"] if bwrap_usable() else [])


@pytest.fixture(params=MODES)
def sandboxed_pachd(request, tmp_path, monkeypatch):
    monkeypatch.setenv("PACH_SANDBOX", request.param)
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1").start()
    try:
        yield p
    finally:
        p.stop(grace=1.0)


def test_pipeline_secrets_reach_user_code_and_no_log(sandboxed_pachd):
    p = sandboxed_pachd
    with sdk_clients() as make:
        c = make(p.port)
        c.pps.create_secret(name="creds", data={"password": VALUE, "user": "bob"})
        c.pps.create_secret(name="certs", data={"ca.pem": FILE_VALUE})
        c.pfs.create_repo(repo=pfs.Repo(name="in"))
        with c.pfs.commit(branch=pfs.Branch.from_uri("in@master")) as cm:
            cm.put_file_from_bytes(path="/x", data=b"1")
        c.pps.create_pipeline(
            pipeline=pps.Pipeline(name="uses-secrets"),
            transform=pps.Transform(cmd=["sh"], stdin=[
                'printf %s "$DB_PASSWORD" > /pfs/out/env',
                "cat /secrets/certs/ca.pem > /pfs/out/file",
                "ls /secrets/certs > /pfs/out/listing",
                'echo "user code ran"'],
                secrets=[pps.SecretMount(name="creds", key="password", env_var="DB_PASSWORD"),
                         pps.SecretMount(name="certs", mount_path="/secrets/certs")]),
            input=pps.Input(pfs=pps.PfsInput(repo="in", glob="/")))
        job = next(iter(c.pps.list_job(pipeline=pps.Pipeline(name="uses-secrets"))))
        job = c.pps.inspect_job(job=job.job, wait=True)
        assert job.state == pps.JobState.JOB_SUCCESS, job.reason

        def out(path):
            with c.pfs.pfs_file(pfs.File.from_uri(f"uses-secrets@master:{path}")) as f:
                return f.read().decode()
        assert out("/env") == VALUE
        assert out("/file") == FILE_VALUE
        assert out("/listing").split() == ["ca.pem"]
        logs = "\n".join(m.message for m in c.pps.get_logs(pipeline=pps.Pipeline(name="uses-secrets")))
        assert "user code ran" in logs
        # the values are in no log: not pachd's API, not the workers' log files
        assert VALUE not in logs and FILE_VALUE not in logs
        for f in (p.root / "workers").rglob("*.log"):
            text = f.read_text(errors="replace")
            assert VALUE not in text and FILE_VALUE not in text, f
        # a pipeline naming a missing secret: its workers cannot start; the reason names it
        c.pps.create_pipeline(
            pipeline=pps.Pipeline(name="missing-secret"),
            transform=pps.Transform(cmd=["true"], secrets=[
                pps.SecretMount(name="nope", key="k", env_var="X")]),
            input=pps.Input(pfs=pps.PfsInput(repo="in", glob="/")))
        worker_logs = p.root / "workers" / "default.missing-secret"
        import time
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and 'secrets "nope" not found' not in text:
            text = "".join(f.read_text() for f in worker_logs.glob("*.log")) if worker_logs.exists() else ""
            time.sleep(0.2)
        assert 'secrets "nope" not found' in text
        c.pps.delete_pipeline(pipeline=pps.Pipeline(name="missing-secret"), force=True)
        c.pps.delete_pipeline(pipeline=pps.Pipeline(name="uses-secrets"), force=True)


PP_SCRIPT = textwrap.dedent('''
    import sys, grpc, python_pachyderm
    c = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
    c.create_secret("pp-secret", {"a": "1", "b": b"2"}, labels={"team": "x"})
    info = c.inspect_secret("pp-secret")
    assert info.secret.name == "pp-secret" and info.type == "Opaque", info
    assert [s.secret.name for s in c.list_secret()] == ["pp-secret"]
    try:
        c.create_secret("pp-secret", {"a": "1"})
        raise SystemExit("duplicate secret accepted")
    except grpc.RpcError as e:
        assert e.details() == 'failed to create secret: secrets "pp-secret" already exists', e.details()
    c.delete_secret("pp-secret")
    assert list(c.list_secret()) == []
    print("ok")
''')


def test_secrets_through_python_pachyderm(pp_python, pachd_pps):
    run_pp(pp_python, PP_SCRIPT, pachd_pps.port)


def test_pachctl_secret_commands(pachd_pps, tmp_path):
    env = {**os.environ, "PACHD_ADDRESS": f"grpc://localhost:{pachd_pps.port}"}

    def pachctl(*args, input=None, ok=True):
        r = subprocess.run([sys.executable, "-m", "pachctl", *args], capture_output=True, text=True,
                           env=env, input=input, timeout=60)
        assert (r.returncode == 0) == ok, r.stdout + r.stderr
        return r.stdout + r.stderr
    f = tmp_path / "s.json"
    f.write_bytes(manifest("from-cli", token=VALUE))
    pachctl("create", "secret", "-f", str(f))
    pachctl("create", "secret", "-f", "-", input=manifest("from-stdin", k="v").decode())
    listing = pachctl("list", "secret")
    assert listing.splitlines()[0].split() == ["NAME", "TYPE", "CREATED"]
    assert "from-cli" in listing and "from-stdin" in listing and "Opaque" in listing
    inspected = pachctl("inspect", "secret", "from-cli")
    assert "Name: from-cli" in inspected and "Type: Opaque" in inspected and VALUE not in inspected
    assert 'secrets "from-cli" already exists' in pachctl("create", "secret", "-f", str(f), ok=False)
    pachctl("delete", "secret", "from-cli")
    assert 'secrets "from-cli" not found' in pachctl("inspect", "secret", "from-cli", ok=False)
