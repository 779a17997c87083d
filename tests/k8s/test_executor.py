"""KubernetesExecutor against kmock + the test kubelet: pods with the right command, env,
labels and resources; scaling; replacement on a spec change; crash restarts with backoff;
exit 0 waiting for the next ensure_workers; stop; secrets; orphans and adoption."""
from __future__ import annotations

import json
import re
import time

import pytest
from kubernetes import client

from pps.executors import Executor
from pps.executors import k8s_pods as kp
from pps.executors.base import CRASHING, EXITED, RUNNING
from pps.executors.kubernetes import KubernetesExecutor
from pps.spec import normalize_spec
from tests.k8s.conftest import FAKE_IMAGE, list_pods, spec_json, wait_for

KEY = ("default", "edges")
ADDR = "pachd.example.svc:30650"


@pytest.fixture
def make(kmock_server, cluster):
    made = []

    def make_executor(**kw):
        opts = dict(worker_image=FAKE_IMAGE, poll_interval=0.1, backoff_start=0.3, backoff_max=2.0,
                    grace=2, adopt_after=3600)
        opts.update(kw)
        ex = KubernetesExecutor(kmock_server.api_client(), cluster.ns, ADDR, **opts)
        made.append(ex)
        return ex

    try:
        yield make_executor
    finally:
        for ex in made:
            ex.close()
        assert list_pods(kmock_server, cluster.ns) == {}, "close() left pods"
        assert cluster.running() == []


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "fake-out"
    d.mkdir()
    return d


def starts(out, wid) -> list[dict]:
    p = out / f"{wid}.starts"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def test_pods_carry_command_env_labels_resources_and_patches(make, cluster, kmock_server, out):
    ex = make()
    assert isinstance(ex, Executor)
    spec = spec_json("edges", {"cmd": ["sh"], "image": "ubuntu:20.04", "image_pull_secrets": ["regcred"]},
                     resource_requests={"cpu": 0.5, "memory": "64M", "gpu": {"type": "nvidia.com/gpu", "number": 1}},
                     resource_limits={"memory": "128M", "cpu": 2},
                     scheduling_spec={"node_selector": {"disk": "ssd"}, "priority_class_name": "high"},
                     tolerations=[{"key": "dedicated", "operator": "EQUAL", "value": "pach", "effect": "NO_SCHEDULE"}],
                     metadata={"labels": {"team": "vision"}, "annotations": {"owner": "me"}},
                     pod_spec=json.dumps({"dnsPolicy": "Default"}),
                     pod_patch=json.dumps([{"op": "add", "path": "/containers/0/env/-",
                                            "value": {"name": "PATCHED", "value": "yes"}}]))
    ex.ensure_workers(KEY, spec, 3, {"FAKE_OUT": str(out), "PPS_PIPELINE_VERSION": "4"})
    pods = list_pods(kmock_server, cluster.ns)
    assert sorted(pods) == ["default-edges-w0", "default-edges-w1", "default-edges-w2"]
    p = pods["default-edges-w1"]
    labels = p["metadata"]["labels"]
    assert {k: labels[k] for k in ("app", "pipeline", "project", "pachd-instance")} == {
        "app": "pachd-worker", "pipeline": "edges", "project": "default", "pachd-instance": "pachd"}
    assert len(labels["spec-hash"]) == 12 and labels["team"] == "vision"
    assert p["metadata"]["annotations"]["owner"] == "me"
    assert p["metadata"]["annotations"]["pachyderm-py/user-image"] == "ubuntu:20.04"
    s = p["spec"]
    assert s["restartPolicy"] == "Never" and s["enableServiceLinks"] is False and s["dnsPolicy"] == "Default"
    assert s["nodeSelector"] == {"disk": "ssd"} and s["priorityClassName"] == "high"
    assert s["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "pach", "effect": "NoSchedule"}]
    assert s["imagePullSecrets"] == [{"name": "regcred"}]
    (init,), (user,) = s["initContainers"], s["containers"]
    assert init["image"] == FAKE_IMAGE and init["command"] == ["cp", "-a", "/pach/.", "/pach-bundle/"]
    assert user["image"] == "ubuntu:20.04"
    assert user["command"] == ["/pach/python/bin/python3", "-I", "-m", "pps.worker", "--pachd", ADDR,
                               "--project", "default", "--pipeline", "edges", "--worker-id", "default-edges-w1",
                               "--pfs-root", "/pfs"]
    assert user["resources"] == {"requests": {"cpu": "0.5", "memory": "64M", "nvidia.com/gpu": "1"},
                                 "limits": {"memory": "128M", "cpu": "2"}}
    assert init["resources"] == {"requests": {"cpu": "0.5", "memory": "64M"}, "limits": {"memory": "128M", "cpu": "2"}}
    env = {e["name"]: e.get("value") for e in user["env"]}
    assert json.loads(env["PPS_SPEC_JSON"]) == json.loads(spec)
    assert env["PPS_PIPELINE_VERSION"] == "4" and env["PATCHED"] == "yes"
    assert {m["mountPath"] for m in user["volumeMounts"]} == {"/pfs", "/pach"}

    # the kubelet ran the init container (copying the bundle) and then the worker command
    for i in range(3):
        wid = f"default-edges-w{i}"
        rec = wait_for(lambda wid=wid: starts(out, wid), what=f"{wid} started")[0]
        assert rec["argv"][rec["argv"].index("--worker-id") + 1] == wid
        assert rec["env"]["PPS_PIPELINE_VERSION"] == "4" and rec["env"]["PATCHED"] == "yes"
    wait_for(lambda: [w.state for w in ex.workers(KEY)] == [RUNNING] * 3, what="all running")
    ws = ex.workers(KEY)
    assert [w.id for w in ws] == [w.pod for w in ws] == ["default-edges-w0", "default-edges-w1", "default-edges-w2"]
    n = len(cluster.started)
    ex.ensure_workers(KEY, spec, 3, {"FAKE_OUT": str(out), "PPS_PIPELINE_VERSION": "4"})  # idempotent
    time.sleep(0.3)
    assert len(cluster.started) == n


def test_scale_up_down_and_replace_on_spec_change(make, cluster, kmock_server, out):
    ex = make()
    env = {"FAKE_OUT": str(out)}
    spec = spec_json("edges", {"cmd": ["true"]})
    ex.ensure_workers(KEY, spec, 1, env)
    ex.ensure_workers(KEY, spec, 3, env)
    wait_for(lambda: len(cluster.running()) == 3, what="3 running")
    ex.ensure_workers(KEY, spec, 1, env)  # returns when w1 and w2 are gone
    assert sorted(list_pods(kmock_server, cluster.ns)) == ["default-edges-w0"]
    assert cluster.running() == ["default-edges-w0"]
    assert [w.id for w in ex.workers(KEY)] == ["default-edges-w0"]

    before = list_pods(kmock_server, cluster.ns)["default-edges-w0"]["metadata"]
    ex.ensure_workers(KEY, spec_json("edges", {"cmd": ["false"]}), 1, env)
    after = list_pods(kmock_server, cluster.ns)["default-edges-w0"]["metadata"]
    assert after["labels"]["spec-hash"] != before["labels"]["spec-hash"]
    assert after["annotations"]["pachyderm-py/start-id"] != before["annotations"]["pachyderm-py/start-id"]
    wait_for(lambda: len(starts(out, "default-edges-w0")) == 2, what="w0 restarted with the new spec")
    assert ex.workers(KEY)[0].spec_hash == after["labels"]["spec-hash"]
    assert ex.workers(KEY)[0].restarts == 0  # a replacement is not a crash


def test_crashing_pod_is_recreated_with_backoff(make, cluster, kmock_server, out, caplog):
    caplog.set_level("WARNING", logger="pps.executor")
    ex = make()
    spec = spec_json("edges", {"cmd": ["true"]})
    ex.ensure_workers(KEY, spec, 1, {"FAKE_OUT": str(out), "FAKE_EXIT": "3", "FAKE_AFTER": "0"})
    w = wait_for(lambda: (ex.workers(KEY)[0].state == CRASHING and ex.workers(KEY)[0]) or None, what="crashing")
    assert w.exit_code == 3
    wait_for(lambda: len(starts(out, "default-edges-w0")) >= 4, timeout=90, what="3 restarts")
    t = [r["t"] for r in starts(out, "default-edges-w0")]
    gaps = [b - a for a, b in zip(t, t[1:])]
    delays = [float(d) for d in re.findall(r"restarting in ([0-9.]+)s", caplog.text)]
    assert delays[:3] == [0.3, 0.6, 1.2], delays  # the delay doubles after each quick crash
    # and each is waited out; the rest of a gap (noticing the crash, making the pod) depends
    # on the machine's load, so the gaps themselves are not compared with each other
    assert all(g >= d for g, d in zip(gaps[:3], delays)), (gaps, delays)
    assert ex.workers(KEY)[0].restarts >= 3

    # a fixed spec starts at once, without the accumulated backoff
    ex.ensure_workers(KEY, spec, 1, {"FAKE_OUT": str(out)})
    wait_for(lambda: ex.workers(KEY)[0].state == RUNNING, what="running again")
    assert cluster.running() == ["default-edges-w0"]


def test_exit_zero_waits_for_next_ensure_workers(make, cluster, out):
    ex = make()
    spec = spec_json("edges", {"cmd": ["true"]})
    env = {"FAKE_OUT": str(out), "FAKE_EXIT": "0", "FAKE_AFTER": "0"}
    ex.ensure_workers(KEY, spec, 1, env)
    wait_for(lambda: ex.workers(KEY)[0].state == EXITED, what="exited")
    assert ex.workers(KEY)[0].exit_code == 0
    time.sleep(0.5)
    assert len(starts(out, "default-edges-w0")) == 1 and ex.workers(KEY)[0].state == EXITED
    ex.ensure_workers(KEY, spec, 1, env)
    wait_for(lambda: len(starts(out, "default-edges-w0")) == 2, what="started again")
    assert ex.workers(KEY)[0].restarts == 0


def test_stop_workers_deletes_and_waits(make, cluster, kmock_server, out):
    ex = make()
    ex.ensure_workers(KEY, spec_json("edges", {"cmd": ["true"]}), 2, {"FAKE_OUT": str(out)})
    other = ("default", "other")
    ex.ensure_workers(other, spec_json("other", {"cmd": ["true"]}), 1, {"FAKE_OUT": str(out)})
    wait_for(lambda: len(cluster.running()) == 3, what="3 running")
    ex.stop_workers(KEY)
    assert sorted(list_pods(kmock_server, cluster.ns)) == ["default-other-w0"]
    assert cluster.running() == ["default-other-w0"]
    assert ex.workers(KEY) == [] and len(ex.workers(other)) == 1
    ex.stop_workers(KEY)  # no-op
    ex.close()
    assert list_pods(kmock_server, cluster.ns) == {} and cluster.running() == []
    with pytest.raises(RuntimeError):
        ex.ensure_workers(KEY, spec_json("edges", {"cmd": ["true"]}), 1, {})


def test_auth_token_comes_from_a_secret(make, cluster, kmock_server, out):
    with kmock_server.api_client() as api:
        client.CoreV1Api(api).create_namespaced_secret(cluster.ns, {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "pachd-auth", "namespace": cluster.ns}, "stringData": {"auth-token": "s3cret"}})
    ex = make(auth_secret=("pachd-auth", "auth-token"))
    # the master gives no token of the pipeline's own: pachd's Secret is referenced
    ex.ensure_workers(KEY, spec_json("edges", {"cmd": ["true"]}), 1, {"FAKE_OUT": str(out)})
    pod = list_pods(kmock_server, cluster.ns)["default-edges-w0"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["PACHD_AUTH_TOKEN"] == {"name": "PACHD_AUTH_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "pachd-auth", "key": "auth-token"}}}
    assert "s3cret" not in json.dumps(pod)
    rec = wait_for(lambda: starts(out, "default-edges-w0"), what="started")[0]
    assert rec["env"]["PACHD_AUTH_TOKEN"] == "s3cret"


def list_secrets(kmock_server, ns) -> dict[str, dict]:
    with kmock_server.api_client() as api:
        core = client.CoreV1Api(api)
        return {x.metadata.name: api.sanitize_for_serialization(x) for x in core.list_namespaced_secret(ns).items}


def test_pipeline_token_lives_in_its_own_secret(make, cluster, kmock_server, out):
    ex = make(auth_secret=("pachd-auth", "auth-token"))  # the pipeline's own token wins
    spec = spec_json("edges", {"cmd": ["true"]})
    ex.ensure_workers(KEY, spec, 1, {"FAKE_OUT": str(out), "PACHD_AUTH_TOKEN": "tok-one"})
    secret = list_secrets(kmock_server, cluster.ns)["default-edges-auth"]
    assert secret["stringData"] == {"auth-token": "tok-one"}
    assert secret["metadata"]["labels"]["app"] == kp.APP
    pod = list_pods(kmock_server, cluster.ns)["default-edges-w0"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["PACHD_AUTH_TOKEN"] == {"name": "PACHD_AUTH_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "default-edges-auth", "key": "auth-token"}}}
    assert "tok-one" not in json.dumps(pod)  # the manifest carries no token, only the reference
    rec = wait_for(lambda: starts(out, "default-edges-w0"), what="started")[0]
    assert rec["env"]["PACHD_AUTH_TOKEN"] == "tok-one"

    # a new token (pachd restarted): the Secret is rewritten and the pod replaced to read it
    ex.ensure_workers(KEY, spec, 1, {"FAKE_OUT": str(out), "PACHD_AUTH_TOKEN": "tok-two"})
    assert list_secrets(kmock_server, cluster.ns)["default-edges-auth"]["stringData"] == {"auth-token": "tok-two"}
    wait_for(lambda: len(starts(out, "default-edges-w0")) == 2, what="restarted")
    assert starts(out, "default-edges-w0")[1]["env"]["PACHD_AUTH_TOKEN"] == "tok-two"
    assert "tok-two" not in json.dumps(list_pods(kmock_server, cluster.ns))

    # stopping the pipeline's workers deletes its token with its pods
    ex.stop_workers(KEY)
    assert list_pods(kmock_server, cluster.ns) == {}
    assert "default-edges-auth" not in list_secrets(kmock_server, cluster.ns)


def test_close_deletes_token_secrets(make, cluster, kmock_server, out):
    ex = make()
    ex.ensure_workers(KEY, spec_json("edges", {"cmd": ["true"]}), 1,
                      {"FAKE_OUT": str(out), "PACHD_AUTH_TOKEN": "tok"})
    assert "default-edges-auth" in list_secrets(kmock_server, cluster.ns)
    ex.close()
    assert list_secrets(kmock_server, cluster.ns) == {}


def test_orphans_are_deleted_and_matching_pods_adopted(make, cluster, kmock_server, out):
    env = {"FAKE_OUT": str(out)}
    spec = spec_json("edges", {"cmd": ["true"]})
    probe = make()  # computes the hash a restarted pachd's executor would compute
    h = kp.spec_hash(spec, env, probe._config())
    probe.close()
    sp = normalize_spec(json.loads(spec), strict=False)
    ghost_spec = normalize_spec(json.loads(spec_json("ghost", {"cmd": ["true"]})), strict=False)
    with kmock_server.api_client() as api:
        core = client.CoreV1Api(api)
        for s, sj in ((sp, spec), (ghost_spec, spec_json("ghost", {"cmd": ["true"]}))):
            core.create_namespaced_pod(cluster.ns, kp.worker_pod(
                s, sj, 0, namespace=cluster.ns, pachd_address=ADDR, env=env, hash=h,
                start_id="before-restart", worker_image=FAKE_IMAGE, grace_seconds=2))
    wait_for(lambda: len(cluster.running()) == 2, what="pods of the 'old pachd' running")
    ex = make(adopt_after=1.0)
    ex.ensure_workers(KEY, spec, 1, env)  # the master re-ensures live pipelines at startup
    pod = list_pods(kmock_server, cluster.ns)["default-edges-w0"]
    assert pod["metadata"]["annotations"]["pachyderm-py/start-id"] == "before-restart"  # adopted
    wait_for(lambda: "default-ghost-w0" not in list_pods(kmock_server, cluster.ns), what="orphan deleted")
    assert cluster.running() == ["default-edges-w0"] and len(starts(out, "default-edges-w0")) == 1


def test_orphaned_token_secrets_are_deleted_at_startup(make, cluster, kmock_server, out):
    """A pachd killed -9 leaves its pipelines' token Secrets: the next executor of the same
    instance deletes those of pipelines without workers, keeps the live ones' and other
    instances' Secrets."""
    def token_secret(pipeline, instance="pachd"):
        return kp.auth_secret("default", pipeline, "old-token", namespace=cluster.ns, instance=instance)
    with kmock_server.api_client() as api:
        core = client.CoreV1Api(api)
        for body in (token_secret("edges"), token_secret("ghost"), token_secret("other", instance="pachd-b")):
            core.create_namespaced_secret(cluster.ns, body)
    ex = make(adopt_after=1.0)
    ex.ensure_workers(KEY, spec_json("edges", {"cmd": ["true"]}), 1,
                      {"FAKE_OUT": str(out), "PACHD_AUTH_TOKEN": "new-token"})
    wait_for(lambda: "default-ghost-auth" not in list_secrets(kmock_server, cluster.ns), what="orphan Secret deleted")
    secrets = list_secrets(kmock_server, cluster.ns)
    assert sorted(secrets) == ["default-edges-auth", "default-other-auth"]
    assert secrets["default-edges-auth"]["stringData"] == {"auth-token": "new-token"}
    ex.stop_workers(KEY)
    assert sorted(list_secrets(kmock_server, cluster.ns)) == ["default-other-auth"]


def test_bad_pod_patch_is_reported_not_raised(make, cluster, kmock_server):
    ex = make()
    spec = spec_json("edges", {"cmd": ["true"]},
                     pod_patch=json.dumps([{"op": "remove", "path": "/nonexistent"}]))
    ex.ensure_workers(KEY, spec, 1, {})
    assert list_pods(kmock_server, cluster.ns) == {}
    assert ex.workers(KEY)[0].state == CRASHING


def test_from_environment_reads_kubeconfig(kmock_server, tmp_path, monkeypatch):
    kc = tmp_path / "kubeconfig"
    kc.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": kmock_server.url}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "u", "namespace": "ctx-ns"}}]}))

    class P:
        port = 30650

    ex = KubernetesExecutor.from_environment(P, {"KUBECONFIG": str(kc), "PACH_WORKER_IMAGE": "w:1",
                                                 "PACHD_AUTH_SECRET": "auth", "PACH_WORKER_MODE": "worker"})
    try:
        assert ex.namespace == "ctx-ns" and ex.pachd_address == "pachd.ctx-ns.svc:30650"
        assert ex.worker_image == "w:1" and ex.mode == "worker"
        assert ex.secret_env == {"PACHD_AUTH_TOKEN": ("auth", "auth-token")}
        assert ex.workers(KEY) == []
    finally:
        ex.close()
    ex = KubernetesExecutor.from_environment(P, {"KUBECONFIG": str(kc), "PACH_NAMESPACE": "ns2",
                                                 "PACHD_SERVICE_ADDRESS": "10.0.0.1:650"})
    try:
        assert ex.namespace == "ns2" and ex.pachd_address == "10.0.0.1:650"
    finally:
        ex.close()
