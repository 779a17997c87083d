"""End to end: a real pachd chooses the Kubernetes executor from its environment
(PACHD_EXECUTOR=kubernetes, KUBECONFIG pointing at kmock), and a real pipeline runs on
"pods" that the test kubelet starts as local `python -m pps.worker` processes. The master is
unchanged: it only sees the Executor Protocol. pachd requires an auth token here, and the
worker pods get it from a Kubernetes Secret, never as a plain value in the pod spec."""
from __future__ import annotations

import json

import grpc
from kubernetes import client
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps

from pachd.server import Pachd
from pps.executors.kubernetes import KubernetesExecutor
from proto.pps_v2 import pps_pb2, pps_pb2_grpc
from tests.k8s.conftest import REAL_IMAGE, list_pods, wait_for

TOKEN = "k8s-e2e-token"


def test_pipeline_runs_on_worker_pods(kmock_server, cluster, tmp_path, monkeypatch):
    ns = cluster.ns
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": kmock_server.url}}],
        "users": [{"name": "pachd", "user": {"token": "unused"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "pachd", "namespace": ns}}]}))
    with kmock_server.api_client() as api:
        client.CoreV1Api(api).create_namespaced_secret(ns, {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pachd-auth", "namespace": ns},
            "stringData": {"auth-token": TOKEN}})
    for k, v in {"PACHD_EXECUTOR": "kubernetes", "KUBECONFIG": str(kubeconfig), "PACH_WORKER_IMAGE": REAL_IMAGE,
                 "PACHD_AUTH_SECRET": "pachd-auth", "PACH_K8S_POLL_SECONDS": "0.2",
                 "PACH_WORKER_GRACE_SECONDS": "5"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    pd = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", auth_token=TOKEN)
    monkeypatch.setenv("PACHD_SERVICE_ADDRESS", f"127.0.0.1:{pd.port}")  # the pachd Service, in a cluster
    pd.start()
    c = Client(host="127.0.0.1", port=pd.port, auth_token=TOKEN)
    channel = grpc.insecure_channel(f"127.0.0.1:{pd.port}")
    md = (("authn-token", TOKEN),)
    try:
        assert isinstance(pd.pps.master.executor, KubernetesExecutor)
        c.pfs.create_repo(repo=pfs.Repo(name="words"))
        with c.pfs.commit(branch=pfs.Branch.from_uri("words@master")) as commit:
            for i in range(6):
                commit.put_file_from_bytes(path=f"/w{i}.txt", data=f"word {i}\n".encode())
        spec = {"pipeline": {"name": "upper"},
                "transform": {"image": "ubuntu:20.04", "cmd": ["sh"],
                              "stdin": ["for f in /pfs/words/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"]},
                "input": {"pfs": {"repo": "words", "glob": "/*"}},
                "parallelism_spec": {"constant": 2},
                "resource_requests": {"cpu": 0.25, "memory": "32M"}}
        c.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))

        pods = list_pods(kmock_server, ns)
        assert sorted(pods) == ["default-upper-w0", "default-upper-w1"]
        user = pods["default-upper-w0"]["spec"]["containers"][0]
        assert user["image"] == "ubuntu:20.04"
        assert user["resources"]["requests"] == {"cpu": "0.25", "memory": "32M"}
        # the workers hold the pipeline's own token (not pachd's root token), from its own Secret
        assert {"name": "PACHD_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": "default-upper-auth", "key": "auth-token"}}} in user["env"]
        assert TOKEN not in json.dumps(pods)
        with kmock_server.api_client() as api:
            secret = api.sanitize_for_serialization(
                client.CoreV1Api(api).read_namespaced_secret("default-upper-auth", ns))
        ptoken = secret["stringData"]["auth-token"]
        assert ptoken != TOKEN and ptoken not in json.dumps(pods)
        assert Client(host="127.0.0.1", port=pd.port, auth_token=ptoken).auth.who_am_i().username \
            == "pipeline:default/upper"

        stub = pps_pb2_grpc.APIStub(channel)
        jobs = list(stub.ListJob(pps_pb2.ListJobRequest(pipeline=pps_pb2.Pipeline(name="upper")),
                                 timeout=30, metadata=md))
        assert len(jobs) == 1
        job = stub.InspectJob(pps_pb2.InspectJobRequest(job=jobs[0].job, wait=True), timeout=60, metadata=md)
        assert job.state == pps_pb2.JOB_SUCCESS, (job.reason, {n: cluster.log_of(n) for n in pods})
        assert (job.data_total, job.data_processed) == (6, 6)
        with c.pfs.pfs_file(file=pfs.File.from_uri("upper@master:/w3.txt")) as f:
            assert f.read() == b"WORD 3\n"
        datums = list(stub.ListDatum(pps_pb2.ListDatumRequest(job=job.job), timeout=30, metadata=md))
        assert len(datums) == 6 and {d.state for d in datums} == {pps_pb2.SUCCESS}
        info = c.pps.inspect_pipeline(pipeline=pps.Pipeline(name="upper"), details=True)
        assert info.details.workers_available == 2  # from executor.workers()
        # both pods run workers (w1 may have done every datum while a loaded machine was still
        # starting w0's process, so wait for its log rather than expect it already)
        wait_for(lambda: "worker started" in cluster.log_of("default-upper-w0"),
                 what="worker w0 started and logged it")

        c.pps.delete_pipeline(pipeline=pps.Pipeline(name="upper"))
        wait_for(lambda: list_pods(kmock_server, ns) == {}, what="pods deleted with the pipeline")
        assert cluster.running() == []
        with kmock_server.api_client() as api:  # the pipeline's token went with it
            names = {x.metadata.name for x in client.CoreV1Api(api).list_namespaced_secret(ns).items}
        assert names == {"pachd-auth"}
    finally:
        c._channel.close()
        channel.close()
        pd.stop(grace=1.0)
    assert list_pods(kmock_server, ns) == {} and cluster.running() == []
