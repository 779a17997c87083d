"""The input algebra (pps.datums): worked examples from Pachyderm's docs and properties."""
from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pps.datums import (
    Datum,
    InputFile,
    classify,
    cron_as_pfs,
    datum_env,
    enumerate_datums,
    glob_listing,
)
from pps.spec import CronInput, CrossInput, GroupInput, JoinInput, PfsInput, UnionInput, normalize_spec


def entries(files: dict[str, bytes]) -> list[tuple[str, bytes, int]]:
    """Files plus every implied directory (dirs end with `/`, hashed from their subtree)."""
    out: dict[str, tuple[bytes, int]] = {}
    for path, data in files.items():
        out[path] = (hashlib.sha256(data).digest(), len(data))
    dirs: dict[str, list[str]] = {}
    for path in files:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            dirs.setdefault("/" + "/".join(parts[:i]) + "/", []).append(path)
    for d, members in dirs.items():
        h = hashlib.sha256(b"".join(out[m][0] for m in sorted(members))).digest()
        out[d] = (h, sum(out[m][1] for m in members))
    if files:
        h = hashlib.sha256(b"".join(out[m][0] for m in sorted(files))).digest()
        out["/"] = (h, sum(len(v) for v in files.values()))
    return [(p, h, s) for p, (h, s) in sorted(out.items())]


def listing_for(repos: dict[str, dict[str, bytes]]):
    idx = {repo: entries(files) for repo, files in repos.items()}
    return lambda pfs: glob_listing(pfs.glob, idx.get(pfs.repo, []))


def P(repo, glob="/*", **kw) -> PfsInput:
    kw.setdefault("name", repo)
    return PfsInput(project="default", repo=repo, branch="master", glob=glob, **kw)


def shape(datums: list[Datum]) -> list[tuple[tuple[str, str], ...]]:
    return [tuple((f.name, f.path) for f in d.inputs) for d in datums]


# ---- datum id and hash ---------------------------------------------------------------------
def _reference_id(inputs) -> str:
    h = hashlib.blake2b(digest_size=32)
    for name, repo, branch, path in inputs:
        for s in (name, repo, branch, path):
            h.update(s.encode() + struct.pack(">q", len(s.encode())))
    return h.hexdigest()


def F(name="in", repo="r", branch="master", path="/a", file_hash=b"\x01", **kw) -> InputFile:
    return InputFile(name=name, project="default", repo=repo, branch=branch, commit="c1",
                     path=path, file_hash=file_hash, size=1, **kw)


def test_datum_id_layout():
    d = Datum((F(), F(name="b", repo="r2", path="/dir/")))
    assert d.id == _reference_id([("in", "r", "master", "/a"), ("b", "r2", "master", "/dir/")])
    # 2.x layout: name, int64-BE len, repo, len, branch, len, path, len
    raw = b"in" + struct.pack(">q", 2) + b"r" + struct.pack(">q", 1) + b"master" + struct.pack(">q", 6)
    raw += b"/a" + struct.pack(">q", 2)
    assert Datum((F(),)).id == hashlib.blake2b(raw, digest_size=32).hexdigest()


def test_datum_hash_layout_and_reference_inputs():
    d = Datum((F(file_hash=b"AA"), F(name="x", file_hash=b"BB", reference=True)))
    want = hashlib.blake2b(d.id.encode() + b"AA" + b"salt", digest_size=32).hexdigest()
    assert d.hash("salt") == want


@given(st.binary(min_size=1, max_size=8), st.binary(min_size=1, max_size=8), st.text(max_size=5))
@settings(max_examples=100, deadline=None)
def test_id_ignores_content_hash_does_not(h1, h2, salt):
    a, b = Datum((F(file_hash=h1),)), Datum((F(file_hash=h2),))
    assert a.id == b.id
    assert (a.hash(salt) == b.hash(salt)) is (h1 == h2)
    assert a.hash(salt) != a.hash(salt + "x")


# ---- pfs -----------------------------------------------------------------------------------
REPO = {"images": {"/a.png": b"A", "/b.jpg": b"B", "/dir/c.png": b"C", "/dir/sub/d.png": b"D"}}


@pytest.mark.parametrize(
    "glob,paths",
    [
        ("/", ["/"]),
        ("/*", ["/a.png", "/b.jpg", "/dir/"]),
        ("/*/*", ["/dir/c.png", "/dir/sub/"]),
        ("/**", ["/a.png", "/b.jpg", "/dir/", "/dir/c.png", "/dir/sub/", "/dir/sub/d.png"]),
        ("/*.png", ["/a.png"]),
        ("/nothing*", []),
    ],
)
def test_pfs_one_datum_per_match(glob, paths):
    got = enumerate_datums(P("images", glob), listing_for(REPO))
    assert [d.inputs[0].path for d in got] == paths


def test_empty_repo_glob_root_gives_no_datums():
    assert enumerate_datums(P("empty", "/"), listing_for({"empty": {}})) == []


def test_commits_recorded():
    got = enumerate_datums(P("images", "/a.png"), listing_for(REPO),
                           commits={("default", "images", "master"): "abc"})
    assert got[0].inputs[0].commit == "abc"


# ---- cross ---------------------------------------------------------------------------------
def test_cross_is_cartesian_in_child_order():
    repos = {"a": {"/1": b"", "/2": b""}, "b": {"/x": b"", "/y": b"", "/z": b""}}
    got = enumerate_datums(CrossInput((P("a"), P("b"))), listing_for(repos))
    assert shape(got) == [(("a", p), ("b", q)) for p in ("/1", "/2") for q in ("/x", "/y", "/z")]
    assert enumerate_datums(CrossInput((P("a"), P("none"))), listing_for(repos)) == []


def test_cross_of_images_root_and_edges_root():
    # the 2.5 tutorial's montage: cross of `images:/` and `edges:/` -> one datum
    repos = {"images": {"/a.png": b"1"}, "edges": {"/a.png": b"2"}}
    got = enumerate_datums(CrossInput((P("edges", "/"), P("images", "/"))), listing_for(repos))
    assert shape(got) == [(("edges", "/"), ("images", "/"))]


# ---- union: the beginner tutorial --------------------------------------------------------
TUTORIAL = {
    "raw_videos_and_images": {"/liberty.png": b"L", "/cat-sleeping.MOV": b"C",
                              "/robot.png": b"R", "/highway.MOV": b"H"},
    "image_flattener": {"/cat-sleeping/cat-sleeping-frame-0000000000.jpg": b"1",
                        "/cat-sleeping/cat-sleeping-frame-0000000001.jpg": b"2",
                        "/highway/highway-frame-0000000000.jpg": b"3"},
    "image_tracer": {"/liberty_edges.png": b"4", "/robot_edges.png": b"5",
                     "/cat-sleeping/cat-sleeping-frame-0000000000_edges.png": b"6",
                     "/highway/highway-frame-0000000000_edges.png": b"7"},
    "movie_gifer": {"/cat-sleeping/cat-sleeping_original.gif": b"8",
                    "/cat-sleeping/cat-sleeping_edges.gif": b"9"},
}


def tutorial_input(union_children: list[dict]):
    spec = normalize_spec({"pipeline": {"name": "p"}, "transform": {"cmd": ["sh"]},
                           "input": {"union": union_children}})
    return spec.input


def test_tutorial_image_tracer_union():
    inp = tutorial_input([{"pfs": {"repo": "raw_videos_and_images", "glob": "/*.{png,jpg,jpeg}"}},
                          {"pfs": {"repo": "image_flattener", "glob": "/*"}}])
    got = enumerate_datums(inp, listing_for(TUTORIAL))
    assert shape(got) == [
        (("image_flattener", "/cat-sleeping/"),), (("image_flattener", "/highway/"),),
        (("raw_videos_and_images", "/liberty.png"),), (("raw_videos_and_images", "/robot.png"),)]
    env = datum_env(got[0], "job1", "job1")
    assert env["image_flattener"] == "/pfs/image_flattener/cat-sleeping"
    assert "raw_videos_and_images" not in env  # union datums hold one child only


def test_tutorial_movie_gifer_negation_union():
    inp = tutorial_input([{"pfs": {"repo": "image_flattener", "glob": "/!(*.*)"}},
                          {"pfs": {"repo": "image_tracer", "glob": "/!(*.*)"}}])
    got = enumerate_datums(inp, listing_for(TUTORIAL))
    assert shape(got) == [
        (("image_flattener", "/cat-sleeping/"),), (("image_flattener", "/highway/"),),
        (("image_tracer", "/cat-sleeping/"),), (("image_tracer", "/highway/"),)]


def test_tutorial_content_shuffler_union():
    inp = tutorial_input([{"pfs": {"repo": "movie_gifer", "glob": "/"}},
                          {"pfs": {"repo": "raw_videos_and_images", "glob": "/*.{png,jpg,jpeg}"}},
                          {"pfs": {"repo": "image_tracer", "glob": "/*.{png,jpg,jpeg}"}}])
    got = enumerate_datums(inp, listing_for(TUTORIAL))
    assert len(got) == 5
    root = next(d for d in got if d.inputs[0].name == "movie_gifer")
    assert datum_env(root, "j", "j")["movie_gifer"] == "/pfs/movie_gifer"


def test_union_collapses_identical_ids():
    repos = {"a": {"/1": b"", "/2": b""}}
    got = enumerate_datums(UnionInput((P("a", "/*"), P("a", "/1"))), listing_for(repos))
    assert shape(got) == [(("a", "/1"),), (("a", "/2"),)]


# ---- join: docs-style `$1` joins ---------------------------------------------------------
JOIN_REPOS = {
    "readings": {"/ID1.txt": b"r1", "/ID2.txt": b"r2", "/ID3.txt": b"r3", "/ID4.txt": b"r4"},
    "parameters": {"/ID1.txt": b"p1", "/ID2.txt": b"p2", "/ID5.txt": b"p5"},
}


def join(outer_a=False, outer_b=False):
    return JoinInput((
        P("parameters", "/(*).txt", join_on="$1", outer_join=outer_b),
        P("readings", "/(*).txt", join_on="$1", outer_join=outer_a),
    ))


def test_inner_join():
    got = enumerate_datums(join(), listing_for(JOIN_REPOS))
    assert shape(got) == [
        (("parameters", "/ID1.txt"), ("readings", "/ID1.txt")),
        (("parameters", "/ID2.txt"), ("readings", "/ID2.txt"))]
    env = datum_env(got[0], "j", "o")
    assert env["PACH_DATUM_readings_JOIN_ON"] == "ID1"
    assert env["PACH_DATUM_parameters_JOIN_ON"] == "ID1"


def test_outer_joins():
    left = shape(enumerate_datums(join(outer_a=True), listing_for(JOIN_REPOS)))
    assert (("readings", "/ID3.txt"),) in left and (("readings", "/ID4.txt"),) in left
    assert (("parameters", "/ID5.txt"),) not in left and len(left) == 4
    full = shape(enumerate_datums(join(True, True), listing_for(JOIN_REPOS)))
    assert len(full) == 5 and (("parameters", "/ID5.txt"),) in full


def test_join_many_to_many_is_per_key_product():
    repos = {"a": {"/k1-x": b"", "/k1-y": b"", "/k2-z": b""}, "b": {"/k1-p": b"", "/k1-q": b""}}
    inp = JoinInput((P("a", "/(*)-*", join_on="$1"), P("b", "/(*)-*", join_on="$1")))
    got = shape(enumerate_datums(inp, listing_for(repos)))
    assert len(got) == 4 and all(d[0][1].startswith("/k1") for d in got)


def test_join_key_constant_template():
    repos = {"a": {"/1": b"", "/2": b""}, "b": {"/3": b""}}
    inp = JoinInput((P("a", join_on="same"), P("b", join_on="same")))
    assert len(enumerate_datums(inp, listing_for(repos))) == 2


# ---- group ---------------------------------------------------------------------------------
GROUP_REPOS = {
    "labresults": {"/T1606331395-LIPID-patient1-CLIA24D9871327.txt": b"1",
                   "/T1606707557-LIPID-patient2-CLIA24D9871327.txt": b"2",
                   "/T1606707579-HEMO-patient1-CLIA24D9871327.txt": b"3"},
    "patients": {"/patient1.txt": b"a", "/patient2.txt": b"b", "/patient3.txt": b"c"},
}


def test_group_by_patient():
    inp = GroupInput((
        P("labresults", "/*-*-(*)-*.txt", group_by="$1"),
        P("patients", "/(*).txt", group_by="$1"),
    ))
    got = enumerate_datums(inp, listing_for(GROUP_REPOS))
    assert shape(got) == [
        (("labresults", "/T1606331395-LIPID-patient1-CLIA24D9871327.txt"),
         ("labresults", "/T1606707579-HEMO-patient1-CLIA24D9871327.txt"),
         ("patients", "/patient1.txt")),
        (("labresults", "/T1606707557-LIPID-patient2-CLIA24D9871327.txt"), ("patients", "/patient2.txt")),
        (("patients", "/patient3.txt"),),  # a key present in one child still forms a datum
    ]
    assert datum_env(got[0], "j", "o")["PACH_DATUM_patients_GROUP_BY"] == "patient1"


# ---- cron ----------------------------------------------------------------------------------
def test_cron_is_pfs_glob_star_on_tick_repo():
    cron = CronInput(name="tick", project="default", repo="p_tick", spec="@every 60s")
    assert cron_as_pfs(cron).glob == "/*" and cron_as_pfs(cron).branch == "master"
    repos = {"p_tick": {"/2024-01-01T00:00:00Z": b"", "/2024-01-01T00:01:00Z": b""}}
    got = enumerate_datums(cron, listing_for(repos))
    assert shape(got) == [(("tick", "/2024-01-01T00:00:00Z"),), (("tick", "/2024-01-01T00:01:00Z"),)]


# ---- worker env ------------------------------------------------------------------------------
def test_datum_env():
    d = Datum((F(name="in", path="/dir/"), F(name="other", path="/x/y.txt", join_on="k")))
    env = datum_env(d, "job", "out")
    assert env == {
        "in": "/pfs/in/dir", "in_COMMIT": "c1",
        "other": "/pfs/other/x/y.txt", "other_COMMIT": "c1", "PACH_DATUM_other_JOIN_ON": "k",
        "PACH_DATUM_ID": d.id, "PACH_JOB_ID": "job", "PACH_OUTPUT_COMMIT_ID": "out",
    }
    assert datum_env(Datum((F(path="/"),)), "j", "o")["in"] == "/pfs/in"


# ---- classify ------------------------------------------------------------------------------
def test_classify_rules():
    a, b, c = (Datum((F(path=p),)) for p in ("/a", "/b", "/c"))
    changed = Datum((F(path="/b", file_hash=b"new"),))
    base = {
        a.id: (a.hash("s"), "SUCCESS"),
        b.id: (b.hash("s"), "success"),
        c.id: (c.hash("s"), "FAILED"),
        "gone": ("h", "success"),
    }
    proc, skip, delete = classify([a, changed, c], base, "s")
    assert skip == [a] and proc == [changed, c] and delete == ["gone"]
    base[c.id] = (c.hash("s"), "RECOVERED")
    assert classify([c], base, "s")[0] == [c]
    proc, skip, _ = classify([a], base, "s", reprocess_every_job=True)
    assert proc == [a] and skip == []
    assert classify([a], base, "other-salt")[0] == [a]


# ---- properties ----------------------------------------------------------------------------
FILES = st.dictionaries(st.sampled_from(["/1", "/2", "/3", "/k1-a", "/k1-b", "/k2-a", "/d/x", "/d/y"]),
                        st.binary(max_size=3), max_size=6)


@given(FILES, FILES, FILES)
@settings(max_examples=80, deadline=None)
def test_cross_size_is_product(fa, fb, fc):
    lst = listing_for({"a": fa, "b": fb, "c": fc})
    kids = (P("a"), P("b"), P("c", "/**"))
    sizes = [len(enumerate_datums(k, lst)) for k in kids]
    got = enumerate_datums(CrossInput(kids), lst)
    assert len(got) == sizes[0] * sizes[1] * sizes[2]
    assert len({d.id for d in got}) == len(got)


@given(FILES, FILES, st.sampled_from(["/*", "/**", "/d/*", "/"]))
@settings(max_examples=80, deadline=None)
def test_union_is_sum_minus_duplicates(fa, fb, glob):
    lst = listing_for({"a": fa, "b": fb})
    kids = (P("a", "/*"), P("a", glob), P("b", glob))
    parts = [enumerate_datums(k, lst) for k in kids]
    got = enumerate_datums(UnionInput(kids), lst)
    all_ids = [d.id for p in parts for d in p]
    assert len(got) == len(set(all_ids)) == len(all_ids) - (len(all_ids) - len(set(all_ids)))
    assert [d.id for d in got] == list(dict.fromkeys(all_ids))


@given(FILES, FILES)
@settings(max_examples=80, deadline=None)
def test_inner_join_is_filtered_cross(fa, fb):
    lst = listing_for({"a": fa, "b": fb})
    ka, kb = P("a", "/(*)", join_on="$1"), P("b", "/(*)", join_on="$1")
    ka2, kb2 = P("a", "/(*)-*", join_on="$1"), P("b", "/(*)-*", join_on="$1")
    for x, y in ((ka, kb), (ka2, kb2)):
        joined = {d.id for d in enumerate_datums(JoinInput((x, y)), lst)}
        crossed = enumerate_datums(CrossInput((x, y)), lst)
        assert joined == {d.id for d in crossed if d.inputs[0].join_on == d.inputs[1].join_on}


@given(FILES, FILES, st.booleans(), st.booleans())
@settings(max_examples=80, deadline=None)
def test_outer_join_adds_only_unmatched_outer_inputs(fa, fb, oa, ob):
    lst = listing_for({"a": fa, "b": fb})
    x = P("a", "/(*)-*", join_on="$1", outer_join=oa)
    y = P("b", "/(*)-*", join_on="$1", outer_join=ob)
    inner = {d.id for d in enumerate_datums(JoinInput((P("a", "/(*)-*", join_on="$1"),
                                                       P("b", "/(*)-*", join_on="$1"))), lst)}
    outer = enumerate_datums(JoinInput((x, y)), lst)
    extra = [d for d in outer if d.id not in inner]
    keys_a = {d.inputs[0].join_on for d in enumerate_datums(x, lst)}
    keys_b = {d.inputs[0].join_on for d in enumerate_datums(y, lst)}
    for d in extra:
        assert len(d.inputs) == 1
        f = d.inputs[0]
        assert (f.name == "a" and oa and f.join_on not in keys_b) or \
               (f.name == "b" and ob and f.join_on not in keys_a)


@given(FILES, FILES)
@settings(max_examples=80, deadline=None)
def test_group_partitions_inputs(fa, fb):
    lst = listing_for({"a": fa, "b": fb})
    kids = (P("a", "/(*)-*", group_by="$1"), P("b", "/(?)", group_by="k$1"))
    inputs = [f for k in kids for d in enumerate_datums(k, lst) for f in d.inputs]
    groups = enumerate_datums(GroupInput(kids), lst)
    flat = [f for g in groups for f in g.inputs]
    assert sorted(flat, key=repr) == sorted(inputs, key=repr)
    for g in groups:
        assert len({f.group_by for f in g.inputs}) == 1
    assert len({g.inputs[0].group_by for g in groups}) == len(groups)


@given(st.lists(st.sampled_from("abcdef"), unique=True), st.lists(st.sampled_from("abcdefgh"), unique=True),
       st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from(["success", "failed", "recovered", "skipped"])),
       st.booleans())
@settings(max_examples=100, deadline=None)
def test_classify_partitions_ids(new_paths, base_paths, states, every_job):
    new = [Datum((F(path="/" + p),)) for p in new_paths]
    old = {Datum((F(path="/" + p),)).id: (Datum((F(path="/" + p),)).hash("s"), states.get(p, "success"))
           for p in base_paths}
    proc, skip, delete = classify(new, old, "s", every_job)
    pid, sid = {d.id for d in proc}, {d.id for d in skip}
    assert pid | sid == {d.id for d in new} and not pid & sid
    assert set(delete) == set(old) - {d.id for d in new}
    for d in skip:
        assert not every_job and d.id in old and old[d.id][1] in ("success", "skipped")
    for d in new:
        if d.id in old and old[d.id][1] in ("failed", "recovered"):
            assert d.id in pid


def test_enumeration_is_deterministic():
    lst = listing_for(JOIN_REPOS)
    inp = CrossInput((join(True, True), P("readings", "/", name="all")))
    assert shape(enumerate_datums(inp, lst)) == shape(enumerate_datums(inp, lst))
    assert enumerate_datums(None, lst) == []
