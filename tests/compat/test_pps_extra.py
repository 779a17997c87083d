"""pps through both official clients: ListDatum over an input spec (no pipeline), the
streamed CreateDatum, GetLogs follow/tail/since (a finished job's stream ends), RunCron on a
pipeline without a cron input."""
from __future__ import annotations

import json
import queue
import textwrap
from datetime import timedelta

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from tests.compat.helpers import run_pp
from tests.service.helpers import expect_error


def _repo(c, name, files):
    c.pfs.create_repo(repo=pfs.Repo(name=name))
    with c.pfs.commit(branch=pfs.Branch.from_uri(f"{name}@master")) as cm:
        for path, data in files.items():
            cm.put_file_from_bytes(path=path, data=data)


def test_list_datum_over_an_input_spec(pps_client):
    c = pps_client
    _repo(c, "imgs", {f"/{i}.png": b"x" * i for i in range(1, 6)})
    _repo(c, "models", {"/m1": b"1", "/m2": b"2"})
    one = list(c.pps.list_datum(input=pps.Input(pfs=pps.PfsInput(repo="imgs", glob="/*"))))
    assert sorted(d.data[0].file.path for d in one) == [f"/{i}.png" for i in range(1, 6)]
    assert all(len(d.datum.id) == 64 and d.state == pps.DatumState.UNKNOWN for d in one)
    assert one[0].data[0].file.commit.repo.name == "imgs"
    cross = list(c.pps.list_datum(input=pps.Input(cross=[
        pps.Input(pfs=pps.PfsInput(repo="imgs", glob="/*")), pps.Input(pfs=pps.PfsInput(repo="models", glob="/*"))])))
    assert len(cross) == 10 and all(len(d.data) == 2 for d in cross)
    assert len(list(c.pps.list_datum(input=pps.Input(pfs=pps.PfsInput(repo="imgs", glob="/*")), number=2))) == 2
    msg = expect_error(grpc.StatusCode.NOT_FOUND, c.pps.list_datum,
                       input=pps.Input(pfs=pps.PfsInput(repo="nope", glob="/*")))
    assert msg == "repo default/nope not found"
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, c.pps.list_datum)


def test_create_datum_streams_batches_on_request(pps_client):
    c = pps_client
    _repo(c, "five", {f"/{i}": b"d" for i in range(5)})
    asks: queue.Queue = queue.Queue()

    def requests():
        while True:
            r = asks.get()
            if r is None:
                return
            yield r
    asks.put(pps.CreateDatumRequest(start=pps.StartCreateDatumRequest(
        input=pps.Input(pfs=pps.PfsInput(repo="five", glob="/*")), number=2)))
    stream = c.pps.create_datum(requests())
    got = [next(stream), next(stream)]  # the first batch, before any continue
    asks.put(pps.CreateDatumRequest(continue_=pps.ContinueCreateDatumRequest(number=2)))
    got += [next(stream), next(stream)]
    asks.put(pps.CreateDatumRequest(continue_=pps.ContinueCreateDatumRequest(number=10)))
    got += list(stream)  # the last datum, then the stream ends
    asks.put(None)
    assert sorted(d.data[0].file.path for d in got) == [f"/{i}" for i in range(5)]
    assert len({d.datum.id for d in got}) == 5
    # the first message must be a start
    with pytest.raises(grpc.RpcError) as ei:
        list(c.pps.create_datum(iter([pps.CreateDatumRequest(continue_=pps.ContinueCreateDatumRequest(number=1))])))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_logs_follow_tail_since_and_run_cron_error(pps_client):
    c = pps_client
    _repo(c, "lin", {"/a": b"1", "/b": b"2"})
    c.pps.create_pipeline(
        pipeline=pps.Pipeline(name="talk"),
        transform=pps.Transform(cmd=["sh"], stdin=["echo line-one", "echo line-two", "cp -r /pfs/lin/* /pfs/out/"]),
        input=pps.Input(pfs=pps.PfsInput(repo="lin", glob="/*")))
    job = next(iter(c.pps.list_job(pipeline=pps.Pipeline(name="talk"))))
    # follow on a job: streams while it runs and ENDS once it is finished (no client timeout)
    followed = [m.message for m in c.pps.get_logs(job=job.job, follow=True) if m.user]
    assert followed.count("line-one") == 2 and followed.count("line-two") == 2
    assert c.pps.inspect_job(job=job.job).state == pps.JobState.JOB_SUCCESS
    # following a finished job ends too
    assert [m.message for m in c.pps.get_logs(job=job.job, follow=True) if m.user] == followed
    tail = [m.message for m in c.pps.get_logs(job=job.job, tail=1)]
    assert len(tail) == 1
    assert [m.message for m in c.pps.get_logs(job=job.job, since=timedelta(hours=1)) if m.user] == followed
    assert list(c.pps.get_logs(job=job.job, since=timedelta(microseconds=1))) == []
    msg = expect_error(grpc.StatusCode.UNKNOWN, c.pps.run_cron, pipeline=pps.Pipeline(name="talk"))
    assert msg == "pipeline doesn't have a cron input"
    msg = expect_error(grpc.StatusCode.NOT_FOUND, c.pps.run_cron, pipeline=pps.Pipeline(name="none"))
    assert "none" in msg
    c.pps.delete_pipeline(pipeline=pps.Pipeline(name="talk"), force=True)


PP_SCRIPT = textwrap.dedent('''
    import sys, grpc, python_pachyderm
    from python_pachyderm.service import pps_proto
    c = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
    c.create_repo("ppin")
    with c.commit("ppin", "master") as cm:
        for n in ("a", "b", "c"):
            c.put_file_bytes(cm, "/" + n, n.encode())
    ds = list(c.list_datum(input=pps_proto.Input(pfs=pps_proto.PFSInput(repo="ppin", glob="/*"))))
    assert sorted(d.data[0].file.path for d in ds) == ["/a", "/b", "/c"], ds
    c.create_pipeline("pp-echo", transform=pps_proto.Transform(cmd=["sh"], stdin=["echo hi-from-pp"]),
                      input=pps_proto.Input(pfs=pps_proto.PFSInput(repo="ppin", glob="/")))
    job = list(c.list_job("pp-echo"))[0]
    msgs = [m.message for m in c.get_job_logs("pp-echo", job.job.id, follow=True) if m.user]
    assert msgs == ["hi-from-pp"], msgs
    try:
        c.run_cron("pp-echo")
        raise SystemExit("run_cron on a pipeline without cron input did not fail")
    except grpc.RpcError as e:
        assert e.details() == "pipeline doesn't have a cron input", e.details()
    c.delete_pipeline("pp-echo", force=True)
    print("ok")
''')


def test_python_pachyderm_list_datum_logs_run_cron(pp_python, pachd_pps):
    run_pp(pp_python, PP_SCRIPT, pachd_pps.port)


def test_cluster_and_project_defaults_round_trip_and_run_pipeline(pps_client):
    c = pps_client
    doc = '{"createPipelineRequest": {"datumTries": "5"}}'
    c.pps.set_cluster_defaults(cluster_defaults_json=doc)
    assert c.pps.get_cluster_defaults().cluster_defaults_json == doc
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, c.pps.set_cluster_defaults,
                 cluster_defaults_json='{"createPipelineRequest": {"noSuchField": 1}}')
    c.pps.set_project_defaults(project=pfs.Project(name="default"), project_defaults_json="{}")
    assert c.pps.get_project_defaults(project=pfs.Project(name="default")).project_defaults_json == "{}"
    expect_error(grpc.StatusCode.NOT_FOUND, c.pps.get_project_defaults, project=pfs.Project(name="nope"))
    assert expect_error(grpc.StatusCode.UNKNOWN, c.pps.run_pipeline) == "unimplemented"  # as Pachyderm 2.x


def test_defaults_are_merged_under_new_pipeline_specs(pps_client):
    c = pps_client
    _repo(c, "dfl", {"/x": b"1"})
    c.pps.set_cluster_defaults(cluster_defaults_json=json.dumps(
        {"createPipelineRequest": {"datumTries": "7", "autoscaling": True}}))
    c.pps.set_project_defaults(project=pfs.Project(name="default"), project_defaults_json=json.dumps(
        {"createPipelineRequest": {"datumTries": "4"}}))

    def make(name, **kw):
        c.pps.create_pipeline(pipeline=pps.Pipeline(name=name), transform=pps.Transform(cmd=["true"]),
                              input=pps.Input(pfs=pps.PfsInput(repo="dfl", glob="/")), **kw)
        return c.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name))
    a = make("dfl-a")
    assert a.details.datum_tries == 4 and a.details.autoscaling is True  # project over cluster
    b = make("dfl-b", datum_tries=2)
    assert b.details.datum_tries == 2  # the user's spec wins
    assert "datumTries" not in a.user_spec_json and "datum_tries" not in a.user_spec_json
    for n in ("dfl-a", "dfl-b"):
        c.pps.delete_pipeline(pipeline=pps.Pipeline(name=n), force=True)


def test_render_template_evaluates_jsonnet_with_args(pps_client):
    c = pps_client
    template = ('function(name, glob="/*") {pipeline: {name: name}, '
                'input: {pfs: {repo: "in", glob: glob}}, transform: {cmd: ["cp", "-r", "/pfs/in", "/pfs/out"]}}')
    r = c.pps.render_template(template=template, args={"name": "rendered"})
    assert json.loads(r.json)["pipeline"] == {"name": "rendered"}
    assert [s.pipeline.name for s in r.specs] == ["rendered"] and r.specs[0].input.pfs.glob == "/*"
    many = c.pps.render_template(template='[{pipeline: {name: "a"}}, {pipeline: {name: "b"}}]', args={})
    assert [s.pipeline.name for s in many.specs] == ["a", "b"]
    msg = expect_error(grpc.StatusCode.INVALID_ARGUMENT, c.pps.render_template, template=template, args={})
    assert "name" in msg
    msg = expect_error(grpc.StatusCode.INVALID_ARGUMENT, c.pps.render_template, template="{", args={})
    assert "could not evaluate the template" in msg
