"""The layering rules of ARCHITECTURE.md, checked on the import statements of each package:
data flows front ends -> services -> core -> stores, and pachd is the one composition root."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every top-level module name imported anywhere in `package`, by file."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package, forbidden", [
    ("pfs", {"pps", "pachd", "pachctl", "auth"}),
    ("pps", {"pachd", "pachctl", "auth"}),
    ("auth", {"pps", "pachd", "pachctl"}),
    ("pfs/core", {"grpc", "google", "proto", "click", "boto3", "botocore", "kubernetes"}),
    ("pfs/storage", {"grpc", "proto", "click", "kubernetes"}),
])
def test_package_does_not_import(package, forbidden):
    offenders = {f: sorted(names & forbidden) for f, names in imported_modules(package).items()
                 if names & forbidden}
    assert not offenders, f"{package} must not import {sorted(forbidden)}: {offenders}"


def test_auth_core_has_no_grpc():
    """auth's core (roles, model, state, core, rules' resource logic) sees no gRPC; only the
    servicer and the interceptor do."""
    core = {"auth/roles.py", "auth/model.py", "auth/state.py", "auth/core.py", "auth/s3.py"}
    found = {f: names for f, names in imported_modules("auth").items() if f in core}
    assert set(found) == core
    offenders = {f: sorted(n & {"grpc", "proto", "google", "pfs"}) for f, n in found.items()
                 if n & {"grpc", "proto", "google", "pfs"}}
    assert not offenders, offenders
