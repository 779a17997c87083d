"""KubernetesExecutor: pipeline workers as pods, through the official `kubernetes` client.

This is the only module that imports `kubernetes`; the pod manifest is built as a plain dict
by `k8s_pods.py`. The master sees only the Executor Protocol (base.py), exactly as with the
local executor.

Design: bare Pods owned by this executor, one per worker, named `<project>-<pipeline>-w<i>`
(stable: the pod name is the worker id). Not a ReplicaSet/Deployment, because (a) the Executor
contract needs per-worker states (a worker that exited 0 stays down until the next
`ensure_workers`; a crashed one comes back with backoff), which a ReplicaSet cannot express,
(b) replacing workers on a spec change is a delete-then-create of the same names, and (c) it
needs only `pods` permissions. restartPolicy is Never, so THIS executor restarts crashed pods
(as the local one restarts processes): same backoff everywhere, and pods that fail without a
container exit (evicted, node lost) are handled the same way. The cost: when pachd is down,
nobody restarts crashed workers (they have nothing to do without pachd anyway).

Invariants (beyond the Executor contract):
- One reconciler thread makes every API call. Public methods change the desired state, wake
  it and wait for one full pass (bounded), like LocalExecutor. API errors are logged and the
  pass is retried every `poll_interval` seconds; they are never raised to the master.
- A pass: list our pods (label selector `app=pachd-worker,pachd-instance=<instance>`, also
  filtered client-side), read each slot's state from its pod's phase, delete pods that are
  extra, belong to a stopped pipeline, carry another `spec-hash`, failed and are due for a
  restart, or exited 0 and were asked to run again; wait (bounded by the grace period + 30 s)
  until those are gone; then create the missing pods.
- Crashes (phase Failed) are counted once per pod (`start-id` annotation); the restart delay
  starts at `backoff_start`, doubles up to `backoff_max`, and resets once a pod ran for
  HEALTHY_AFTER seconds. The failed pod stays (for `kubectl logs`) until its restart.
- Pods of this instance that belong to no known pipeline (left by a pachd that was killed)
  are deleted once the executor is `adopt_after` seconds old (the master re-ensures every
  live pipeline at startup, so their pods are adopted, not restarted, if their hash matches).
  Token Secrets of this instance (labels `app`, `pachd-instance`) whose pipeline has no
  workers here are deleted at the same moment, once per executor (again on the next pass if
  that fails): a killed pachd leaves them behind, as it leaves pods.
- A pipeline's pachd token (PACHD_AUTH_TOKEN in the master's env for it) never appears in a
  pod manifest: it is written to the pipeline's own Secret (`<project>-<pipeline>-auth`,
  key `auth-token`) before any pod of it is created, and the pods read it through a
  secretKeyRef. The Secret is rewritten when the token changes (the pods are replaced then:
  the env is part of their spec-hash) and deleted, after the pods, when the pipeline's
  workers are stopped or the executor closes. A pachd-wide Secret (`auth_secret`,
  PACHD_AUTH_SECRET) is used only when the master gives no token of the pipeline's own.
- `close()` deletes every worker pod of this executor and waits for them; afterwards the
  executor is unusable.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Mapping, Optional, Sequence

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from pps.executors import k8s_pods as kp
from pps.executors.base import CRASHING, EXITED, RUNNING, STARTING, STOPPED, WorkerStatus
from pps.spec import PipelineSpec, normalize_spec

log = logging.getLogger("pps.executor")
HEALTHY_AFTER = 60.0
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_WORKER_IMAGE = "pachyderm-py/worker:latest"


@dataclass
class _Slot:
    index: int
    name: str
    state: str = STARTING
    restarts: int = 0
    exit_code: Optional[int] = None
    delay: float = 0.0
    not_before: float = 0.0
    started: Optional[float] = None
    spec_hash: str = ""
    counted: str = ""        # start-id of the pod whose exit was last counted
    rerun: bool = False      # exited 0, and ensure_workers asked for it again
    crashed: bool = False    # the next start is a restart after a crash


@dataclass
class _Pool:
    project: str
    pipeline: str
    spec: PipelineSpec
    spec_json: str
    env: dict
    n: int
    hash: str
    slots: list[_Slot] = field(default_factory=list)
    secret_written: str = ""  # sha256 of the token last written to the pipeline's Secret


class KubernetesExecutor:
    def __init__(self, api_client: Any, namespace: str, pachd_address: str, *,
                 worker_image: str = DEFAULT_WORKER_IMAGE, mode: str = "init",
                 instance: str = "pachd", grace: int = 10, pull_policy: str = "IfNotPresent",
                 service_account: str = "", auth_secret: Optional[tuple[str, str]] = None,
                 worker_command: Sequence[str] = kp.WORKER_COMMAND,
                 worker_args: Sequence[str] = (), poll_interval: float = 2.0,
                 backoff_start: float = 1.0, backoff_max: float = 60.0,
                 adopt_after: float = 60.0, request_timeout: float = 30.0):
        if mode not in ("init", "worker"):
            raise ValueError(f"worker mode must be 'init' or 'worker', not {mode!r}")
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.namespace = namespace
        self.pachd_address = pachd_address
        self.worker_image, self.mode, self.instance = worker_image, mode, instance
        self.grace, self.pull_policy, self.service_account = int(grace), pull_policy, service_account
        self.secret_env = {"PACHD_AUTH_TOKEN": auth_secret} if auth_secret else {}
        self.worker_command, self.worker_args = tuple(worker_command), tuple(worker_args)
        self.poll_interval, self.backoff_start, self.backoff_max = poll_interval, backoff_start, backoff_max
        self.adopt_after, self.request_timeout = adopt_after, request_timeout
        self.labels = {"app": kp.APP, "pachd-instance": kp.label_value(instance)}
        self.selector = ",".join(f"{k}={v}" for k, v in self.labels.items())
        self._born = time.monotonic()
        self._secrets_swept = False  # orphaned token Secrets deleted (once, after adopt_after)
        self._pools: dict[Hashable, _Pool] = {}
        self._cond = threading.Condition()
        self._wanted = self._applied = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="k8s-executor", daemon=True)
        self._thread.start()

    # ---- construction from pachd's environment ------------------------------------------------
    @classmethod
    def from_environment(cls, pachd, environ: Mapping[str, str] = os.environ) -> "KubernetesExecutor":
        """In a pod: the service account (in-cluster config); elsewhere: $KUBECONFIG or
        ~/.kube/config. Namespace: $PACH_NAMESPACE, the service account's, the kubeconfig
        context's, else "default". See deploy/README.md for every variable."""
        cfg = k8s.Configuration()
        context_ns = ""
        if environ.get("KUBERNETES_SERVICE_HOST") and not environ.get("KUBECONFIG"):
            k8s_config.load_incluster_config(client_configuration=cfg)
        else:
            path = environ.get("KUBECONFIG") or None
            k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
            _, active = k8s_config.list_kube_config_contexts(config_file=path)
            context_ns = ((active or {}).get("context") or {}).get("namespace", "")
        ns = environ.get("PACH_NAMESPACE") or _sa_namespace() or context_ns or "default"
        address = environ.get("PACHD_SERVICE_ADDRESS") or \
            f"{environ.get('PACHD_SERVICE_NAME', 'pachd')}.{ns}.svc:{pachd.port}"
        secret = environ.get("PACHD_AUTH_SECRET", "")
        name, _, key = secret.partition(":")
        return cls(k8s.ApiClient(cfg), ns, address,
                   worker_image=environ.get("PACH_WORKER_IMAGE", DEFAULT_WORKER_IMAGE),
                   mode=environ.get("PACH_WORKER_MODE", "init"),
                   instance=environ.get("PACH_K8S_INSTANCE", "pachd"),
                   grace=int(environ.get("PACH_WORKER_GRACE_SECONDS", "10")),
                   pull_policy=environ.get("PACH_WORKER_PULL_POLICY", "IfNotPresent"),
                   service_account=environ.get("PACH_WORKER_SERVICE_ACCOUNT", ""),
                   auth_secret=(name, key or "auth-token") if name else None,
                   poll_interval=float(environ.get("PACH_K8S_POLL_SECONDS", "2")),
                   backoff_start=float(environ.get("PACH_WORKER_BACKOFF_SECONDS", "1")),
                   adopt_after=float(environ.get("PACH_K8S_ADOPT_SECONDS", "60")))

    # ---- Executor API -------------------------------------------------------------------------
    def ensure_workers(self, pipeline_key: Hashable, spec_json: str, n: int,
                       env: Mapping[str, str] = {}) -> None:
        raw = json.loads(spec_json)
        project = (((raw.get("pipeline") or {}).get("project") or {}).get("name")) or "default"
        spec = normalize_spec(raw, project=project, strict=False)
        h = kp.spec_hash(spec_json, env, self._config())
        with self._cond:
            pool = self._pools.get(pipeline_key)
            if pool is None:
                pool = self._pools[pipeline_key] = _Pool(project, spec.name, spec, spec_json, dict(env), 0, h)
            if h != pool.hash:  # a new spec deserves a fresh start, not the old backoff
                for s in pool.slots:
                    s.not_before, s.crashed = 0.0, False
            pool.spec, pool.spec_json, pool.env, pool.n, pool.hash = spec, spec_json, dict(env), max(0, n), h
            for s in pool.slots:
                if s.state == EXITED:
                    s.rerun = True
        self._apply()

    def stop_workers(self, pipeline_key: Hashable) -> None:
        with self._cond:
            pool = self._pools.get(pipeline_key)
            if pool is not None:
                pool.n = -1  # the reconciler deletes its pods, waits, and forgets it
        self._apply()

    def workers(self, pipeline_key: Hashable) -> list[WorkerStatus]:
        with self._cond:
            pool = self._pools.get(pipeline_key)
            if pool is None or pool.n < 0:
                return []
            return [WorkerStatus(id=s.name, state=s.state, pod=s.name, started=s.started,
                                 restarts=s.restarts, exit_code=s.exit_code, spec_hash=s.spec_hash)
                    for s in pool.slots]

    def secret_store(self):
        """User secrets as real Secret objects in this namespace (worker pods reference them
        by name: secretKeyRef env vars and secret volumes, see k8s_pods)."""
        from pps.secrets import KubeSecrets
        return KubeSecrets(self.core, self.namespace)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            for pool in self._pools.values():
                pool.n = -1
        try:
            self._apply()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join()
            self.api_client.close()

    def __enter__(self) -> "KubernetesExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the reconciler thread ----------------------------------------------------------------
    def _config(self) -> dict:
        """Everything of ours that shapes a pod: a change replaces the pods."""
        return {"image": self.worker_image, "mode": self.mode, "address": self.pachd_address,
                "grace": self.grace, "pull": self.pull_policy, "sa": self.service_account,
                "secret_env": self.secret_env, "cmd": self.worker_command, "args": self.worker_args}

    def _apply(self) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("executor is closed")
            self._wanted += 1
            gen = self._wanted
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._applied >= gen or self._closed, self.grace + 90)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if self._applied >= self._wanted:
                    self._cond.wait(self.poll_interval)
                gen = self._wanted
            try:
                self._reconcile()
            except Exception:  # noqa: BLE001 - the API may be away for a while; try again
                log.exception("kubernetes executor: reconcile failed; retrying")
            with self._cond:
                self._applied = max(self._applied, gen)
                self._cond.notify_all()

    def _call(self, method, *args, **kw) -> dict:
        """An API call whose answer is read as plain JSON, not deserialized into models (this
        client's models reject objects missing fields they deem required)."""
        resp = method(*args, _preload_content=False, _request_timeout=self.request_timeout, **kw)
        try:
            data = resp.data
        finally:
            resp.release_conn()
        return json.loads(data) if data else {}

    def _list(self) -> dict[str, dict]:
        resp = self._call(self.core.list_namespaced_pod, self.namespace, label_selector=self.selector)
        pods = {}
        for d in resp.get("items") or []:
            labels = (d.get("metadata") or {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in self.labels.items()):  # kmock ignores selectors
                pods[d["metadata"]["name"]] = d
        return pods

    def _reconcile(self) -> None:
        pods = self._list()
        now = time.monotonic()
        doomed: dict[str, bool] = {}  # pod name -> wait until it is gone
        with self._cond:
            pools = list(self._pools.items())
            owners = {(p.project, p.pipeline): p for _, p in pools}
            for _, pool in pools:
                keep = max(pool.n, 0)
                del pool.slots[keep:]
                while len(pool.slots) < keep:
                    i = len(pool.slots)
                    pool.slots.append(_Slot(i, kp.pod_name(pool.project, pool.pipeline, i)))
                for s in pool.slots:
                    pod = pods.get(s.name)
                    self._observe(s, pod, now)
                    if pod is None or _deleting(pod):
                        continue
                    if _labels(pod).get("spec-hash") != pool.hash:
                        doomed[s.name] = True   # replaced below, once gone
                    elif s.state == CRASHING and now >= s.not_before:
                        doomed[s.name] = True   # restart after the backoff
                    elif s.state == EXITED and s.rerun:
                        doomed[s.name] = True
            wanted = {s.name for _, p in pools for s in p.slots}
        for name, pod in pods.items():
            if name in wanted or _deleting(pod) or name in doomed:
                continue
            ident = kp.pod_identity(pod)
            owner = owners.get(ident[:2]) if ident else None
            if owner is not None:
                doomed[name] = True            # beyond n, or its pipeline is stopping
            elif now - self._born >= self.adopt_after:
                doomed[name] = False           # an orphan; nobody waits for it
                log.info("deleting orphaned worker pod %s", name)
        for name in doomed:
            self._delete(name)
        if not self._secrets_swept and now - self._born >= self.adopt_after:
            self._sweep_secrets(set(owners))
        waiting = {n for n, w in doomed.items() if w} | {n for n, p in pods.items()
                                                         if n in wanted and _deleting(p)}
        if waiting:
            pods = self._wait_gone(waiting)
        with self._cond:
            gone = [pool for key, pool in pools if pool.n < 0 and self._pools.get(key) is pool]
            for key, pool in pools:
                if pool.n < 0 and self._pools.get(key) is pool:
                    del self._pools[key]
        for pool in gone:  # its pods are gone (waited for above): now its token goes too
            if pool.secret_written:
                self._delete_auth_secret(pool)
        with self._cond:
            todo = [(pool, s) for _, pool in pools if pool.n >= 0 for s in pool.slots
                    if s.name not in pods and (s.state != EXITED or s.rerun) and now >= s.not_before]
        for pool, s in todo:
            self._create(pool, s)

    def _observe(self, s: _Slot, pod: Optional[dict], now: float) -> None:
        """Read a slot's state from its pod (called with the lock held)."""
        if pod is None:
            if s.state not in (CRASHING, EXITED):
                s.state = STARTING
            return
        status = pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        start_id = ((pod.get("metadata") or {}).get("annotations") or {}).get(kp.ANN + "start-id", "")
        s.spec_hash = _labels(pod).get("spec-hash", "")
        if _deleting(pod):
            s.state = STOPPED
        elif phase in ("Pending", "Unknown"):
            s.state = STARTING
        elif phase == "Running":
            s.state = RUNNING
        elif s.counted != start_id:
            s.counted = start_id
            s.exit_code = _exit_code(status)
            if phase == "Succeeded":
                s.state = EXITED
                log.info("worker %s exited", s.name)
            else:
                up = time.time() - (s.started or time.time())
                s.delay = self.backoff_start if up > HEALTHY_AFTER or not s.crashed \
                    else min(max(s.delay, self.backoff_start) * 2, self.backoff_max)
                s.state, s.not_before, s.crashed = CRASHING, now + s.delay, True
                log.warning("worker pod %s failed (%s, exit code %s); restarting in %.1fs "
                            "(kubectl logs -n %s %s)", s.name, _reason(status), s.exit_code,
                            s.delay, self.namespace, s.name)

    def _pod_secret_env(self, pool: _Pool) -> dict:
        """secret_env for the pool's pods: its own token Secret, written first if needed."""
        token = pool.env.get("PACHD_AUTH_TOKEN")
        if not token:
            return self.secret_env
        digest = hashlib.sha256(token.encode()).hexdigest()
        if pool.secret_written != digest:
            body = kp.auth_secret(pool.project, pool.pipeline, token, namespace=self.namespace,
                                  instance=self.instance)
            name = body["metadata"]["name"]
            try:
                self._call(self.core.create_namespaced_secret, self.namespace, body)
            except ApiException as e:
                if e.status != 409:
                    raise
                self._call(self.core.patch_namespaced_secret, name, self.namespace,
                           {"stringData": body["stringData"]})
            pool.secret_written = digest
        return {**self.secret_env, "PACHD_AUTH_TOKEN": (kp.auth_secret_name(pool.project, pool.pipeline),
                                                        kp.AUTH_SECRET_KEY)}

    def _sweep_secrets(self, owners: set[tuple[str, str]]) -> None:
        """Delete this instance's token Secrets whose pipeline has no workers here (left by a
        pachd that was killed); `owners` are the (project, pipeline) of the pools."""
        try:
            resp = self._call(self.core.list_namespaced_secret, self.namespace, label_selector=self.selector)
            for d in resp.get("items") or []:
                meta = d.get("metadata") or {}
                labels, ann = meta.get("labels") or {}, meta.get("annotations") or {}
                if not all(labels.get(k) == v for k, v in self.labels.items()):  # kmock ignores selectors
                    continue
                ident = (ann.get(kp.ANN + "project"), ann.get(kp.ANN + "pipeline"))
                if None in ident or meta.get("name") != kp.auth_secret_name(*ident) or ident in owners:
                    continue  # not a pipeline token Secret of ours, or its pipeline still runs
                log.info("deleting the orphaned token Secret %s", meta["name"])
                try:
                    self._call(self.core.delete_namespaced_secret, meta["name"], self.namespace)
                except ApiException as e:
                    if e.status != 404:
                        raise
        except Exception as e:  # noqa: BLE001 - e.g. no RBAC right to list Secrets: pods still go on
            log.warning("cannot delete orphaned token Secrets (retrying on the next pass): %s", e)
            return
        self._secrets_swept = True

    def _delete_auth_secret(self, pool: _Pool) -> None:
        try:
            self._call(self.core.delete_namespaced_secret, kp.auth_secret_name(pool.project, pool.pipeline),
                       self.namespace)
        except ApiException as e:
            if e.status != 404:
                log.warning("cannot delete the token Secret of pipeline %s/%s: %s", pool.project,
                            pool.pipeline, e.reason)
                return
        pool.secret_written = ""

    def _create(self, pool: _Pool, s: _Slot) -> None:
        try:
            secret_env = self._pod_secret_env(pool)
            body = kp.worker_pod(pool.spec, pool.spec_json, s.index, namespace=self.namespace,
                                 pachd_address=self.pachd_address, env=pool.env, hash=pool.hash,
                                 start_id=uuid.uuid4().hex[:12], worker_image=self.worker_image,
                                 mode=self.mode, instance=self.instance, grace_seconds=self.grace,
                                 pull_policy=self.pull_policy, service_account=self.service_account,
                                 secret_env=secret_env, worker_command=self.worker_command,
                                 extra_args=self.worker_args)
            self._call(self.core.create_namespaced_pod, self.namespace, body)
        except (kp.PodSpecError, ApiException) as e:
            if isinstance(e, ApiException) and e.status == 409:
                return  # the old pod is still terminating; the next pass creates it
            with self._cond:
                s.state, s.not_before = CRASHING, time.monotonic() + self.backoff_max
                s.exit_code = None
            log.error("cannot create worker pod %s: %s", s.name, getattr(e, "reason", None) or e)
            return
        with self._cond:
            if s.state == CRASHING:
                s.restarts += 1
            s.state, s.started, s.spec_hash, s.rerun, s.exit_code = STARTING, time.time(), pool.hash, False, None
        log.info("created worker pod %s (image %s)", s.name, body["spec"]["containers"][0]["image"])

    def _delete(self, name: str) -> None:
        try:
            self._call(self.core.delete_namespaced_pod, name, self.namespace, grace_period_seconds=self.grace)
        except ApiException as e:
            if e.status != 404:
                raise

    def _wait_gone(self, names: set[str]) -> dict[str, dict]:
        deadline = time.monotonic() + self.grace + 30
        while True:
            pods = self._list()
            left = names & pods.keys()
            if not left:
                return pods
            if time.monotonic() > deadline:
                log.warning("worker pods still terminating after %ds: %s", self.grace + 30, sorted(left))
                return pods
            time.sleep(min(0.2, self.poll_interval))


def _labels(pod: dict) -> dict:
    return (pod.get("metadata") or {}).get("labels") or {}


def _deleting(pod: dict) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _user_status(status: dict) -> dict:
    for c in status.get("containerStatuses") or []:
        if c.get("name") == "user":
            return c
    return {}


def _exit_code(status: dict) -> Optional[int]:
    term = ((_user_status(status).get("state") or {}).get("terminated")) or {}
    code = term.get("exitCode")
    return int(code) if code is not None else None


def _reason(status: dict) -> str:
    term = ((_user_status(status).get("state") or {}).get("terminated")) or {}
    return status.get("reason") or term.get("reason") or status.get("message") or "failed"


def _sa_namespace() -> str:
    try:
        return SA_NAMESPACE.read_text().strip()
    except OSError:
        return ""
