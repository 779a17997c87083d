"""The small services: version, admin, auth (and the auth interceptor), transactions.

Invariants:
- With no auth token configured every auth_v2 RPC answers UNIMPLEMENTED with the text
  `the auth service is not activated` (what both Pachyderm clients map to
  AuthServiceNotActivated), and every other RPC is open. `Activate` answers as an
  unlicensed Pachyderm does: auth is an Enterprise feature and the cluster has no license.
  With the token on, `Activate` answers `the auth service is already activated`.
- RestartPachyderm asks the process that runs pachd to restart it (the `pachd` command
  stops cleanly and starts again with the same arguments); until then InspectCluster
  reports `pending_restart` with the reason given. An embedded pachd whose host program
  did not offer a restart refuses with FAILED_PRECONDITION.
- With a token configured, every RPC except version/health/reflection requires the
  `authn-token` metadata to equal it, else UNAUTHENTICATED; WhoAmI answers `pach:root`.
"""
from __future__ import annotations

import grpc
from google.protobuf import empty_pb2

from proto.admin_v2 import admin_pb2, admin_pb2_grpc
from proto.auth_v2 import auth_pb2, auth_pb2_grpc
from proto.versionpb_v2 import version_pb2, version_pb2_grpc

VERSION = (2, 12, 0)
ADDITIONAL = "-py"
NOT_ACTIVATED = "the auth service is not activated"
ALREADY_ACTIVATED = "the auth service is already activated"
ENTERPRISE_REQUIRED = ("Pachyderm Enterprise is not active in this cluster, and the Pachyderm auth API "
                       "is an Enterprise-level feature")
OPEN_METHODS = ("/versionpb_v2.API/GetVersion", "/grpc.health.v1.Health/",
                "/admin_v2.API/InspectCluster", "/enterprise_v2.API/GetState", "/license_v2.API/Heartbeat",
                "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")


def version_message() -> version_pb2.Version:
    import platform
    return version_pb2.Version(major=VERSION[0], minor=VERSION[1], micro=VERSION[2],
                               additional=ADDITIONAL, platform=f"{platform.system().lower()}/{platform.machine()}",
                               go_version=f"python{platform.python_version()}")


def version_string() -> str:
    return "%d.%d.%d%s" % (*VERSION, ADDITIONAL)


class VersionServicer(version_pb2_grpc.APIServicer):
    def GetVersion(self, request, context):
        return version_message()


class AdminServicer(admin_pb2_grpc.APIServicer):
    def __init__(self, cluster_id: str, request_restart=None):
        self.cluster_id = cluster_id
        self.request_restart = request_restart  # callable(reason) or None
        self.restart_reason: str | None = None
        self.metadata_source = None  # callable() -> dict: the cluster's user metadata

    def InspectCluster(self, request, context):
        info = admin_pb2.ClusterInfo(id=self.cluster_id, deployment_id=self.cluster_id, warnings_ok=True)
        if self.metadata_source is not None:
            info.metadata.update(self.metadata_source())
        if self.restart_reason is not None:
            info.pending_restart = True
            info.restart_info = self.restart_reason
        return info

    def RestartPachyderm(self, request, context):
        if self.request_restart is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "this pachd runs inside another program (embedded), which does not let it "
                          "restart itself; restart that program instead")
        self.restart_reason = request.reason or "restart requested"
        self.request_restart(self.restart_reason)
        return admin_pb2.RestartPachydermResponse()


class AuthServicer(auth_pb2_grpc.APIServicer):
    """Auth is either off (every call: not activated) or a single shared root token."""

    def __init__(self, token: str | None):
        self.token = token

    def WhoAmI(self, request, context):
        if not self.token:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, NOT_ACTIVATED)
        return auth_pb2.WhoAmIResponse(username="pach:root")

    def Activate(self, request, context):
        if self.token:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, ALREADY_ACTIVATED)
        context.abort(grpc.StatusCode.UNKNOWN, ENTERPRISE_REQUIRED)


def _not_activated(name: str):
    def handler(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, NOT_ACTIVATED)
    handler.__name__ = name
    return handler


# every other auth_v2 method answers "not activated" (auth is a single token, not an IAM)
for _m in auth_pb2.DESCRIPTOR.services_by_name["API"].methods:
    if _m.name not in ("WhoAmI", "Activate"):
        setattr(AuthServicer, _m.name, _not_activated(_m.name))


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuse calls without the right `authn-token` metadata when auth is on."""

    def __init__(self, token: str):
        self.token = token

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "no valid authentication token was given (set it with `pachctl auth use-auth-token` "
                          "or the session_token of your pachctl context)")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.unary_stream_rpc_method_handler(lambda r, c: iter(deny(r, c) or ()))
        self._deny_client_stream = grpc.stream_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if any(method.startswith(p) for p in OPEN_METHODS):
            return continuation(handler_call_details)
        md = dict(handler_call_details.invocation_metadata or ())
        if md.get("authn-token") == self.token:
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if handler.request_streaming and not handler.response_streaming:
            return self._deny_client_stream
        if handler.response_streaming:
            return self._deny_stream
        return self._deny_unary


def empty() -> empty_pb2.Empty:
    return empty_pb2.Empty()
