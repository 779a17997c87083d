"""What a pachd recovered from the bucket brings back besides the metadata store: the auth state
(`<root>/auth.json`, tokens as hashes only) and the cluster id; and one pachd per bucket prefix
(pachd.bucket_lease): a second live pachd, or another installation, is refused naming why."""
from __future__ import annotations

import json
import shutil
import signal
import stat
import time

import grpc
import pytest
from pachyderm_sdk.api import pfs

from pachyderm_sdk.api import auth

from tests.s3pachd import start_in as _start, PachdProc, run_pachd, pachd_argv, s3_env
from tests.s3servers import moto_server  # noqa: F401 - the fixture
from tests.sdk_clients import sdk_clients

pytestmark = pytest.mark.s3


def _shipped(raw, bucket: str, prefix: str, name: str) -> bytes | None:
    try:
        doc = json.loads(raw.get_object(Bucket=bucket, Key=f"{prefix}/meta/LATEST")["Body"].read())
    except raw.exceptions.NoSuchKey:
        return None
    key = doc.get("root_files", {}).get(name)
    return None if key is None else raw.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()


def _wait_shipped(raw, bucket, prefix, root, name="auth.json", timeout=30.0) -> None:
    """Until the bucket's newest generation holds this root file as it is on disk (the RPO)."""
    want = (root / name).read_bytes()
    deadline = time.monotonic() + timeout
    while _shipped(raw, bucket, prefix, name) != want:
        assert time.monotonic() < deadline, f"{name} was not shipped within {timeout}s"
        time.sleep(0.2)


@pytest.mark.parametrize("server_kind", ["seaweed", "moto"])
def test_auth_state_and_cluster_id_survive_a_lost_root(server_kind, request, procs, tmp_path):
    server = request.getfixturevalue(f"{server_kind}_server")
    raw = server.client()
    request.addfinalizer(raw.close)
    bucket = server.new_bucket()
    storage = f"s3://{bucket}/rec"
    env = dict(PACHD_METADATA_SHIP_PERIOD="0.5", PACHD_GC_PERIOD="0")
    old = _start(procs, server, tmp_path / "old", storage, **env)
    with sdk_clients() as make:
        anon = make(old.port)
        cluster_id = anon.admin.inspect_cluster().id
        root_token = anon.auth.activate().pach_token
        admin = make(old.port, auth_token=root_token)
        admin.pfs.create_repo(repo=pfs.Repo(name="data"))
        robot_token = admin.auth.get_robot_token(robot="builder").token
        admin.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name="default/data"),
                                       principal="robot:builder", roles=["repoWriter"])
        make(old.port, auth_token=robot_token).pfs.put_file_from_bytes(
            commit=pfs.Commit.from_uri("data@master"), path="/by-robot", data=b"written by the robot")
    # the auth file on disk holds hashes only, and its newest version reaches the bucket
    on_disk = (old.root / "auth.json").read_text()
    assert robot_token not in on_disk and root_token not in on_disk
    acknowledged = time.time()
    _wait_shipped(raw, bucket, "rec", old.root)
    _wait_shipped(raw, bucket, "rec", old.root, "cluster-id")
    deadline = time.monotonic() + 30  # and a generation taken after the last acknowledged write (the RPO)
    while json.loads(raw.get_object(Bucket=bucket, Key="rec/meta/LATEST")["Body"].read())["started"] <= acknowledged:
        assert time.monotonic() < deadline, "no metadata shipped after the last write within 30 s"
        time.sleep(0.2)
    shipped = _shipped(raw, bucket, "rec", "auth.json").decode()
    assert robot_token not in shipped and root_token not in shipped
    old.proc.send_signal(signal.SIGKILL)
    old.proc.wait()
    shutil.rmtree(old.root)

    new = _start(procs, server, tmp_path / "new", storage, **env)
    assert stat.S_IMODE((new.root / "auth.json").stat().st_mode) == 0o600
    with sdk_clients() as make:
        forged = make(new.port, auth_token="0" * 32)
        with pytest.raises(grpc.RpcError) as ei:  # auth is still on: an unknown token gets nothing
            forged.pfs.inspect_repo(repo=pfs.Repo(name="data"))
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        robot = make(new.port, auth_token=robot_token)
        assert robot.auth.who_am_i().username == "robot:builder"
        with robot.pfs.pfs_file(pfs.File.from_uri("data@master:/by-robot")) as f:
            assert f.read() == b"written by the robot"
        robot.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("data@master"), path="/after", data=b"x")
        admin = make(new.port, auth_token=root_token)
        assert admin.auth.who_am_i().username == "pach:root"
        assert admin.admin.inspect_cluster().id == cluster_id


def test_a_second_pachd_on_the_same_prefix_is_refused(seaweed_server, procs, tmp_path):
    bucket = seaweed_server.new_bucket()
    storage = f"s3://{bucket}/one"
    first = _start(procs, seaweed_server, tmp_path / "first", storage, PACHD_BUCKET_LEASE_PERIOD="0.5",
                   PACHD_GC_PERIOD="0")
    # another root, same cluster (a copy of the first's cluster id): a live holder renews, so it is refused
    (tmp_path / "second").mkdir()
    shutil.copy(first.root / "cluster-id", tmp_path / "second" / "cluster-id")
    env = s3_env(seaweed_server, PACHD_BUCKET_LEASE_PERIOD="0.5")
    r = run_pachd(pachd_argv(tmp_path / "second", storage)[3:], env, timeout=120)
    assert r.returncode == 1
    assert "another pachd is using s3://" in r.stderr and "Only one pachd may use a bucket prefix" in r.stderr, r.stderr
    # another installation (a root with its own metadata and cluster id) is refused at once, naming both
    other = PachdProc(tmp_path / "third", None, s3_env(None))
    assert other.stop() == 0
    r = run_pachd(pachd_argv(tmp_path / "third", storage)[3:], env, timeout=120)
    assert r.returncode == 1
    # which check refuses it first depends on whether the first has shipped its metadata yet
    # (every 2 s): the shipped cluster id, or the lease the other cluster holds; both name it
    cluster = (first.root / "cluster-id").read_text().strip()
    assert ("holds the metadata of cluster" in r.stderr and "this --root belongs to cluster" in r.stderr) or (
        "is used by another installation" in r.stderr and f"cluster {cluster}" in r.stderr), r.stderr
    # the first is untouched and still serves
    with sdk_clients() as make:
        make(first.port).pfs.create_repo(repo=pfs.Repo(name="still-mine"))
    # after a clean stop the prefix is free at once; after kill -9 too (its pid is gone on this host)
    assert first.stop() == 0
    second = _start(procs, seaweed_server, tmp_path / "second", storage, PACHD_GC_PERIOD="0")
    second.proc.kill()
    second.proc.wait()
    t0 = time.monotonic()
    third = _start(procs, seaweed_server, tmp_path / "second", storage, PACHD_GC_PERIOD="0")
    assert time.monotonic() - t0 < 30
    assert third.stop() == 0


def test_a_pachd_whose_prefix_was_taken_over_stops_collecting_and_exits(seaweed_server, procs, raw, tmp_path):
    bucket = seaweed_server.new_bucket()
    storage = f"s3://{bucket}/t"
    p = _start(procs, seaweed_server, tmp_path / "p", storage, PACHD_BUCKET_LEASE_PERIOD="0.5",
               PACHD_GC_PERIOD="0")
    owner = json.loads(raw.get_object(Bucket=bucket, Key="t/meta/OWNER")["Body"].read())
    # another pachd (thought the first dead) took it over
    owner.update(instance="someone-else", pid=1, host="elsewhere", renewed=time.time())
    raw.put_object(Bucket=bucket, Key="t/meta/OWNER", Body=json.dumps(owner).encode())
    assert p.proc.wait(timeout=60) == 1
    assert "no longer holds s3://" in p.log_tail() and "took it over" in p.log_tail(), p.log_tail()
    # it released nothing of the other's: OWNER is still the other's
    assert json.loads(raw.get_object(Bucket=bucket, Key="t/meta/OWNER")["Body"].read())["instance"] == "someone-else"
