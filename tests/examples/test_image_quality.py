"""The seed-002 image-quality workflow end to end (issue 4 §4): three per-image metric
pipelines over `images` crossed with the `scripts` repo, and a classifier that joins the
three metric repos on the image's stem (`join_on: "$1"`), run with the README's commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pachd.server import Pachd

REPO = Path(__file__).resolve().parents[2]
EX = REPO / "examples" / "image_quality"
pytestmark = pytest.mark.slow


def test_image_quality_join_gives_one_datum_per_image(tmp_path):
    images = tmp_path / "iq"
    subprocess.run([sys.executable, str(EX / "make_sample_data.py"), str(images)], check=True,
                   capture_output=True)
    stems = sorted(p.stem for p in images.iterdir())
    assert len(stems) >= 4
    pd = Pachd(tmp_path / "pachd", port=0, s3_gateway_port=None).start()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PACHD_ADDRESS": f"localhost:{pd.port}",
           "PACHCTL_NO_AUTOSTART": "1"}
    env.pop("PACH_CONFIG", None)

    def pachctl(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "pachctl", *args], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"pachctl {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
        return p.stdout

    try:
        pachctl("create", "project", "image-quality")
        pachctl("config", "update", "context", "--project", "image-quality")
        pachctl("create", "repo", "images")
        pachctl("create", "repo", "scripts")
        pachctl("put", "file", "-r", "images@master:/", "-f", str(images))
        pachctl("put", "file", "-r", "scripts@master:/", "-f", str(EX / "scripts"))
        pachctl("create", "pipeline", "-f", str(EX / "pipelines" / "all.yaml"))
        info = json.loads(pachctl("wait", "commit", "classifier@master", "--raw"))
        assert not info.get("error"), info
        jobs = _json_stream(pachctl("list", "job", "-p", "classifier", "--raw", "--no-pager"))
        job = jobs[0]
        assert job["state"] == "JOB_SUCCESS", job
        assert int(job["data_total"]) == len(stems)
        datums = pachctl("list", "datum", f"classifier@{job['job']['id']}")
        rows = [line for line in datums.splitlines()[1:] if line.strip()]
        assert len(rows) == len(stems)
        for row in rows:  # each datum joins the three metric files of one stem (plus the scripts)
            files = row.split(None, 1)[1]
            stem_files = [f for f in files.split(", ") if f.endswith(".txt")]
            assert len(stem_files) == 3 and len({f.rsplit("/", 1)[1] for f in stem_files}) == 1
        listing = pachctl("list", "file", "classifier@master")
        for stem in stems:
            assert f"/{stem}.json" in listing
            result = json.loads(pachctl("get", "file", f"classifier@master:/{stem}.json"))
            assert result["label"] == ("blurry" if "blur" in stem else "sharp"), (stem, result)
    finally:
        pd.stop(grace=1.0)


def _json_stream(text: str) -> list[dict]:
    dec, pos, out = json.JSONDecoder(), 0, []
    text = text.strip()
    while pos < len(text):
        obj, pos = dec.raw_decode(text, pos)
        out.append(obj)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out
