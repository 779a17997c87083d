"""Pachyderm's beginner tutorial, end to end, on the local embedded pachd: `make tutorial`.

What it does, printing every pachctl command before running it:
  1. starts (or reuses) the local pachd through pachctl's zero-setup autostart;
  2. creates project `video-to-frame-traces`, makes it the context's project, and creates
     repo `raw_videos_and_images`;
  3. generates the sample videos and images (nothing can be downloaded here) and puts them;
  4. creates the tutorial's six pipelines from their Pachyderm specs;
  5. waits for every job, showing progress;
  6. downloads the HTML collage and draws the pipeline DAG and the collage's lineage (SVG
     always: graphviz's where it is installed, else pachctl's own layout; PNG with graphviz);
  7. adds one more image and shows, per pipeline, how many datums ran and how many were
     skipped (only those that depend on the new image run).

Invariants:
- Idempotent: a second run reuses what exists (project, repo, data, pipelines) and ends in
  the same state; re-putting identical data only produces jobs that skip every datum.
- Everything it writes lives under `--out` (default `out/tutorial/`) and the pachd data
  directory of the active pachctl context; it never deletes user data.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
PROJECT = "video-to-frame-traces"
RAW = "raw_videos_and_images"
PIPELINES = ["video_mp4_converter", "image_flattener", "image_tracer", "movie_gifer",
             "content_shuffler", "content_collager"]
EXTRA = "statue.png"


class Tutorial:
    def __init__(self, out: Path, quiet: bool = False, timeout: float = 900):
        self.out = out
        self.quiet = quiet
        self.timeout = timeout
        self.env = dict(os.environ)
        self.pachctl = [sys.executable, "-m", "pachctl"]

    # ---- plumbing ----------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(text, flush=True)

    def run(self, *args: str, check: bool = True, capture: bool = False, show: bool = True,
            ok_if: str = "") -> subprocess.CompletedProcess:
        if show:
            self.say("$ pachctl " + " ".join(_quote(a) for a in args))
        p = subprocess.run(self.pachctl + list(args), cwd=REPO_ROOT, env=self.env, text=True,
                           capture_output=True)
        if p.returncode != 0:
            if ok_if and ok_if in (p.stderr or ""):
                if show:
                    self.say(f"  (already there: {p.stderr.strip()})")
                return p
            if check:
                sys.stderr.write(p.stdout + p.stderr)
                raise SystemExit(f"tutorial: `pachctl {' '.join(args)}` failed (exit {p.returncode})")
        elif show and not capture and p.stdout.strip():
            self.say(_indent(p.stdout.rstrip()))
        return p

    def json_lines(self, *args: str) -> list[dict]:
        p = self.run(*args, "--raw", capture=True, show=False)
        return _split_json(p.stdout)

    # ---- steps -------------------------------------------------------------------------
    def setup(self) -> None:
        self.run("version")
        self.run("create", "project", PROJECT, ok_if="already exists")
        self.run("config", "update", "context", "--project", PROJECT)
        self.run("create", "repo", RAW, ok_if="already exists")

    def put_data(self) -> None:
        data = self.out / "data"
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "make_sample_data.py"), str(data)], check=True,
                       stdout=subprocess.DEVNULL)
        have = {f["file"]["path"] for f in self.json_lines("list", "file", f"{RAW}@master:/")} \
            if self._branch_exists(RAW, "master") else set()
        missing = sorted(p.name for p in data.iterdir() if p.is_file() and "/" + p.name not in have)
        if not missing:
            self.say(f"  {RAW}@master already holds the sample data")
            return
        args = ["put", "file", f"{RAW}@master:/"]
        for name in missing:
            args += ["-f", str(data / name)]
        self.run(*args)

    def create_pipelines(self) -> None:
        existing = {p["pipeline"]["name"] for p in self.json_lines("list", "pipeline")}
        for name in PIPELINES:
            if name in existing:
                self.say(f"  pipeline {name} exists")
                continue
            self.run("create", "pipeline", "-f", str(HERE / "pipelines" / f"{name}.yaml"))

    def wait_all(self, label: str) -> dict[str, dict]:
        """Wait until the newest job of every pipeline is done; return them by pipeline."""
        self.say(f"waiting for {label} ...")
        deadline = time.time() + self.timeout
        last = ""
        while True:
            jobs = self._latest_jobs()
            line = "  " + "  ".join(
                f"{n}:{_state(jobs.get(n))}{_progress(jobs.get(n))}" for n in PIPELINES)
            if line != last:
                self.say(line)
                last = line
            if all(n in jobs and jobs[n].get("state") in _TERMINAL for n in PIPELINES):
                failed = {n: j for n, j in jobs.items() if j.get("state") != "JOB_SUCCESS"}
                if failed:
                    for n, j in failed.items():
                        self.say(f"  {n}: {j.get('state')} {j.get('reason', '')}")
                        self.run("logs", "-p", n, "--failed", check=False)
                    raise SystemExit("tutorial: some jobs failed (logs above)")
                return jobs
            if time.time() > deadline:
                raise SystemExit(f"tutorial: jobs did not finish within {self.timeout:.0f} s")
            time.sleep(0.5)

    def _latest_jobs(self) -> dict[str, dict]:
        out = {}
        for j in self.json_lines("list", "job", "-x"):
            name = j["job"]["pipeline"]["name"]
            if name not in out:  # newest first
                out[name] = j
        return out

    def collect(self) -> dict[str, Path]:
        collage = self.out / "collage"
        if collage.exists():
            shutil.rmtree(collage)
        self.run("get", "file", "-r", "content_collager@master:/collage", "-o", str(collage))
        pics = {"collage": collage / "index.html"}
        dag_txt = self.run("draw", "pipeline", capture=True).stdout
        self.say(dag_txt)
        (self.out / "pipelines.txt").write_text(dag_txt)
        for kind, args in (("dag", ["draw", "pipeline"]), ("lineage", ["draw", "lineage", "content_collager@master", "-n", "all"])):
            dot = self.out / f"{kind}.dot"
            self.run(*args, "-o", "dot", "--output-file", str(dot))
            svg = self.out / f"{kind}.svg"
            self.run(*args, "-o", "svg", "--output-file", str(svg))  # without graphviz: pachctl's own layout
            pics[kind] = [svg]
            png = self.out / f"{kind}.png"
            png.unlink(missing_ok=True)  # never leave a PNG of an earlier run beside a new SVG
            if shutil.which("dot"):
                self.run(*args, "-o", "png", "--output-file", str(png))
                pics[kind].append(png)
        return pics

    def incremental(self) -> dict[str, dict]:
        extra = self.out / "extra"
        extra.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "make_sample_data.py"), str(extra), "--extra", EXTRA,
                        "--extra-only"], check=True, stdout=subprocess.DEVNULL)
        before = self._latest_jobs()
        self.run("put", "file", f"{RAW}@master:/{EXTRA}", "-f", str(extra / EXTRA))
        deadline = time.time() + self.timeout
        while time.time() < deadline:  # wait until every pipeline has a job newer than before
            now = self._latest_jobs()
            if all(now.get(n, {}).get("job", {}).get("id") != before.get(n, {}).get("job", {}).get("id")
                   for n in PIPELINES):
                break
            time.sleep(0.3)
        jobs = self.wait_all(f"the jobs triggered by {EXTRA}")
        self.say(f"\nafter adding {EXTRA}: datums processed vs skipped per pipeline")
        self.say(f"  {'PIPELINE':<22}{'PROCESSED':>10}{'SKIPPED':>9}{'TOTAL':>7}")
        for n in PIPELINES:
            j = jobs[n]
            self.say(f"  {n:<22}{int(j.get('data_processed', 0)):>10}{int(j.get('data_skipped', 0)):>9}"
                     f"{int(j.get('data_total', 0)):>7}")
        return jobs

    def _branch_exists(self, repo: str, branch: str) -> bool:
        return any(b["branch"]["name"] == branch for b in self.json_lines("list", "branch", repo))


_TERMINAL = {"JOB_SUCCESS", "JOB_FAILURE", "JOB_KILLED", "JOB_UNRUNNABLE"}


def _state(j) -> str:
    if not j:
        return "-"
    return j.get("state", "JOB_CREATED").replace("JOB_", "").lower()


def _progress(j) -> str:
    if not j or not j.get("data_total"):
        return ""
    return f"({int(j.get('data_processed', 0)) + int(j.get('data_skipped', 0))}/{int(j['data_total'])})"


def _split_json(text: str) -> list[dict]:
    dec, pos, out = json.JSONDecoder(), 0, []
    text = text.strip()
    while pos < len(text):
        obj, end = dec.raw_decode(text, pos)
        out.append(obj)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _quote(a: str) -> str:
    return a if a and all(c.isalnum() or c in "-_./@:=" for c in a) else repr(a)


def _indent(s: str) -> str:
    return "\n".join("  " + line for line in s.splitlines())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO_ROOT / "out" / "tutorial"), help="where results go")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for jobs")
    ap.add_argument("--skip-incremental", action="store_true", help="stop after the first run")
    args = ap.parse_args(argv)
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tut = Tutorial(out, timeout=args.timeout)
    tut.setup()
    tut.put_data()
    tut.create_pipelines()
    first = tut.wait_all("the six pipelines")
    pics = tut.collect()
    result = {"first": first}
    if not args.skip_incremental:
        result["incremental"] = tut.incremental()
        pics = tut.collect()
    (out / "jobs.json").write_text(json.dumps(result, indent=2))
    tut.say(f"\ndone in {time.time() - t0:.0f} s")
    tut.say(f"  collage:            {pics['collage']}")
    for k, what in (("dag", "pipelines picture:"), ("lineage", "lineage picture:")):
        tut.say(f"  {what:<19} {'  '.join(str(p) for p in pics[k])}")
    if not shutil.which("dot"):
        tut.say("  (graphviz is not installed: the pictures are SVG drawn by pachctl's own layout; "
                "sudo apt-get install graphviz for graphviz's, and PNGs)")
    tut.say(f"  job stats:          {out / 'jobs.json'}")
    tut.say("explore: pachctl list repo; pachctl list job; pachctl logs -p image_tracer; "
            "stop the background pachd with: pachctl shutdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
