"""The worker pod manifest as pure data: names, labels, spec mapping, pod_spec/pod_patch."""
from __future__ import annotations

import json
import re

import pytest

from pps.executors import k8s_pods as kp
from pps.spec import normalize_spec

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def spec(**kw):
    d = {"pipeline": {"name": "edges", "project": {"name": "default"}},
         "transform": {"cmd": ["sh"], "image": "ubuntu:20.04"}, "input": {"pfs": {"repo": "in", "glob": "/*"}}}
    d.update(kw)
    return normalize_spec(d, strict=False), json.dumps(d)


def pod(s, sj, **kw):
    opts = dict(namespace="ns", pachd_address="pachd.ns.svc:30650", env={}, hash="abc123abc123",
                start_id="s1", worker_image="pachyderm-py/worker:latest")
    opts.update(kw)
    return kp.worker_pod(s, sj, 0, **opts)


@pytest.mark.parametrize("project,pipeline", [
    ("default", "edges"), ("Default", "My_Pipeline"), ("p" * 40, "q" * 51), ("_", "-"), ("a.b", "c")])
def test_pod_names_are_dns_labels_and_distinct(project, pipeline):
    names = {kp.pod_name(project, pipeline, i) for i in range(12)}
    assert len(names) == 12 and all(DNS_LABEL.match(n) for n in names)
    if project == "default":
        assert kp.pod_name(project, pipeline, 3) == "default-edges-w3"
    assert kp.pod_name("x", "a_b", 0) != kp.pod_name("x", "a-b", 0)


def test_label_values():
    assert kp.label_value("My_Pipeline") == "My_Pipeline"
    assert kp.label_value("-a b-") == "a-b"
    assert len(kp.label_value("x" * 100)) == 63


def test_worker_mode_memory_volume_secrets_user():
    s, sj = spec(transform={"cmd": ["sh"], "image": "ubuntu:20.04", "memory_volume": True, "user": "1000",
                            "secrets": [{"name": "creds", "mount_path": "/creds"},
                                        {"name": "creds", "key": "pw", "env_var": "PASSWORD"}]})
    p = pod(s, sj, mode="worker", service_account="pachyderm-worker")
    ps = p["spec"]
    assert "initContainers" not in ps and ps["containers"][0]["image"] == "pachyderm-py/worker:latest"
    assert ps["serviceAccountName"] == "pachyderm-worker"
    assert ps["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}
    vols = {v["name"]: v for v in ps["volumes"]}
    assert vols["pfs"] == {"name": "pfs", "emptyDir": {"medium": "Memory"}}
    assert vols["secret-creds"]["secret"] == {"secretName": "creds"}
    env = {e["name"]: e for e in ps["containers"][0]["env"]}
    assert env["PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "creds", "key": "pw"}}
    assert {"name": "secret-creds", "mountPath": "/creds", "readOnly": True} in ps["containers"][0]["volumeMounts"]
    with pytest.raises(kp.PodSpecError):
        pod(s, sj, mode="sidecar")


def test_default_image_and_empty_operator_rejected():
    s, sj = spec(transform={"cmd": ["sh"]})
    assert pod(s, sj)["spec"]["containers"][0]["image"] == "ubuntu:20.04"  # Pachyderm's default
    s, sj = spec(tolerations=[{"key": "k"}])
    with pytest.raises(kp.PodSpecError, match="EQUAL or EXISTS"):
        pod(s, sj)


def test_merge_patch_rfc7386():
    assert kp.merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == \
        {"a": "z", "c": {"d": "e"}}
    assert kp.merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert kp.merge_patch({"a": 1}, {"b": {"c": None}}) == {"a": 1, "b": {}}


def test_json_patch_rfc6902():
    doc = {"foo": ["bar", "baz"], "a": {"b": 1}, "x/y": 2}
    out = kp.json_patch(doc, [
        {"op": "add", "path": "/foo/1", "value": "qux"},
        {"op": "add", "path": "/foo/-", "value": "end"},
        {"op": "remove", "path": "/a/b"},
        {"op": "replace", "path": "/x~1y", "value": 3},
        {"op": "copy", "from": "/foo/0", "path": "/first"},
        {"op": "move", "from": "/foo/3", "path": "/last"},
        {"op": "test", "path": "/first", "value": "bar"}])
    assert out == {"foo": ["bar", "qux", "baz"], "a": {}, "x/y": 3, "first": "bar", "last": "end"}
    assert doc["foo"] == ["bar", "baz"]  # not modified in place
    for bad in ([{"op": "test", "path": "/a/b", "value": 2}], [{"op": "remove", "path": "/nope"}],
                [{"op": "replace", "path": "/foo/5", "value": 1}], [{"op": "frob", "path": "/a"}]):
        with pytest.raises((ValueError, KeyError, IndexError)):
            kp.json_patch(doc, bad)


def test_pod_spec_then_pod_patch_apply_to_the_pod_spec():
    s, sj = spec(pod_spec=json.dumps({"hostNetwork": True, "enableServiceLinks": None}),
                 pod_patch=json.dumps([{"op": "replace", "path": "/containers/0/imagePullPolicy", "value": "Always"}]))
    ps = pod(s, sj)["spec"]
    assert ps["hostNetwork"] is True and "enableServiceLinks" not in ps
    assert ps["containers"][0]["imagePullPolicy"] == "Always"
    s, sj = spec(pod_patch=json.dumps([{"op": "remove", "path": "/nope"}]))
    with pytest.raises(kp.PodSpecError):
        pod(s, sj)


def test_spec_hash_covers_spec_env_and_config():
    h = kp.spec_hash("{}", {"A": "1"}, {"image": "w:1"})
    assert h == kp.spec_hash("{}", {"A": "1"}, {"image": "w:1"}) and len(h) == 12
    assert len({h, kp.spec_hash("{ }", {"A": "1"}, {"image": "w:1"}), kp.spec_hash("{}", {"A": "2"}, {"image": "w:1"}),
                kp.spec_hash("{}", {"A": "1"}, {"image": "w:2"})}) == 4
    s, sj = spec()
    assert kp.pod_identity(pod(s, sj)) == ("default", "edges", 0)
    assert kp.pod_identity({"metadata": {}}) is None
