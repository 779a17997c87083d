"""A pipeline under auth, end to end with real workers: created by a user who may read its
input, its workers hold a `pipeline:` token that reads the inputs and writes the output
and nothing else."""
from __future__ import annotations

import sys

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from pachd.server import Pachd
from tests.auth.conftest import strip_default_grants
from tests.sdk_clients import sdk_clients

SCRIPT = r'''
import os, shutil
for name in os.listdir("/pfs/images"):
    shutil.copy(os.path.join("/pfs/images", name), os.path.join("/pfs/out", name + ".copy"))
'''


@pytest.fixture
def pd(tmp_path):
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1").start()
    try:
        yield p
    finally:
        p.stop(grace=1.0)


def test_pipeline_end_to_end_under_auth(pd):
    with sdk_clients() as make:
        root = make(pd.port).auth.activate().pach_token
        admin = make(pd.port, auth_token=root)
        strip_default_grants(admin)
        admin.pfs.create_repo(repo=pfs.Repo(name="images"))
        admin.pfs.create_repo(repo=pfs.Repo(name="private"))
        admin.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("images@master"), path="/a.png", data=b"A")
        alice_token = admin.auth.get_robot_token(robot="alice").token
        alice = make(pd.port, auth_token=alice_token)
        spec = dict(pipeline=pps.Pipeline(name="copies"),
                    input=pps.Input(pfs=pps.PfsInput(repo="images", glob="/*")),
                    transform=pps.Transform(cmd=[sys.executable, "-c", SCRIPT]))

        # no read on the input: refused, naming what is missing
        with pytest.raises(grpc.RpcError) as ei:
            alice.pps.create_pipeline(**spec)
        assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "needs permissions [REPO_READ] on REPO default/images" in ei.value.details()
        admin.auth.modify_role_binding(resource=_repo_res("default/images"), principal="robot:alice",
                                       roles=["repoReader"])
        # reading is not enough: the output repo is new, so she needs to create repos in the project
        with pytest.raises(grpc.RpcError) as ei:
            alice.pps.create_pipeline(**spec)
        assert "needs permissions [PROJECT_CREATE_REPO] on PROJECT default" in ei.value.details()
        admin.auth.modify_role_binding(resource=_project_res("default"), principal="robot:alice",
                                       roles=["projectWriter"])
        alice.pps.create_pipeline(**spec)

        job = next(iter(alice.pps.list_job(pipeline=pps.Pipeline(name="copies"))))
        info = alice.pps.inspect_job(job=job.job, wait=True)
        logs = [m.message for m in admin.pps.get_logs(pipeline=pps.Pipeline(name="copies"))]
        assert info.state == pps.JobState.JOB_SUCCESS, (info.reason, logs)
        with alice.pfs.pfs_file(file=pfs.File.from_uri("copies@master:/a.png.copy")) as f:
            assert f.read() == b"A"
        # the creator owns the output repo; the pipeline reads its input and writes its output
        binding = admin.auth.get_role_binding(resource=_repo_res("default/copies")).binding
        assert set(binding.entries["robot:alice"].roles) == {"repoOwner"}
        assert set(binding.entries["pipeline:default/copies"].roles) == {"repoWriter"}
        binding = admin.auth.get_role_binding(resource=_repo_res("default/images")).binding
        assert set(binding.entries["pipeline:default/copies"].roles) == {"repoReader"}

        # logs.GetLogs: lines of pipelines whose output the caller reads, and nothing else
        from pachyderm_sdk.api import logs
        by_project = logs.LogQuery(user=logs.UserLogQuery(project="default"))
        by_job = logs.LogQuery(user=logs.UserLogQuery(job=job.job.id))
        by_pipeline = logs.LogQuery(user=logs.UserLogQuery(pipeline=logs.PipelineLogQuery(
            project="default", pipeline="copies")))
        assert list(alice.logs.get_logs(query=by_project)) and list(alice.logs.get_logs(query=by_pipeline))
        bob = make(pd.port, auth_token=admin.auth.get_robot_token(robot="bob").token)
        assert list(bob.logs.get_logs(query=by_project)) == [] and list(bob.logs.get_logs(query=by_job)) == []
        with pytest.raises(grpc.RpcError) as ei:
            list(bob.logs.get_logs(query=by_pipeline))
        assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "[REPO_READ] on REPO default/copies" in ei.value.details()

        # the workers' token: who it is and what it cannot do
        ptoken = pd.authn.auth.pipeline_token("default", "copies")
        worker = make(pd.port, auth_token=ptoken)
        assert worker.auth.who_am_i().username == "pipeline:default/copies"
        for repo in ("images", "private"):
            with pytest.raises(grpc.RpcError) as ei:
                worker.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri(f"{repo}@master"), path="/x", data=b"x")
            assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED, repo
            assert f"pipeline:default/copies is not authorized" in ei.value.details()
        with pytest.raises(grpc.RpcError) as ei:
            list(worker.pfs.list_file(file=pfs.File.from_uri("private@master:/")))
        assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert {r.repo.name for r in worker.pfs.list_repo()} == {"copies", "images"}  # not "private"
        assert {f.file.path for f in admin.pfs.walk_file(file=pfs.File.from_uri("images@master:/"))} == {"/", "/a.png"}

        # new input data flows through under auth too
        admin.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("images@master"), path="/b.png", data=b"B")
        commit = admin.pfs.inspect_commit(commit=pfs.Commit.from_uri("images@master"))
        info = alice.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name="copies"), id=commit.commit.id), wait=True)
        assert info.state == pps.JobState.JOB_SUCCESS
        with alice.pfs.pfs_file(file=pfs.File.from_uri("copies@master:/b.png.copy")) as f:
            assert f.read() == b"B"

        # deleting the pipeline revokes its token and its bindings
        alice.pps.delete_pipeline(pipeline=pps.Pipeline(name="copies"))
        with pytest.raises(grpc.RpcError) as ei:
            worker.auth.who_am_i()
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        binding = admin.auth.get_role_binding(resource=_repo_res("default/images")).binding
        assert "pipeline:default/copies" not in binding.entries


def _repo_res(name):
    from pachyderm_sdk.api import auth
    return auth.Resource(type=auth.ResourceType.REPO, name=name)


def _project_res(name):
    from pachyderm_sdk.api import auth
    return auth.Resource(type=auth.ResourceType.PROJECT, name=name)


def test_pipeline_created_before_activation_keeps_running(pd):
    with sdk_clients() as make:
        c = make(pd.port)
        c.pfs.create_repo(repo=pfs.Repo(name="images"))
        c.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("images@master"), path="/a.png", data=b"A")
        c.pps.create_pipeline(pipeline=pps.Pipeline(name="copies"),
                              input=pps.Input(pfs=pps.PfsInput(repo="images", glob="/*")),
                              transform=pps.Transform(cmd=[sys.executable, "-c", SCRIPT]))
        job = next(iter(c.pps.list_job(pipeline=pps.Pipeline(name="copies"))))
        assert c.pps.inspect_job(job=job.job, wait=True).state == pps.JobState.JOB_SUCCESS
        root = c.auth.activate().pach_token
        admin = make(pd.port, auth_token=root)
        # the pipeline got its bindings, and its workers a token: new data still flows
        binding = admin.auth.get_role_binding(resource=_repo_res("default/images")).binding
        assert set(binding.entries["pipeline:default/copies"].roles) == {"repoReader"}
        admin.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("images@master"), path="/b.png", data=b"B")
        commit = admin.pfs.inspect_commit(commit=pfs.Commit.from_uri("images@master"))
        info = admin.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name="copies"), id=commit.commit.id), wait=True)
        assert info.state == pps.JobState.JOB_SUCCESS, info.reason
        with admin.pfs.pfs_file(file=pfs.File.from_uri("copies@master:/b.png.copy")) as f:
            assert f.read() == b"B"
