"""Pachyderm 2.x wire schema: our own ``.proto`` files and the Python modules generated from them.

One sub-package per Pachyderm proto package, named after it (every service is ``API``, so
gRPC paths are ``/<package>.API/<Method>``)::

    proto/pfs_v2/pfs.proto                  package pfs_v2
    proto/pps_v2/pps.proto                  package pps_v2
    proto/auth_v2/auth.proto                package auth_v2
    proto/admin_v2/admin.proto              package admin_v2
    proto/transaction_v2/transaction.proto  package transaction_v2
    proto/versionpb_v2/version.proto        package versionpb_v2
    proto/taskapi/task.proto                package taskapi (messages only)

Messages, field numbers/types, enums and RPCs match Pachyderm 2.12 (pachyderm-sdk 2.12.2),
which is a superset of 2.7 (python-pachyderm 7.6.0); the 2.7-only ``pfs_v2.API/RunLoadTest*``
RPCs are kept too. Imports are relative to the repository root, so the generated modules are
``proto.pfs_v2.pfs_pb2``, ``proto.pfs_v2.pfs_pb2_grpc`` and so on.

The ``.proto`` files are the source; the ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py``
next to them are generated and committed. After editing a ``.proto`` file, regenerate with::

    python -m proto.generate

``tests/test_proto.py`` fails if the committed modules are stale, and checks the schema
against pachyderm-sdk on the wire.
"""
