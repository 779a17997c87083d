"""metadata.EditMetadata and transaction BatchTransaction under auth, on a real pachd through
pachyderm_sdk: each edited object and each batched request is checked on its own (as
Pachyderm's servers do), a request with one forbidden part is refused whole and changes
nothing. (logs.GetLogs is checked with real workers in test_pipeline_auth.)"""
from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import auth, metadata, pfs, pps, transaction

PROJECT = auth.Resource(type=auth.ResourceType.PROJECT, name="default")


def repo_res(name: str) -> auth.Resource:
    return auth.Resource(type=auth.ResourceType.REPO, name=f"default/{name}")


def rp(name: str) -> pfs.RepoPicker:
    return pfs.RepoPicker(name=pfs.RepoPickerRepoName(name=name, type="user",
                                                      project=pfs.ProjectPicker(name="default")))


def denied(fn, **kw) -> str:
    with pytest.raises(grpc.RpcError) as ei:
        fn(**kw)
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED, ei.value.details()
    return ei.value.details()


def test_edit_metadata_is_checked_per_edited_object(server, clients, root):
    admin = clients(root)
    admin.pfs.create_repo(repo=pfs.Repo(name="m"))
    admin.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("m@master"), path="/f", data=b"x")
    alice = clients(admin.auth.get_robot_token(robot="alice").token)
    admin.auth.modify_role_binding(resource=repo_res("m"), principal="robot:alice", roles=["repoReader"])
    bp = pfs.BranchPicker(name=pfs.BranchPickerBranchName(name="master", repo=rp("m")))
    add = metadata.EditAddKey(key="k", value="v")
    edit = alice.metadata.edit_metadata
    cases = [
        (metadata.Edit(repo=rp("m"), add_key=add), "[REPO_WRITE] on REPO default/m"),
        (metadata.Edit(branch=bp, add_key=add), "[REPO_CREATE_BRANCH] on REPO default/m"),
        (metadata.Edit(commit=pfs.CommitPicker(branch_head=bp), add_key=add), "[REPO_WRITE] on REPO default/m"),
        (metadata.Edit(cluster=metadata.ClusterPicker(), add_key=add), "[CLUSTER_EDIT_CLUSTER_METADATA] on CLUSTER"),
    ]
    for e, why in cases:
        assert why in denied(edit, edits=[e])
    # a project's metadata: any signed-in user (Pachyderm's rule)
    edit(edits=[metadata.Edit(project=pfs.ProjectPicker(name="default"), add_key=add)])
    assert admin.pfs.inspect_project(project=pfs.Project(name="default")).metadata == {"k": "v"}

    # a writer edits the repo, its branch and commit; one forbidden edit refuses the whole request
    admin.auth.modify_role_binding(resource=repo_res("m"), principal="robot:alice", roles=["repoWriter"])
    denied(edit, edits=[cases[0][0], cases[3][0]])
    assert admin.pfs.inspect_repo(repo=pfs.Repo(name="m")).metadata == {}
    edit(edits=[e for e, _ in cases[:3]])
    assert admin.pfs.inspect_repo(repo=pfs.Repo(name="m")).metadata == {"k": "v"}
    assert admin.pfs.inspect_branch(branch=pfs.Branch.from_uri("m@master")).metadata == {"k": "v"}
    # the cluster's: clusterAdmin
    admin.metadata.edit_metadata(edits=[cases[3][0]])
    assert admin.admin.inspect_cluster().metadata == {"k": "v"}


def _create_repo(name):
    return transaction.TransactionRequest(create_repo=pfs.CreateRepoRequest(repo=pfs.Repo(name=name)))


def _start_commit(name):
    return transaction.TransactionRequest(start_commit=pfs.StartCommitRequest(
        branch=pfs.Branch.from_uri(f"{name}@master")))


def test_batch_transaction_checks_each_request(server, clients, root):
    admin = clients(root)
    admin.pfs.create_repo(repo=pfs.Repo(name="roots"))
    alice = clients(admin.auth.get_robot_token(robot="alice").token)
    batch = alice.transaction.batch_transaction

    # no role: not even a repo
    assert "[PROJECT_CREATE_REPO] on PROJECT default" in denied(batch, requests=[_create_repo("a1")])
    admin.auth.modify_role_binding(resource=PROJECT, principal="robot:alice", roles=["projectWriter"])
    # creating a repo and committing to it in one batch: she owns what the batch creates
    batch(requests=[_create_repo("a1"), _start_commit("a1")])
    assert set(admin.auth.get_role_binding(resource=repo_res("a1")).binding.entries["robot:alice"].roles) \
        == {"repoOwner"}
    # one forbidden request refuses the whole batch: nothing of it is applied
    assert "[REPO_WRITE] on REPO default/roots" in denied(batch, requests=[_create_repo("a2"), _start_commit("roots")])
    assert not admin.pfs.repo_exists(pfs.Repo(name="a2"))
    # a pipeline in a batch needs read on its input, as CreatePipeline
    pipeline = transaction.TransactionRequest(create_pipeline_v2=pps.CreatePipelineTransaction(
        create_pipeline_request=pps.CreatePipelineRequest(
            pipeline=pps.Pipeline(name="p"), transform=pps.Transform(cmd=["true"]),
            input=pps.Input(pfs=pps.PfsInput(repo="roots", glob="/*")))))
    assert "[REPO_READ] on REPO default/roots" in denied(batch, requests=[pipeline])
    admin.auth.modify_role_binding(resource=repo_res("roots"), principal="robot:alice", roles=["repoReader"])
    batch(requests=[pipeline])
    entries = admin.auth.get_role_binding(resource=repo_res("roots")).binding.entries
    assert set(entries["pipeline:default/p"].roles) == {"repoReader"}
