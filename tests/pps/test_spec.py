"""Pipeline spec parsing, validation and defaults (pps.spec)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfs.errors import InvalidArgument
from pps.spec import (
    CronInput,
    CrossInput,
    GroupInput,
    JoinInput,
    PfsInput,
    PipelineSpec,
    UnionInput,
    effective_parallelism,
    input_repos,
    load_specs,
    normalize_spec,
    parse_specs,
    pipeline_input_summary,
    spec_to_dict,
    unknown_fields,
)


def base(**extra) -> dict:
    d = {
        "pipeline": {"name": "edges"},
        "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv:1.0"},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
    }
    d.update(extra)
    return d


def pfs(repo, glob="/*", **kw) -> dict:
    return {"pfs": {"repo": repo, "glob": glob, **kw}}


def err(d: dict, **kw) -> str:
    with pytest.raises(InvalidArgument) as e:
        normalize_spec(d, **kw)
    return str(e.value)


# ---- parsing --------------------------------------------------------------------------------
def test_parse_json_object_array_stream_and_yaml():
    one = json.dumps(base())
    assert parse_specs(one) == [base()]
    assert parse_specs(json.dumps([base(), base()])) == [base(), base()]
    assert len(parse_specs(one + "\n" + one + one)) == 3
    yaml_text = """
pipeline:
  name: a
transform:
  cmd: [sh]
---
pipeline:
  name: b
transform:
  cmd: [sh]
"""
    assert [d["pipeline"]["name"] for d in parse_specs(yaml_text)] == ["a", "b"]
    assert parse_specs("- pipeline: {name: x}\n- pipeline: {name: y}\n")[1] == {"pipeline": {"name": "y"}}
    assert parse_specs("{pipeline: {name: flow}}") == [{"pipeline": {"name": "flow"}}]  # YAML flow


@pytest.mark.parametrize("text", ["{", "pipeline: [", "42", "- 1\n- 2\n"])
def test_parse_errors(text):
    with pytest.raises(InvalidArgument):
        parse_specs(text)


# ---- defaults -----------------------------------------------------------------------------
def test_defaults_filled():
    s = normalize_spec(base(transform={"cmd": ["sh"]}))
    assert s.project == "default" and s.name == "edges"
    assert s.transform.image == "ubuntu:20.04"
    assert s.output_branch == "master"
    assert s.datum_tries == 3
    assert s.reprocess_spec == "until_success"
    assert s.salt == ""
    assert s.parallelism_spec is None
    assert s.input == PfsInput(project="default", name="images", repo="images", repo_type="user",
                               branch="master", glob="/*")


def test_project_parameter_and_explicit_project():
    assert normalize_spec(base(), project="video").project == "video"
    d = base(pipeline={"name": "edges", "project": {"name": "p2"}})
    s = normalize_spec(d, project="video")
    assert s.project == "p2" and s.input.project == "p2"
    d = base(input=pfs("images", project="other"))
    assert normalize_spec(d).input.project == "other"


@pytest.mark.parametrize("raw,clean", [("*", "/*"), ("/*/", "/*"), ("", None), ("dir/*", "/dir/*")])
def test_glob_is_cleaned(raw, clean):
    d = base(input=pfs("images", raw))
    if clean is None:
        assert "input must specify a glob" in err(d)
    else:
        assert normalize_spec(d).input.glob == clean


def test_cron_defaults():
    d = base(input={"cron": {"name": "tick", "spec": "@every 60s"}})
    s = normalize_spec(d)
    assert s.input == CronInput(name="tick", project="default", repo="edges_tick", spec="@every 60s")
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert normalize_spec(d, now=now).input.start == now
    d["input"]["cron"]["start"] = "2023-05-01T00:00:00Z"
    assert normalize_spec(d, now=now).input.start == datetime(2023, 5, 1, tzinfo=timezone.utc)


def test_trigger_branch_default():
    d = base(input=pfs("images", trigger={"size": "1M"}))
    s = normalize_spec(d)
    assert s.input.branch == "edges-trigger-1" and s.input.trigger.branch == "master"


def test_service_default_type_and_parallelism():
    d = base(service={"internal_port": 8888, "external_port": 30888})
    assert normalize_spec(d).service.type == "NodePort"
    d["parallelism_spec"] = {"constant": 2}
    assert "constant parallelism of 1" in err(d)
    d = base(service={"type": "Weird"})
    assert "service type Weird is not allowed" in err(d)


def test_effective_parallelism():
    assert effective_parallelism(normalize_spec(base()), 8) == 8
    s = normalize_spec(base(parallelism_spec={"constant": 0}))
    assert s.parallelism_spec.constant == 0 and effective_parallelism(s, 4) == 4
    assert effective_parallelism(normalize_spec(base(parallelismSpec={"constant": "3"})), 4) == 3


# ---- names: snake and lowerCamel ------------------------------------------------------------
def test_camel_names_accepted():
    d = {
        "pipeline": {"name": "j"},
        "transform": {"cmd": ["sh"], "workingDir": "/w", "acceptReturnCode": [1, "2"], "errCmd": ["true"]},
        "input": {"join": [pfs("a", "/(*)", joinOn="$1", outerJoin=True), pfs("b", "/(*)", join_on="$1")]},
        "datumTries": 5,
        "reprocessSpec": "every_job",
        "datumTimeout": "1h30m",
        "jobTimeout": "1.5s",
        "s3Out": True,
        "resourceRequests": {"cpu": 0.5, "memory": "1G"},
        "podPatch": [{"op": "add", "path": "/x", "value": 1}],
    }
    s = normalize_spec(d)
    assert s.transform.working_dir == "/w" and s.transform.accept_return_code == (1, 2)
    assert s.input.inputs[0].join_on == "$1" and s.input.inputs[0].outer_join
    assert s.datum_tries == 5 and s.reprocess_spec == "every_job"
    assert s.datum_timeout == 5400 and s.job_timeout == 1.5
    assert s.s3_out and s.resource_requests.cpu == 0.5
    assert json.loads(s.pod_patch) == [{"op": "add", "path": "/x", "value": 1}]
    out = spec_to_dict(s)
    assert out["datum_timeout"] == "5400s" and out["job_timeout"] == "1.500s"
    assert spec_to_dict(s, camel=True)["datumTimeout"] == "5400s"


def test_same_field_twice_rejected():
    assert "given twice" in err(base(datum_tries=1, datumTries=2))


@pytest.mark.parametrize(
    "d,where",
    [
        (base(transfrom={}), '"transfrom" in pipeline spec at "transfrom"'),
        (base(input=pfs("images", globb="/*")), 'at "input.pfs.globb"'),
        (base(input={"cross": [pfs("a"), {"pfs": {"repo": "b", "glob": "/", "x": 1}}]}),
         'at "input.cross[1].pfs.x"'),
        (base(input={"pfss": {}}), 'at "input.pfss"'),
        (base(transform={"cmd": ["sh"], "secrets": [{"nme": "s"}]}), 'at "transform.secrets[0].nme"'),
    ],
)
def test_unknown_fields_rejected_with_path(d, where):
    msg = err(d)
    assert "unknown field" in msg and where in msg


def test_unknown_fields_lenient_mode():
    d = base(pipeline={"name": "content_collager", "description": "quirk"}, foo=1)
    assert unknown_fields(d) == ["pipeline.description", "foo"]
    s = normalize_spec(d, strict=False)
    assert s.name == "content_collager" and s.description == ""


@pytest.mark.parametrize(
    "d,text",
    [
        (base(datum_timeout=60), "durations must be strings"),
        (base(datum_timeout="60"), "missing unit"),
        (base(datum_timeout="-1s"), "must not be negative"),
        (base(datum_tries="many"), "expected an integer"),
        (base(datum_tries=True), "expected an integer"),
        (base(autoscaling="yes"), "expected true or false"),
        (base(description=3), "expected a string"),
        (base(transform={"cmd": "sh"}), "expected a list"),
        (base(transform={"cmd": ["sh"], "env": {"PORT": 8080}}), "expected a map of strings"),
        (base(input=pfs("images", lazy="true")), 'at "input.pfs.lazy"'),
        (base(tolerations=[{"operator": "MAYBE"}]), "expected one of EMPTY, EXISTS, EQUAL"),
        (base(input={"cron": {"name": "t", "spec": "@every 1m", "start": "yesterday"}}), "RFC3339"),
    ],
)
def test_type_errors(d, text):
    assert text in err(d)


# ---- validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "d,text",
    [
        ({"transform": {"cmd": ["sh"]}}, "no `pipeline` specified"),
        (base(pipeline={}), "no pipeline `name` specified"),
        (base(pipeline={"name": "bad name"}), "only alphanumeric characters, underscores, and dashes"),
        (base(pipeline={"name": "bad.name"}), "invalid pipeline name"),
        (base(pipeline={"name": "_x"}), "must start with an alphanumeric character"),
        (base(pipeline={"name": "x" * 52}), "1 characters longer than the 51 max"),
        ({"pipeline": {"name": "p"}}, "pipeline must specify a transform"),
        (base(transform={"image": "ubuntu"}), "must specify a cmd"),
        (base(reprocess_spec="sometimes"), "ReprocessSpec must be one of 'until_success' or 'every_job'"),
        (base(datum_tries=-1), "datum_tries must be >= 0"),
        (base(tf_job={"tf_job": "x"}), "TFJobs"),
        (base(s3_out=True, service={}), "s3 output is not supported in spouts or services"),
        (base(spout={}, autoscaling=True, input=None), "autoscaling can't be used with spouts"),
        (base(spout={}), "spout pipelines (without a service) must not have an input"),
        (base(pod_spec="{nope"), "malformed PodSpec"),
        (base(transform={"cmd": ["sh"], "secrets": [{"name": "s", "env_var": "X"}]}), "missing key"),
        (base(input={}), "no input set"),
        (base(input={"cross": []}), "no input set"),
        (base(input={"pfs": {"repo": "a", "glob": "/"}, "cron": {"name": "c", "spec": "@daily"}}),
         "multiple input types set"),
        (base(input={"pfs": {"glob": "/"}}), "input must specify a repo"),
        (base(input=pfs("out")), "repos named \"out\" must have 'name' set"),
        (base(input=pfs("images", name="out")), "input cannot be named out"),
        (base(input=pfs("images", name=".env")), "input cannot be named .env"),
        (base(input=pfs("images", commit="abc")), "input cannot come from a commit"),
        (base(input=pfs("images", s3=True)), "must also set 'glob', to \"/\""),
        (base(input=pfs("images", "/", s3=True, lazy=True)), "both 's3' and 'lazy'"),
        (base(input=pfs("images", "/", s3=True, empty_files=True)), "both 's3' and 'empty_files'"),
        (base(input={"join": [pfs("a", "/", s3=True), pfs("b")]}), "S3 inputs in join expressions"),
        (base(input={"cron": {"name": "t", "spec": "* * *"}}), "error parsing cron-spec"),
        (base(input={"cron": {"spec": "@daily"}}), "input must specify a name"),
        (base(input=pfs("images", "/[z-a]")), "invalid glob pattern"),
    ],
)
def test_validation_errors(d, text):
    assert text in err(d)


def test_duplicate_names():
    d = base(input={"cross": [pfs("a"), pfs("a")]})
    assert err(d) == 'name "a" was used more than once'
    d = base(input={"join": [pfs("a"), pfs("b", name="a")]})
    assert 'name "a" was used more than once' in err(d)
    d = base(input={"group": [pfs("a"), {"cron": {"name": "a", "spec": "@daily"}}]})
    assert 'name "a" was used more than once' in err(d)
    # union children may share a name ...
    d = base(input={"union": [pfs("a", name="in"), pfs("b", name="in")]})
    assert [k.name for k in normalize_spec(d).input.inputs] == ["in", "in"]
    # ... but something crossed with the union may not reuse it
    d = base(input={"cross": [{"union": [pfs("a", name="in"), pfs("b", name="in")]}, pfs("c", name="in")]})
    assert 'name "in" was used more than once' in err(d)
    # the same repo twice needs distinct names
    d = base(input={"cross": [pfs("a", name="left"), pfs("a", name="right")]})
    assert normalize_spec(d).input.inputs[1].repo == "a"


def test_spout_without_input_ok():
    s = normalize_spec(base(spout={}, input=None, transform={"cmd": []}))
    assert s.input is None and s.spout is not None


# ---- ordering of compound children -----------------------------------------------------------
def test_children_sorted_by_explicit_name_stably():
    d = base(input={"union": [pfs("z", name="b"), pfs("y", name="a"), pfs("x", name="b")]})
    assert [k.repo for k in normalize_spec(d).input.inputs] == ["y", "z", "x"]


def test_compound_name_is_first_child_and_nested_sorting():
    d = base(input={"cross": [
        {"union": [pfs("q", name="m2"), pfs("p", name="m1")]},
        pfs("r", name="b"),
    ]})
    s = normalize_spec(d)
    first, second = s.input.inputs
    assert isinstance(first, PfsInput) and first.name == "b"
    assert [k.name for k in second.inputs] == ["m1", "m2"]


def test_sort_by_given_names_then_effective_names():
    # sorted by effective names (repo for unnamed inputs); ties keep the given-name order
    d = base(input={"union": [pfs("zeta"), pfs("alpha")]})
    assert [k.name for k in normalize_spec(d).input.inputs] == ["alpha", "zeta"]
    d = base(input={"union": [pfs("b", name="x"), pfs("x"), pfs("a", name="x")]})
    # given names: "x", "", "x" -> [x(repo x), b, a]; effective all "x" -> kept
    assert [k.repo for k in normalize_spec(d).input.inputs] == ["x", "b", "a"]
    # a cron input's sort name is "" (Pachyderm's InputName ignores cron)
    d = base(input={"cross": [pfs("a"), {"cron": {"name": "tick", "spec": "@daily"}}]})
    assert isinstance(normalize_spec(d).input.inputs[0], CronInput)


# ---- summaries and provenance -------------------------------------------------------------
def test_input_summary_and_repos():
    d = base(input={"cross": [
        {"join": [pfs("a", "/(*)", join_on="$1"), pfs("b", "/(*)", join_on="$1")]},
        {"union": [pfs("c", "/"), {"cron": {"name": "tick", "spec": "@hourly"}}]},
        {"group": [pfs("d", "/(*)", group_by="$1"), pfs("e", "/(*)", group_by="$1")]},
    ]})
    s = normalize_spec(d)
    # the union's first child is the cron (sort name ""), so the union sorts first
    assert pipeline_input_summary(s.input) == (
        "((tick:@hourly ∪ default/c:/) ⨯ (default/a:/(*) ⋈ default/b:/(*)) ⨯ "
        "(Group: default/d:/(*), default/e:/(*)))")
    assert input_repos(s) == [("default", r, "master") for r in ("edges_tick", "c", "a", "b", "d", "e")]
    assert pipeline_input_summary(None) == "none"


def test_input_repos_dedups_and_keeps_branch():
    d = base(input={"cross": [pfs("a", name="x", branch="dev"), pfs("a", name="y", branch="dev")]})
    assert input_repos(normalize_spec(d)) == [("default", "a", "dev")]


# ---- round trip ----------------------------------------------------------------------------
def test_spec_to_dict_is_canonical_and_round_trips():
    d = base(
        input={"cross": [pfs("b", name="b"), pfs("a", name="a", join_on="$1", lazy=True)]},
        parallelism_spec={"constant": 0},
        metadata={"labels": {"team": "x"}},
        tolerations=[{"key": "k", "operator": 1, "toleration_seconds": "30"}],
        datum_set_spec={"number": 1},
    )
    s = normalize_spec(d)
    out = spec_to_dict(s)
    assert out["parallelism_spec"] == {}  # set message, zero value
    assert out["input"]["cross"][0]["pfs"]["name"] == "a"
    assert out["tolerations"] == [{"key": "k", "operator": "EXISTS", "toleration_seconds": 30}]
    assert normalize_spec(out) == s
    assert normalize_spec(json.loads(json.dumps(spec_to_dict(s, camel=True)))) == s


# ---- the beginner tutorial -----------------------------------------------------------------
TUTORIAL = """
pipeline:
  name: video_mp4_converter
input:
  pfs:
    repo: raw_videos_and_images
    glob: "/*"
transform:
  image: lbliii/video_mp4_converter:1.0.14
  cmd:
    - python3
    - /video_mp4_converter.py
    - --input
    - /pfs/raw_videos_and_images/
    - --output
    - /pfs/out/
autoscaling: true
---
pipeline:
  name: movie_gifer
description: A pipeline that converts frames into a gif using the OpenCV library.
input:
  union:
    - pfs:
        repo: image_flattener
        glob: "/!(*.*)"
    - pfs:
        repo: image_tracer
        glob: "/!(*.*)"
transform:
  image: lbliii/movie_gifer:1.0.5
  cmd: ["python3", "/movie_gifer.py", "--input", "/pfs/image_flattener", "/pfs/image_tracer", "--output", "/pfs/out/"]
autoscaling: true
---
pipeline:
  name: content_shuffler
description: A pipeline that collapses our inputs into one datum for the collager.
input:
  union:
    - pfs:
        repo: movie_gifer
        glob: "/"
    - pfs:
        repo: raw_videos_and_images
        glob: "/*.{png,jpg,jpeg}"
    - pfs:
        repo: image_tracer
        glob: "/*.{png,jpg,jpeg}"
transform:
  image: lbliii/content_shuffler:1.0.0
  cmd: ["python3", "/content_shuffler.py", "--input", "/pfs/movie_gifer", "/pfs/raw_videos_and_images", "/pfs/image_tracer", "--output", "/pfs/out/"]
autoscaling: true
"""


def test_tutorial_specs():
    specs = load_specs(TUTORIAL, project="video-to-frame-traces")
    assert [s.name for s in specs] == ["video_mp4_converter", "movie_gifer", "content_shuffler"]
    assert all(s.project == "video-to-frame-traces" and s.autoscaling for s in specs)
    assert pipeline_input_summary(specs[0].input) == "video-to-frame-traces/raw_videos_and_images:/*"
    assert isinstance(specs[1].input, UnionInput)
    assert [(k.name, k.glob) for k in specs[2].input.inputs] == [
        ("image_tracer", "/*.{png,jpg,jpeg}"), ("movie_gifer", "/"),
        ("raw_videos_and_images", "/*.{png,jpg,jpeg}")]


# ---- properties ----------------------------------------------------------------------------
NAMES = st.sampled_from(["a", "b", "c", "d", "e"])


@st.composite
def input_trees(draw, depth=0):
    if depth >= 2 or draw(st.booleans()):
        return {"pfs": {"repo": draw(NAMES), "glob": draw(st.sampled_from(["*", "/", "/*/", "/x/*"]))}}
    kind = draw(st.sampled_from(["cross", "union", "join", "group"]))
    kids = draw(st.lists(input_trees(depth + 1), min_size=1, max_size=3))
    return {kind: kids}


def _names_unique_ok(d: dict) -> bool:
    try:
        normalize_spec(d)
        return True
    except InvalidArgument as e:
        assert "was used more than once" in str(e)
        return False


@given(input_trees())
@settings(max_examples=150, deadline=None)
def test_normalize_is_idempotent_through_dict(tree):
    d = base(input=tree)
    if not _names_unique_ok(d):
        return
    s = normalize_spec(d)
    assert isinstance(s, PipelineSpec)
    again = normalize_spec(spec_to_dict(s))
    assert again == s
    assert spec_to_dict(again) == spec_to_dict(s)
    for node in [s.input]:
        assert isinstance(node, (PfsInput, CrossInput, UnionInput, JoinInput, GroupInput))


def test_canonical_dict_is_valid_protobuf_json():
    """spec_to_dict feeds effective_spec_json: it must parse as pps_v2.CreatePipelineRequest
    (proto or JSON names) and come back to the same spec."""
    json_format = pytest.importorskip("google.protobuf.json_format")
    pps_pb2 = pytest.importorskip("proto.pps_v2.pps_pb2")
    d = base(
        transform={"cmd": ["sh"], "env": {"A": "b"}, "secrets": [{"name": "s", "key": "k", "env_var": "E"}]},
        input={"cross": [pfs("a", "/(*)", trigger={"size": "1M"}),
                         {"cron": {"name": "t", "spec": "@daily", "start": "2024-01-01T00:00:00Z"}}]},
        datum_timeout="1.5s",
        tolerations=[{"key": "k", "operator": "EXISTS", "toleration_seconds": 5}],
        egress={"sql_database": {"url": "x", "file_format": {"type": "CSV", "columns": ["a"]}}},
        resource_limits={"cpu": 1.5, "gpu": {"type": "nvidia", "number": 1}},
        parallelism_spec={"constant": 2},
        pod_patch=[{"op": "add"}],
    )
    s = normalize_spec(d)
    for camel in (False, True):
        msg = json_format.ParseDict(spec_to_dict(s, camel=camel), pps_pb2.CreatePipelineRequest())
        back = json_format.MessageToDict(msg, preserving_proto_field_name=not camel)
        assert normalize_spec(back) == s  # int64 come back as strings: accepted
