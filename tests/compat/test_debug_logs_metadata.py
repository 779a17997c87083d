"""debug_v2, logs, metadata, pjs and snapshot through pachyderm-sdk 2.12.2: what they do
here, and the FAILED_PRECONDITION (naming why) where they cannot apply."""
from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile

import grpc
import pytest
from pachyderm_sdk.api import debug, logs, metadata, pfs, pjs, pps, snapshot

from tests.service.helpers import expect_error


def _rp(name):
    return pfs.RepoPicker(name=pfs.RepoPickerRepoName(name=name, type="user",
                                                      project=pfs.ProjectPicker(name="default")))


def test_edit_metadata_of_project_repo_branch_commit_cluster(client):
    client.pfs.create_repo(repo=pfs.Repo(name="m"))
    with client.pfs.commit(branch=pfs.Branch.from_uri("m@master")) as c:
        c.put_file_from_bytes(path="/f", data=b"x")
    bp = pfs.BranchPicker(name=pfs.BranchPickerBranchName(name="master", repo=_rp("m")))
    edits = [
        metadata.Edit(project=pfs.ProjectPicker(name="default"), add_key=metadata.EditAddKey(key="owner", value="ann")),
        metadata.Edit(repo=_rp("m"), replace=metadata.EditReplace(replacement={"a": "1", "b": "2"})),
        metadata.Edit(repo=_rp("m"), delete_key=metadata.EditDeleteKey(key="a")),
        metadata.Edit(branch=bp, add_key=metadata.EditAddKey(key="stage", value="dev")),
        metadata.Edit(commit=pfs.CommitPicker(branch_head=bp), add_key=metadata.EditAddKey(key="ok", value="yes")),
        metadata.Edit(cluster=metadata.ClusterPicker(), add_key=metadata.EditAddKey(key="env", value="test")),
    ]
    client.metadata.edit_metadata(edits=edits)
    assert client.pfs.inspect_project(project=pfs.Project(name="default")).metadata == {"owner": "ann"}
    assert client.pfs.inspect_repo(repo=pfs.Repo(name="m")).metadata == {"b": "2"}
    assert client.pfs.inspect_branch(branch=pfs.Branch.from_uri("m@master")).metadata == {"stage": "dev"}
    assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri("m@master")).metadata == {"ok": "yes"}
    assert client.admin.inspect_cluster().metadata == {"env": "test"}
    # all or nothing: the second edit fails, so the first is not applied either
    msg = expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.metadata.edit_metadata, edits=[
        metadata.Edit(repo=_rp("m"), add_key=metadata.EditAddKey(key="new", value="v")),
        metadata.Edit(repo=_rp("m"), edit_key=metadata.EditEditKey(key="missing", value="v"))])
    assert "missing" in msg
    assert client.pfs.inspect_repo(repo=pfs.Repo(name="m")).metadata == {"b": "2"}


def test_debug_dump_log_level_template_load_test_and_refusals(client, pachd):
    port = pachd.port
    client.pfs.create_repo(repo=pfs.Repo(name="dumped"))
    # the SDK's dump() goes through DumpV2 (progress + content chunks)
    data = b"".join(ch.content.content for ch in client.debug.dump(system=debug.System(version=True)))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        names = tar.getnames()
        repos = json.load(tar.extractfile("pfs/repos.json"))
    assert "pachd/version.txt" in names and [r["repo"] for r in repos] == ["default/dumped"]
    chunks = list(client.debug.dump_v2(system=debug.System(version=True)))
    assert chunks[0].progress.task and chunks[-1].content.content
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:  # the deprecated Dump: raw tar.gz bytes
        from proto.debug_v2 import debug_pb2, debug_pb2_grpc
        old = b"".join(v.value for v in debug_pb2_grpc.DebugStub(ch).Dump(debug_pb2.DumpRequest()))
    assert old[:2] == b"\x1f\x8b"
    old = logging.getLogger("pfs").level
    # (pachyderm-sdk 2.12.2's set_log_level clears its own oneof and sends no level: raw stub)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        from proto.debug_v2 import debug_pb2, debug_pb2_grpc
        r = debug_pb2_grpc.DebugStub(ch).SetLogLevel(debug_pb2.SetLogLevelRequest(
            pachyderm=debug_pb2.SetLogLevelRequest.DEBUG))
    assert list(r.affected_pods) == ["pachd"]
    assert logging.getLogger("pfs").level == logging.DEBUG
    msg = expect_error(grpc.StatusCode.INVALID_ARGUMENT, client.debug.set_log_level,
                       pachyderm=debug.SetLogLevelRequestLogLevel.DEBUG)
    assert msg == "no log level given (set pachyderm or grpc)"
    logging.getLogger("pfs").setLevel(old)
    assert client.debug.get_dump_v2_template().request.system.version
    r = client.debug.run_pfs_load_test(spec="count: 1\nmodifications: [{count: 1, putFile: {count: 2, source: r}}]\n"
                                            "fileSources: [{name: r, random: {sizes: [{min: 1, max: 9, prob: 100}]}}]\n")
    assert r.error == "" and r.branch.repo.name == "load_test"
    for call in (lambda: list(client.debug.profile(profile=debug.Profile(name="cpu"))),
                 lambda: list(client.debug.binary()), lambda: list(client.debug.trace())):
        with pytest.raises(grpc.RpcError) as ei:
            call()
        assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "Python" in ei.value.details()


def test_pjs_and_snapshot_say_why(client):
    msg = expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.pjs.inspect_queue)
    assert "pjs" in msg and "pipelines" in msg
    msg = expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.snapshot.list_snapshot)
    assert "RocksDB" in msg


def test_logs_service_user_queries(pps_client):
    c = pps_client
    c.pfs.create_repo(repo=pfs.Repo(name="lg"))
    with c.pfs.commit(branch=pfs.Branch.from_uri("lg@master")) as cm:
        cm.put_file_from_bytes(path="/x", data=b"1")
    c.pps.create_pipeline(pipeline=pps.Pipeline(name="say"),
                          transform=pps.Transform(cmd=["sh"], stdin=["echo alpha", "echo beta"]),
                          input=pps.Input(pfs=pps.PfsInput(repo="lg", glob="/")))
    job = next(iter(c.pps.list_job(pipeline=pps.Pipeline(name="say"))))
    c.pps.inspect_job(job=job.job, wait=True)
    q = logs.LogQuery(user=logs.UserLogQuery(pipeline=logs.PipelineLogQuery(project="default", pipeline="say")))
    got = [r.log.pps_log_message.message for r in c.logs.get_logs(query=q, filter=logs.LogFilter(user_logs_only=True))]
    assert got == ["alpha", "beta"]
    got = [r.log.pps_log_message.message for r in c.logs.get_logs(
        query=logs.LogQuery(user=logs.UserLogQuery(job=job.job.id)),
        filter=logs.LogFilter(user_logs_only=True, regex=logs.RegexLogFilter(pattern="^b")))]
    assert got == ["beta"]
    msg = expect_error(grpc.StatusCode.FAILED_PRECONDITION, c.logs.get_logs,
                       query=logs.LogQuery(admin=logs.AdminLogQuery(logql='{app="pachd"}')))
    assert "Loki" in msg
    c.pps.delete_pipeline(pipeline=pps.Pipeline(name="say"), force=True)


def test_edit_metadata_of_a_pipeline(pps_client):
    c = pps_client
    c.pfs.create_repo(repo=pfs.Repo(name="pm-in"))
    c.pps.create_pipeline(pipeline=pps.Pipeline(name="pm"), transform=pps.Transform(cmd=["true"]),
                          input=pps.Input(pfs=pps.PfsInput(repo="pm-in", glob="/")))
    pp = pps.PipelinePicker(name=pps.PipelinePickerPipelineName(
        project=pfs.ProjectPicker(name="default"), name="pm"))
    c.metadata.edit_metadata(edits=[
        metadata.Edit(pipeline=pp, replace=metadata.EditReplace(replacement={"team": "vision", "tier": "1"})),
        metadata.Edit(pipeline=pp, edit_key=metadata.EditEditKey(key="tier", value="2")),
        metadata.Edit(pipeline=pp, add_key=metadata.EditAddKey(key="owner", value="ann")),
    ])
    info = c.pps.inspect_pipeline(pipeline=pps.Pipeline(name="pm"))
    assert info.metadata == {"team": "vision", "tier": "2", "owner": "ann"}
    assert info.version == 1  # the pipeline's own map: no new version
    # all or nothing with the pfs edits of the same request
    msg = expect_error(grpc.StatusCode.FAILED_PRECONDITION, c.metadata.edit_metadata, edits=[
        metadata.Edit(pipeline=pp, delete_key=metadata.EditDeleteKey(key="team")),
        metadata.Edit(repo=_rp("pm-in"), edit_key=metadata.EditEditKey(key="missing", value="v"))])
    assert "missing" in msg
    assert c.pps.inspect_pipeline(pipeline=pps.Pipeline(name="pm")).metadata["team"] == "vision"
    # an update of the pipeline keeps its metadata
    c.pps.create_pipeline(pipeline=pps.Pipeline(name="pm"), transform=pps.Transform(cmd=["true", "again"]),
                          input=pps.Input(pfs=pps.PfsInput(repo="pm-in", glob="/")), update=True)
    info = c.pps.inspect_pipeline(pipeline=pps.Pipeline(name="pm"))
    assert info.version == 2 and info.metadata == {"team": "vision", "tier": "2", "owner": "ann"}
    missing = pps.PipelinePicker(name=pps.PipelinePickerPipelineName(
        project=pfs.ProjectPicker(name="default"), name="nope"))
    msg = expect_error(grpc.StatusCode.NOT_FOUND, c.metadata.edit_metadata, edits=[
        metadata.Edit(pipeline=missing, add_key=metadata.EditAddKey(key="k", value="v"))])
    assert msg == 'pipeline "default/nope" not found'
    c.pps.delete_pipeline(pipeline=pps.Pipeline(name="pm"), force=True)
