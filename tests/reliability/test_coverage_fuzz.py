"""R3, coverage-guided (CI size): each atheris target of tests/reliability/coverage_fuzz.py runs
COVFUZZ_RUNS inputs (default 2,000) in its own process and finds nothing; the planted finding
of the `selftest` target is reported, so a real finding would fail this test. The long run is
`scripts/reliability.py r3-atheris` (see docs/reliability.md)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris (coverage-guided fuzzing) is not installed: pip install atheris")

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("COVFUZZ_RUNS", "2000"))
TARGETS = ["s3-body", "s3-body-roundtrip", "glob", "refs", "spec", "s3-xml"]


def fuzz(target: str, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.reliability.coverage_fuzz", target, f"-runs={RUNS}",
                           "-seed=7", f"-artifact_prefix={tmp_path}/", *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", TARGETS)
def test_target_finds_nothing(target, tmp_path):
    p = fuzz(target, tmp_path)
    tail = "\n".join((p.stdout + p.stderr).splitlines()[-25:])
    assert p.returncode == 0, f"atheris found an input {target} answers wrongly:\n{tail}"
    assert f"Done {RUNS} runs" in p.stderr, tail
    assert not list(tmp_path.glob("crash-*"))


@pytest.mark.timeout(600)
def test_a_finding_is_reported_with_its_input(tmp_path):
    p = fuzz("selftest", tmp_path, "-runs=200000")
    assert p.returncode != 0
    assert "the planted finding" in p.stdout + p.stderr
    crashes = list(tmp_path.glob("crash-*"))
    assert len(crashes) == 1 and crashes[0].read_bytes().startswith(b"PACH")
