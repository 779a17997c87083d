"""Registering the services beyond pfs/pps/admin/auth/version/enterprise/transaction on
pachd's gRPC server: storage.Fileset (pfs.service.storage_api), debug_v2 (pachd.debug_api),
logs (pachd.logs_api), metadata (pachd.metadata_api), and pjs and snapshot, which answer
FAILED_PRECONDITION naming why (pachd.not_here_api). Returns the full service names for
reflection.
"""
from __future__ import annotations


def add_extra_services(pachd) -> list[str]:
    from pachd.debug_api import DebugServicer
    from pachd.logs_api import LogsServicer
    from pachd.metadata_api import MetadataServicer
    from pachd.not_here_api import PjsServicer, SnapshotServicer
    from pfs.service.storage_api import StorageServicer
    from proto.debug_v2 import debug_pb2_grpc
    from proto.logs import logs_pb2_grpc
    from proto.metadata import metadata_pb2_grpc
    from proto.pjs import pjs_pb2_grpc
    from proto.snapshot import snapshot_pb2_grpc
    from proto.storage import storage_pb2_grpc
    s = pachd.server
    storage_pb2_grpc.add_FilesetServicer_to_server(StorageServicer(pachd.pfs), s)
    debug_pb2_grpc.add_DebugServicer_to_server(DebugServicer(pachd), s)
    logs_pb2_grpc.add_APIServicer_to_server(LogsServicer(pachd), s)
    metadata_pb2_grpc.add_APIServicer_to_server(MetadataServicer(pachd), s)
    pjs_pb2_grpc.add_APIServicer_to_server(PjsServicer(), s)
    snapshot_pb2_grpc.add_APIServicer_to_server(SnapshotServicer(), s)
    return ["storage.Fileset", "debug_v2.Debug", "logs.API", "metadata.API", "pjs.API", "snapshot.API"]
