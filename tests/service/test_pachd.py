"""pachd itself: auth token, health checking, reflection, config files, and the real process
(flags, SIGTERM, restart with data intact)."""
from __future__ import annotations

import json
import os
import signal
import threading
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from pachd.server import Pachd
from tests.sdk_clients import sdk_clients

ROOT = Path(__file__).resolve().parents[2]


# ---- auth token -------------------------------------------------------------------------------
@pytest.fixture
def auth_pachd(tmp_path):
    p = Pachd(tmp_path / "auth", port=0, host="127.0.0.1", enable_pps=False, auth_token="s3cret").start()
    try:
        with sdk_clients() as make:
            yield lambda **kw: make(p.port, **kw)
    finally:
        p.stop(grace=0.5)


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_auth_token_refuses_bad_tokens(auth_pachd, token):
    c = auth_pachd(auth_token=token)
    calls = [
        lambda: c.pfs.create_repo(repo=pfs.Repo(name="r")),
        lambda: list(c.pfs.list_repo()),
        lambda: c.pfs.put_file_from_bytes(commit=pfs.Commit(repo=pfs.Repo(name="r"), branch=pfs.Branch(
            repo=pfs.Repo(name="r"), name="master")), path="/x", data=b"x"),
        lambda: c.pfs.inspect_project(project=pfs.Project(name="default")),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as ei:
            call()
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # version stays open, so clients can probe the server
    assert c.get_version().major == 2


def test_auth_token_right_token_works(auth_pachd):
    c = auth_pachd(auth_token="s3cret")
    c.pfs.create_repo(repo=pfs.Repo(name="r"))
    c.pfs.put_file_from_bytes(commit=pfs.Commit(repo=pfs.Repo(name="r"), id="master"), path="/x", data=b"hi")
    with c.pfs.pfs_file(pfs.File.from_uri("r@master:/x")) as f:
        assert f.read() == b"hi"
    assert [r.repo.name for r in c.pfs.list_repo()] == ["r"]
    assert c.auth.who_am_i().username == "pach:root"
    # nothing the refused calls tried was written
    bad = auth_pachd(auth_token="nope")
    with pytest.raises(grpc.RpcError):
        bad.pfs.delete_repo(repo=pfs.Repo(name="r"))
    assert c.pfs.repo_exists(pfs.Repo(name="r"))


# ---- health and reflection --------------------------------------------------------------------
def test_health_and_reflection(pachd):
    with grpc.insecure_channel(f"127.0.0.1:{pachd.port}") as ch:
        h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert h.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              timeout=5))
        names = {s.name for s in resp[0].list_services_response.service}
        assert {"pfs_v2.API", "versionpb_v2.API", "auth_v2.API", "admin_v2.API",
                "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
        # a service's descriptor can be fetched by symbol
        resp = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="pfs_v2.API")]), timeout=5))
        assert resp[0].file_descriptor_response.file_descriptor_proto


def test_health_with_auth_on(auth_pachd):
    c = auth_pachd()  # no token: health and reflection stay open
    with grpc.insecure_channel(c.address) as ch:
        h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert h.status == health_pb2.HealthCheckResponse.SERVING


def test_unknown_method_is_unimplemented(pachd):
    with grpc.insecure_channel(f"127.0.0.1:{pachd.port}") as ch:
        call = ch.unary_unary("/pfs_v2.API/NoSuchMethod")
        with pytest.raises(grpc.RpcError) as ei:
            call(b"", timeout=5)
        assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_admin_inspect_cluster_stable_id(tmp_path):
    ids = []
    for _ in range(2):
        p = Pachd(tmp_path / "root", port=0, host="127.0.0.1", enable_pps=False).start()
        c = Client(host="localhost", port=p.port)
        try:
            ids.append(c.admin.inspect_cluster().id)
        finally:
            c._channel.close()
            p.stop(grace=0.2)
    assert ids[0] and ids[0] == ids[1]


# ---- config files -----------------------------------------------------------------------------
def write_config(path: Path, port: int, **ctx) -> None:
    context = {"pachd_address": f"grpc://localhost:{port}", "project": "default", **ctx}
    path.write_text(json.dumps({"v2": {"active_context": "local", "contexts": {"local": context}}}))


def test_client_from_config_file(pachd, tmp_path):
    cfg = tmp_path / "config.json"
    write_config(cfg, pachd.port)
    c = Client.from_config(cfg)
    try:
        c.pfs.create_repo(repo=pfs.Repo(name="via-config"))
        assert [r.repo.name for r in c.pfs.list_repo()] == ["via-config"]
    finally:
        c._channel.close()


def test_client_from_config_reads_pach_config_env(pachd, tmp_path):
    """`Client.from_config()` with no argument, PACH_CONFIG pointing at our file (a fresh
    interpreter: the SDK reads the variable at import)."""
    cfg = tmp_path / "config.json"
    write_config(cfg, pachd.port)
    code = ("from pachyderm_sdk import Client; from pachyderm_sdk.api import pfs; "
            "c = Client.from_config(); c.pfs.create_repo(repo=pfs.Repo(name='from-env')); "
            "print(c.address, [r.repo.name for r in c.pfs.list_repo()])")
    env = {**os.environ, "PACH_CONFIG": str(cfg), "HOME": str(tmp_path)}
    env.pop("PACH_PYTHON_AUTH_TOKEN", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"localhost:{pachd.port} ['from-env']"


def test_pachctl_config_is_read_by_sdk(pachd, tmp_path):
    """The config pachctl writes is the one the SDK reads."""
    from pachctl.config import Config
    cfg = tmp_path / "pachctl-config.json"
    conf = Config.load(cfg, env={"PACH_CONFIG": str(cfg)})
    conf.update_context(pachd_address=f"localhost:{pachd.port}")
    conf.save(cfg)
    c = Client.from_config(cfg)
    try:
        assert c.address == f"localhost:{pachd.port}"
        assert c.get_version().major == 2
    finally:
        c._channel.close()


def test_config_session_token_reaches_auth_pachd(tmp_path):
    p = Pachd(tmp_path / "auth", port=0, host="127.0.0.1", enable_pps=False, auth_token="tok").start()
    cfg = tmp_path / "config.json"
    write_config(cfg, p.port, session_token="tok")
    c = Client.from_config(cfg)
    try:
        assert list(c.pfs.list_repo()) == []
    finally:
        c._channel.close()
        p.stop(grace=0.2)


# ---- the real process ----------------------------------------------------------------------------
def start_pachd_process(root: Path) -> tuple[subprocess.Popen, int]:
    """`python -m pachd --port 0 ...`; returns the process and the port it bound."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for k in ("PACHD_PORT", "PACHD_ROOT", "PACHD_STORAGE", "PACHD_AUTH_TOKEN"):
        env.pop(k, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pachd", "--port", "0", "--root", str(root),
         "--s3-gateway-port", "-1", "--host", "127.0.0.1"],
        cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "pachd listening on" in line:
            return proc, int(line.rsplit(":", 1)[1])
    proc.kill()
    proc.wait()
    rest = proc.stderr.read()
    proc.stderr.close()
    raise AssertionError(f"pachd did not start: {rest}")


def stop_with(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        out = proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out


def test_pachd_process_sigterm_and_restart(tmp_path):
    root = tmp_path / "data"
    proc, port = start_pachd_process(root)
    try:
        c = Client(host="localhost", port=port)
        try:
            c.pfs.create_repo(repo=pfs.Repo(name="persist"))
            with c.pfs.commit(branch=pfs.Branch.from_uri("persist@master")) as commit:
                commit.put_file_from_bytes("/a.txt", b"kept across restarts" * 1000)
            open_commit = c.pfs.start_commit(branch=pfs.Branch.from_uri("persist@dev"))
        finally:
            c._channel.close()
        code, err = stop_with(proc, signal.SIGTERM)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    assert code == 0, err
    assert "received SIGTERM" in err and "pachd stopped" in err

    proc, port = start_pachd_process(root)
    try:
        c = Client(host="localhost", port=port)
        try:
            with c.pfs.pfs_file(pfs.File.from_uri("persist@master:/a.txt")) as f:
                assert f.read() == b"kept across restarts" * 1000
            assert c.pfs.inspect_commit(commit=pfs.Commit.from_uri("persist@master")).commit.id == commit.id
            info = c.pfs.inspect_commit(commit=pfs.Commit(repo=pfs.Repo(name="persist"), id=open_commit.id))
            assert info.finished.year == 1970  # unset: still open, still writable
            c.pfs.put_file_from_bytes(commit=open_commit, path="/later", data=b"l")
            c.pfs.finish_commit(commit=open_commit)
        finally:
            c._channel.close()
        code, err = stop_with(proc, signal.SIGINT)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    assert code == 0, err


def test_pachd_process_refuses_a_busy_root(tmp_path):
    root = tmp_path / "data"
    proc, _ = start_pachd_process(root)
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        second = subprocess.run(
            [sys.executable, "-m", "pachd", "--port", "0", "--root", str(root),
             "--s3-gateway-port", "-1", "--host", "127.0.0.1"],
            cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "pachd: cannot start" in second.stderr
    finally:
        code, _ = stop_with(proc, signal.SIGTERM)
    assert code == 0


def test_pachd_flags_from_environment(monkeypatch, tmp_path):
    from pachd.server import parse_args
    monkeypatch.setenv("PACHD_PORT", "31111")
    monkeypatch.setenv("PACHD_ROOT", str(tmp_path / "r"))
    monkeypatch.setenv("PACHD_STORAGE", "s3://bucket/prefix")
    monkeypatch.setenv("PACHD_AUTH_TOKEN", "t")
    a = parse_args([])
    assert (a.port, a.root, a.storage, a.auth_token) == (31111, str(tmp_path / "r"), "s3://bucket/prefix", "t")
    a = parse_args(["--port", "5", "--root", "/x"])
    assert (a.port, a.root) == (5, "/x")
    monkeypatch.delenv("PACHD_PORT")
    monkeypatch.delenv("PACHD_ROOT")
    a = parse_args([])
    assert (a.port, a.root) == (30650, "~/.pachyderm/data")


# ---- abandoned calls do not pin server threads -------------------------------------------------
def test_abandoned_waits_free_their_threads(tmp_path):
    p = Pachd(tmp_path / "small", port=0, host="127.0.0.1", enable_pps=False, workers=2).start()
    c = Client(host="localhost", port=p.port)
    try:
        c.pfs.create_repo(repo=pfs.Repo(name="r"))
        commit = c.pfs.start_commit(branch=pfs.Branch.from_uri("r@master"))
        req = pfs.InspectCommitRequest(commit=commit, wait=pfs.CommitState.FINISHED)
        cs_req = pfs.InspectCommitSetRequest(commit_set=pfs.CommitSet(id=commit.id), wait=True)
        with grpc.insecure_channel(f"127.0.0.1:{p.port}") as ch:
            inspect = ch.unary_unary("/pfs_v2.API/InspectCommit", request_serializer=bytes,
                                     response_deserializer=bytes)
            inspect_set = ch.unary_stream("/pfs_v2.API/InspectCommitSet", request_serializer=bytes,
                                          response_deserializer=bytes)
            for _ in range(2):  # more abandoned waits than the server has threads
                with pytest.raises(grpc.RpcError) as ei:
                    inspect(bytes(req), timeout=0.3)
                assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                with pytest.raises(grpc.RpcError) as ei:
                    list(inspect_set(bytes(cs_req), timeout=0.3))
                assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.5)  # each abandoned wait notices within about a second
        with grpc.insecure_channel(f"127.0.0.1:{p.port}") as ch:
            inspect = ch.unary_unary("/pfs_v2.API/InspectCommit", request_serializer=bytes,
                                     response_deserializer=bytes)
            got = pfs.CommitInfo().parse(inspect(bytes(pfs.InspectCommitRequest(commit=commit)), timeout=5))
            assert got.commit.id == commit.id
        c.pfs.finish_commit(commit=commit)
    finally:
        c._channel.close()
        p.stop(grace=0.5)


def test_stop_ends_waits_and_subscriptions_promptly(tmp_path):
    """Graceful stop does not sit out its grace period for calls that would never end on
    their own (a wait on an open commit, a subscription): they end UNAVAILABLE."""
    p = Pachd(tmp_path / "stopping", port=0, host="127.0.0.1", enable_pps=False).start()
    c = Client(host="localhost", port=p.port)
    results = {}
    try:
        c.pfs.create_repo(repo=pfs.Repo(name="r"))
        commit = c.pfs.start_commit(branch=pfs.Branch.from_uri("r@master"))

        def wait():
            try:
                c.pfs.wait_commit(commit)
                results["wait"] = "returned"
            except grpc.RpcError as e:
                results["wait"] = e.code()

        def subscribe():
            try:
                for _ in c.pfs.subscribe_commit(repo=pfs.Repo(name="r"), branch="master",
                                                state=pfs.CommitState.FINISHED):
                    pass
                results["subscribe"] = "ended"
            except grpc.RpcError as e:
                results["subscribe"] = e.code()

        threads = [threading.Thread(target=wait), threading.Thread(target=subscribe)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        started = time.monotonic()
        p.stop(grace=10)
        elapsed = time.monotonic() - started
        for t in threads:
            t.join(10)
        assert elapsed < 5, elapsed
        assert results == {"wait": grpc.StatusCode.UNAVAILABLE, "subscribe": grpc.StatusCode.UNAVAILABLE}
    finally:
        c._channel.close()
        p.stop(grace=0.5)


def test_port_in_use_is_a_clear_error_and_releases_the_root(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{taken}") as ei:
            Pachd(tmp_path / "root", port=taken, host="127.0.0.1", enable_pps=False)
        # even while the failed attempt is still referenced (its traceback holds it),
        # the data directory is free for the next pachd
        p = Pachd(tmp_path / "root", port=0, host="127.0.0.1", enable_pps=False).start()
        p.stop(grace=0.2)
        assert ei.value is not None
