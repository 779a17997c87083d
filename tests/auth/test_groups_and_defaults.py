"""What Pachyderm's auth does beyond single-subject bindings, on a real pachd through
pachyderm_sdk: groups (ModifyMembers, GetGroups, GetUsers, bindings to `group:` subjects),
the default grants of Activate, spec and meta repos' resources, summaries that count only
what the caller may read, DeleteRepos that deletes only what the caller may delete, and an
S3 CreateBucket that fails leaving no binding behind."""
from __future__ import annotations

import grpc
import pytest
from botocore.exceptions import ClientError
from pachyderm_sdk.api import auth, pfs, pps

from pachd.server import Pachd
from tests.auth.conftest import strip_default_grants
from tests.s3gateway.conftest import boto3_client
from tests.sdk_clients import sdk_clients

CLUSTER = auth.Resource(type=auth.ResourceType.CLUSTER)


def repo_res(name: str) -> auth.Resource:
    return auth.Resource(type=auth.ResourceType.REPO, name=f"default/{name}")


def denied(fn) -> str:
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED, ei.value.details()
    return ei.value.details()


def test_activate_gives_pachyderms_default_grants(server, clients):
    root = clients().auth.activate().pach_token
    admin = clients(root)
    cluster = admin.auth.get_role_binding(resource=CLUSTER).binding.entries
    assert set(cluster["pach:root"].roles) == {"clusterAdmin"}
    assert set(cluster["allClusterUsers"].roles) == {"projectCreator"}
    default = admin.auth.get_role_binding(
        resource=auth.Resource(type=auth.ResourceType.PROJECT, name="default")).binding.entries
    assert set(default["allClusterUsers"].roles) == {"projectWriter"}
    # so any signed-in user creates repos in `default` (and owns them) and creates projects,
    # but reads no one else's repo
    admin.pfs.create_repo(repo=pfs.Repo(name="roots"))
    alice = clients(admin.auth.get_robot_token(robot="alice").token)
    alice.pfs.create_repo(repo=pfs.Repo(name="mine"))
    alice.pfs.create_project(project=pfs.Project(name="alices"))
    assert [r.repo.name for r in alice.pfs.list_repo()] == ["mine"]
    assert "needs permissions [REPO_READ] on REPO default/roots" in denied(
        lambda: alice.pfs.inspect_repo(repo=pfs.Repo(name="roots")))


def test_groups_membership_and_bindings(server, clients, root):
    admin = clients(root)
    admin.pfs.create_repo(repo=pfs.Repo(name="shared"))
    alice_token = admin.auth.get_robot_token(robot="alice").token
    alice = clients(alice_token)
    denied(lambda: alice.pfs.inspect_repo(repo=pfs.Repo(name="shared")))

    admin.auth.modify_members(group="group:eng", add=["robot:alice", "user:bob"])
    admin.auth.modify_role_binding(resource=repo_res("shared"), principal="group:eng", roles=["repoReader"])
    assert alice.pfs.inspect_repo(repo=pfs.Repo(name="shared")).repo.name == "shared"
    assert alice.auth.get_groups().groups == ["group:eng"]
    assert admin.auth.get_groups_for_principal(principal="user:bob").groups == ["group:eng"]
    assert sorted(admin.auth.get_users(group="group:eng").usernames) == ["robot:alice", "user:bob"]
    assert sorted(admin.auth.get_users().usernames) == ["robot:alice", "user:bob"]
    perms = alice.auth.get_permissions(resource=repo_res("shared"))
    assert "repoReader" in perms.roles

    # a member removed loses the group's roles at once
    admin.auth.modify_members(group="group:eng", remove=["robot:alice"])
    assert alice.auth.get_groups().groups == []
    denied(lambda: alice.pfs.inspect_repo(repo=pfs.Repo(name="shared")))

    # membership is the admin's: a plain user may not change it, nor read others'
    assert "CLUSTER_AUTH_MODIFY_GROUP_MEMBERS" in denied(
        lambda: alice.auth.modify_members(group="group:eng", add=["robot:alice"]))
    denied(lambda: alice.auth.get_users(group="group:eng"))
    denied(lambda: alice.auth.get_groups_for_principal(principal="user:bob"))


def test_group_requests_with_bad_input_are_refused_by_name(server, clients, root):
    admin = clients(root)
    with pytest.raises(grpc.RpcError) as ei:
        admin.auth.modify_members(group="group:eng", add=["alice"])
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'subject "alice" has no prefix' in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        admin.auth.modify_members(group="robot:eng", add=["user:alice"])
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as ei:
        admin.auth.get_users(group="group:nobody")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert admin.auth.get_users().usernames == []  # nothing was half-applied


def test_set_groups_for_user_replaces_membership(server, clients, root):
    admin = clients(root)
    admin.auth.set_groups_for_user(username="user:carol", groups=["group:a", "group:b"])
    assert sorted(admin.auth.get_groups_for_principal(principal="user:carol").groups) == ["group:a", "group:b"]
    admin.auth.set_groups_for_user(username="user:carol", groups=["group:b"])
    assert admin.auth.get_groups_for_principal(principal="user:carol").groups == ["group:b"]
    with pytest.raises(grpc.RpcError) as ei:
        admin.auth.get_users(group="group:a")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


def test_deactivate_forgets_groups(server, clients, root):
    admin = clients(root)
    admin.auth.modify_members(group="group:eng", add=["user:bob"])
    admin.auth.deactivate()
    root = clients().auth.activate().pach_token
    assert clients(root).auth.get_users().usernames == []


def test_spec_repo_is_readable_by_all_meta_repo_is_the_output_repos(server, clients, root):
    admin = clients(root)
    admin.pfs.create_repo(repo=pfs.Repo(name="images"))
    admin.pps.create_pipeline(pipeline=pps.Pipeline(name="edges"),
                              input=pps.Input(pfs=pps.PfsInput(repo="images", glob="/*")),
                              transform=pps.Transform(cmd=["true"]))
    alice = clients(admin.auth.get_robot_token(robot="alice").token)
    spec = pfs.Repo(name="edges", type="spec")
    meta = pfs.Repo(name="edges", type="meta")
    if not admin.pfs.repo_exists(meta):  # this pachd makes meta repos only for some pipelines
        admin.pfs.create_repo(repo=meta)
    # every signed-in user reads a spec repo (Pachyderm's SPEC_REPO), nothing more
    assert alice.pfs.inspect_repo(repo=spec).repo.type == "spec"
    assert list(alice.pfs.list_commit(repo=spec))
    assert "[REPO_WRITE] on SPEC_REPO default/edges" in denied(lambda: alice.pfs.start_commit(
        branch=pfs.Branch(repo=spec, name="master")))
    # the meta repo is the output repo's resource: no role on it, no read
    assert "on REPO default/edges" in denied(lambda: alice.pfs.inspect_repo(repo=meta))
    admin.auth.modify_role_binding(resource=repo_res("edges"), principal="robot:alice", roles=["repoReader"])
    assert alice.pfs.inspect_repo(repo=meta).repo.type == "meta"


def test_summaries_count_only_what_the_caller_reads(server, clients, root):
    admin = clients(root)
    for name in ("a", "b", "c"):
        admin.pfs.create_repo(repo=pfs.Repo(name=name))
    for name, src in (("pa", "a"), ("pb", "b")):
        admin.pps.create_pipeline(pipeline=pps.Pipeline(name=name),
                                  input=pps.Input(pfs=pps.PfsInput(repo=src, glob="/*")),
                                  transform=pps.Transform(cmd=["true"]))
    alice = clients(admin.auth.get_robot_token(robot="alice").token)

    def repos(c):
        return {s.project.name: s.user_repo_count for s in c.pfs.repos_summary().summaries}

    def pipelines(c):
        return sum(s.active_pipelines + s.paused_pipelines + s.failed_pipelines
                   for s in c.pps.pipelines_summary().summaries)

    assert repos(admin) == {"default": 5} and pipelines(admin) == 2
    assert repos(alice) == {"default": 0} and pipelines(alice) == 0
    admin.auth.modify_role_binding(resource=repo_res("a"), principal="robot:alice", roles=["repoReader"])
    admin.auth.modify_role_binding(resource=repo_res("pa"), principal="robot:alice", roles=["repoReader"])
    assert repos(alice) == {"default": 2} and pipelines(alice) == 1


def test_delete_repos_deletes_only_what_the_caller_may(server, clients, root):
    admin = clients(root)
    admin.pfs.create_repo(repo=pfs.Repo(name="roots"))
    admin.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.PROJECT, name="default"),
                                   principal="robot:alice", roles=["projectWriter"])
    alice = clients(admin.auth.get_robot_token(robot="alice").token)
    alice.pfs.create_repo(repo=pfs.Repo(name="mine"))
    deleted = alice.pfs.delete_repos(all=True).repos
    assert [r.name for r in deleted] == ["mine"]
    assert [r.repo.name for r in admin.pfs.list_repo()] == ["roots"]
    # the deleted repo's bindings went with it: a new "mine" is not alice's
    admin.pfs.create_repo(repo=pfs.Repo(name="mine"))
    assert "robot:alice" not in admin.auth.get_role_binding(resource=repo_res("mine")).binding.entries
    # neither all nor projects: nothing (Pachyderm's DeleteRepos)
    assert list(admin.pfs.delete_repos().repos) == []
    assert {r.repo.name for r in admin.pfs.list_repo()} == {"roots", "mine"}


def test_delete_repos_without_auth_and_without_projects_deletes_nothing(server, clients):
    c = clients()
    c.pfs.create_repo(repo=pfs.Repo(name="keep"))
    assert list(c.pfs.delete_repos().repos) == []
    assert [r.repo.name for r in c.pfs.list_repo()] == ["keep"]
    assert [r.name for r in c.pfs.delete_repos(all=True).repos] == ["keep"]


@pytest.fixture
def s3pd(tmp_path):
    pd = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", enable_pps=False, s3_gateway_port=0).start()
    try:
        with sdk_clients() as make:
            root = make(pd.port).auth.activate().pach_token
            admin = make(pd.port, auth_token=root)
            strip_default_grants(admin)
            yield pd, admin
    finally:
        pd.stop(grace=0.5)


def test_failed_create_bucket_leaves_no_grant(s3pd):
    pd, admin = s3pd
    # alice may create repos in every project (projectWriter on the cluster)
    token = admin.auth.get_robot_token(robot="alice").token
    admin.auth.modify_role_binding(resource=CLUSTER, principal="robot:alice", roles=["projectWriter"])
    c = boto3_client(pd.s3_gateway.endpoint_url, token, token)
    with pytest.raises(ClientError) as ei:  # the project does not exist: the bucket is not made
        c.create_bucket(Bucket="master.data.later")
    assert ei.value.response["Error"]["Code"] == "InvalidBucketName"
    admin.pfs.create_project(project=pfs.Project(name="later"))
    admin.pfs.create_repo(repo=pfs.Repo(name="data", project=pfs.Project(name="later")))
    entries = admin.auth.get_role_binding(
        resource=auth.Resource(type=auth.ResourceType.REPO, name="later/data")).binding.entries
    assert "robot:alice" not in entries
    # a CreateBucket that succeeds makes her the new repo's owner
    c.create_bucket(Bucket="master.fresh.later")
    entries = admin.auth.get_role_binding(
        resource=auth.Resource(type=auth.ResourceType.REPO, name="later/fresh")).binding.entries
    assert set(entries["robot:alice"].roles) == {"repoOwner"}
