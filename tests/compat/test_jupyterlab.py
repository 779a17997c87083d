"""jupyterlab-pachyderm 2.12.2's server extension against our pachd: `jupyter server` runs
with the extension in its own venv (the extension pins pachyderm-sdk 2.10.7, which cannot
share a venv with the 2.12.2 the other tests use), and the test calls its HTTP routes as the
JupyterLab front end does: list repos and branches, mount a commit and browse its files
(with pagination), download a file, mount datums of an input spec and page through them.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pachyderm_sdk.api import pfs

from tests.sdk_clients import sdk_clients


@pytest.fixture(scope="session")
def jlp_python():
    """The python of a venv with jupyterlab-pachyderm 2.12.2 (see tests/compat/venvs.py)."""
    from tests.compat.venvs import client_python
    return client_python("jupyterlab-pachyderm-2.12.2", "jupyterlab-pachyderm==2.12.2", "JLP_PYTHON")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Jupyter:
    def __init__(self, py: Path, pachd_port: int, root: Path):
        self.port = _free_port()
        root.mkdir()
        env = {**os.environ, "PACHD_ADDRESS": f"grpc://localhost:{pachd_port}",
               "PACH_CONFIG": str(root.parent / "pach-config.json"), "HOME": str(root.parent),
               "JUPYTER_CONFIG_DIR": str(root.parent / "jupyter-config"), "JUPYTER_RUNTIME_DIR": str(root.parent / "rt"),
               # where the extension keeps its view of mounted files (default /pfs: root only)
               "PFS_MOUNT_DIR": str(root.parent / "pfs")}
        self.log_path = root.parent / "jupyter.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(py), "-m", "jupyter_server", f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1",
             "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
             "--ServerApp.open_browser=False", f"--ServerApp.root_dir={root}",
             "--ServerApp.allow_root=True", "--ServerApp.jpserver_extensions={'jupyterlab_pachyderm': True}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=root)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.call("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("jupyter server did not start:\n"
                                       + (root.parent / "jupyter.log").read_text()[-3000:])
                time.sleep(0.2)

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else (b"" if method in ("PUT", "POST") else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw)
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read().decode(errors="replace")

    def ext(self, method: str, path: str, body=None):
        return self.call(method, "/pachyderm/v2" + path, body)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def jupyter(jlp_python, pachd_pps, tmp_path):
    j = Jupyter(jlp_python, pachd_pps.port, tmp_path / "notebooks")
    try:
        yield j
    finally:
        j.close()


def test_jupyterlab_pachyderm_browses_repos_files_and_datums(pachd_pps, jupyter):
    with sdk_clients() as make:
        c = make(pachd_pps.port)
        for name in ("images", "labels"):
            c.pfs.create_repo(repo=pfs.Repo(name=name))
        with c.pfs.commit(branch=pfs.Branch.from_uri("images@master")) as cm:
            for i in range(5):
                cm.put_file_from_bytes(path=f"/img{i}.png", data=b"png%d" % i)
        with c.pfs.commit(branch=pfs.Branch.from_uri("labels@dev")) as cm2:
            cm2.put_file_from_bytes(path="/a.txt", data=b"cat")
            cm2.put_file_from_bytes(path="/b.txt", data=b"dog")

    code, health = jupyter.ext("GET", "/health")
    assert code == 200, f"the extension did not answer ({code}); jupyter's log:\n" + \
        jupyter.log_path.read_text(errors="replace")[-3000:]
    assert health["status"] in ("HEALTHY_INVALID_CLUSTER", "HEALTHY_NO_AUTH", "HEALTHY_LOGGED_IN"), health
    assert health["status"] == "HEALTHY_NO_AUTH"
    code, repos = jupyter.ext("GET", "/repos")
    assert code == 200, repos
    by_name = {r["name"]: r for r in repos.values()}
    assert set(by_name) == {"images", "labels"}
    assert [b["name"] for b in by_name["labels"]["branches"]] == ["dev"]

    # mount a commit by branch and browse it; pagination
    code, out = jupyter.ext("PUT", "/explore/mount", {"commit_uri": "images@master"})
    assert code == 200, out
    code, listing = jupyter.ext("GET", "/pfs/images")
    assert code == 200, listing
    assert sorted(x["name"] for x in listing["content"]) == [f"img{i}.png" for i in range(5)]
    code, page = jupyter.ext("GET", "/pfs/images?number=2")
    assert code == 200 and [x["name"] for x in page["content"]] == ["img0.png", "img1.png"], page
    code, page2 = jupyter.ext("GET", "/pfs/images?number=2&pagination_marker=" +
                              urllib.request.quote("default/images@master:/img1.png"))
    assert code == 200, page2
    assert [x["name"] for x in page2["content"]][:1] == ["img2.png"], page2
    code, f = jupyter.ext("GET", "/pfs/images/img3.png?content=1&format=base64&type=file")
    assert code == 200, f
    import base64
    assert base64.b64decode(f["content"]) == b"png3"
    code, out = jupyter.ext("PUT", "/explore/mount", {"commit_uri": "fake@repo/fakebranch"})
    assert code >= 400

    # datums of an input spec: mount the first, page with next/prev, view its files
    spec = {"input": {"cross": [{"pfs": {"repo": "images", "glob": "/*", "name": "img"}},
                                {"pfs": {"repo": "labels", "branch": "dev", "glob": "/"}}]}}
    code, d = jupyter.ext("PUT", "/datums/_mount", spec)
    assert code == 200, d
    assert d["idx"] == 0 and d["num_datums_received"] == 5 and d["all_datums_received"] is True
    first = d["id"]
    code, view = jupyter.ext("GET", "/view_datum")
    assert code == 200 and len(view["content"]) == 2, view
    code, img = jupyter.ext("GET", "/view_datum/img")
    assert code == 200 and len(img["content"]) == 1, img
    code, lab = jupyter.ext("GET", "/view_datum/labels_dev")
    assert code == 200 and sorted(x["name"] for x in lab["content"]) == ["a.txt", "b.txt"], lab
    code, d = jupyter.ext("PUT", "/datums/_next")
    assert code == 200 and d["idx"] == 1 and d["id"] != first, d
    code, d = jupyter.ext("PUT", "/datums/_prev")
    assert code == 200 and d["idx"] == 0 and d["id"] == first, d
    code, cur = jupyter.ext("GET", "/datums")
    assert code == 200 and json.loads(cur["input"]) == spec["input"] and cur["num_datums_received"] == 5
