"""The benchmark harness runs and writes its report (a smoke test: the figures themselves
are measured by `python -m bench`, never by timed tests)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_quick_smoke(tmp_path):
    out = tmp_path / "bench.md"
    r = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "b6_index_bytes", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    rows = report["results"]
    assert [row["id"] for row in rows] == ["B6"]
    assert rows[0]["figure"] > 0 and rows[0]["met"] in (True, False)
    assert "| B6 |" in out.read_text() and report["machine"]["cores"] >= 1
