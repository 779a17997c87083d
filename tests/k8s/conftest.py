"""Kubernetes without a cluster: kmock's API emulator + a test-side kubelet.

- `KMock`: kmock.KubernetesEmulator served over HTTP from its own event-loop thread, so the
  official (synchronous) `kubernetes` client talks to it as to an API server. kmock stores
  objects as given (no uid, no resourceVersion, no defaults) and ignores label selectors.
- `Kubelet`: a TEST-SIDE stand-in for a node. It polls the namespace's pods; for each new one
  it adds a finalizer (so a deletion waits for it, as a real kubelet's graceful termination
  does), runs the init containers to completion, starts the main container's command as a
  local process with the container's env (`value`, `secretKeyRef` read from kmock,
  `fieldRef` metadata.name/namespace), and reports phase Running, then Succeeded/Failed with
  the exit code. On deletion: SIGTERM, SIGKILL after terminationGracePeriodSeconds, then the
  finalizer is removed and the pod is gone.
  Volumes are directories under the kubelet's root; IMAGES are directories too
  (`images[name]` whose top-level entries shadow `/<entry>`; unknown images run on the host).
  A command's arguments that start with a mount path or an image entry are rewritten to the
  directory (the only thing a mount namespace would have done for these programs).
- `fake_bundle`: a "worker image" whose `/pach/python/bin/python3` runs `fake_worker.py`
  (records argv/env, then sleeps until SIGTERM, or exits as $FAKE_EXIT says).
- `real_bundle`: a "worker image" whose `/pach/python/bin/python3` is this venv's python with
  the project on PYTHONPATH: the real `python -m pps.worker` (no sandbox: the worker's
  documented fallback, its /pfs being the pod's emptyDir directory).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from kubernetes import client

kmock = pytest.importorskip("kmock")  # test extra: the whole directory skips without it
from kubernetes.client.rest import ApiException

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NS = "pach-test"
FINALIZER = "test-kubelet/running"


class KMock:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(20) or self._error:
            raise RuntimeError(f"kmock did not start: {self._error}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001
            self._error = e
            self._ready.set()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as handler, kmock.Server(handler) as server:
            for plural, kind in (("pods", "Pod"), ("secrets", "Secret")):
                handler.resources[f"v1/{plural}"] = {"kind": kind, "singular": kind.lower(),
                                                     "namespaced": True, "subresources": {"status"}}
            self.handler, self.url = handler, str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def api_client(self) -> client.ApiClient:
        cfg = client.Configuration()
        cfg.host = self.url
        return client.ApiClient(cfg)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


@dataclass
class _Pod:
    name: str
    dir: Path
    proc: Optional[subprocess.Popen] = None
    log: Optional[object] = None
    reported: bool = False
    term_deadline: Optional[float] = None


class Kubelet:
    def __init__(self, kmock_: KMock, root: Path, images: dict[str, Path], namespace: str = NS):
        self.api = kmock_.api_client()
        self.core = client.CoreV1Api(self.api)
        self.root, self.images, self.ns = root, images, namespace
        self.pods: dict[str, _Pod] = {}        # written by the kubelet thread under _lock
        self._lock = threading.Lock()
        self.started: list[str] = []          # pod names, in start order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="test-kubelet", daemon=True)
        self._thread.start()

    # ---- the loop ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self._sync()
            except Exception as e:  # noqa: BLE001 - keep going; tests see the effect
                print(f"test kubelet: {e!r}", file=sys.stderr)

    def _sync(self) -> None:
        items = self.core.list_namespaced_pod(self.ns).items
        for p in items:
            pod = self.api.sanitize_for_serialization(p)
            meta = pod["metadata"]
            name = meta["name"]
            mine = FINALIZER in (meta.get("finalizers") or [])
            if not mine:
                if not meta.get("deletionTimestamp"):
                    self._admit(pod)
                continue
            r = self.pods.get(name)
            if r is None:
                continue
            if meta.get("deletionTimestamp"):
                self._terminate(pod, r)
            elif r.proc is not None and r.proc.poll() is not None and not r.reported:
                code = r.proc.returncode
                self._status(name, "Succeeded" if code == 0 else "Failed", exit_code=code)
                r.reported = True

    def _admit(self, pod: dict) -> None:
        name = pod["metadata"]["name"]
        try:
            self.core.patch_namespaced_pod(name, self.ns, {"metadata": {"finalizers": [FINALIZER]}})
        except ApiException as e:
            if e.status == 404:
                return
            raise
        with self._lock:
            old = self.pods.pop(name, None)
        if old is not None:
            self._reap(old)
        d = self.root / f"{name}-{uuid.uuid4().hex[:6]}"
        d.mkdir(parents=True)
        r = _Pod(name, d)
        with self._lock:
            self.pods[name] = r
        spec = pod["spec"]
        vols = {}
        for v in spec.get("volumes") or []:
            vols[v["name"]] = d / "volumes" / v["name"]
            vols[v["name"]].mkdir(parents=True)
        for c in spec.get("initContainers") or []:
            cmd, env = self._prepare(pod, c, vols)
            res = subprocess.run(cmd, env=env, cwd=d, capture_output=True, timeout=60)
            if res.returncode != 0:
                self._status(name, "Failed", exit_code=res.returncode, reason="Init:Error")
                r.reported = True
                return
        c = spec["containers"][0]
        cmd, env = self._prepare(pod, c, vols)
        r.log = open(d / "container.log", "ab")
        try:
            r.proc = subprocess.Popen(cmd, env=env, cwd=d, stdin=subprocess.DEVNULL, stdout=r.log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            self._status(name, "Failed", exit_code=128, reason=f"StartError: {e}")
            r.reported = True
            return
        self.started.append(name)
        self._status(name, "Running")

    def _prepare(self, pod: dict, c: dict, vols: dict[str, Path]) -> tuple[list[str], dict]:
        mapping = {m["mountPath"].rstrip("/"): str(vols[m["name"]]) for m in c.get("volumeMounts") or []}
        image_dir = self.images.get(c["image"])
        if image_dir is not None:
            for entry in os.listdir(image_dir):
                mapping.setdefault("/" + entry, str(image_dir / entry))
        alts = "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
        rx = re.compile(r"^(" + alts + r")(?=/|$)") if mapping else None
        argv = [*(c.get("command") or []), *(c.get("args") or [])]
        if rx is not None:
            argv = [rx.sub(lambda m: mapping[m.group(1)], a) for a in argv]
        home = Path(vols.get("home", self.root / "home"))
        home.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
        for e in c.get("env") or []:
            env[e["name"]] = self._env_value(pod, e)
        return argv, env

    def _env_value(self, pod: dict, e: dict) -> str:
        if "valueFrom" not in e:
            return e.get("value", "")
        src = e["valueFrom"]
        if "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            secret = self.api.sanitize_for_serialization(self.core.read_namespaced_secret(ref["name"], self.ns))
            if ref["key"] in (secret.get("stringData") or {}):
                return secret["stringData"][ref["key"]]
            return base64.b64decode(secret["data"][ref["key"]]).decode()
        field = src["fieldRef"]["fieldPath"]
        return {"metadata.name": pod["metadata"]["name"], "metadata.namespace": self.ns,
                "status.podIP": "127.0.0.1"}[field]

    def _status(self, name: str, phase: str, exit_code: Optional[int] = None, reason: str = "") -> None:
        state = {"running": {"startedAt": _now()}} if phase == "Running" else \
            {"terminated": {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error")}}
        status = {"phase": phase, "containerStatuses": [{
            "name": "user", "state": state, "image": "", "imageID": "", "ready": phase == "Running",
            "restartCount": 0}]}
        if phase == "Running":
            status["startTime"] = _now()
        try:
            self.core.patch_namespaced_pod_status(name, self.ns, {"status": status})
        except ApiException as e:
            if e.status != 404:
                raise

    def _terminate(self, pod: dict, r: _Pod) -> None:
        proc = r.proc
        if proc is not None and proc.poll() is None:
            if r.term_deadline is None:
                r.term_deadline = time.monotonic() + (pod["spec"].get("terminationGracePeriodSeconds") or 30)
                _killpg(proc.pid, signal.SIGTERM)
                return
            if time.monotonic() < r.term_deadline:
                return
        self._reap(r)
        with self._lock:
            self.pods.pop(r.name, None)
        self.core.patch_namespaced_pod(r.name, self.ns, {"metadata": {"finalizers": []}})

    def _reap(self, r: _Pod) -> None:
        if r.proc is not None:
            if r.proc.poll() is None:
                _killpg(r.proc.pid, signal.SIGKILL)
            r.proc.wait()
            _killpg(r.proc.pid, signal.SIGKILL)  # anything left in its session
        if r.log is not None:
            r.log.close()
            r.log = None

    # ---- for tests --------------------------------------------------------------------------
    def running(self) -> list[str]:
        with self._lock:
            pods = list(self.pods.items())
        return sorted(n for n, r in pods if r.proc is not None and r.proc.poll() is None)

    def log_of(self, name: str) -> str:
        with self._lock:
            r = self.pods.get(name)
        return (r.dir / "container.log").read_text(errors="replace") if r else ""

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for r in list(self.pods.values()):
            self._reap(r)
        self.pods.clear()
        self.api.close()


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _shim(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


# ---- fixtures -----------------------------------------------------------------------------------
FAKE_IMAGE = "test/fake-worker:1"
REAL_IMAGE = "test/worker:1"


@pytest.fixture(scope="session")
def kmock_server():
    k = KMock()
    try:
        yield k
    finally:
        k.close()


@pytest.fixture
def images(tmp_path):
    """Two worker images: the fake worker and the real one (see the module docstring)."""
    fake, real = tmp_path / "img-fake", tmp_path / "img-real"
    _shim(fake / "pach/python/bin/python3",
          f'[ "$1" = "-I" ] && shift\nexec {sys.executable} {HERE / "fake_worker.py"} "$@"\n')
    _shim(real / "pach/python/bin/python3",
          "# the bundle's python has the project installed; here PYTHONPATH does it (-I ignores it)\n"
          f'[ "$1" = "-I" ] && shift\nPYTHONPATH={ROOT} exec {sys.executable} "$@"\n')
    return {FAKE_IMAGE: fake, REAL_IMAGE: real}


@pytest.fixture
def cluster(kmock_server, tmp_path, images):
    """A clean namespace on kmock and a kubelet for it; at teardown nothing may be left."""
    ns = f"t{uuid.uuid4().hex[:8]}"
    kubelet = Kubelet(kmock_server, tmp_path / "node", images, namespace=ns)
    try:
        yield kubelet
    finally:
        kubelet.close()
        assert not _alive_marked(tmp_path), "processes left behind"


def _alive_marked(tmp_path: Path) -> list[int]:
    """Processes whose command line mentions this test's directory."""
    needle = str(tmp_path).encode()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        out.append(int(entry))
            except OSError:
                continue
    return out


def wait_for(pred, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(what)


def list_pods(kmock_server: KMock, ns: str) -> dict[str, dict]:
    with kmock_server.api_client() as api:
        core = client.CoreV1Api(api)
        return {p.metadata.name: api.sanitize_for_serialization(p) for p in core.list_namespaced_pod(ns).items}


def spec_json(pipeline: str, transform: dict, **extra) -> str:
    return json.dumps({"pipeline": {"name": pipeline, "project": {"name": "default"}},
                       "transform": transform, "input": {"pfs": {"repo": "in", "glob": "/*"}}, **extra})

