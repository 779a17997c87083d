"""The small services: version and admin. (Auth is the top-level `auth` package, wired in
by pachd/auth_wiring.py.)

Invariants:
- GetVersion and InspectCluster answer without a token, auth on or off (clients probe them).
- RestartPachyderm asks the process that runs pachd to restart it (the `pachd` command
  stops cleanly and starts again with the same arguments); until then InspectCluster
  reports `pending_restart` with the reason given. An embedded pachd whose host program
  did not offer a restart refuses with FAILED_PRECONDITION.
"""
from __future__ import annotations

import grpc
from google.protobuf import empty_pb2

from proto.admin_v2 import admin_pb2, admin_pb2_grpc
from proto.versionpb_v2 import version_pb2, version_pb2_grpc

VERSION = (2, 12, 0)
ADDITIONAL = "-py"


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


def empty() -> empty_pb2.Empty:
    return empty_pb2.Empty()
