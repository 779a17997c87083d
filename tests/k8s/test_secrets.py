"""With the Kubernetes executor, pachd's secrets are real Secret objects (KubeSecrets, on
kmock's API emulator), and a pipeline's env-var secret reaches the worker through the pod's
secretKeyRef, never as a plain value in the pod manifest."""
from __future__ import annotations

import pytest

from pfs.errors import NotFound, PfsError
from pps.secrets import parse_manifest
from tests.k8s.conftest import list_pods, spec_json, wait_for
from tests.k8s.test_executor import KEY, make, out, starts  # noqa: F401 - fixtures

VALUE = "k8s-s3cret-42"


def test_kube_secret_store_and_pod_reference(make, cluster, kmock_server, out):  # noqa: F811
    ex = make()
    store = ex.secret_store()
    store.create(parse_manifest(b'{"kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"pw": "'
                                + VALUE.encode() + b'"}}'))
    info = store.inspect("creds")
    assert info.name == "creds" and info.type == "Opaque"
    assert [s.name for s in store.list()] == ["creds"]
    assert store.data("creds") == {"pw": VALUE.encode()}
    with pytest.raises(PfsError, match='failed to create secret: secrets "creds" already exists'):
        store.create(parse_manifest(b'{"kind": "Secret", "metadata": {"name": "creds"}}'))
    spec = spec_json("edges", {"cmd": ["sh"], "secrets": [{"name": "creds", "key": "pw", "env_var": "PW"}]})
    ex.ensure_workers(KEY, spec, 1, {"FAKE_OUT": str(out)})
    pod = list_pods(kmock_server, cluster.ns)["default-edges-w0"]
    (user,) = pod["spec"]["containers"]
    pw = next(e for e in user["env"] if e["name"] == "PW")
    assert pw == {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}
    assert VALUE not in str(pod)
    rec = wait_for(lambda: starts(out, "default-edges-w0"), what="worker started")[0]
    assert rec["env"]["PW"] == VALUE  # the kubelet resolved it from the Secret
    ex.stop_workers(KEY)
    store.delete("creds")
    assert store.list() == []
    with pytest.raises(NotFound, match='failed to get secret: secrets "creds" not found'):
        store.inspect("creds")
