"""Fixtures for the pachctl CLI tests.

- `pachd`: a real in-process pachd on a free loopback port, fresh for each test.
- `env`: an isolated environment (HOME, PACH_CONFIG in tmp; PACHD_ADDRESS at that pachd;
  autostart off) whose config file is written before the test runs.
- `pachctl(*args, input=None)`: runs the real `pachctl` root command (click's CliRunner on
  pachctl.main.cli, the console script's entry point) in that environment.
- `client`: a PachClient on the same pachd, for setting up and checking state.
- `moto_server`: a real S3 server (moto) for `put file -f s3://...` (tests marked s3).
- `console_script`: argv prefix that runs the installed `pachctl` console script, or an
  identical wrapper when the package is not installed in this interpreter.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pachctl.client import PachClient  # noqa: E402
from pachctl.config import Config  # noqa: E402
from pachctl.main import cli  # noqa: E402
from pachd.server import Pachd  # noqa: E402
from tests.s3servers import moto_server  # noqa: E402,F401


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pachd(tmp_path):
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", enable_pps=False).start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


@pytest.fixture
def env(tmp_path, pachd):
    home = tmp_path / "home"
    home.mkdir()
    e = {
        "HOME": str(home),
        "PACH_CONFIG": str(tmp_path / "config.json"),
        "PACHD_ADDRESS": f"localhost:{pachd.port}",
        "PACHCTL_NO_AUTOSTART": "1",
        "PACH_CONTEXT": None,
        "NO_COLOR": "1",
    }
    Config.load(e["PACH_CONFIG"], env={k: v for k, v in e.items() if v is not None})
    return e


class Result:
    def __init__(self, r):
        self.exit_code = r.exit_code
        self.stdout = r.stdout
        self.stderr = r.stderr
        self.stdout_bytes = r.stdout_bytes
        self.exception = r.exception

    def __repr__(self) -> str:
        return f"<Result exit={self.exit_code} stdout={self.stdout!r} stderr={self.stderr!r}>"


@pytest.fixture
def pachctl(env):
    runner = CliRunner()

    def run(*args, input=None, extra_env=None):
        e = dict(env)
        e.update(extra_env or {})
        r = runner.invoke(cli, [str(a) for a in args], input=input, env=e, catch_exceptions=True)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Result(r)

    return run


@pytest.fixture
def ok(pachctl):
    """Like pachctl, but asserts success and returns stdout."""
    def run(*args, input=None):
        r = pachctl(*args, input=input)
        assert r.exit_code == 0, r
        return r.stdout
    return run


@pytest.fixture
def client(pachd):
    with PachClient(f"localhost:{pachd.port}") as c:
        yield c


@pytest.fixture(scope="session")
def console_script(tmp_path_factory):
    installed = Path(sys.executable).parent / "pachctl"
    if installed.exists():
        return [str(installed)]
    found = shutil.which("pachctl")
    if found and Path(found).read_text(errors="replace").startswith("#!"):
        return [found]
    # The wrapper pip would generate for `pachctl = "pachctl.main:main"`.
    bindir = tmp_path_factory.mktemp("bin")
    script = bindir / "pachctl"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      "from pachctl.main import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return [str(script)]


def subprocess_env(env: dict) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("PACH_CONTEXT", "PACHD_ADDRESS")}
    e.update({k: v for k, v in env.items() if v is not None})
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e
