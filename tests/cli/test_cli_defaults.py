"""pachctl create/update/inspect/delete defaults (--cluster | --project P) against a real pachd:
the stored JSON round-trips, --dry-run names the pipelines a change would regenerate and
changes nothing, --regenerate updates them, a missing or double scope is a usage error."""
import json

import pytest

from pachd.server import Pachd

SPEC = json.dumps({"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
                   "transform": {"cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]}})
DOC = json.dumps({"createPipelineRequest": {"datumTries": "6"}})


@pytest.fixture
def pachd(tmp_path):  # overrides conftest's: pps on
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1").start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


def _pipeline(ok):
    info = json.loads(ok("inspect", "pipeline", "copy", "--raw"))
    return int(info.get("version", 0)), int(info["details"].get("datum_tries", info["details"].get("datumTries", 0)))


def test_defaults_commands(pachctl, ok):
    ok("create", "repo", "in")
    ok("put", "file", "in@master:/a", "-f", "-", input="a")
    ok("create", "pipeline", "-f", "-", input=SPEC)
    initial = json.loads(ok("inspect", "defaults", "--cluster"))
    assert initial.get("createPipelineRequest", {}) == {}  # nothing set yet
    assert _pipeline(ok) == (1, 3)

    # a dry run names what would be regenerated and changes nothing
    assert ok("update", "defaults", "--cluster", "--regenerate", "--dry-run", input=DOC) == "default/copy\n"
    assert json.loads(ok("inspect", "defaults", "--cluster")) == initial
    # stored without regenerating: printed nothing, the pipeline is as it was
    assert ok("create", "defaults", "--cluster", "-f", "-", input=DOC) == ""
    assert json.loads(ok("inspect", "defaults", "--cluster")) == json.loads(DOC)
    assert _pipeline(ok) == (1, 3)
    # --reprocess implies --regenerate: the pipeline gets a new version with the new default
    doc7 = json.dumps({"createPipelineRequest": {"datumTries": "7"}})
    assert ok("update", "defaults", "--cluster", "--reprocess", input=doc7) == "default/copy\n"
    assert _pipeline(ok) == (2, 7)

    ok("delete", "defaults", "--cluster")
    assert json.loads(ok("inspect", "defaults", "--cluster")).get("createPipelineRequest", {}) == {}

    project_doc = json.dumps({"createPipelineRequest": {"parallelismSpec": {"constant": "2"}}})
    ok("create", "defaults", "--project", "default", input=project_doc)
    assert json.loads(ok("inspect", "defaults", "--project", "default")) == json.loads(project_doc)

    for args in (["inspect", "defaults"], ["inspect", "defaults", "--cluster", "--project", "default"]):
        r = pachctl(*args)
        assert (r.exit_code, r.stderr) == (1, "name exactly one of --cluster or --project PROJECT\n"), r
    r = pachctl("update", "defaults", "--cluster", input="{not json")
    assert r.exit_code == 1 and r.stderr.strip(), r
    assert json.loads(ok("inspect", "defaults", "--cluster")).get("createPipelineRequest", {}) == {}  # unchanged
