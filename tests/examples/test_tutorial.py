"""The beginner tutorial end to end, exactly as `make tutorial` runs it (issue 4).

Runs examples/beginner_tutorial/run.py in a subprocess with an isolated HOME and a free
port, so pachctl's zero-setup autostart starts a private pachd, then checks the collage,
the incremental step's job stats and the lineage graph.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    out = tmp_path_factory.mktemp("out")
    env = {**os.environ, "HOME": str(home), "PACHD_ADDRESS": f"localhost:{_free_port()}",
           "PACHCTL_AUTOSTART": "1"}
    env.pop("PACH_CONTEXT", None)
    env.pop("PACH_CONFIG", None)
    try:
        p = subprocess.run([sys.executable, str(REPO / "examples/beginner_tutorial/run.py"), "--out", str(out),
                            "--timeout", "400"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
        yield out, p.stdout, env
    finally:
        subprocess.run([sys.executable, "-m", "pachctl", "shutdown"], cwd=REPO, env=env,
                       capture_output=True, timeout=60)


def test_collage_has_every_original_with_its_tracing_and_gif(tutorial):
    out, _, _ = tutorial
    html = (out / "collage" / "index.html").read_text()
    srcs = re.findall(r'src="\./static/([^"]+)"', html)
    static = {p.name for p in (out / "collage" / "static").iterdir()}
    assert set(srcs) == static
    for stem in ("liberty", "robot", "statue"):
        assert f"{stem}.png" in static and f"{stem}_edges.png" in static
    for video in ("cat-sleeping", "highway"):
        assert f"{video}_original.gif" in static and f"{video}_edges.gif" in static
    originals, edges = html.split('id="edges"')[0], html.split('id="edges"')[1]
    assert "liberty.png" in originals and "liberty_edges.png" in edges


def test_incremental_step_runs_only_dependent_datums(tutorial):
    out, stdout, _ = tutorial
    jobs = json.loads((out / "jobs.json").read_text())["incremental"]
    got = {n: (int(j.get("data_processed", 0)), int(j.get("data_skipped", 0))) for n, j in jobs.items()}
    assert got == {"video_mp4_converter": (1, 4), "image_flattener": (0, 2), "image_tracer": (1, 4),
                   "movie_gifer": (0, 4), "content_shuffler": (2, 5), "content_collager": (1, 0)}
    assert "after adding statue.png" in stdout


def test_lineage_graph_nodes_and_edges(tutorial):
    out, _, _ = tutorial
    dot = (out / "lineage.dot").read_text()
    nodes = set(re.findall(r'^\s*"((?:data|run):[^"]+)"\[', dot, re.M))
    edges = set(re.findall(r'^\s*"([^"]+)"\s*->\s*"([^"]+)"', dot, re.M))
    repos = {n.split("/", 1)[1].split("@")[0] for n in nodes if n.startswith("data:")}
    runs = {n.split("/", 1)[1].split("@")[0] for n in nodes if n.startswith("run:")}
    pipelines = {"video_mp4_converter", "image_flattener", "image_tracer", "movie_gifer",
                 "content_shuffler", "content_collager"}
    assert repos == pipelines | {"raw_videos_and_images"}
    assert runs == pipelines
    short = {(a.split("/", 1)[1].split("@")[0], b.split("/", 1)[1].split("@")[0]) for a, b in edges}
    inputs = {("raw_videos_and_images", "video_mp4_converter"), ("raw_videos_and_images", "image_tracer"),
              ("raw_videos_and_images", "content_shuffler"), ("video_mp4_converter", "image_flattener"),
              ("image_flattener", "image_tracer"), ("image_flattener", "movie_gifer"),
              ("image_tracer", "movie_gifer"), ("image_tracer", "content_shuffler"),
              ("movie_gifer", "content_shuffler"), ("content_shuffler", "content_collager")}
    outputs = {(p, p) for p in pipelines}
    assert short == inputs | outputs


def test_pictures_are_there_and_their_paths_printed(tutorial):
    """SVG always (graphviz's, or pachctl's own layout without it); PNG exactly when graphviz is here."""
    out, stdout, _ = tutorial
    for kind, label in (("dag", "pipelines picture:"), ("lineage", "lineage picture:")):
        svg = (out / f"{kind}.svg").read_text()
        assert svg.startswith("<?xml") and "<svg" in svg and "content_collager" in svg
        png = out / f"{kind}.png"
        line = next(ln for ln in stdout.splitlines() if ln.strip().startswith(label))
        if shutil.which("dot"):
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
            assert line.split()[2:] == [str(out / f"{kind}.svg"), str(png)]
        else:
            assert not png.exists()
            assert line.split()[2:] == [str(out / f"{kind}.svg")]
    assert f"collage:            {out / 'collage' / 'index.html'}" in stdout
    assert ("graphviz is not installed" in stdout) == (shutil.which("dot") is None)


def test_second_run_is_idempotent(tutorial):
    out, _, env = tutorial
    p = subprocess.run([sys.executable, str(REPO / "examples/beginner_tutorial/run.py"), "--out", str(out),
                        "--skip-incremental", "--timeout", "300"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "already holds the sample data" in p.stdout
    assert "pipeline content_collager exists" in p.stdout
    listing = subprocess.run([sys.executable, "-m", "pachctl", "list", "pipeline"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60).stdout
    assert listing.count("running / success") == 6
