"""Every RPC pachd serves x (no token, forged, expired, revoked, a user with no role, root):
the interceptor's answer. Calls are made with empty requests through a raw channel, so no
client-side shortcut hides what the server does."""
from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import message_factory

from auth.rules import RULES
from proto.admin_v2 import admin_pb2
from proto.auth_v2 import auth_pb2
from proto.maintenance_v1 import maintenance_pb2
from proto.pfs_batch_v1 import pfs_batch_pb2
from proto.pfs_v2 import pfs_pb2
from proto.pps_v2 import pps_pb2
from proto.versionpb_v2 import version_pb2
from proto.worker_v1 import tasks_pb2

from proto.debug_v2 import debug_pb2
from proto.enterprise_v2 import enterprise_pb2
from proto.identity_v2 import identity_pb2
from proto.license_v2 import license_pb2
from proto.logs import logs_pb2
from proto.metadata import metadata_pb2
from proto.pjs import pjs_pb2
from proto.snapshot import snapshot_pb2
from proto.storage import storage_pb2
from proto.transaction_v2 import transaction_pb2

SERVICES = [(pfs_pb2, "API"), (pps_pb2, "API"), (auth_pb2, "API"), (admin_pb2, "API"),
            (version_pb2, "API"), (tasks_pb2, "Tasks"), (identity_pb2, "API"), (license_pb2, "API"),
            (enterprise_pb2, "API"), (debug_pb2, "Debug"), (logs_pb2, "API"), (metadata_pb2, "API"),
            (pjs_pb2, "API"), (snapshot_pb2, "API"), (storage_pb2, "Fileset"), (transaction_pb2, "API"),
            (maintenance_pb2, "API"), (pfs_batch_pb2, "API")]
METHODS = [(f"/{m.containing_service.full_name}/{m.name}", m)
           for mod, svc in SERVICES for m in mod.DESCRIPTOR.services_by_name[svc].methods]
OPEN = {"/versionpb_v2.API/GetVersion", "/admin_v2.API/InspectCluster", "/auth_v2.API/Activate",
        "/auth_v2.API/Authenticate", "/auth_v2.API/GetOIDCLogin", "/enterprise_v2.API/GetState",
        "/license_v2.API/Heartbeat"}
# What a signed-in user with no role at all may still reach (the servicer answers): list calls
# (filtered to nothing), who-am-I style auth calls, and calls not tied to any resource.
NO_ROLE_REACHES = {
    "/pfs_v2.API/ListRepo", "/pfs_v2.API/InspectCommitSet", "/pfs_v2.API/ListCommitSet",
    "/pfs_v2.API/WalkCommitProvenance", "/pfs_v2.API/WalkCommitSubvenance", "/pfs_v2.API/ListBranch",
    "/pfs_v2.API/WalkBranchProvenance", "/pfs_v2.API/WalkBranchSubvenance", "/pfs_v2.API/ModifyFile",
    "/pfs_v2.API/DeleteRepos",  # deletes only what the caller may delete: nothing here
    # checked per query / edited object / batched request: an empty one names none
    "/logs.API/GetLogs", "/metadata.API/EditMetadata", "/transaction_v2.API/BatchTransaction",
    "/pfs_v2.API/ActivateAuth", "/pfs_v2.API/CreateFileSet", "/pfs_v2.API/RenewFileSet",
    "/pfs_v2.API/ComposeFileSet", "/pfs_v2.API/ShardFileSet", "/pfs_v2.API/InspectProject",
    "/pfs_v2.API/InspectProjectV2", "/pfs_v2.API/ListProject", "/pfs_v2.API/ReposSummary",
    "/pps_v2.API/InspectJobSet", "/pps_v2.API/ListJob", "/pps_v2.API/ListJobSet", "/pps_v2.API/ListPipeline",
    "/pps_v2.API/ActivateAuth", "/pps_v2.API/RenderTemplate", "/pps_v2.API/GetClusterDefaults",
    "/pps_v2.API/GetProjectDefaults", "/pps_v2.API/PipelinesSummary", "/pps_v2.API/ListDatum",
    "/auth_v2.API/Authorize", "/auth_v2.API/GetPermissions", "/auth_v2.API/WhoAmI",
    "/auth_v2.API/GetRolesForPermission", "/auth_v2.API/GetRoleBinding", "/auth_v2.API/RevokeAuthToken",
    "/auth_v2.API/GetGroups", "/license_v2.API/ListUserClusters", "/enterprise_v2.API/PauseStatus",
    *(f"/storage.Fileset/{m}" for m in ("CreateFileset", "ReadFileset", "ReadFilesetCDR", "RenewFileset",
                                         "ComposeFileset", "ShardFileset")),
    *(f"/transaction_v2.API/{m}" for m in ("StartTransaction", "InspectTransaction", "DeleteTransaction",
                                            "ListTransaction", "FinishTransaction")),
} | OPEN
DESTRUCTIVE = {"/auth_v2.API/Deactivate", "/auth_v2.API/RotateRootToken", "/pfs_v2.API/DeleteAll",
               "/pps_v2.API/DeleteAll", "/identity_v2.API/DeleteAll", "/license_v2.API/DeleteAll",
               "/transaction_v2.API/DeleteAll", "/enterprise_v2.API/Deactivate"}


def invoke(channel, path, method, token, timeout=3.0):
    """Call `path` with an empty request; the status code (OK if it answered)."""
    req = message_factory.GetMessageClass(method.input_type)()
    resp = message_factory.GetMessageClass(method.output_type)
    md = (("authn-token", token),) if token is not None else None
    args = dict(request_serializer=lambda m: m.SerializeToString(), response_deserializer=resp.FromString)
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path, **args)(iter([req]), metadata=md, timeout=timeout))
        elif method.client_streaming:
            channel.stream_unary(path, **args)(iter([req]), metadata=md, timeout=timeout)
        elif method.server_streaming:
            list(channel.unary_stream(path, **args)(req, metadata=md, timeout=timeout))
        else:
            channel.unary_unary(path, **args)(req, metadata=md, timeout=timeout)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def test_every_served_method_has_a_rule(server):
    served = {p for p, _ in METHODS}
    missing = sorted(served - set(RULES))
    assert not missing, f"methods without a rule (would be refused): {missing}"


@pytest.mark.parametrize("kind", ["none", "empty", "forged", "expired", "revoked"])
def test_bad_credentials_are_refused_on_every_method(server, clients, root, channel, kind):
    admin = clients(root)
    token = {"none": None, "empty": "", "forged": "0" * 32}.get(kind)
    if kind == "expired":
        token = admin.auth.get_robot_token(robot="short", ttl=1).token
        time.sleep(1.1)
    elif kind == "revoked":
        token = admin.auth.get_robot_token(robot="gone").token
        assert admin.auth.revoke_auth_token(token=token).number == 1
    refused = 0
    for path, m in METHODS:
        code, details = invoke(channel, path, m, token)
        if path in OPEN:
            assert code != grpc.StatusCode.UNAUTHENTICATED, path
        else:
            assert code == grpc.StatusCode.UNAUTHENTICATED, (path, code, details)
            refused += 1
    assert refused == len(METHODS) - len(OPEN)


def test_user_with_no_role(server, clients, root, channel):
    nobody = clients(root).auth.get_robot_token(robot="nobody").token
    reached, denied = set(), {}
    for path, m in METHODS:
        code, details = invoke(channel, path, m, nobody)
        assert code != grpc.StatusCode.UNAUTHENTICATED, (path, details)
        if path == "/auth_v2.API/ModifyRoleBinding":  # an empty resource is refused as such
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "unsupported resource type" in details
            continue
        if code == grpc.StatusCode.PERMISSION_DENIED:
            denied[path] = details
        else:
            reached.add(path)
    assert reached == NO_ROLE_REACHES, (sorted(reached - NO_ROLE_REACHES), sorted(NO_ROLE_REACHES - reached))
    for path, details in denied.items():  # names the subject, the permission and the resource
        assert details.startswith("robot:nobody is not authorized to perform this operation - needs permissions ["), \
            (path, details)
        assert " on CLUSTER" in details or " on PROJECT default" in details or " on REPO default/" in details, \
            (path, details)


def test_root_passes_the_interceptor_everywhere(server, clients, root, channel):
    for path, m in METHODS:
        if path in DESTRUCTIVE:
            continue
        code, details = invoke(channel, path, m, root)
        assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), (path, details)


def test_method_missing_from_the_map_is_refused(server, clients, root, monkeypatch):
    from auth import rules
    monkeypatch.delitem(rules.RULES, "/pfs_v2.API/InspectRepo")
    with pytest.raises(grpc.RpcError) as ei:
        clients(root).pfs.inspect_repo(repo=__import__("pachyderm_sdk").api.pfs.Repo(name="x"))
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not in pachd's permission map" in ei.value.details()


def test_auth_off_everything_open_auth_calls_not_activated(server, clients, channel):
    from pachyderm_sdk.errors import AuthServiceNotActivated
    c = clients()
    with pytest.raises(AuthServiceNotActivated):  # the SDK maps the text below to this
        c.auth.who_am_i()
    path, m = next((p, m) for p, m in METHODS if p == "/auth_v2.API/WhoAmI")
    assert invoke(channel, path, m, None) == (grpc.StatusCode.UNIMPLEMENTED, "the auth service is not activated")
    c.pfs.create_repo(repo=__import__("pachyderm_sdk").api.pfs.Repo(name="open"))
    assert [r.repo.name for r in c.pfs.list_repo()] == ["open"]
