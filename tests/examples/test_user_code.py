"""The example user code, specs and sample data, without the pipeline engine.

Each script is run with subprocess exactly as its spec's ``cmd`` says, once per
datum, in a scratch directory standing in for ``/pfs``: every datum gets only its
matched input paths under ``<pfs>/<input name>/`` and an empty ``<pfs>/out``, and
the datums' outputs are merged into the pipeline's "repo" the way Pachyderm
does (two datums writing the same path is an error). The datums are worked out
here from the spec's input with a small glob matcher that covers the patterns
the examples use; the real engine is tested elsewhere.
"""
import html.parser
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

cv2 = pytest.importorskip("cv2", reason="examples/requirements.txt not installed")
PIL_Image = pytest.importorskip("PIL.Image", reason="examples/requirements.txt not installed")

ROOT = Path(__file__).resolve().parents[2]
BEGINNER = ROOT / "examples" / "beginner_tutorial"
QUALITY = ROOT / "examples" / "image_quality"

TUTORIAL_ORDER = ["video_mp4_converter", "image_flattener", "image_tracer",
                  "movie_gifer", "content_shuffler", "content_collager"]
QUALITY_ORDER = ["laplacian", "sobel", "fft", "classifier"]
VIDEOS = ["cat-sleeping", "highway"]
RAW_IMAGES = ["liberty", "robot"]
FRAMES = 12


# --------------------------------------------------------------------------
# a tiny stand-in for PFS globbing and the input algebra


def _split_alternatives(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if ch in ",|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _closing(s, i, open_ch, close_ch):
    depth = 0
    for j in range(i, len(s)):
        if s[j] == open_ch:
            depth += 1
        elif s[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {open_ch} in {s!r}")


def _glob_body(g):
    out, i = "", 0
    while i < len(g):
        c = g[i]
        if c == "!" and g[i + 1:i + 2] == "(":
            j = _closing(g, i + 1, "(", ")")
            alts = "|".join(_glob_body(a) for a in _split_alternatives(g[i + 2:j]))
            out += f"((?!(?:{alts})(?:/|$))[^/]*)"
            i = j + 1
        elif c == "(":
            j = _closing(g, i, "(", ")")
            out += "(" + "|".join(_glob_body(a) for a in _split_alternatives(g[i + 1:j])) + ")"
            i = j + 1
        elif c == "{":
            j = _closing(g, i, "{", "}")
            out += "(?:" + "|".join(_glob_body(a) for a in _split_alternatives(g[i + 1:j])) + ")"
            i = j + 1
        elif g.startswith("**", i):
            out += ".*"
            i += 2
        elif c == "*":
            out += "[^/]*"
            i += 1
        elif c == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(c)
            i += 1
    return out


def glob_regex(glob):
    cleaned = "/" + glob.strip("/")
    return re.compile(r"\A" + _glob_body(cleaned) + r"\Z")


def repo_entries(repo_dir):
    """Every file and directory of a repo as '/a/b' (directories without '/')."""
    entries = []
    for dirpath, dirs, files in os.walk(repo_dir):
        for n in dirs + files:
            entries.append("/" + os.path.relpath(os.path.join(dirpath, n), repo_dir).replace(os.sep, "/"))
    return sorted(entries)


def _join_key(match, template):
    return re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))) or "", template)


def datums(inp, repos):
    """List of datums; a datum is a list of (input name, repo, path, join key)."""
    if "pfs" in inp:
        p = inp["pfs"]
        name, repo, glob = p.get("name", p["repo"]), p["repo"], p["glob"]
        entries = repo_entries(repos[repo])
        if "/" + glob.strip("/") == "/":
            return [[(name, repo, "/", "")]] if entries else []
        rx = glob_regex(glob)
        out = []
        for e in entries:
            m = rx.match(e)
            if m:
                out.append([(name, repo, e, _join_key(m, p.get("join_on", "")))])
        return out
    if "union" in inp:
        return [d for child in inp["union"] for d in datums(child, repos)]
    if "cross" in inp:
        return [sum(combo, []) for combo in itertools.product(*(datums(c, repos) for c in inp["cross"]))]
    if "join" in inp:
        children = [datums(c, repos) for c in inp["join"]]
        keyed = [{} for _ in children]
        for k, child in enumerate(children):
            for d in child:
                keyed[k].setdefault(d[0][3], []).append(d)
        keys = sorted(set(keyed[0]).intersection(*keyed[1:]))
        return [sum(combo, []) for key in keys for combo in itertools.product(*(kd[key] for kd in keyed))]
    raise AssertionError(f"unsupported input {inp}")


def run_pipeline(spec, repos, workdir, image_dir=None):
    """Run spec's cmd once per datum; returns the merged output repo directory."""
    name = spec["pipeline"]["name"]
    out_repo = workdir / "repos" / name
    out_repo.mkdir(parents=True)
    owner = {}
    for n, datum in enumerate(datums(spec["input"], repos)):
        pfs = workdir / "pfs" / f"{name}-{n}"
        (pfs / "out").mkdir(parents=True)
        for input_name, repo, path, _key in datum:
            src = Path(repos[repo]) / path.lstrip("/")
            dst = pfs / input_name / path.lstrip("/")
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            # inputs are read-only in a worker
            for p in [dst, *dst.rglob("*")] if dst.is_dir() else [dst]:
                p.chmod(p.stat().st_mode & ~0o222)
        argv = []
        for a in spec["transform"]["cmd"]:
            if a == "python3":
                argv.append(sys.executable)
            elif a.startswith("/pfs/"):
                argv.append(str(pfs / a[len("/pfs/"):]))
            elif a.startswith("/") and image_dir is not None and (image_dir / a.lstrip("/")).exists():
                argv.append(str(image_dir / a.lstrip("/")))
            else:
                argv.append(a)
        proc = subprocess.run(argv, cwd=pfs, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{name} datum {datum} failed:\n{proc.stdout}\n{proc.stderr}"
        for f in sorted((pfs / "out").rglob("*")):
            if f.is_dir():
                continue
            rel = "/" + f.relative_to(pfs / "out").as_posix()
            assert rel not in owner, f"{name}: duplicate path {rel} from datums {owner[rel]} and {n}"
            owner[rel] = n
            target = out_repo / rel.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        for p in pfs.rglob("*"):  # restore write bits so tmp cleanup works
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o200)
    repos[name] = out_repo
    return out_repo


def files_of(d):
    return sorted("/" + p.relative_to(d).as_posix() for p in Path(d).rglob("*") if p.is_file())


def load_specs(folder, order):
    return {n: yaml.safe_load((folder / "pipelines" / f"{n}.yaml").read_text()) for n in order}


def image_dir_for(example, image):
    return example / "images" / image.rsplit("/", 1)[-1].split(":", 1)[0]


def run_generator(example, outdir, *args):
    subprocess.run([sys.executable, str(example / "make_sample_data.py"), str(outdir), *args],
                   check=True, capture_output=True, timeout=60)


# --------------------------------------------------------------------------
# glob helper sanity (so the simulated datums mean something)


@pytest.mark.parametrize("glob,path,ok", [
    ("/*", "/a.png", True), ("/*", "/dir", True), ("/*", "/dir/a", False),
    ("/*.{png,jpg,jpeg}", "/liberty.png", True), ("/*.{png,jpg,jpeg}", "/cat.MOV", False),
    ("/*.{png,jpg,jpeg}", "/x_edges.png", True),
    ("/!(*.*)", "/cat-sleeping", True), ("/!(*.*)", "/liberty_edges.png", False),
    ("/!(*.*)", "/cat-sleeping/x.jpg", False),
    ("/(*).txt", "/harbor.txt", True), ("/(*).txt", "/harbor.json", False),
])
def test_glob_helper(glob, path, ok):
    assert bool(glob_regex(glob).match(path)) is ok


# --------------------------------------------------------------------------
# beginner tutorial


def test_tutorial_specs():
    specs = load_specs(BEGINNER, TUTORIAL_ORDER)
    expected = {
        "video_mp4_converter": ("lbliii/video_mp4_converter:1.0.14", {"raw_videos_and_images": "/*"}),
        "image_flattener": ("lbliii/image_flattener:1.0.0", {"video_mp4_converter": "/*"}),
        "image_tracer": ("lbliii/image_tracer:1.0.8",
                         {"raw_videos_and_images": "/*.{png,jpg,jpeg}", "image_flattener": "/*"}),
        "movie_gifer": ("lbliii/movie_gifer:1.0.5", {"image_flattener": "/!(*.*)", "image_tracer": "/!(*.*)"}),
        "content_shuffler": ("lbliii/content_shuffler:1.0.0",
                             {"movie_gifer": "/", "raw_videos_and_images": "/*.{png,jpg,jpeg}",
                              "image_tracer": "/*.{png,jpg,jpeg}"}),
        "content_collager": ("lbliii/content_collager:1.0.64", {"content_shuffler": "/"}),
    }
    for name, spec in specs.items():
        image, globs = expected[name]
        assert set(spec) <= {"pipeline", "description", "input", "transform", "autoscaling"}
        assert spec["pipeline"] == {"name": name}
        assert spec["autoscaling"] is True
        assert spec["transform"]["image"] == image
        inp = spec["input"]
        children = inp["union"] if "union" in inp else [inp]
        assert (len(children) > 1) == ("union" in inp)
        assert {c["pfs"]["repo"]: c["pfs"]["glob"] for c in children} == globs
        assert [c["pfs"]["repo"] for c in children] == list(globs)
        cmd = spec["transform"]["cmd"]
        assert cmd[:2] == ["python3", f"/{name}.py"]
        assert cmd[cmd.index("--output") + 1] == "/pfs/out/"
        ins = cmd[cmd.index("--input") + 1:cmd.index("--output")]
        assert [i.rstrip("/") for i in ins] == [f"/pfs/{r}" for r in globs]
        img = image_dir_for(BEGINNER, image)
        assert (img / f"{name}.py").is_file()
        assert (img / "requirements.txt").is_file()
        assert f"COPY {name}.py /{name}.py" in (img / "Dockerfile").read_text()
    for name in ("image_tracer", "movie_gifer", "content_shuffler", "content_collager"):
        assert specs[name]["description"]
    docs = list(yaml.safe_load_all((BEGINNER / "pipelines" / "all.yaml").read_text()))
    assert docs == [specs[n] for n in TUTORIAL_ORDER]


def test_tutorial_sample_data_is_deterministic(tmp_path):
    run_generator(BEGINNER, tmp_path / "a")
    run_generator(BEGINNER, tmp_path / "b", "--extra", "statue.png")
    run_generator(BEGINNER, tmp_path / "c", "--extra", "statue.png", "--extra-only")
    run_generator(BEGINNER, tmp_path / "d", "--seed", "7")
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert sorted(a) == ["cat-sleeping.MOV", "highway.MOV", "liberty.png", "robot.png"]
    assert sorted(b) == sorted([*a, "statue.png"])
    assert all(a[n] == b[n] for n in a)
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["statue.png"]
    assert (tmp_path / "c" / "statue.png").read_bytes() == b["statue.png"]
    assert (tmp_path / "d" / "liberty.png").read_bytes() != a["liberty.png"]
    img = cv2.imread(str(tmp_path / "a" / "liberty.png"))
    assert img.shape == (120, 160, 3)
    assert cv2.Canny(img, 100, 200).any()
    cap = cv2.VideoCapture(str(tmp_path / "a" / "highway.MOV"))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == FRAMES


def test_converter_keeps_walking_past_non_videos(tmp_path):
    """The tutorial's converter stopped at the first non-video file."""
    src = tmp_path / "in"
    run_generator(BEGINNER, src)
    (src / "aaa-notes.txt").write_text("not a video\n")
    sub = src / "sub"
    sub.mkdir()
    shutil.copy(src / "highway.MOV", sub / "clip.avi")
    out = tmp_path / "out"
    mp4 = BEGINNER / "images" / "video_mp4_converter" / "video_mp4_converter.py"
    subprocess.run([sys.executable, str(mp4), "--input", str(src), "--output", str(out)],
                   check=True, capture_output=True, timeout=60)
    assert files_of(out) == ["/cat-sleeping.mp4", "/clip.mp4", "/highway.mp4"]
    # .mp4 files pass through unchanged
    out2 = tmp_path / "out2"
    subprocess.run([sys.executable, str(mp4), "--input", str(out), "--output", str(out2)],
                   check=True, capture_output=True, timeout=60)
    assert (out2 / "highway.mp4").read_bytes() == (out / "highway.mp4").read_bytes()
    # a missing input (the absent side of a union) is not an error
    proc = subprocess.run([sys.executable, str(mp4), "--input", str(tmp_path / "nope"), "--output", str(out2)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "does not exist" in proc.stdout


class _Collage(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.imgs = [], {"originals": [], "edges": []}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div":
            self.stack.append(attrs.get("id"))
        elif tag == "img":
            section = next(s for s in reversed(self.stack) if s in self.imgs)
            self.imgs[section].append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "div":
            self.stack.pop()


def test_beginner_tutorial_end_to_end(tmp_path):
    specs = load_specs(BEGINNER, TUTORIAL_ORDER)
    raw = tmp_path / "repos" / "raw_videos_and_images"
    run_generator(BEGINNER, raw)
    repos = {"raw_videos_and_images": raw}
    out = {}
    for name in TUTORIAL_ORDER:
        spec = specs[name]
        out[name] = files_of(run_pipeline(spec, repos, tmp_path,
                                          image_dir_for(BEGINNER, spec["transform"]["image"])))

    assert out["video_mp4_converter"] == ["/cat-sleeping.mp4", "/highway.mp4"]

    frames = {v: [f"{v}-frame-{i:010d}" for i in range(FRAMES)] for v in VIDEOS}
    assert out["image_flattener"] == sorted(f"/{v}/{f}.jpg" for v in VIDEOS for f in frames[v])

    assert out["image_tracer"] == sorted(
        [f"/{i}_edges.png" for i in RAW_IMAGES] + [f"/{v}/{f}_edges.png" for v in VIDEOS for f in frames[v]])
    edge = cv2.imread(str(repos["image_tracer"] / "liberty_edges.png"), cv2.IMREAD_GRAYSCALE)
    assert edge.shape == (120, 160) and edge.any()

    assert out["movie_gifer"] == sorted(f"/{v}/{v}_{s}.gif" for v in VIDEOS for s in ("original", "edges"))
    for gif in out["movie_gifer"]:
        with PIL_Image.open(repos["movie_gifer"] / gif.lstrip("/")) as im:
            assert im.n_frames == FRAMES

    originals = sorted([f"{v}_original.gif" for v in VIDEOS] + [f"{i}.png" for i in RAW_IMAGES])
    edges = sorted([f"{v}_edges.gif" for v in VIDEOS] + [f"{i}_edges.png" for i in RAW_IMAGES])
    assert out["content_shuffler"] == sorted([f"/originals/{n}" for n in originals] + [f"/edges/{n}" for n in edges])

    assert out["content_collager"] == sorted(["/collage/index.html"] + [f"/collage/static/{n}" for n in originals + edges])
    page = _Collage()
    page.feed((repos["content_collager"] / "collage" / "index.html").read_text())
    assert sorted(page.imgs["originals"]) == [f"./static/{n}" for n in originals]
    assert sorted(page.imgs["edges"]) == [f"./static/{n}" for n in edges]
    assert "<title>Content Collage</title>" in (repos["content_collager"] / "collage" / "index.html").read_text()


# --------------------------------------------------------------------------
# image quality (seed 002)


def test_quality_specs():
    specs = load_specs(QUALITY, QUALITY_ORDER)
    for m in ("laplacian", "sobel", "fft"):
        spec = specs[m]
        assert spec["pipeline"] == {"name": m}
        assert spec["input"] == {"cross": [{"pfs": {"repo": "images", "glob": "/*"}},
                                           {"pfs": {"repo": "scripts", "glob": "/"}}]}
        assert spec["transform"]["cmd"][:2] == ["python3", f"/pfs/scripts/{m}.py"]
        assert (QUALITY / "scripts" / f"{m}.py").is_file()
    cls = specs["classifier"]
    join, scripts = cls["input"]["cross"]
    assert scripts == {"pfs": {"repo": "scripts", "glob": "/"}}
    assert [j["pfs"] for j in join["join"]] == [
        {"repo": m, "glob": "/(*).txt", "join_on": "$1"} for m in ("laplacian", "sobel", "fft")]
    assert cls["transform"]["cmd"][:2] == ["python3", "/pfs/scripts/classifier.py"]
    for spec in specs.values():
        assert spec["autoscaling"] is True
        img = image_dir_for(QUALITY, spec["transform"]["image"])
        assert (img / "requirements.txt").is_file() and (img / "Dockerfile").is_file()
    docs = list(yaml.safe_load_all((QUALITY / "pipelines" / "all.yaml").read_text()))
    assert docs == [specs[n] for n in QUALITY_ORDER]


def test_image_quality_end_to_end(tmp_path):
    import json

    specs = load_specs(QUALITY, QUALITY_ORDER)
    images = tmp_path / "repos" / "images"
    run_generator(QUALITY, images, "--extra", "lighthouse-blurry.jpg")
    scripts = tmp_path / "repos" / "scripts"
    shutil.copytree(QUALITY / "scripts", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    repos = {"images": images, "scripts": scripts}
    stems = sorted(p.stem for p in images.iterdir())
    assert len(stems) == 9
    for name in QUALITY_ORDER:
        run_pipeline(specs[name], repos, tmp_path)
    for m in ("laplacian", "sobel", "fft"):
        assert files_of(repos[m]) == sorted(f"/{s}.txt" for s in stems)
        for s in stems:
            float((repos[m] / f"{s}.txt").read_text())
    assert files_of(repos["classifier"]) == sorted(f"/{s}.json" for s in stems)
    for s in stems:
        result = json.loads((repos["classifier"] / f"{s}.json").read_text())
        assert result["image"] == s
        assert result["label"] == ("blurry" if "blur" in s else "sharp"), result
    assert not list(scripts.rglob("__pycache__")), "scripts wrote into their read-only input"
