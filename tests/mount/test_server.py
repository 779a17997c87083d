"""`pachctl mount-server`: every route of Pachyderm's mount-server API over HTTP, on a TCP
port and on a unix socket, against a real pachd (with pps, for datum mode) and real FUSE."""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time

import pytest

from pachd.server import Pachd
from pachctl.client import PachClient
from pachctl.config import Config
from tests.cli.conftest import free_port
from tests.mount.conftest import Mounter, get_file, pachctl_argv, pytestmark, repo_msg  # noqa: F401
from proto.pfs_v2 import pfs_pb2 as pfs


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=60)
        self.sock_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.sock_path)


class Api:
    def __init__(self, port: int = 0, sock: str = ""):
        self.port, self.sock = port, sock

    def call(self, method: str, path: str, body=None):
        conn = UnixConnection(self.sock) if self.sock else http.client.HTTPConnection("127.0.0.1", self.port,
                                                                                      timeout=60)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            raw = r.read()
        finally:
            conn.close()
        if r.getheader("Content-Type", "").startswith("application/json"):
            return r.status, json.loads(raw)
        return r.status, raw.decode()

    def ok(self, method: str, path: str, body=None):
        status, out = self.call(method, path, body)
        assert status == 200, (method, path, status, out)
        return out


@pytest.fixture
def pachd_pps(tmp_path):
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1").start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


@pytest.fixture
def server_env(tmp_path, pachd_pps):
    home = tmp_path / "home"
    home.mkdir()
    e = {"HOME": str(home), "PACH_CONFIG": str(tmp_path / "config.json"),
         "PACHD_ADDRESS": f"localhost:{pachd_pps.port}", "PACHCTL_NO_AUTOSTART": "1", "NO_COLOR": "1"}
    Config.load(e["PACH_CONFIG"], env=e)
    return e


@pytest.fixture
def pclient(pachd_pps):
    with PachClient(f"localhost:{pachd_pps.port}") as c:
        yield c


def put(client, repo, files, branch="master"):
    from google.protobuf import wrappers_pb2
    r = repo_msg(repo)
    try:
        client.pfs.CreateRepo(pfs.CreateRepoRequest(repo=r))
    except Exception:  # noqa: BLE001
        pass

    def reqs():
        yield pfs.ModifyFileRequest(set_commit=pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name=branch)))
        for path, data in files.items():
            yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path))
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=data)))
    client.pfs.ModifyFile(reqs())


@pytest.fixture
def server(server_env, tmp_path):
    procs = []

    def start(*args):
        mount_dir = tmp_path / f"pfs{len(procs)}"
        log = tmp_path / f"server{len(procs)}.log"
        env = Mounter(server_env, tmp_path).env
        with open(log, "wb") as out:
            proc = subprocess.Popen(pachctl_argv("mount-server", "--mount-dir", mount_dir, *args), env=env,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append((proc, mount_dir))
        deadline = time.monotonic() + 30
        while "mount-server: serving" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        return proc, mount_dir, log
    try:
        yield start
    finally:
        for proc, mount_dir in procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            from pachctl.mount import unmount as um
            if um.find(str(mount_dir)) is not None:
                subprocess.run(["fusermount3", "-u", "-z", str(mount_dir)], capture_output=True)


def _exercise(api: Api, mount_dir, pclient, log):
    put(pclient, "images", {"/a.png": b"png-a", "/b.png": b"png-b", "/dir/c.txt": b"c"})
    put(pclient, "edits", {"/x": b"x"})
    assert api.ok("GET", "/health") == {"status": "running"}
    cfg = api.ok("GET", "/config")
    assert cfg["cluster_status"] == "AUTH_DISABLED" and cfg["pachd_address"].startswith("grpc://")
    assert api.ok("PUT", "/config", {"pachd_address": cfg["pachd_address"]}) == cfg  # same cluster: no change
    status, msg = api.call("PUT", "/config", {"pachd_address": ""})
    assert status == 400 and "poorly formatted" in msg
    repos = api.ok("GET", "/repos")
    assert {r["repo"]: r for r in repos}["images"] == {"project": "default", "repo": "images",
                                                       "branches": ["master"], "authorization": "off"}
    projects = api.ok("GET", "/projects")
    assert [p["project"]["name"] for p in projects] == ["default"]
    assert api.ok("GET", "/mounts")["mounted"] == []
    # mount read-only and read-write
    out = api.ok("PUT", "/_mount", {"mounts": [{"name": "images", "repo": "images", "branch": "master"},
                                               {"name": "edits_rw", "repo": "edits", "mode": "rw"}]})
    by = {m["name"]: m for m in out["mounted"]}
    assert by["images"]["state"] == "mounted" and by["images"]["mode"] == "ro"
    assert by["images"]["mountpoint"] == str(mount_dir / "images")
    assert by["images"]["status"].startswith("up to date on latest commit")
    assert by["edits_rw"]["mode"] == "rw"
    assert sorted(os.listdir(mount_dir)) == ["edits_rw", "images"]
    assert (mount_dir / "images/a.png").read_bytes() == b"png-a"
    # bad requests
    status, msg = api.call("PUT", "/_mount", {"mounts": [{"name": "n", "repo": "nope"}]})
    assert status == 400 and "nope" in msg
    status, msg = api.call("PUT", "/_mount", {"mounts": [{"name": "n", "repo": "images", "mode": "xx"}]})
    assert status == 400 and "'ro' or 'rw'" in msg
    status, msg = api.call("PUT", "/_mount", {"mounts": [{"repo": "images"}]})
    assert status == 400 and "no name specified" in msg
    # write and commit while mounted
    (mount_dir / "edits_rw/new.txt").write_bytes(b"written")
    api.ok("PUT", "/_commit", {"mount": "edits_rw"})
    assert get_file(pclient, "edits", "master", "/new.txt") == b"written"
    status, msg = api.call("PUT", "/_commit", {"mount": "images"})
    assert status == 500 and "read-only" in msg
    # unmount one (a writable one commits first)
    (mount_dir / "edits_rw/later.txt").write_bytes(b"later")
    out = api.ok("PUT", "/_unmount", {"mounts": ["edits_rw"]})
    assert [m["name"] for m in out["mounted"]] == ["images"]
    assert get_file(pclient, "edits", "master", "/later.txt") == b"later"
    assert os.listdir(mount_dir) == ["images"]
    # a commit mount shows how far behind it is
    ci = pclient.pfs.InspectCommit(pfs.InspectCommitRequest(commit=pfs.Commit(
        repo=repo_msg("images"), branch=pfs.Branch(repo=repo_msg("images"), name="master"))))
    put(pclient, "images", {"/d.png": b"png-d"})
    out = api.ok("PUT", "/_mount", {"mounts": [{"name": "old", "repo": "images", "commit": ci.commit.id}]})
    old = {m["name"]: m for m in out["mounted"]}["old"]
    assert old["commit"] == ci.commit.id and old["how_many_commits_behind"] == 1
    assert sorted(os.listdir(mount_dir / "old")) == ["a.png", "b.png", "dir"]
    out = api.ok("PUT", "/_unmount_all")
    assert out["mounted"] == [] and os.listdir(mount_dir) == []
    # datum mode: one datum's files of each input, named as a worker sees them, plus out/
    assert api.ok("GET", "/datums") == {"num_datums": 0, "input": None, "idx": 0, "all_datums_received": False}
    spec = {"input": {"cross": [{"pfs": {"repo": "images", "glob": "/*.png"}},
                                {"pfs": {"repo": "edits", "glob": "/", "name": "e"}}]}}
    d = api.ok("PUT", "/datums/_mount", spec)
    assert d["idx"] == 0 and d["num_datums"] == 3 and d["all_datums_received"] is True and d["id"]
    assert sorted(os.listdir(mount_dir)) == ["e", "images", "out"]
    seen = [os.listdir(mount_dir / "images")]
    assert sorted(os.listdir(mount_dir / "e")) == ["later.txt", "new.txt", "x"]
    (mount_dir / "out/result").write_bytes(b"scratch")  # out is writable, never committed
    status, msg = api.call("PUT", "/_mount", {"mounts": [{"name": "n", "repo": "images"}]})
    assert status == 400 and "datum mode" in msg
    status, msg = api.call("PUT", "/datums/_prev")
    assert status == 400 and "first datum" in msg
    assert api.ok("PUT", "/datums/_next")["idx"] == 1
    seen.append(os.listdir(mount_dir / "images"))
    assert api.ok("PUT", "/datums/_next")["idx"] == 2
    seen.append(os.listdir(mount_dir / "images"))
    status, msg = api.call("PUT", "/datums/_next")
    assert status == 400 and "last datum" in msg
    assert sorted(x for s in seen for x in s) == ["a.png", "b.png", "d.png"] and all(len(s) == 1 for s in seen)
    assert api.ok("PUT", "/datums/_prev")["idx"] == 1
    st = api.ok("GET", "/datums")
    assert st["num_datums"] == 3 and st["idx"] == 1 and st["input"]["cross"][0]["pfs"]["repo"] == "images"
    status, msg = api.call("PUT", "/datums/_mount", b"{}")
    assert status == 400 and "input" in msg
    api.ok("PUT", "/_unmount_all")
    assert os.listdir(mount_dir) == [] and api.ok("GET", "/datums")["num_datums"] == 0
    # auth routes answer as Pachyderm's with auth off
    status, msg = api.call("PUT", "/auth/_login")
    assert status == 500 and "auth isn't activated" in msg
    status, msg = api.call("PUT", "/auth/_login_token", {"oidc": "x"})
    assert status == 500 and "not activated" in msg
    assert api.call("PUT", "/auth/_logout")[0] == 200
    status, _ = api.call("GET", "/nope")
    assert status == 404


def test_mount_server_on_a_port(server, pclient, tmp_path):
    port = free_port()
    proc, mount_dir, log = server("--port", port)
    _exercise(Api(port=port), mount_dir, pclient, log)
    proc.terminate()
    assert proc.wait(timeout=60) == 0, log.read_text()
    assert os.listdir(mount_dir) == []


def test_mount_server_on_a_unix_socket_commits_at_exit(server, pclient, tmp_path):
    sock = str(tmp_path / "mount.sock")
    proc, mount_dir, log = server("--sock-path", sock)
    api = Api(sock=sock)
    put(pclient, "r", {"/f": b"1"})
    api.ok("PUT", "/_mount", {"mounts": [{"name": "r", "repo": "r", "mode": "rw"}]})
    (mount_dir / "r/at-exit").write_bytes(b"bye")
    proc.send_signal(2)  # SIGINT: writable mounts are committed, then the server stops
    assert proc.wait(timeout=60) == 0, log.read_text()
    assert get_file(pclient, "r", "master", "/at-exit") == b"bye"
    assert not os.path.exists(sock)


def test_mount_server_full_suite_on_a_unix_socket(server, pclient, tmp_path):
    sock = str(tmp_path / "s.sock")
    proc, mount_dir, log = server("--sock-path", sock)
    _exercise(Api(sock=sock), mount_dir, pclient, log)


def test_a_pipeline_runs_on_what_a_write_mount_committed(server_env, pclient, tmp_path):
    """Write through `pachctl mount -r in+w`; the one commit at unmount triggers the pipeline,
    whose output reflects exactly the mount's changes."""
    from google.protobuf import json_format

    from pps.worker.sandbox import bwrap_usable
    from proto.pps_v2 import pps_pb2
    if not bwrap_usable():
        pytest.skip("bubblewrap (bwrap) not usable here: pipelines cannot run")
    put(pclient, "in", {"/keep.txt": b"keep\n", "/drop.txt": b"drop\n"})
    spec = {"pipeline": {"name": "upper"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", "for f in /pfs/in/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"]}}
    pclient.pps.CreatePipeline(json_format.ParseDict(spec, pps_pb2.CreatePipelineRequest()))
    try:
        out_repo = repo_msg("upper")
        head = pfs.Commit(repo=out_repo, branch=pfs.Branch(repo=out_repo, name="master"))
        pclient.pfs.InspectCommit(pfs.InspectCommitRequest(commit=head, wait=pfs.FINISHED), timeout=120)
        mounter = Mounter(server_env, tmp_path)
        try:
            m = mounter.mount(tmp_path / "mnt", "-r", "in+w")
            (m.path / "in/new.txt").write_bytes(b"new\n")
            os.unlink(m.path / "in/drop.txt")
            with open(m.path / "in/keep.txt", "a") as f:
                f.write("more\n")
            mounter.unmount(m)
            assert m.proc.returncode == 0, m.stderr()
        finally:
            mounter.cleanup()
        in_head = pclient.pfs.InspectCommit(pfs.InspectCommitRequest(commit=pfs.Commit(
            repo=repo_msg("in"), branch=pfs.Branch(repo=repo_msg("in"), name="master"))))
        out_ci = pclient.pfs.InspectCommit(pfs.InspectCommitRequest(
            commit=pfs.Commit(repo=out_repo, id=in_head.commit.id), wait=pfs.FINISHED), timeout=120)
        assert out_ci.error == ""
        files = sorted(fi.file.path for fi in pclient.pfs.ListFile(pfs.ListFileRequest(
            file=pfs.File(commit=pfs.Commit(repo=out_repo, id=in_head.commit.id), path="/"))))
        assert files == ["/keep.txt", "/new.txt"]
        assert get_file(pclient, "upper", in_head.commit.id, "/keep.txt") == b"KEEP\nMORE\n"
        assert get_file(pclient, "upper", in_head.commit.id, "/new.txt") == b"NEW\n"
    finally:
        pclient.pps.DeletePipeline(pps_pb2.DeletePipelineRequest(pipeline=pps_pb2.Pipeline(name="upper"),
                                                                 force=True))


def test_failed_commit_keeps_staged_changes_for_the_next_try(server, pachd_pps, tmp_path):
    """pachd gone: PUT /_commit fails with the reason and commits nothing; the staged changes
    stay mounted and readable, and the next /_commit (pachd back) commits them, once."""
    port, root = pachd_pps.port, pachd_pps.root
    with PachClient(f"localhost:{port}") as c:
        put(c, "r", {"/f": b"1"})
    sock = str(tmp_path / "m.sock")
    proc, mount_dir, log = server("--sock-path", sock)
    api = Api(sock=sock)
    api.ok("PUT", "/_mount", {"mounts": [{"name": "r", "repo": "r", "mode": "rw"}]})
    (mount_dir / "r/new").write_bytes(b"staged")
    pachd_pps.stop(grace=0.1)
    status, msg = api.call("PUT", "/_commit", {"mount": "r"})
    assert status == 500 and "pachd is not reachable" in msg, msg
    assert (mount_dir / "r/new").read_bytes() == b"staged"
    back = Pachd(root, port=port, host="127.0.0.1", enable_pps=False).start()
    try:
        with PachClient(f"localhost:{port}") as c:
            r = repo_msg("r")
            head = pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name="master"))
            before = c.pfs.InspectCommit(pfs.InspectCommitRequest(commit=head)).commit.id
            assert get_file(c, "r", "master", "/f") == b"1"
            status, msg = api.call("PUT", "/_commit", {"mount": "r"})
            assert status == 200, msg
            assert get_file(c, "r", "master", "/new") == b"staged"
            after = [ci.commit.id for ci in c.pfs.ListCommit(pfs.ListCommitRequest(repo=r, to=head))]
            assert after[1] == before and len(after) == 2  # exactly one new commit
            api.ok("PUT", "/_unmount_all")
            assert [ci.commit.id for ci in c.pfs.ListCommit(pfs.ListCommitRequest(repo=r, to=head))] == after
        proc.terminate()
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        back.stop(grace=0.5)


def test_writes_during_a_commit_wait_and_stay_out_of_it(server, server_env, pclient, tmp_path):
    """fs.Gate end to end: a write that arrives while /_commit streams a 64 MiB file waits for
    the commit to finish and is not in it (the commit is the snapshot taken when it began);
    the next /_commit carries it."""
    import threading
    server_env["PACHCTL_LOCAL_UPLOAD"] = "0"  # stream the bytes over gRPC: a commit with real work
    put(pclient, "r", {"/f": b"1"})
    sock = str(tmp_path / "g.sock")
    proc, mount_dir, log = server("--sock-path", sock)
    api = Api(sock=sock)
    api.ok("PUT", "/_mount", {"mounts": [{"name": "r", "repo": "r", "mode": "rw"}]})
    with open(mount_dir / "r/big", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    journal = next((tmp_path / "home" / ".pachyderm" / "mounts" / "staging").glob("*/r/journal-*.jsonl"))
    result = {}
    committing = threading.Thread(target=lambda: result.update(r=api.call("PUT", "/_commit", {"mount": "r"})))
    committing.start()
    deadline = time.monotonic() + 120
    while '["begin"' not in journal.read_text():  # the gate is closed and the upload started
        assert time.monotonic() < deadline and committing.is_alive(), (result, log.read_text())
        time.sleep(0.01)
    in_progress = committing.is_alive()
    (mount_dir / "r/late").write_bytes(b"late")  # waits at the gate until the commit is done
    committing.join(timeout=300)
    assert result["r"][0] == 200, result
    assert in_progress, "the commit ended before the write was sent; nothing was tested"
    events = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    done = next(i for i, e in enumerate(events) if e[0] == "done")
    late = next(i for i, e in enumerate(events) if e[:2] == ["set", "/late"])
    assert late > done, events  # the write was applied only after the commit finished
    r = repo_msg("r")
    head = pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name="master"))
    assert len(get_file(pclient, "r", "master", "/big")) == 64 << 20
    names = [fi.file.path for fi in pclient.pfs.ListFile(pfs.ListFileRequest(file=pfs.File(commit=head, path="/")))]
    assert "/late" not in names and "/big" in names
    api.ok("PUT", "/_commit", {"mount": "r"})
    assert get_file(pclient, "r", "master", "/late") == b"late"
    proc.terminate()
    assert proc.wait(timeout=60) == 0, log.read_text()
