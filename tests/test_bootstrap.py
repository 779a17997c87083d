"""scripts/bootstrap.sh's system-package step on a machine without bubblewrap, graphviz, fuse3
(issue 19): those tools are hidden from PATH; `id`, `sudo` and `apt-get` are stand-ins that
play root / a user with or without passwordless sudo / a package manager that needs
`apt-get update` first, and record what they were asked. (Really installing packages, as
root, without sudo, is shown in a fresh Debian container: docs/fresh-machine.md.)

Each run reuses this checkout's venv through a stand-in ./.venv whose install stamp is current,
so the script goes through its checks and exits without touching pip.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import path_without

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = ["bwrap", "dot", "fusermount3"]


@pytest.fixture
def machine(tmp_path):
    """-> run(uid, sudo, apt) returning (exit code, stdout, [apt-get calls])."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "examples/requirements.txt").read_bytes())
    (venv / ".installed").write_text(want.hexdigest()[:16] + "\n")
    calls = tmp_path / "apt-calls"

    def run(uid: int, sudo: str = "none", apt: str = "ok", extra_env: dict | None = None):
        fake = tmp_path / f"fake-{uid}-{sudo}-{apt}"
        bindir = path_without(HIDDEN + ["id", "sudo", "apt-get"], tmp_path / f"bin-{uid}-{sudo}-{apt}")
        fake.mkdir()
        _script(fake / "id", f'[ "$1" = -u ] && echo {uid} && exit 0; exec /usr/bin/id "$@"')
        if sudo == "passwordless":
            _script(fake / "sudo", '[ "$1" = -n ] && shift; exec "$@"')
        elif sudo == "password":
            _script(fake / "sudo", 'echo "sudo: a password is required" >&2; exit 1')
        # apt: "ok" installs; "needs-update" fails until `apt-get update` ran; "broken" always fails
        _script(fake / "apt-get", f'echo "$*" >> {calls}\n'
                                  f'case "{apt}:$1" in\n'
                                  f'  ok:*) exit 0;;\n'
                                  f'  needs-update:update) touch {fake}/updated; exit 0;;\n'
                                  f'  needs-update:install) [ -e {fake}/updated ] && exit 0; '
                                  f'echo "E: Unable to locate package bubblewrap" >&2; exit 100;;\n'
                                  f'  *) echo "E: network unreachable" >&2; exit 100;;\n'
                                  f'esac')
        calls.unlink(missing_ok=True)
        env = {"PATH": f"{fake}:{bindir}", "HOME": str(tmp_path), "VENV": str(venv),
               "PYTHON": sys.executable, **(extra_env or {})}
        p = subprocess.run(["bash", str(ROOT / "scripts/bootstrap.sh")], env=env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        made = calls.read_text().splitlines() if calls.exists() else []
        return p.returncode, p.stdout + p.stderr, made

    return run


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_root_installs_what_is_missing_in_one_line(machine):
    code, out, calls = machine(uid=0, apt="needs-update")
    assert code == 0, out
    assert out == "bootstrap: installing system packages: bubblewrap graphviz fuse3 (apt-get install)\n"
    assert calls == ["install -y -qq bubblewrap graphviz fuse3", "update -qq",
                     "install -y -qq bubblewrap graphviz fuse3"]


def test_passwordless_sudo_installs_through_sudo(machine):
    code, out, calls = machine(uid=1000, sudo="passwordless")
    assert code == 0, out
    assert out == "bootstrap: installing system packages: bubblewrap graphviz fuse3 (apt-get install via sudo)\n"
    assert calls == ["install -y -qq bubblewrap graphviz fuse3"]


@pytest.mark.parametrize("sudo", ["none", "password"])
def test_without_root_one_line_says_what_to_run(machine, sudo):
    code, out, calls = machine(uid=1000, sudo=sudo)
    assert code == 0, out
    assert out == ("bootstrap: missing system packages, run: sudo apt-get install bubblewrap graphviz fuse3"
                   "   (until then the tests that need them are skipped)\n")
    assert calls == []


def test_a_failed_install_is_one_line_and_not_fatal(machine):
    code, out, calls = machine(uid=0, apt="broken")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "bootstrap: installing system packages: bubblewrap graphviz fuse3 (apt-get install)"
    assert lines[1].startswith("bootstrap: apt-get install bubblewrap graphviz fuse3 failed (log: ")
    assert lines[1].endswith("); the tests that need them are skipped") and len(lines) == 2
    log = lines[1].split("(log: ")[1].split(")")[0]
    assert "E: network unreachable" in Path(log).read_text()
    os.unlink(log)


def test_opting_out_only_says_what_is_missing(machine):
    code, out, calls = machine(uid=0, extra_env={"PACH_NO_SYSTEM_PACKAGES": "1"})
    assert code == 0 and calls == []
    assert out == ("bootstrap: missing system packages: bubblewrap graphviz fuse3 (Debian names; not "
                   "installing them here); the tests that need them are skipped\n")
