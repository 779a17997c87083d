"""The failpoint switch itself: names are checked, each named place exists exactly once in the
code, an armed point kills its process with SIGKILL at the named hit, and unarmed it does nothing."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pfs import failpoints

ROOT = Path(__file__).resolve().parents[2]
CALL = re.compile(r"""\bfailpoint\(\s*["']([^"']+)["']\s*\)""")


def _call_sites() -> dict[str, list[str]]:
    sites: dict[str, list[str]] = {}
    for pkg in ("pfs", "pps", "pachd"):
        for f in (ROOT / pkg).rglob("*.py"):
            if f.name == "failpoints.py":
                continue
            for m in CALL.finditer(f.read_text()):
                sites.setdefault(m.group(1), []).append(str(f.relative_to(ROOT)))
    return sites


def test_every_name_has_exactly_one_call_site_and_every_site_a_known_name():
    sites = _call_sites()
    assert set(sites) == set(failpoints.NAMES), (set(sites) ^ set(failpoints.NAMES))
    for name, where in sites.items():
        assert len(where) == 1, f"failpoint {name} is called in {where}"


def test_parse_checks_names_and_hit_numbers():
    assert failpoints.parse("commit.before_publish, job.finish@3") == {
        "commit.before_publish": 1, "job.finish": 3}
    assert failpoints.parse("") == {}
    with pytest.raises(ValueError, match="unknown failpoint 'commit.befor_publish'"):
        failpoints.parse("commit.befor_publish")
    with pytest.raises(ValueError, match="whole number"):
        failpoints.parse("job.finish@x")
    with pytest.raises(ValueError, match="counts from 1"):
        failpoints.parse("job.finish@0")


def _child(env_spec: str, code: str) -> subprocess.CompletedProcess:
    env = {"PACH_FAILPOINTS": env_spec, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_armed_point_kills_at_the_named_hit_and_not_before():
    code = ("from pfs.failpoints import failpoint\n"
            "for i in range(1, 6):\n"
            "    print('before', i, flush=True)\n"
            "    failpoint('job.finish')\n")
    r = _child("job.finish@3", code)
    assert r.returncode == -signal.SIGKILL
    assert r.stdout.split() == ["before", "1", "before", "2", "before", "3"]
    assert "failpoint job.finish hit 3: killing process" in r.stderr


def test_unknown_name_in_the_environment_fails_at_import():
    r = _child("no.such.point", "import pfs.failpoints")
    assert r.returncode == 1
    assert "unknown failpoint 'no.such.point'" in r.stderr


def test_unarmed_failpoints_do_nothing():
    r = _child("", "from pfs.failpoints import failpoint\n"
                   "[failpoint(n) for n in sorted(__import__('pfs.failpoints').failpoints.NAMES)]\n"
                   "print('ok')")
    assert r.returncode == 0 and r.stdout.strip() == "ok"
