"""The `pachctl` console script as a real process: version, subscribe, and zero-setup autostart."""
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from tests.cli.conftest import free_port, subprocess_env
from pachctl import daemon
from pachd.misc_api import version_string


def run(argv, env, input=None, timeout=60):
    return subprocess.run(argv, env=env, input=input, capture_output=True, text=True, timeout=timeout)


def test_console_script_version_and_errors(console_script, env):
    e = subprocess_env(env)
    r = run(console_script + ["version"], e)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[2].split() == ["pachd", version_string()]
    r = run(console_script + ["inspect", "repo", "nope"], e)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "repo default/nope not found\n")
    r = run(console_script + ["put", "file", "nope@master:/x"], e, input="data")
    assert (r.returncode, r.stderr) == (1, "repo default/nope not found\n")


def _lines(stream, q):
    for line in stream:
        q.put(line)


def test_subscribe_commit_streams(console_script, env, ok):
    ok("create", "repo", "r")
    ok("put", "file", "r@master:/a", input="1")
    proc = subprocess.Popen(console_script + ["subscribe", "commit", "r@master"], env=subprocess_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    q: queue.Queue = queue.Queue()
    t = threading.Thread(target=_lines, args=(proc.stdout, q), daemon=True)
    t.start()
    try:
        header = q.get(timeout=20)
        assert header.split() == ["PROJECT", "REPO", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "CREATOR", "DESCRIPTION"]
        first = q.get(timeout=20).split()
        assert first[:2] == ["default", "r"] and first[-2:] == ["USER", "-"]
        ok("put", "file", "r@master:/b", input="22")
        second = q.get(timeout=20).split()
        assert second[1] == "r" and second[2] != first[2] and "3B" in second
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        t.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture
def isolated(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    e = subprocess_env({"HOME": str(home), "PACH_CONFIG": str(tmp_path / "config.json"),
                        "PACHD_ADDRESS": f"localhost:{port}", "PACHCTL_AUTOSTART": "1"})
    e.pop("PACHCTL_NO_AUTOSTART", None)
    yield e, home, port
    info = daemon.running({"HOME": str(home)})
    if info is not None:  # never leave a pachd behind, even when the test failed
        os.kill(info["pid"], signal.SIGKILL)


def test_autostart_then_shutdown(console_script, isolated):
    e, home, port = isolated
    r = run(console_script + ["create", "repo", "images"], e)
    assert r.returncode == 0, r.stderr
    data, log = home / ".pachyderm" / "data", home / ".pachyderm" / "pachd.log"
    assert re.fullmatch(
        rf"pachctl: no pachd answered at localhost:{port}, so one was started in the background "
        rf"\(pid \d+; data in {re.escape(str(data))}; log in {re.escape(str(log))}; "
        r"stop it with `pachctl shutdown`\)\n", r.stderr), r.stderr
    pid = json.loads((home / ".pachyderm" / "pachd.pid").read_text())["pid"]
    assert data.is_dir() and log.exists()
    r = run(console_script + ["list", "repo"], e)  # already running: no second start, no message
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.splitlines()[1].split()[:2] == ["default", "images"]
    r = run(console_script + ["daemon", "status"], e)
    assert r.returncode == 0 and f"pid {pid}, port {port}" in r.stdout
    r = run(console_script + ["shutdown"], e)
    assert (r.returncode, r.stderr) == (0, f"pachd (pid {pid}) stopped\n")
    assert not (home / ".pachyderm" / "pachd.pid").exists()
    assert not daemon.alive(pid)  # gone (or a zombie of an init that does not reap)
    r = run(console_script + ["list", "repo"], {**e, "PACHCTL_NO_AUTOSTART": "1"})
    assert r.returncode == 1 and r.stderr.startswith(f"could not connect to pachd at grpc://localhost:{port}")
    # the next command starts it again, on the same data
    r = run(console_script + ["list", "repo"], e)
    assert r.returncode == 0 and "images" in r.stdout and "started in the background" in r.stderr
    r = run(console_script + ["daemon", "stop"], e)
    assert r.returncode == 0 and r.stderr.endswith("stopped\n")


def test_autostart_failure_points_at_log(console_script, isolated):
    e, home, port = isolated
    (home / ".pachyderm").mkdir()
    (home / ".pachyderm" / "data").write_text("not a directory")  # pachd cannot open its root
    start = time.monotonic()
    r = run(console_script + ["list", "repo"], e)
    assert r.returncode == 1
    log = home / ".pachyderm" / "pachd.log"
    assert f"pachd exited while starting; see its log at {log}" in r.stderr
    assert "Traceback" not in r.stderr.splitlines()[0]
    assert time.monotonic() - start < 20


def test_process_ends_with_all_output_written(console_script, env, ok, tmp_path):
    """The console script ends itself with os._exit (pachctl.main): nothing buffered may be
    lost on the way, whether the output is a pipe or a file, and the exit code stays."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    e = subprocess_env(env)
    ok("create", "repo", "r")
    assert subprocess.run(console_script + ["put", "file", "r@master:/d/x.bin", "-f", str(src)], env=e,
                          capture_output=True, timeout=60).returncode == 0
    got = subprocess.run(console_script + ["get", "file", "r@master:/d/x.bin"], env=e, capture_output=True,
                         timeout=60)
    assert got.returncode == 0 and got.stdout == data, got.stderr
    out = tmp_path / "out.bin"
    r = subprocess.run(console_script + ["get", "file", "r@master:/d/x.bin", "-o", str(out)], env=e,
                       capture_output=True, timeout=60)
    assert r.returncode == 0 and out.read_bytes() == data, r.stderr
    listing = subprocess.run(console_script + ["list", "file", "r@master:/d/"], env=e, capture_output=True,
                             text=True, timeout=60)
    assert listing.returncode == 0 and listing.stdout.splitlines()[1].endswith("/d/x.bin"), listing
    r = subprocess.run(console_script + ["get", "file", "r@master:/d/nope"], env=e, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "nope" in r.stderr and r.stdout == ""


def test_a_crashed_pachd_named_explicitly_is_not_answered_by_a_fresh_one(console_script, tmp_path):
    """A pachd started by hand with its own --root, named by the context; it is killed -9.
    pachctl must say nothing answers there, not start a fresh pachd on ~/.pachyderm/data that
    would answer with none of the user's repos."""
    from tests.reliability.harness import CrashablePachd
    home = tmp_path / "home"
    home.mkdir()
    pd = CrashablePachd(tmp_path / "mine").start()
    try:
        e = subprocess_env({"HOME": str(home), "PACH_CONFIG": str(tmp_path / "config.json")})
        for k in ("PACHCTL_NO_AUTOSTART", "PACHD_ADDRESS", "PACH_CONTEXT"):
            e.pop(k, None)
        r = run(console_script + ["config", "set", "context", "mine"], e,
                input=json.dumps({"pachd_address": f"grpc://localhost:{pd.port}"}))
        assert r.returncode == 0, r.stderr
        assert run(console_script + ["config", "set", "active-context", "mine"], e).returncode == 0
        assert run(console_script + ["create", "repo", "precious"], e).returncode == 0
        pd.kill9()
        for env in (e, {**e, "PACHD_ADDRESS": f"localhost:{pd.port}"}):
            r = run(console_script + ["list", "repo"], env)
            assert r.returncode == 1 and r.stdout == ""
            assert r.stderr.startswith(f"could not connect to pachd at grpc://localhost:{pd.port}: "), r.stderr
            named = "the context 'mine'" if "PACHD_ADDRESS" not in env else f"PACHD_ADDRESS=localhost:{pd.port}"
            assert (f"; {named} names this address, so pachctl did not start a pachd of its own there "
                    f"(it would not have your data): start your pachd again with its --root, or set "
                    f"PACHCTL_AUTOSTART=1 to start one with data in {home / '.pachyderm' / 'data'}\n") in r.stderr
            assert r.stderr.count("\n") == 1
            assert not (home / ".pachyderm" / "pachd.pid").exists() and not (home / ".pachyderm" / "data").exists()
        # the user's pachd, restarted on its root, still has the repo
        pd.start()
        r = run(console_script + ["list", "repo"], {**e, "PACHD_ADDRESS": f"localhost:{pd.port}"})
        assert r.returncode == 0 and "precious" in r.stdout, r.stderr
    finally:
        pd.kill9()
