"""docs/compat.md has a row for every RPC of every service in proto/, and the README links it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compat_doc_lists_every_rpc():
    import sys
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from compat_table import rpcs
    finally:
        sys.path.remove(str(ROOT / "docs"))
    doc = (ROOT / "docs" / "compat.md").read_text()
    rows = set(re.findall(r"^\| ([\w.]+) \| (\w+) \|", doc, re.M))
    want = set(rpcs())
    assert len(want) >= 200
    assert want - rows == set(), "RPCs missing from docs/compat.md (run docs/compat_table.py)"
    assert rows - want - {("Service", "RPC"), ("Behaviour", "Tests")} == set(), "rows for RPCs not in proto/"


def test_readme_links_compat_doc():
    assert "docs/compat.md" in (ROOT / "README.md").read_text()
