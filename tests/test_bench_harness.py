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


def test_bench_pachctl_ignores_the_users_pachctl_context(tmp_path, monkeypatch):
    """The bench's pachctl runs talk to the bench's own pachd and default project, whatever
    context the user's config has active (after the tutorial: another project)."""
    from bench.common import pachd
    from bench.pfs_bench import _repo, pachctl
    from proto.pfs_v2 import pfs_pb2 as pb
    from proto.pfs_v2 import pfs_pb2_grpc
    cfg = tmp_path / "user-config.json"
    cfg.write_text(json.dumps({"v2": {"active_context": "mine", "contexts": {
        "mine": {"pachd_address": "grpc://127.0.0.1:1", "project": "no-such-project"}}}}))
    monkeypatch.setenv("PACH_CONFIG", str(cfg))
    monkeypatch.setenv("PACH_CONTEXT", "mine")
    src = tmp_path / "f.txt"
    src.write_text("hello")
    with pachd() as p:
        pfs_pb2_grpc.APIStub(p.channel).CreateRepo(pb.CreateRepoRequest(repo=_repo("r")))
        assert pachctl(p, "put", "file", "r@master:/f.txt", "-f", str(src)) > 0  # raises if pachctl failed
        info = pfs_pb2_grpc.APIStub(p.channel).InspectFile(pb.InspectFileRequest(
            file=pb.File(commit=pb.Commit(repo=_repo("r"), branch=pb.Branch(repo=_repo("r"), name="master")),
                         path="/f.txt")))
        assert info.size_bytes == 5


def test_paired_rounds_alternate_which_side_goes_first_and_drop_the_warmup():
    from bench.pfs_bench import paired_rounds
    calls, clock = [], iter(range(100))

    def side(name):
        def run():
            calls.append(name)
            return float(next(clock))
        return run

    base, ours = paired_rounds(3, 1, lambda i: calls.append(f"input{i}"), side("cp"), side("put"))
    assert calls == ["input0", "cp", "put", "input1", "put", "cp", "input2", "cp", "put", "input3", "put", "cp"]
    assert base == [3.0, 4.0, 7.0] and ours == [2.0, 5.0, 6.0]  # the warm-up round (0.0, 1.0) is not counted
