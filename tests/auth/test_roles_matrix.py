"""Each relevant role x representative RPCs on real resources, through pachyderm_sdk: the
roles bound on the repo, its project or the cluster allow exactly what Pachyderm's roles
grant, deny the rest with PERMISSION_DENIED naming permission and resource, and list calls
hide what the caller cannot read."""
from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import auth, pfs

READERS = {"repoReader", "repoWriter", "repoOwner", "projectOwner", "clusterAdmin"}
WRITERS = {"repoWriter", "repoOwner", "projectOwner", "clusterAdmin"}
OWNERS = {"repoOwner", "projectOwner", "clusterAdmin"}
WHERE = {"repoReader": "repo", "repoWriter": "repo", "repoOwner": "repo", "projectViewer": "project",
         "projectWriter": "project", "projectOwner": "project", "clusterAdmin": "cluster", "robotUser": "cluster"}


def get_file(c, uri: str) -> bytes:
    try:
        f = c.pfs.pfs_file(file=pfs.File.from_uri(uri))
    except ValueError as e:  # the SDK wraps the RPC's error
        raise e.__cause__ from None
    with f:
        return f.read()


def ops(c, repo: str, n: int):
    R = pfs.Repo(name=repo)
    head = pfs.Commit.from_uri(f"{repo}@master")
    return [
        ("InspectRepo", READERS, lambda: c.pfs.inspect_repo(repo=R)),
        ("ListFile", READERS, lambda: list(c.pfs.list_file(file=pfs.File.from_uri(f"{repo}@master:/")))),
        ("GetFile", READERS, lambda: get_file(c, f"{repo}@master:/a")),
        ("InspectFile", READERS, lambda: c.pfs.inspect_file(file=pfs.File.from_uri(f"{repo}@master:/a"))),
        ("ListCommit", READERS, lambda: list(c.pfs.list_commit(repo=R))),
        ("InspectCommit", READERS, lambda: c.pfs.inspect_commit(commit=head)),
        ("ListBranch", READERS, lambda: list(c.pfs.list_branch(repo=R))),
        ("PutFile", WRITERS, lambda: c.pfs.put_file_from_bytes(commit=head, path="/w", data=b"w")),
        ("StartCommit", WRITERS, lambda: c.pfs.finish_commit(commit=c.pfs.start_commit(
            branch=pfs.Branch.from_uri(f"{repo}@master")))),
        ("CreateBranch", WRITERS, lambda: c.pfs.create_branch(branch=pfs.Branch.from_uri(f"{repo}@dev"), head=head)),
        ("DeleteBranch", WRITERS, lambda: c.pfs.delete_branch(branch=pfs.Branch.from_uri(f"{repo}@dev"))),
        ("ModifyRoleBinding", OWNERS, lambda: c.auth.modify_role_binding(
            resource=auth.Resource(type=auth.ResourceType.REPO, name=f"default/{repo}"),
            principal="robot:friend", roles=["repoReader"])),
        ("CreateRepo", {"projectWriter", "projectOwner", "clusterAdmin"},
         lambda: c.pfs.create_repo(repo=pfs.Repo(name=f"new{n}"))),
        ("CreateProject", {"clusterAdmin"}, lambda: c.pfs.create_project(project=pfs.Project(name=f"proj{n}"))),
        ("GetRobotToken", {"clusterAdmin", "robotUser"}, lambda: c.auth.get_robot_token(robot=f"r{n}")),
        ("DeleteRepo", OWNERS, lambda: c.pfs.delete_repo(repo=R, force=True)),
    ]


@pytest.mark.parametrize("role", [None, *WHERE])
def test_role_allows_what_pachyderm_grants(server, clients, root, role):
    admin = clients(root)
    n = list(WHERE).index(role) + 1 if role else 0
    repo = f"data{n}"
    admin.pfs.create_repo(repo=pfs.Repo(name=repo))
    admin.pfs.create_repo(repo=pfs.Repo(name=f"hidden{n}"))
    admin.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri(f"{repo}@master"), path="/a", data=b"a")
    token = admin.auth.get_robot_token(robot=f"u{n}").token
    if role:
        where = WHERE[role]
        res = {"repo": auth.Resource(type=auth.ResourceType.REPO, name=f"default/{repo}"),
               "project": auth.Resource(type=auth.ResourceType.PROJECT, name="default"),
               "cluster": auth.Resource(type=auth.ResourceType.CLUSTER)}[where]
        admin.auth.modify_role_binding(resource=res, principal=f"robot:u{n}", roles=[role])
    c = clients(token)
    visible = {r.repo.name for r in c.pfs.list_repo()}
    can_read = role in READERS
    assert (repo in visible) == can_read
    assert (f"hidden{n}" in visible) == (role in ("projectOwner", "clusterAdmin"))
    for name, allowed_roles, call in ops(c, repo, n):
        allowed = role in allowed_roles
        try:
            call()
        except grpc.RpcError as e:
            assert not allowed, (role, name, e.details())
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (role, name, e.code(), e.details())
            assert e.details().startswith(f"robot:u{n} is not authorized to perform this operation - needs "
                                          "permissions ["), e.details()
            assert (f"on REPO default/{repo}." in e.details() or "on PROJECT default." in e.details()
                    or "on CLUSTER ." in e.details()), e.details()
        else:
            assert allowed, (role, name, "was allowed")
    # each listed repo carries the caller's roles and permissions on it
    for info in c.pfs.list_repo():
        assert info.auth_info.roles and auth.Permission.REPO_READ in info.auth_info.permissions, info


def test_creator_owns_what_it_creates(server, clients, root):
    admin = clients(root)
    tok = admin.auth.get_robot_token(robot="maker").token
    admin.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.PROJECT, name="default"),
                                   principal="robot:maker", roles=["projectWriter"])
    c = clients(tok)
    c.pfs.create_repo(repo=pfs.Repo(name="mine"))
    perms = c.auth.get_permissions(resource=auth.Resource(type=auth.ResourceType.REPO, name="default/mine"))
    assert "repoOwner" in perms.roles and auth.Permission.REPO_DELETE in perms.permissions
    # deleting it drops its bindings: a new repo of the same name starts with none
    c.pfs.delete_repo(repo=pfs.Repo(name="mine"))
    admin.pfs.create_repo(repo=pfs.Repo(name="mine"))
    assert admin.auth.get_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO,
                                                              name="default/mine")).binding.entries == {}
    with pytest.raises(grpc.RpcError) as ei:
        c.pfs.delete_repo(repo=pfs.Repo(name="mine"))
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_authorize_and_roles_for_permission(server, clients, root):
    admin = clients(root)
    tok = admin.auth.get_robot_token(robot="checker").token
    admin.pfs.create_repo(repo=pfs.Repo(name="r"))
    admin.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name="default/r"),
                                   principal="robot:checker", roles=["repoReader"])
    c = clients(tok)
    resp = c.auth.authorize(resource=auth.Resource(type=auth.ResourceType.REPO, name="default/r"),
                            permissions=[auth.Permission.REPO_READ, auth.Permission.REPO_WRITE])
    assert not resp.authorized and resp.principal == "robot:checker"
    assert resp.satisfied == [auth.Permission.REPO_READ] and resp.missing == [auth.Permission.REPO_WRITE]
    roles = {r.name for r in c.auth.get_roles_for_permission(permission=auth.Permission.REPO_WRITE).roles}
    assert roles == {"repoWriter", "repoOwner", "projectOwner", "clusterAdmin"}
    assert c.auth.who_am_i().username == "robot:checker"
