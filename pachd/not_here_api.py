"""Services of Pachyderm 2.12 that cannot apply to this pachd; every call answers
FAILED_PRECONDITION naming why (never UNIMPLEMENTED, which clients read as "old pachd").

- pjs.API (the Pachyderm Job System): an experimental queue of programs run by Pachyderm's
  own worker binaries; this pachd's pipelines run through pps only.
- snapshot.API: snapshots of Pachyderm's PostgreSQL database; this pachd keeps its
  metadata in RocksDB (copy pachd's data directory, or the bucket, to back it up).
"""
from __future__ import annotations

import grpc

from proto.pjs import pjs_pb2_grpc
from proto.snapshot import snapshot_pb2_grpc

PJS = ("the Pachyderm Job System (pjs) is not part of this pachd: run work as pipelines "
       "(pps_v2 CreatePipeline) instead")
SNAPSHOT = ("database snapshots are not supported: this pachd keeps its metadata in RocksDB, not "
            "PostgreSQL; back up pachd's data directory (or, with --storage s3://, the bucket) instead")


def _refusing(base, reason: str):
    """A servicer class whose every RPC of `base` aborts with FAILED_PRECONDITION(reason)."""
    def make(name):
        def handler(self, request, context):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)
        handler.__name__ = name
        return handler
    names = [n for n in vars(base) if not n.startswith("_") and callable(getattr(base, n))]
    return type(f"Refusing{base.__name__}", (base,), {n: make(n) for n in names})


PjsServicer = _refusing(pjs_pb2_grpc.APIServicer, PJS)
SnapshotServicer = _refusing(snapshot_pb2_grpc.APIServicer, SNAPSHOT)
