"""pachctl.draw: the `draw pipeline` ASCII picture, DOT output, commit lineage walking, and the
SVG pictures: every DOT text is drawn both by graphviz (skipped, naming it, where graphviz is not
installed) and by pachctl.draw.svg, the pure-Python drawing used without graphviz.

ASCII expectations are written with a `$` at each line end so trailing spaces are visible;
each was checked by hand against the layout rules in pachctl/draw/dag.py's docstring.
"""
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import networkx as nx
import pytest

from pachctl.draw import (
    CommitRef,
    GraphvizNotFound,
    build_lineage,
    build_pipeline_graph,
    data_key,
    lineage_dot,
    parse_depth,
    render_ascii,
    render_dot,
    render_image,
    run_key,
)
from pachctl.draw import dot as dot_mod
from pachctl.draw import svg as svg_mod
from pachctl.draw.svg import render_svg
from tests.tools import needs_graphviz


def pic(s: str) -> str:
    """Lines ending in `$` -> the exact picture (a leading newline is ignored)."""
    lines = s.split("\n")[1:-1]
    assert all(line.endswith("$") for line in lines), lines
    return "".join(line[:-1] + "\n" for line in lines)


def P(name, inp, state="JOB_SUCCESS", **kw):
    return {"name": name, "input": inp, "last_job_state": state, **kw}


def pfs(repo, glob="/*", **kw):
    return {"pfs": {"repo": repo, "glob": glob, **kw}}


BLANK52 = " " * 52 + "$\n"

# Pachyderm's draw_test.go TestX: sources datas+configs -> clean -> model+analysis.
TEST_X = pic(r"""
           +-----------+    +-----------+$
           |   datas   |    |  configs  |$
           +-----------+    +-----------+$
                  \              /                  $
                   \            /                   $
                    ----     ---                    $
                        \   /                       $
                         \ /                        $
                    +-----------+$
                    |   clean   |$
                    +-----------+$
                         / \                        $
                        /   \                       $
                    ----     ---                    $
                   /            \                   $
                  /              \                  $
           +-----------+    +-----------+$
           |   model   |    | analysis  |$
           +-----------+    +-----------+$
""" + BLANK52 * 5)


# ---- ASCII -------------------------------------------------------------------------------
def test_x_from_a_plain_graph_in_go_vertex_order():
    g = nx.DiGraph()
    g.add_nodes_from(["configs", "datas", "clean", "model", "analysis"])
    g.add_edges_from([("configs", "clean"), ("datas", "clean"), ("clean", "model"), ("clean", "analysis")])
    assert render_ascii(g) == TEST_X


def test_x_from_pipeline_records_fan_in():
    # Greedy ordering swaps equal-scored neighbours, so cross [configs, datas] draws datas first.
    recs = [P("clean", {"cross": [pfs("configs"), pfs("datas")]}),
            P("model", pfs("clean")), P("analysis", pfs("clean"))]
    g = build_pipeline_graph(recs)
    assert list(g.nodes) == ["clean", "configs", "datas", "model", "analysis"]
    assert set(g.edges) == {("configs", "clean"), ("datas", "clean"), ("clean", "model"), ("clean", "analysis")}
    assert render_ascii(g) == TEST_X
    # the same DAG, inputs listed the other way round, mirrors the top row
    recs[0] = P("clean", {"cross": [pfs("datas"), pfs("configs")]})
    assert render_ascii(build_pipeline_graph(recs)).split("\n")[1] == "           |  configs  |    |   datas   |"


def test_chain():
    g = build_pipeline_graph([P("resize", pfs("images")), P("thumbs", pfs("resize"))])
    edge = "             |            $\n"
    assert render_ascii(g) == pic("""
       +-----------+$
       |  images   |$
       +-----------+$
""" + edge * 5 + """\
       +-----------+$
       |  resize   |$
       +-----------+$
""" + edge * 5 + """\
       +-----------+$
       |  thumbs   |$
       +-----------+$
""" + " " * 26 + "$\n" + (" " * 26 + "$\n") * 4)


def test_chain_box_width_and_edge_height_options():
    g = build_pipeline_graph([P("resize", pfs("images")), P("thumbs", pfs("resize"))])
    assert render_ascii(g, box_width=5, edge_height=2) == pic("""
    +-----+$
    |ima..|$
    +-----+$
       |      $
       |      $
    +-----+$
    |res..|$
    +-----+$
       |      $
       |      $
    +-----+$
    |thu..|$
    +-----+$
              $
              $
""")


def test_diamond():
    recs = [P("left", pfs("raw")), P("right", pfs("raw")), P("merge", {"cross": [pfs("left"), pfs("right")]})]
    assert render_ascii(build_pipeline_graph(recs)) == pic(r"""
                    +-----------+$
                    |    raw    |$
                    +-----------+$
                         / \                        $
                        /   \                       $
                    ----     ---                    $
                   /            \                   $
                  /              \                  $
           +-----------+    +-----------+$
           |   right   |    |   left    |$
           +-----------+    +-----------+$
                  \              /                  $
                   \            /                   $
                    ----     ---                    $
                        \   /                       $
                         \ /                        $
                    +-----------+$
                    |   merge   |$
                    +-----------+$
""" + BLANK52 * 5)


def test_long_edge_gets_dummy_vertices():
    recs = [P("clean", pfs("raw")), P("features", pfs("clean")),
            P("model", {"cross": [pfs("features"), pfs("raw")]})]
    assert render_ascii(build_pipeline_graph(recs)) == pic(r"""
                    +-----------+$
                    |    raw    |$
                    +-----------+$
                         / \                        $
                        /   \                       $
                    ----     ---                    $
                   /            \                   $
                  /              \                  $
                 |          +-----------+$
                 |          |   clean   |$
                 |          +-----------+$
                 |                |                 $
                 |                |                 $
                 |                |                 $
                 |                |                 $
                 |                |                 $
                 |          +-----------+$
                 |          | features  |$
                 |          +-----------+$
                  \              /                  $
                   \            /                   $
                    ----     ---                    $
                        \   /                       $
                         \ /                        $
                    +-----------+$
                    |   model   |$
                    +-----------+$
""" + BLANK52 * 5)


def test_crossing_edges_draw_plus():
    g = nx.DiGraph()
    g.add_nodes_from(["configs", "data", "biases", "model", "analysis"])
    for s in ("configs", "data", "biases"):
        g.add_edge(s, "model")
        g.add_edge(s, "analysis")
    lines = render_ascii(g).split("\n")
    assert lines[1] == "             |  biases   |      |   data    |      |  configs  |"
    assert lines[5] == ("                      --------------------------------+").ljust(78)


def test_truncation_and_colour():
    g = build_pipeline_graph([P("video_mp4_converter", pfs("raw_videos_and_images"), "JOB_KILLED")])
    plain = render_ascii(g)
    assert "|raw_video..|" in plain and "|video_mp4..|" in plain and "\x1b" not in plain
    coloured = render_ascii(g, color=True).split("\n")
    assert coloured[0] == "\x1b[92m       +-----------+\x1b[0m"
    assert coloured[1] == "\x1b[92m       |raw_video..|\x1b[0m"
    assert coloured[3] == "             |            "
    assert coloured[9] == "\x1b[91m       |video_mp4..|\x1b[0m"


def test_empty_graph_and_cycle():
    assert render_ascii(nx.DiGraph()) == ""
    with pytest.raises(ValueError, match="cycle"):
        render_ascii(nx.DiGraph([("a", "b"), ("b", "a")]))


# ---- pipeline graph model ----------------------------------------------------------------
TUTORIAL = [
    P("video_mp4_converter", pfs("raw_videos_and_images", "/*")),
    P("image_flattener", pfs("video_mp4_converter", "/*")),
    P("image_tracer", {"union": [pfs("raw_videos_and_images", "/*.{png,jpg,jpeg}"), pfs("image_flattener", "/*")]}),
    P("movie_gifer", {"union": [pfs("image_flattener", "/!(*.*)"), pfs("image_tracer", "/!(*.*)")]}, "JOB_FAILURE"),
    P("content_shuffler", {"union": [pfs("movie_gifer", "/"), pfs("raw_videos_and_images", "/*.{png,jpg,jpeg}"),
                                     pfs("image_tracer", "/*.{png,jpg,jpeg}")]}),
    P("content_collager", pfs("content_shuffler", "/")),
]


def test_pipeline_graph_of_the_tutorial():
    recs = [dict(r, project="video-to-frame-traces", state="PIPELINE_RUNNING") for r in TUTORIAL]
    g = build_pipeline_graph(recs)
    assert g.graph["project"] == "video-to-frame-traces"
    assert [n for n, k in g.nodes(data="kind") if k == "repo"] == ["raw_videos_and_images"]
    assert set(g.edges) == {
        ("raw_videos_and_images", "video_mp4_converter"), ("video_mp4_converter", "image_flattener"),
        ("raw_videos_and_images", "image_tracer"), ("image_flattener", "image_tracer"),
        ("image_flattener", "movie_gifer"), ("image_tracer", "movie_gifer"),
        ("movie_gifer", "content_shuffler"), ("raw_videos_and_images", "content_shuffler"),
        ("image_tracer", "content_shuffler"), ("content_shuffler", "content_collager")}
    assert [n for n, r in g.nodes(data="red") if r] == ["movie_gifer"]
    assert g.edges["raw_videos_and_images", "image_tracer"]["inputs"][0]["via"] == ("union",)
    picture = render_ascii(g)
    assert picture.split("\n")[1] == "                                 |raw_video..|"
    assert picture.count("+-----------+") == 14  # 7 boxes, 2 borders each


def test_named_inputs_cron_and_other_projects():
    recs = [P("train", {"cross": [pfs("features", name="feats", join_on="$1"),
                                  {"cron": {"name": "tick", "spec": "@every 1m", "repo": "train_tick"}},
                                  pfs("shared", project="common")]}),
            P("features", pfs("raw")),
            {"pipeline": {"name": "eval", "project": "default"}, "details": {"input": pfs("train")},
             "lastJobState": "JOB_SUCCESS"}]
    g = build_pipeline_graph(recs)
    assert set(g.edges) == {("features", "train"), ("train_tick", "train"), ("common/shared", "train"),
                            ("raw", "features"), ("train", "eval")}
    assert g.nodes["train_tick"]["kind"] == "cron" and g.nodes["train_tick"]["label"] == "tick"
    assert g.nodes["features"]["kind"] == "pipeline"
    by_name = build_pipeline_graph(recs, vertex_key="name")  # Pachyderm's own keying
    assert ("feats", "train") in by_name.edges and ("tick", "train") in by_name.edges
    text = render_dot(g)
    assert '"features" -> "train" [label="feats: /* join_on=$1 (cross)"];' in text
    assert '"train_tick"[shape=cds' in text and "@every 1m" in text


# ---- DOT ---------------------------------------------------------------------------------
def svg_texts(svg: str) -> tuple[set[str], str]:
    """(the <title>s of nodes and edges, all text) of an SVG, which must be well-formed XML."""
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    titles = {t.text for t in root.iter(ns + "title")}
    return titles, " ".join("".join(t.itertext()) for t in root.iter(ns + "text"))


@pytest.fixture(params=[pytest.param("graphviz", marks=needs_graphviz), "pachctl"])
def draws(request):
    """DOT text -> SVG text, by graphviz's `dot` or by pachctl.draw.svg (pure Python)."""
    def draw(text: str) -> str:
        if request.param == "pachctl":
            svg = render_svg(text)
            assert svg == render_svg(text)  # same DOT, same picture
            return svg
        proc = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode()
    return draw


def test_render_dot_tutorial_is_valid_and_stable(draws):
    g = build_pipeline_graph(TUTORIAL)
    text = render_dot(g, highlight="image_tracer")
    assert text.startswith("digraph G {\n\tnode [shape=record fontsize=10]\n\tedge [fontsize=10]\n\n")
    assert '"raw_videos_and_images"[shape=cylinder color="#1c9930" label="raw_videos_and_images"];' in text
    assert '"raw_videos_and_images" -> "image_tracer" [label="/*.{png,jpg,jpeg} (union)"];' in text
    assert '<FONT COLOR="red"><B>failure</B></FONT>' in text  # movie_gifer's last job
    assert 'BGCOLOR="#EDD9B4"><B>image_tracer</B>' in text
    assert text == render_dot(build_pipeline_graph(TUTORIAL), highlight="image_tracer")
    titles, words = svg_texts(draws(text))
    assert set(g.nodes) <= titles
    for name in g.nodes:
        assert name in words
    assert "failure" in words and "/*.{png,jpg,jpeg} (union)" in words


def test_dot_escaping(draws):
    g = build_pipeline_graph([P('odd', pfs('in"put', glob='/a\\b<&>'))])
    titles, words = svg_texts(draws(render_dot(g)))
    assert {'in"put', "odd"} <= titles
    assert "/a\\b<&>" in words


# ---- lineage: the beginner tutorial, two commit sets -------------------------------------
PROJ = "video-to-frame-traces"
RAW = "raw_videos_and_images"
INPUTS = {  # pipeline -> input repos in spec order
    "video_mp4_converter": [RAW],
    "image_flattener": ["video_mp4_converter"],
    "image_tracer": [RAW, "image_flattener"],
    "movie_gifer": ["image_flattener", "image_tracer"],
    "content_shuffler": ["movie_gifer", RAW, "image_tracer"],
    "content_collager": ["content_shuffler"],
}
SETS = ("a" * 32, "b" * 32)  # first upload, then one more image


def ref(repo, cid, rtype="user"):
    return CommitRef(repo, cid, PROJ, rtype)


def D(repo, cid):
    return data_key(ref(repo, cid))


def R(pipeline, cid):
    return run_key(PROJ, pipeline, cid)


@pytest.fixture
def store():
    commits, jobs = {}, {}
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    for n, cs in enumerate(SETS):
        commits[ref(RAW, cs)] = {"repo": RAW, "id": cs, "project": PROJ, "branch": "master", "origin": "USER",
                                 "finished": t0, "size": 1000 + n, "error": "",
                                 "direct_provenance": [], "direct_subvenance": []}
        for p, ins in INPUTS.items():
            spec = ref(p, f"spec{p}", "spec")
            commits[ref(p, cs)] = {"repo": p, "id": cs, "project": PROJ, "branch": "master", "origin": "AUTO",
                                   "finished": t0.timestamp(), "size": 2048, "error": "",
                                   "direct_provenance": [spec] + [ref(i, cs) for i in ins],
                                   "direct_subvenance": []}
            for i in ins:  # subvenance also lists the pipeline's meta commit, which is not data
                commits[ref(i, cs)]["direct_subvenance"] += [ref(p, cs), ref(p, cs, "meta")]
            jobs[(PROJ, p, cs)] = {"pipeline": p, "id": cs, "state": "JOB_SUCCESS", "data_processed": 1 + n,
                                   "data_skipped": 3 * n, "data_failed": 0, "data_total": 1 + 4 * n}
    calls = {"commit": [], "job": []}

    def fetch_commit(r):
        calls["commit"].append(r)
        return commits.get(r)

    def fetch_job(project, pipeline, job_id):
        calls["job"].append((project, pipeline, job_id))
        return jobs.get((project, pipeline, job_id))

    return commits, jobs, fetch_commit, fetch_job, calls


ALL_B_DATA = {D(r, SETS[1]) for r in [RAW, *INPUTS]}
ALL_B_RUNS = {R(p, SETS[1]) for p in INPUTS}
ALL_B_EDGES = ({(R(p, SETS[1]), D(p, SETS[1])) for p in INPUTS}
               | {(D(i, SETS[1]), R(p, SETS[1])) for p, ins in INPUTS.items() for i in ins})


def test_upstream_of_collager_is_the_whole_commit_set(store):
    _, _, fc, fj, calls = store
    b = SETS[1]
    g = build_lineage(ref("content_collager", b), fc, fj)
    assert set(g.nodes) == ALL_B_DATA | ALL_B_RUNS
    assert set(g.edges) == ALL_B_EDGES and len(g.edges) == 16
    assert g.graph["start"] == D("content_collager", b) and g.nodes[D("content_collager", b)]["start"]
    assert sum(1 for _, s in g.nodes(data="start") if s) == 1
    run = g.nodes[R("image_tracer", b)]
    assert (run["kind"], run["state"], run["data_processed"], run["data_skipped"]) == ("run", "JOB_SUCCESS", 2, 3)
    assert run["spec_commit"] == "specimage_tracer"
    assert g.edges[D(RAW, b), R("image_tracer", b)]["label"] == f"/pfs/{RAW}"
    assert g.edges[R("image_tracer", b), D("image_tracer", b)]["label"] == "/pfs/out"
    assert g.nodes[D(RAW, b)]["origin"] == "USER" and not list(g.predecessors(D(RAW, b)))
    assert all(r.type == "user" for r in calls["commit"])  # spec and meta commits never fetched
    assert (PROJ, RAW, b) not in calls["job"]  # user commits are not asked for jobs
    assert nx.is_directed_acyclic_graph(g)
    assert all(g.nodes[u]["kind"] != g.nodes[v]["kind"] for u, v in g.edges)  # data<->run only


def test_upstream_depth_limits(store):
    _, _, fc, fj, _ = store
    b = SETS[1]
    start = ref("content_collager", b)
    g1 = build_lineage(start, fc, fj, depth=1)
    assert set(g1.nodes) == {D("content_collager", b), R("content_collager", b), D("content_shuffler", b)}
    assert set(g1.edges) == {(R("content_collager", b), D("content_collager", b)),
                             (D("content_shuffler", b), R("content_collager", b))}
    g2 = build_lineage(start, fc, fj, depth=2)
    assert set(g2.nodes) - set(g1.nodes) == {R("content_shuffler", b), D("movie_gifer", b), D(RAW, b),
                                             D("image_tracer", b)}
    g3 = build_lineage(start, fc, fj, depth=3)
    assert set(g3.nodes) - set(g2.nodes) == {R("movie_gifer", b), R("image_tracer", b), D("image_flattener", b)}
    g4 = build_lineage(start, fc, fj, depth=4)
    assert set(g4.nodes) - set(g3.nodes) == {R("image_flattener", b), D("video_mp4_converter", b)}
    g5 = build_lineage(start, fc, fj, depth=5)
    assert set(g5.nodes) == ALL_B_DATA | ALL_B_RUNS and set(g5.edges) == ALL_B_EDGES
    with pytest.raises(ValueError):
        build_lineage(start, fc, fj, depth=0)


def test_downstream_of_a_raw_commit(store):
    _, _, fc, fj, _ = store
    a, b = SETS
    g = build_lineage(ref(RAW, a), fc, fj, upstream=False, downstream=True)
    assert set(g.nodes) == {D(r, a) for r in [RAW, *INPUTS]} | {R(p, a) for p in INPUTS}
    assert not any(b in n for n in g.nodes)
    g1 = build_lineage(ref(RAW, b), fc, fj, upstream=False, downstream=True, depth=1)
    assert set(g1.nodes) == {D(RAW, b), D("video_mp4_converter", b), D("image_tracer", b), D("content_shuffler", b),
                             D("image_flattener", b), D("movie_gifer", b),  # side inputs of those runs
                             R("video_mp4_converter", b), R("image_tracer", b), R("content_shuffler", b)}
    assert set(g1.edges) == {
        (D(RAW, b), R("video_mp4_converter", b)), (R("video_mp4_converter", b), D("video_mp4_converter", b)),
        (D(RAW, b), R("image_tracer", b)), (D("image_flattener", b), R("image_tracer", b)),
        (R("image_tracer", b), D("image_tracer", b)),
        (D("movie_gifer", b), R("content_shuffler", b)), (D(RAW, b), R("content_shuffler", b)),
        (D("image_tracer", b), R("content_shuffler", b)), (R("content_shuffler", b), D("content_shuffler", b))}
    g2 = build_lineage(ref(RAW, b), fc, fj, upstream=False, downstream=True, depth=2)
    assert set(g2.nodes) - set(g1.nodes) == {R("image_flattener", b), R("movie_gifer", b),
                                             R("content_collager", b), D("content_collager", b)}


def test_both_directions_from_the_middle(store):
    _, _, fc, fj, _ = store
    b = SETS[1]
    g = build_lineage({"repo": "image_tracer", "id": b, "project": PROJ}, fc, fj, downstream=True, depth=1)
    assert set(g.nodes) == {D("image_tracer", b), R("image_tracer", b), D(RAW, b), D("image_flattener", b),
                            R("movie_gifer", b), D("movie_gifer", b),
                            R("content_shuffler", b), D("content_shuffler", b)}
    # a user commit has nothing upstream
    g = build_lineage(ref(RAW, b), fc, fj)
    assert set(g.nodes) == {D(RAW, b)} and not g.edges


def test_missing_job_missing_commit_and_alias(store, draws):
    commits, jobs, fc, fj, _ = store
    b = SETS[1]
    del jobs[(PROJ, "image_flattener", b)]  # AUTO commit whose job is gone: placeholder run
    del commits[ref("video_mp4_converter", b)]  # provenance pointing at a deleted commit
    commits[ref("image_tracer", b)]["origin"] = "ALIAS"
    del jobs[(PROJ, "image_tracer", b)]  # an alias has no job: a source, not walked through
    g = build_lineage(ref("movie_gifer", b), fc, fj)
    assert g.nodes[R("image_flattener", b)]["state"] == "JOB_STATE_UNKNOWN"
    assert g.nodes[D("video_mp4_converter", b)]["missing"]
    assert R("image_tracer", b) not in g and D("image_tracer", b) in g
    text = lineage_dot(g)
    assert "(not found)" in text and "state_unknown" in text
    assert "(not found)" in svg_texts(draws(text))[1]
    with pytest.raises(LookupError):
        build_lineage(ref("nope", b), fc, fj)


def test_lineage_dot_is_valid_and_renders(store, draws):
    commits, jobs, fc, fj, _ = store
    b = SETS[1]
    commits[ref("content_collager", b)]["error"] = 'boom <"quoted"> & more'
    jobs[(PROJ, "content_collager", b)].update(state="JOB_FAILURE", reason="user code failed")
    g = build_lineage(ref("content_collager", b), fc, fj)
    text = lineage_dot(g)
    assert text.startswith("digraph G {\n\tnode [shape=record fontsize=10]\n\tedge [fontsize=10]\n\n")
    start = D("content_collager", b)
    assert f'\t"{start}"[shape=none color="#1c9930"' in text
    assert '<TD BGCOLOR="#d4ecc6">content_collager@master</TD>' in text  # the start is highlighted
    assert PROJ not in text.split("label=")[1].split("];")[0]  # project named only when foreign
    assert text.count('BGCOLOR="#d4ecc6"') == 1
    assert "boom &lt;&quot;quoted&quot;&gt; &amp; more" in text
    assert '<FONT COLOR="red"><B>failure</B></FONT>' in text and "user code failed" in text
    assert "processed 2 | skipped 3 | failed 0 | total 5 | spec specimag" in text
    assert "id: bbbbbbbb | 1001B |" in text  # raw commit: short id, go-units size, time
    assert f'\t"{D(RAW, b)}" -> "{R("image_tracer", b)}" [label="/pfs/{RAW}"];' in text
    assert text.index("[shape=none color=\"#FFA500\"") > text.rindex("[shape=none color=\"#1c9930\"")
    titles, words = svg_texts(draws(text))
    assert set(g.nodes) <= titles
    assert 'boom <"quoted"> & more' in words and "user code failed" in words
    assert f"/pfs/{RAW}" in words


def test_svg_layout_keeps_nodes_apart_and_arrows_on_their_ends(store):
    lineage = lineage_dot(build_lineage(ref("content_collager", SETS[1]), *store[2:4]))
    for text in (render_dot(build_pipeline_graph(TUTORIAL)), lineage):
        nodes, arrows, width, height, _ = svg_mod.place(text)
        boxes = {k: (n.x - n.w / 2, n.y - n.h / 2, n.x + n.w / 2, n.y + n.h / 2) for k, n in nodes.items()}
        for a, (ax0, ay0, ax1, ay1) in boxes.items():
            assert ax0 >= -0.01 and ay0 >= -0.01 and ax1 <= width + 0.01 and ay1 <= height + 0.01, a
            for b, (bx0, by0, bx1, by1) in boxes.items():
                assert a == b or ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, (a, b)
        assert len(arrows) == text.count(" -> ")
        for arrow in arrows:
            (sx, sy), (ex, ey) = arrow.pts[0], arrow.pts[-1]
            s0, e0 = boxes[arrow.src], boxes[arrow.dst]
            assert abs(sy - s0[3]) < 0.01 or abs(sx - s0[0]) < 0.01 or abs(sx - s0[2]) < 0.01  # leaves its source
            assert abs(ey - e0[1]) < 0.01 or abs(ex - e0[0]) < 0.01 or abs(ex - e0[2]) < 0.01  # enters its target
            assert sy < ey  # sources above what they feed, as graphviz draws it


@needs_graphviz
def test_render_image_with_graphviz(store, tmp_path):
    g = build_lineage(ref("content_collager", SETS[1]), *store[2:4])
    text = lineage_dot(g)
    png = render_image(text, tmp_path / "lineage.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = render_image(text, tmp_path / "lineage.out", "svg")
    assert "Generated by graphviz" in svg.read_text()
    with pytest.raises(RuntimeError, match="dot -Tpng failed"):
        render_image("digraph {", tmp_path / "x.png")


def test_render_image_without_graphviz(store, tmp_path, monkeypatch):
    monkeypatch.setattr(dot_mod.shutil, "which", lambda name: None)
    g = build_lineage(ref("content_collager", SETS[1]), *store[2:4])
    svg = render_image(lineage_dot(g), tmp_path / "lineage.svg")
    assert set(g.nodes) <= svg_texts(svg.read_text())[0]
    with pytest.raises(GraphvizNotFound, match=r"PNG needs it.*sudo apt-get install graphviz.*-o svg"):
        render_image("digraph G {}", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_parse_depth():
    assert parse_depth("all") is None and parse_depth("3") == 3
    for bad in ("0", "-1", "x"):
        with pytest.raises(ValueError):
            parse_depth(bad)
