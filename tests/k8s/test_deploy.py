"""deploy/: the manifests parse, every object validates against the official client's models
(required fields, types, and no unknown fields: a round trip through the model keeps the
document), names are DNS-safe, selectors match labels, references resolve (ServiceAccounts,
Secrets, Roles, PVCs, container ports), and the images agree with the executor's pod."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from pps.executors import k8s_pods as kp
from pps.spec import normalize_spec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MODELS = {
    ("v1", "Namespace"): client.V1Namespace, ("v1", "ServiceAccount"): client.V1ServiceAccount,
    ("v1", "Secret"): client.V1Secret, ("v1", "Service"): client.V1Service,
    ("v1", "PersistentVolumeClaim"): client.V1PersistentVolumeClaim, ("v1", "Pod"): client.V1Pod,
    ("apps/v1", "Deployment"): client.V1Deployment, ("apps/v1", "StatefulSet"): client.V1StatefulSet,
    ("batch/v1", "Job"): client.V1Job, ("rbac.authorization.k8s.io/v1", "Role"): client.V1Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): client.V1RoleBinding,
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def load(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def all_objects() -> list[dict]:
    kust = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return [d for f in kust["resources"] for d in load(f)]


def roundtrip(doc: dict) -> dict:
    model = MODELS[(doc["apiVersion"], doc["kind"])]
    return client.ApiClient().sanitize_for_serialization(model.from_dict(doc))


def test_kustomization_lists_every_manifest():
    kust = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def test_objects_validate_against_the_api_models():
    objs = all_objects()
    assert objs
    for d in objs:
        assert (d["apiVersion"], d["kind"]) in MODELS, d["kind"]
        assert roundtrip(d) == d, f"{d['kind']}/{d['metadata']['name']}: unknown or mistyped fields"
        assert DNS1123.match(d["metadata"]["name"]) and len(d["metadata"]["name"]) <= 63
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "pachyderm"
    names = [(d["kind"], d["metadata"]["name"]) for d in objs]
    assert len(names) == len(set(names))


def _pod_specs(objs):
    for d in objs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield d, d["spec"]["template"]["spec"]


def test_references_resolve():
    objs = all_objects()
    by = {}
    for d in objs:
        by.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    optional_secrets = {"pachd-auth"}
    for owner, spec in _pod_specs(objs):
        if "serviceAccountName" in spec:
            assert spec["serviceAccountName"] in by["ServiceAccount"]
        for c in spec["containers"]:
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["key"] in by["Secret"][ref["name"]]["stringData"]
                elif ref:
                    assert ref["name"] in optional_secrets
            for ef in c.get("envFrom") or []:
                assert ef["secretRef"]["name"] in by["Secret"]
        claims = {v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes") or []
                  if "persistentVolumeClaim" in v}
        assert claims <= set(by.get("PersistentVolumeClaim", {}))
        mounts = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts") or []}
        vct = {t["metadata"]["name"] for t in owner["spec"].get("volumeClaimTemplates") or []}
        assert mounts <= {v["name"] for v in spec.get("volumes") or []} | vct
    for rb in by["RoleBinding"].values():
        assert rb["roleRef"]["name"] in by["Role"]
        for s in rb["subjects"]:
            assert s["name"] in by["ServiceAccount"] and s["namespace"] == "pachyderm"


def test_selectors_match_labels_and_ports_exist():
    objs = all_objects()
    workloads = [d for d in objs if d["kind"] in ("Deployment", "StatefulSet")]
    for w in workloads:
        sel = w["spec"]["selector"]["matchLabels"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert sel.items() <= labels.items()
    for svc in (d for d in objs if d["kind"] == "Service"):
        targets = [w for w in workloads if svc["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(targets) == 1, svc["metadata"]["name"]
        ports = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports") or []}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports
            if "nodePort" in p:
                assert 30000 <= p["nodePort"] <= 32767
    sts = next(d for d in objs if d["kind"] == "StatefulSet")
    headless = next(d for d in objs if d["kind"] == "Service" and d["metadata"]["name"] == sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"


def test_pachd_runs_the_kubernetes_executor_with_the_rbac_it_needs():
    objs = all_objects()
    sts = next(d for d in objs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "pachd")
    assert sts["spec"]["replicas"] == 1
    spec = sts["spec"]["template"]["spec"]
    assert spec["enableServiceLinks"] is False  # else PACHD_PORT=tcp://... breaks pachd
    (c,) = spec["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["PACHD_EXECUTOR"]["value"] == "kubernetes"
    assert env["PACH_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert any(a.startswith("s3://") for a in c["args"]) and "/data" in c["args"]
    assert {p["containerPort"] for p in c["ports"]} == {30650, 30600, 1657}  # 1657: the OIDC callback
    svc = next(d for d in objs if d["kind"] == "Service" and d["metadata"]["name"] == "pachd")
    assert {p["port"] for p in svc["spec"]["ports"]} == {30650, 30600, 30657}
    role = next(d for d in objs if d["kind"] == "Role")
    pods = next(r for r in role["rules"] if r["resources"] == ["pods"])
    assert {"create", "delete", "get", "list", "watch"} <= set(pods["verbs"])
    secrets = next(r for r in role["rules"] if r["resources"] == ["secrets"])  # token + user Secrets
    assert {"create", "delete", "get", "list", "patch"} <= set(secrets["verbs"])
    rb = next(d for d in objs if d["kind"] == "RoleBinding")
    assert {"kind": "ServiceAccount", "name": spec["serviceAccountName"], "namespace": "pachyderm"} in rb["subjects"]
    worker_sa = env["PACH_WORKER_SERVICE_ACCOUNT"]["value"]
    assert any(d["kind"] == "ServiceAccount" and d["metadata"]["name"] == worker_sa for d in objs)


def test_dockerfile_targets_agree_with_the_worker_pod():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, re.M)
    assert ("${PYTHON_IMAGE}", "pachd") in stages and any(s == "worker" for _, s in stages)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text and 'ENTRYPOINT ["pachd"]' in text
    assert kp.WORKER_COMMAND[0] == "/pach/python/bin/python3" and "/pach/python" in text
    worker_cmd = re.search(r"^CMD (\[.*\])\s*$", text.split("AS worker")[1], re.M).group(1)
    assert json.loads(worker_cmd) == list(kp.INIT_COMMAND)  # the init container's command


@pytest.mark.parametrize("mode", ["init", "worker"])
def test_worker_pod_manifest_validates(mode):
    d = {"pipeline": {"name": "edges"}, "transform": {"cmd": ["sh"], "image": "ubuntu:20.04", "memory_volume": True,
                                                        "secrets": [{"name": "s", "key": "k", "env_var": "V"}]},
         "input": {"pfs": {"repo": "in", "glob": "/*"}},
         "resource_requests": {"cpu": 1, "memory": "1G", "gpu": {"type": "nvidia.com/gpu", "number": 1}},
         "tolerations": [{"key": "a", "operator": "EXISTS", "toleration_seconds": 30}],
         "scheduling_spec": {"node_selector": {"a": "b"}}}
    pod = kp.worker_pod(normalize_spec(d), json.dumps(d), 2, namespace="pachyderm", pachd_address="pachd:30650",
                        env={"PPS_PIPELINE_VERSION": "1", "PACHD_AUTH_TOKEN": "t"}, hash="0" * 12, start_id="x",
                        worker_image="pachyderm-py/worker:latest", mode=mode, service_account="pachyderm-worker",
                        secret_env={"PACHD_AUTH_TOKEN": ("pachd-auth", "auth-token")})
    assert roundtrip(pod) == pod


def test_dockerfile_copies_every_package_the_project_installs():
    # the images are built from the `src` stage's copies; a package missing there (as `auth`
    # was once) makes pachd die at import inside the container only
    text = (DEPLOY / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", text, re.M))
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    include = re.search(r"^include = \[(.*)\]", pyproject, re.M).group(1)
    packages = {p.strip(' "*') for p in include.split(",")}
    assert packages and packages <= copied, f"deploy/Dockerfile does not copy {sorted(packages - copied)}"
