"""Helpers for the client-compatibility tests."""
from __future__ import annotations

import subprocess


def run_pp(pp_python, script: str, port: int, *args: str, timeout: float = 300) -> str:
    """Run a python-pachyderm script (argv[1] = pachd port); it must print 'ok' last."""
    r = subprocess.run([str(pp_python), "-c", script, str(port), *args], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-4000:] + r.stderr[-4000:]
    return r.stdout
