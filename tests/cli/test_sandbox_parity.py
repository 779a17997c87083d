"""Without bubblewrap, user code sees what it sees with it (issue 19).

The same pipeline runs on a real pachd under each sandbox (`PACH_SANDBOX=bwrap|userns`); its
user code prints what it sees (paths, ids, the root's entries, what is writable, the
environment the worker gives it) and copies its datum. The logs (`pachctl logs`) and the
output files must be the same under both; each sandbox is also checked on its own, so a
machine with only one of them still runs that half.
"""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from pachctl.config import Config
from pachctl.main import cli
from pachd.server import Pachd
from tests.tools import SANDBOXES, needs_bwrap, needs_userns

VIEW = ("echo in=$in; echo cwd=$(pwd); echo uid=$(id -u) gid=$(id -g); "
        "echo root: $(ls -A / | sort); echo pfs: $(ls -A /pfs | sort); echo data: $(cat $in); "
        "for d in /usr /etc /tmp /pfs/in /pfs/out; do test -w $d && echo $d writable || echo $d read-only; done; "
        "echo HOME=$HOME LANG=$LANG; echo PATH=$PATH; echo pid=$$; "
        "cp $in /pfs/out/; echo seen $in > /pfs/out/seen-$(basename $in)")


def run_pipeline(mode: str, tmp_path, monkeypatch) -> tuple[list[str], dict[str, str]]:
    """-> (the pipeline's log lines, {output path: content}) with PACH_SANDBOX=mode."""
    monkeypatch.setenv("PACH_SANDBOX", mode)
    pd = Pachd(tmp_path / f"pachd-{mode}", port=0, host="127.0.0.1").start()
    try:
        assert pd.pps.master.executor.mode == mode
        env = {"HOME": str(tmp_path), "PACH_CONFIG": str(tmp_path / f"config-{mode}.json"),
               "PACHD_ADDRESS": f"localhost:{pd.port}", "PACHCTL_NO_AUTOSTART": "1", "NO_COLOR": "1"}
        Config.load(env["PACH_CONFIG"], env=env)
        runner = CliRunner()

        def ok(*args, input=None):
            r = runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
            assert r.exit_code == 0, (args, r.stdout, r.stderr)
            return r.stdout

        ok("create", "repo", "in")
        ok("put", "file", "in@master:/a.txt", input="hello")
        ok("put", "file", "in@master:/b.txt", input="world")
        spec = {"pipeline": {"name": "view"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
                "parallelism_spec": {"constant": 1}, "transform": {"cmd": ["sh", "-c", VIEW]}}
        ok("create", "pipeline", input=json.dumps(spec))
        ok("wait", "commit", "view@master")
        raw, dec, pos, files = ok("list", "file", "view@master:/", "--raw"), json.JSONDecoder(), 0, {}
        while pos < len(raw.rstrip()):
            info, pos = dec.raw_decode(raw, pos)
            path = info["file"]["path"]
            files[path] = ok("get", "file", f"view@master:{path}")
            while pos < len(raw) and raw[pos].isspace():
                pos += 1
        logs = ok("logs", "-p", "view").splitlines()
        return logs, files
    finally:
        pd.stop(grace=0.5)


def datum_views(logs: list[str]) -> dict[str, list[str]]:
    """Log lines per datum (each datum's block starts with its `in=` line)."""
    views: dict[str, list[str]] = {}
    current = None
    for line in logs:
        if line.startswith("in="):
            current = views.setdefault(line, [])
        assert current is not None, logs
        current.append(line)
    return views


@pytest.mark.parametrize("mode", SANDBOXES)
def test_user_code_sees_pfs_paths(mode, tmp_path, monkeypatch):
    logs, files = run_pipeline(mode, tmp_path, monkeypatch)
    views = datum_views(logs)
    assert sorted(views) == ["in=/pfs/in/a.txt", "in=/pfs/in/b.txt"]
    a = views["in=/pfs/in/a.txt"]
    assert a[1:4] == ["cwd=/", f"uid={os.getuid()} gid={os.getgid()}", a[3]]
    assert {"pfs", "usr", "etc", "tmp", "proc", "dev"} <= set(a[3].split()[1:])
    assert a[4].split()[1:] == [".env", ".scratch", "in", "out"]
    assert a[5] == "data: hello"
    assert a[6:11] == ["/usr read-only", "/etc read-only", "/tmp writable", "/pfs/in writable", "/pfs/out writable"]
    assert a[11] == "HOME=/tmp LANG=C.UTF-8"
    assert files == {"/a.txt": "hello", "/b.txt": "world",
                     "/seen-a.txt": "seen /pfs/in/a.txt\n", "/seen-b.txt": "seen /pfs/in/b.txt\n"}


@needs_bwrap
@needs_userns
def test_logs_and_outputs_are_the_same_with_and_without_bubblewrap(tmp_path, monkeypatch):
    with_bwrap = run_pipeline("bwrap", tmp_path, monkeypatch)
    without = run_pipeline("userns", tmp_path, monkeypatch)
    assert datum_views(without[0]) == datum_views(with_bwrap[0])
    assert without[1] == with_bwrap[1]
