"""The small services: version and admin. (Auth is the top-level `auth` package, wired in
by pachd/auth_wiring.py.)

Invariants:
- GetVersion and InspectCluster answer without a token, auth on or off (clients probe them).
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
    def __init__(self, cluster_id: str):
        self.cluster_id = cluster_id

    def InspectCluster(self, request, context):
        return admin_pb2.ClusterInfo(id=self.cluster_id, deployment_id=self.cluster_id, warnings_ok=True)


def empty() -> empty_pb2.Empty:
    return empty_pb2.Empty()
