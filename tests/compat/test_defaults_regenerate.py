"""Set{Cluster,Project}Defaults with regenerate / reprocess / dry_run through pachyderm-sdk:
only pipelines whose effective spec changes are named and updated; dry_run changes nothing;
reprocess makes the next job process its datums again instead of skipping them."""
from __future__ import annotations

import json

import grpc
from pachyderm_sdk.api import pfs, pps

from tests.service.helpers import expect_error


def _names(resp):
    return sorted(f"{p.project.name}/{p.name}" for p in resp.affected_pipelines)


def _pipeline(c, name, project="default", **kw):
    c.pps.create_pipeline(pipeline=pps.Pipeline(name=name, project=pfs.Project(name=project)),
                          transform=pps.Transform(cmd=["sh", "-c", "cp /pfs/in/* /pfs/out/"]),
                          input=pps.Input(pfs=pps.PfsInput(project="default", repo="in", glob="/*", name="in")),
                          **kw)


def _info(c, name, project="default"):
    return c.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name, project=pfs.Project(name=project)))


def _last_job(c, name, project="default"):
    jobs = list(c.pps.list_job(pipeline=pps.Pipeline(name=name, project=pfs.Project(name=project))))
    newest = max(jobs, key=lambda j: j.created.ToDatetime() if hasattr(j.created, "ToDatetime") else j.created)
    return c.pps.inspect_job(job=newest.job, wait=True)


def test_regenerate_updates_only_changed_pipelines_and_reprocess_redoes_datums(pps_client):
    c = pps_client
    c.pfs.create_repo(repo=pfs.Repo(name="in"))
    with c.pfs.commit(branch=pfs.Branch.from_uri("in@master")) as cm:
        cm.put_file_from_bytes(path="/a", data=b"a")
        cm.put_file_from_bytes(path="/b", data=b"b")
    c.pfs.create_project(project=pfs.Project(name="other"))
    _pipeline(c, "plain")
    _pipeline(c, "pinned", datum_tries=2)  # sets the field the defaults change: not affected
    _pipeline(c, "elsewhere", project="other")
    for n, p in (("plain", "default"), ("pinned", "default"), ("elsewhere", "other")):
        assert _last_job(c, n, p).state == pps.JobState.JOB_SUCCESS
    assert _info(c, "plain").details.datum_tries == 3

    doc = json.dumps({"createPipelineRequest": {"datumTries": "6"}})
    # without regenerate: stored, nothing named, nothing updated
    resp = c.pps.set_cluster_defaults(cluster_defaults_json=doc)
    assert _names(resp) == [] and _info(c, "plain").version == 1
    c.pps.set_cluster_defaults(cluster_defaults_json="{}")

    # dry run: named, nothing stored or updated
    resp = c.pps.set_cluster_defaults(cluster_defaults_json=doc, regenerate=True, dry_run=True)
    assert _names(resp) == ["default/plain", "other/elsewhere"]
    assert json.loads(c.pps.get_cluster_defaults().cluster_defaults_json) == {}
    assert _info(c, "plain").version == 1 and _info(c, "plain").details.datum_tries == 3

    # regenerate without reprocess: new version, the defaults applied, datums skipped
    resp = c.pps.set_cluster_defaults(cluster_defaults_json=doc, regenerate=True)
    assert _names(resp) == ["default/plain", "other/elsewhere"]
    plain = _info(c, "plain")
    assert plain.version == 2 and plain.details.datum_tries == 6
    assert _info(c, "pinned").version == 1 and _info(c, "pinned").details.datum_tries == 2
    assert _info(c, "elsewhere", "other").version == 2
    # the same defaults again change no effective spec
    assert _names(c.pps.set_cluster_defaults(cluster_defaults_json=doc, regenerate=True)) == []
    assert _info(c, "plain").version == 2

    # project defaults reach only their project; reprocess processes the datums again
    before = _last_job(c, "elsewhere", "other").job.id
    resp = c.pps.set_project_defaults(project=pfs.Project(name="other"), regenerate=True, reprocess=True,
                                      project_defaults_json=json.dumps({"createPipelineRequest": {"datumTries": "1"}}))
    assert _names(resp) == ["other/elsewhere"]
    info = _info(c, "elsewhere", "other")
    assert info.version == 3 and info.details.datum_tries == 1
    job = _last_job(c, "elsewhere", "other")
    assert job.job.id != before and job.state == pps.JobState.JOB_SUCCESS
    assert job.data_processed == 2 and job.data_skipped == 0
    assert _info(c, "plain").version == 2

    # defaults that would make a pipeline invalid are refused, naming it, and change nothing
    bad = json.dumps({"createPipelineRequest": {"reprocessSpec": "sometimes"}})
    msg = expect_error(grpc.StatusCode.INVALID_ARGUMENT, c.pps.set_cluster_defaults,
                       cluster_defaults_json=bad, regenerate=True)
    assert "default/pinned" in msg or "default/plain" in msg
    assert json.loads(c.pps.get_cluster_defaults().cluster_defaults_json) == json.loads(doc)


def test_defaults_merge_with_camel_case_user_specs(pps_client):
    """CreatePipelineV2 takes the user's JSON as written (camelCase or proto names); the
    defaults (stored with proto names) merge with it field by field, never twice."""
    c = pps_client
    c.pfs.create_repo(repo=pfs.Repo(name="in"))
    c.pps.set_cluster_defaults(cluster_defaults_json=json.dumps(
        {"createPipelineRequest": {"datumTries": "5", "autoscaling": True}}))
    spec = {"pipeline": {"name": "camel"}, "datumTries": 2,
            "transform": {"cmd": ["true"], "env": {"someVar": "1"}},
            "input": {"pfs": {"repo": "in", "glob": "/*"}}}
    c.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    info = _info(c, "camel")
    assert info.details.datum_tries == 2 and info.details.autoscaling is True
    assert dict(info.details.transform.env) == {"someVar": "1"}  # map keys are data: unchanged
    resp = c.pps.set_cluster_defaults(cluster_defaults_json=json.dumps(
        {"createPipelineRequest": {"datumTries": "6", "autoscaling": False}}), regenerate=True)
    assert _names(resp) == ["default/camel"]
    info = _info(c, "camel")
    assert info.version == 2 and info.details.datum_tries == 2 and info.details.autoscaling is False
