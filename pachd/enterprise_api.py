"""enterprise_v2, license_v2 and identity_v2: the answers of an unlicensed Pachyderm.

This pachd is not Pachyderm Enterprise: it has no license server, no embedded OIDC provider
and cannot pause. Each RPC still answers exactly as a Pachyderm 2.12 cluster without an
enterprise license does (src/server/{enterprise,license,identity}, the auth interceptor),
so clients and scripts that probe these services (`python-pachyderm`'s `delete_all`,
`pachctl enterprise get-state`, notebook extensions) take their "not licensed" branch.

Invariants:
- enterprise GetState/GetActivationCode say NONE; Heartbeat says the cluster has no
  enterprise features; Activate does what Pachyderm does first, heartbeat the given license
  server over gRPC, and reports that server's answer; Deactivate succeeds; Pause/Unpause
  refuse (this pachd is not pausable) and PauseStatus says UNPAUSED.
- license: no license is ever active, so the cluster registry stays empty; every call
  answers as Pachyderm's license server does in that state.
- identity: with auth off every call answers `the auth service is not activated`
  (UNIMPLEMENTED), as Pachyderm's interceptor does; with the shared token on, the calls
  fail FAILED_PRECONDITION naming why (there is no OIDC provider here).
- Status codes: Pachyderm's `errors.Errorf` answers are UNKNOWN; its license sentinel errors
  are UNIMPLEMENTED with their own texts. Both are kept.
"""
from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import urlsplit

import grpc

from proto.enterprise_v2 import enterprise_pb2 as epb
from proto.enterprise_v2 import enterprise_pb2_grpc
from proto.identity_v2 import identity_pb2_grpc
from proto.license_v2 import license_pb2 as lpb
from proto.license_v2 import license_pb2_grpc

AUTH_NOT_ACTIVATED = "the auth service is not activated"
ENTERPRISE_NOT_ACTIVATED = "cluster does not have enterprise features enabled"
INVALID_ID_OR_SECRET = "cluster ID or secret is not valid"
HEARTBEAT_TIMEOUT = 10.0


class EnterpriseServicer(enterprise_pb2_grpc.APIServicer):
    def GetState(self, request, context):
        return epb.GetStateResponse(state=epb.NONE)

    def GetActivationCode(self, request, context):
        return epb.GetActivationCodeResponse(state=epb.NONE)

    def Heartbeat(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, ENTERPRISE_NOT_ACTIVATED)

    def Activate(self, request, context):
        # Pachyderm heartbeats the license server before it stores anything; a license
        # server that does not know this cluster refuses, and that answer is the result.
        target = _grpc_target(request.license_server)
        if not target:
            context.abort(grpc.StatusCode.UNKNOWN,
                          f"could not parse the license server address {request.license_server!r} "
                          "(expected grpc://host:port)")
        with grpc.insecure_channel(target) as channel:
            stub = license_pb2_grpc.APIStub(channel)
            try:
                stub.Heartbeat(lpb.HeartbeatRequest(id=request.id, secret=request.secret),
                               timeout=HEARTBEAT_TIMEOUT)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE:  # not "pachd is unreachable" to the client
                    context.abort(grpc.StatusCode.UNAVAILABLE,
                                  f"cannot reach the license server {request.license_server}")
                context.abort(e.code(), e.details() or str(e.code()))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      "the license server accepted this cluster, but this pachd does not implement "
                      "Pachyderm Enterprise and stays unlicensed")

    def Deactivate(self, request, context):
        return epb.DeactivateResponse()

    def Pause(self, request, context):
        context.abort(grpc.StatusCode.UNKNOWN, "this pachd instance is not in a pausable mode")

    def Unpause(self, request, context):
        context.abort(grpc.StatusCode.UNKNOWN, "this pachd instance is not in an unpausable mode")

    def PauseStatus(self, request, context):
        return epb.PauseStatusResponse(status=epb.PauseStatusResponse.UNPAUSED)


class LicenseServicer(license_pb2_grpc.APIServicer):
    """Pachyderm's license server with no license activated (and so no clusters)."""

    def Activate(self, request, context):
        reason = _activation_code_problem(request.activation_code)
        if reason:
            context.abort(grpc.StatusCode.UNKNOWN, f"error validating activation code: {reason}")
        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      "error validating activation code: this pachd does not implement Pachyderm "
                      "Enterprise, so it cannot check or use an enterprise license")

    def GetActivationCode(self, request, context):
        return lpb.GetActivationCodeResponse(state=epb.NONE)

    def DeleteAll(self, request, context):
        return lpb.DeleteAllResponse()

    def AddCluster(self, request, context):
        context.abort(grpc.StatusCode.UNKNOWN, "enterprise license is not valid - NONE")

    def DeleteCluster(self, request, context):
        return lpb.DeleteClusterResponse()

    def ListClusters(self, request, context):
        return lpb.ListClustersResponse()

    def UpdateCluster(self, request, context):
        if not (request.address or request.user_address or request.cluster_deployment_id or request.secret):
            context.abort(grpc.StatusCode.UNKNOWN, "No cluster fields were provided to the UpdateCluster RPC")
        return lpb.UpdateClusterResponse()  # updates no row: there are none

    def Heartbeat(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"got 0, want 1 for cluster id {json.dumps(request.id)}: {INVALID_ID_OR_SECRET}")

    def ListUserClusters(self, request, context):
        return lpb.ListUserClustersResponse()


class IdentityServicer(identity_pb2_grpc.APIServicer):
    """Every identity call needs cluster permissions, which need auth."""

    def __init__(self, auth_token: str | None):
        self.auth_token = auth_token


def _identity_refusal(name: str):
    def handler(self, request, context):
        if not self.auth_token:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, AUTH_NOT_ACTIVATED)
        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      f"identity {name}: this pachd has no identity service (Pachyderm's embedded OIDC "
                      "provider, part of Pachyderm Enterprise); auth here is the one shared token "
                      "given with pachd --auth-token")
    handler.__name__ = name
    return handler


for _m in identity_pb2_grpc.APIServicer.__dict__:
    if not _m.startswith("_"):
        setattr(IdentityServicer, _m, _identity_refusal(_m))


def _grpc_target(address: str) -> str:
    """host:port of a pachd address (grpc://, http://, or bare)."""
    if "://" not in address:
        address = "grpc://" + address
    parts = urlsplit(address)
    if not parts.hostname:
        return ""
    try:
        port = parts.port or 30650
    except ValueError:
        return ""
    return f"{parts.hostname}:{port}"


def _activation_code_problem(code: str) -> str:
    """Pachyderm's first structural complaint about an activation code, or ''."""
    try:
        raw = base64.b64decode(code, validate=True)
    except (binascii.Error, ValueError):
        return "activation code is not base64 encoded"
    try:
        outer = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "activation code is not valid JSON"
    if not isinstance(outer, dict):
        return "activation code is not valid JSON"
    signature = next((v for k, v in outer.items() if k.lower() == "signature"), "")
    try:
        base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return "signature is not base64 encoded"
    return ""
