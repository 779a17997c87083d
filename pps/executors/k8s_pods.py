"""Worker pods as plain Kubernetes API dicts: names, labels, the pod manifest, spec patches.

Pure functions over JSON-shaped dicts (camelCase, exactly what the API server takes); no
Kubernetes client here, so everything is unit-testable and `kubernetes.py` stays the only
module that imports the official client.

Invariants:
- `pod_name(project, pipeline, i)` is a DNS-1123 label (<= 63 chars, [a-z0-9-], alphanumeric
  at both ends) and equals `<project>-<pipeline>-w<i>` whenever that already is one; otherwise
  the sanitized prefix gets a short hash of the exact names, so distinct pipelines never share
  pod names. The pod name is also the worker id the worker uses with the master.
- Labels: `app=pachd-worker`, `pachd-instance`, `project`, `pipeline` (sanitized label values),
  `spec-hash`; the exact names and the worker index are in annotations
  (`pachyderm-py/project`, `.../pipeline`, `.../worker-index`), which are what the executor
  trusts. `pachyderm-py/start-id` is unique per created pod (kmock and RBAC-poor setups give
  no uid), so one crash is counted once.
- The worker program runs INSIDE the user's container (Pachyderm's design): in "init" mode an
  init container from the worker image copies the self-contained worker bundle (a relocatable
  CPython with this project installed, `/pach` in the worker image) into an emptyDir, and the
  user container (image = `transform.image`) runs `/pach/python/bin/python3 -I -m pps.worker`
  from it (`-I`: the user image's PYTHONPATH/PYTHONHOME cannot break the worker). In
  "worker" mode the worker image itself is the only container (user code must then be in it).
- `/pfs` is an emptyDir (memory-backed with `transform.memory_volume`); restartPolicy is Never
  (the executor, not the kubelet, restarts crashed workers); service links are off (a Service
  named `pachd` would otherwise inject PACHD_PORT=tcp://... into the environment); the pod
  shares its process namespace so the pause container reaps user code's orphans (Pachyderm
  uses dumb-init for that).
- Spec mapping follows Pachyderm's worker_rc.go: resource_requests/limits (cpu, memory, gpu
  as `<gpu.type>: number`, disk as ephemeral-storage; limits also on the init container),
  scheduling_spec (nodeSelector, priorityClassName), tolerations, image_pull_secrets,
  transform.secrets (volume at mount_path / env var from the secret key), numeric
  transform.user (pod securityContext), metadata labels/annotations (never overriding ours),
  then `pod_spec` as a JSON merge patch (RFC 7386) and `pod_patch` as a JSON Patch (RFC 6902),
  both applied to the pod's `spec`, in that order.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any, Mapping, Optional

from pps.spec import PipelineSpec, ResourceSpec

APP = "pachd-worker"
ANN = "pachyderm-py/"
BUNDLE_DIR = "/pach"                    # the worker bundle, in the worker image and in the pod
WORKER_COMMAND = (f"{BUNDLE_DIR}/python/bin/python3", "-I", "-m", "pps.worker")
INIT_COMMAND = ("cp", "-a", f"{BUNDLE_DIR}/.", "/pach-bundle/")
_TOLERATION_OPS = {"EXISTS": "Exists", "EQUAL": "Equal"}
_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule",
            "NO_EXECUTE": "NoExecute"}


class PodSpecError(ValueError):
    """The pipeline's pod_spec/pod_patch/tolerations cannot be applied."""


# ---- names and labels -------------------------------------------------------------------
def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:5]


def pod_name(project: str, pipeline: str, index: int) -> str:
    raw = f"{project}-{pipeline}"
    suffix = f"-w{index}"
    clean = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if clean != raw or len(clean) + len(suffix) > 63:
        h = _short_hash(project, pipeline)
        clean = clean[:63 - len(suffix) - len(h) - 1].strip("-")
        clean = f"{clean}-{h}" if clean else h
    return clean + suffix


AUTH_SECRET_KEY = "auth-token"


def auth_secret_name(project: str, pipeline: str) -> str:
    """The Secret holding a pipeline's own pachd token (`<project>-<pipeline>-auth`, DNS-safe)."""
    return pod_name(project, pipeline, 0)[:-len("-w0")] + "-auth"


def auth_secret(project: str, pipeline: str, token: str, *, namespace: str, instance: str) -> dict:
    """The manifest of a pipeline's token Secret (stringData: the API server stores it)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": auth_secret_name(project, pipeline), "namespace": namespace,
                         "labels": {"app": APP, "pachd-instance": label_value(instance),
                                    "project": label_value(project), "pipeline": label_value(pipeline)},
                         "annotations": {ANN + "project": project, ANN + "pipeline": pipeline}},
            "stringData": {AUTH_SECRET_KEY: token}}


def label_value(s: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends)."""
    v = re.sub(r"[^A-Za-z0-9._-]+", "-", s)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", v)


def spec_hash(spec_json: str, env: Mapping[str, str], config: Mapping[str, Any]) -> str:
    blob = json.dumps([spec_json, dict(sorted(env.items())), dict(config)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def pod_identity(pod: Mapping) -> Optional[tuple[str, str, int]]:
    """(project, pipeline, index) from a worker pod dict, or None if it is not one of ours."""
    meta = pod.get("metadata") or {}
    ann = meta.get("annotations") or {}
    try:
        return ann[ANN + "project"], ann[ANN + "pipeline"], int(ann[ANN + "worker-index"])
    except (KeyError, ValueError):
        return None


# ---- resources and scheduling -------------------------------------------------------------
def _quantity(cpu: float) -> str:
    return f"{cpu:g}"


def resource_list(r: Optional[ResourceSpec]) -> dict[str, str]:
    if r is None:
        return {}
    out: dict[str, str] = {}
    if r.cpu:
        out["cpu"] = _quantity(r.cpu)
    if r.memory:
        out["memory"] = r.memory
    if r.disk:
        out["ephemeral-storage"] = r.disk
    if r.gpu is not None and r.gpu.number:
        out[r.gpu.type or "nvidia.com/gpu"] = str(r.gpu.number)
    return out


def tolerations(spec: PipelineSpec) -> list[dict]:
    out = []
    for i, t in enumerate(spec.tolerations):
        op = _TOLERATION_OPS.get(t.operator)
        if op is None:
            raise PodSpecError(f"toleration {i + 1}: specify operator EQUAL or EXISTS")
        d: dict[str, Any] = {"operator": op}
        if t.key:
            d["key"] = t.key
        if t.value:
            d["value"] = t.value
        if t.effect in _EFFECTS:
            d["effect"] = _EFFECTS[t.effect]
        if t.toleration_seconds is not None:
            d["tolerationSeconds"] = int(t.toleration_seconds)
        out.append(d)
    return out


# ---- the pod ------------------------------------------------------------------------------
def worker_pod(spec: PipelineSpec, spec_json: str, index: int, *, namespace: str,
               pachd_address: str, env: Mapping[str, str], hash: str, start_id: str,
               worker_image: str, mode: str = "init", instance: str = "pachd",
               grace_seconds: int = 10, pull_policy: str = "IfNotPresent",
               service_account: str = "", secret_env: Mapping[str, tuple[str, str]] = {},
               worker_command: tuple[str, ...] = WORKER_COMMAND,
               extra_args: tuple[str, ...] = ()) -> dict:
    """The pod manifest for worker `index` of `spec`. `env` is the master's environment for
    workers; names in `secret_env` ({name: (secret, key)}) are taken from a Secret instead
    (whether `env` has them or not): a token never appears in the manifest."""
    project, pipeline = spec.project or "default", spec.name
    name = pod_name(project, pipeline, index)
    t = spec.transform
    user_image = (t.image if t is not None else "") or worker_image
    argv = [*worker_command, "--pachd", pachd_address, "--project", project, "--pipeline", pipeline,
            "--worker-id", name, "--pfs-root", "/pfs", *extra_args]
    env_list: list[dict] = [{"name": "PPS_SPEC_JSON", "value": spec_json}]
    for k, v in sorted(env.items()):
        if k in secret_env:
            s, key = secret_env[k]
            env_list.append({"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key}}})
        else:
            env_list.append({"name": k, "value": str(v)})
    for k, (s, key) in sorted(secret_env.items()):  # set from a Secret even if env lacks it
        if k not in env:
            env_list.append({"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key}}})
    volumes: list[dict] = [{"name": "pfs", "emptyDir": {"medium": "Memory"} if t and t.memory_volume else {}}]
    mounts: list[dict] = [{"name": "pfs", "mountPath": "/pfs"}]
    for s in (t.secrets if t else ()):
        if s.mount_path:
            vname = "secret-" + label_value(s.name).lower().replace(".", "-")[:50]
            if not any(v["name"] == vname for v in volumes):
                volumes.append({"name": vname, "secret": {"secretName": s.name}})
            mounts.append({"name": vname, "mountPath": s.mount_path, "readOnly": True})
        if s.env_var:
            env_list.append({"name": s.env_var, "valueFrom": {"secretKeyRef": {"name": s.name, "key": s.key}}})
    requests, limits = resource_list(spec.resource_requests), resource_list(spec.resource_limits)
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    container = {"name": "user", "image": user_image if mode == "init" else worker_image,
                 "imagePullPolicy": pull_policy, "command": argv, "env": env_list,
                 "resources": resources, "volumeMounts": mounts}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never", "enableServiceLinks": False, "shareProcessNamespace": True,
        "terminationGracePeriodSeconds": int(grace_seconds), "automountServiceAccountToken": False,
        "containers": [container], "volumes": volumes}
    if mode == "init":
        volumes.append({"name": "pach-bundle", "emptyDir": {}})
        mounts.append({"name": "pach-bundle", "mountPath": BUNDLE_DIR, "readOnly": True})
        init_res = {k: v for k, v in (
            ("requests", {r: q for r, q in requests.items() if r in ("cpu", "memory", "ephemeral-storage")}),
            ("limits", {r: q for r, q in limits.items() if r in ("cpu", "memory", "ephemeral-storage")})) if v}
        pod_spec["initContainers"] = [{
            "name": "init", "image": worker_image, "imagePullPolicy": pull_policy,
            "command": list(INIT_COMMAND), "resources": init_res,
            "volumeMounts": [{"name": "pach-bundle", "mountPath": "/pach-bundle"}]}]
    elif mode != "worker":
        raise PodSpecError(f"unknown worker mode {mode!r} (init or worker)")
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if t is not None and t.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in t.image_pull_secrets]
    if t is not None and t.user.isdigit():
        uid = int(t.user)
        pod_spec["securityContext"] = {"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid}
    sched = spec.scheduling_spec
    if sched is not None and sched.node_selector:
        pod_spec["nodeSelector"] = dict(sched.node_selector)
    if sched is not None and sched.priority_class_name:
        pod_spec["priorityClassName"] = sched.priority_class_name
    tols = tolerations(spec)
    if tols:
        pod_spec["tolerations"] = tols
    pod_spec = apply_spec_patches(pod_spec, spec.pod_spec, spec.pod_patch)
    labels = {"app": APP, "pachd-instance": label_value(instance), "project": label_value(project),
              "pipeline": label_value(pipeline), "spec-hash": hash}
    annotations = {ANN + "project": project, ANN + "pipeline": pipeline, ANN + "worker-index": str(index),
                   ANN + "start-id": start_id, ANN + "user-image": (t.image if t else "") or ""}
    if spec.metadata is not None:
        for k, v in spec.metadata.labels.items():
            labels.setdefault(k, v)
        for k, v in spec.metadata.annotations.items():
            annotations.setdefault(k, v)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "annotations": annotations},
            "spec": pod_spec}


# ---- pod_spec (merge patch) and pod_patch (JSON Patch) --------------------------------------
def apply_spec_patches(pod_spec: dict, merge: str = "", patch: str = "") -> dict:
    out = copy.deepcopy(pod_spec)
    try:
        if merge:
            out = merge_patch(out, json.loads(merge))
        if patch:
            out = json_patch(out, json.loads(patch))
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise PodSpecError(f"cannot apply pod_spec/pod_patch: {e}") from None
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    return doc


def _index(seq: list, p: str, insert: bool) -> int:
    if insert and p == "-":
        return len(seq)
    i = int(p)
    if i < 0 or i > len(seq) or (i == len(seq) and not insert):
        raise IndexError(f"index {p} out of range")
    return i


def json_patch(doc: Any, ops: list) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test (a failed test raises ValueError)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, parts = op["op"], _pointer(op["path"])

        def remove(parts=parts):
            parent, last = _walk(doc, parts[:-1]), parts[-1]
            if isinstance(parent, list):
                return parent.pop(_index(parent, last, False))
            return parent.pop(last)

        def add(value, parts=parts):
            nonlocal doc
            if not parts:
                doc = value
                return
            parent, last = _walk(doc, parts[:-1]), parts[-1]
            if isinstance(parent, list):
                parent.insert(_index(parent, last, True), value)
            else:
                parent[last] = value

        if kind == "add":
            add(copy.deepcopy(op["value"]))
        elif kind == "remove":
            remove()
        elif kind == "replace":
            _walk(doc, parts)  # must exist
            if parts:
                remove()
            add(copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            src = _pointer(op["from"])
            value = copy.deepcopy(_walk(doc, src))
            if kind == "move":
                remove(src)
            add(value)
        elif kind == "test":
            if _walk(doc, parts) != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        else:
            raise ValueError(f"unknown JSON Patch op {kind!r}")
    return doc
