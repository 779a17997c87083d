"""pps_v2 secret RPCs (Create/Delete/Inspect/ListSecret): a mixin of PpsServicer over the
master's secret store (pps.secrets). Convert, call, convert; values never leave the store."""
from __future__ import annotations

from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from pfs.errors import FailedPrecondition
from pfs.service.errors import rpc
from pps.secrets import SecretInfo, parse_manifest
from proto.pps_v2 import pps_pb2 as pb

EMPTY = empty_pb2.Empty()


def _info(s: SecretInfo) -> pb.SecretInfo:
    ts = Timestamp()
    ts.FromNanoseconds(int(s.created * 1e9))
    return pb.SecretInfo(secret=pb.Secret(name=s.name), type=s.type, creation_timestamp=ts)


class SecretsMixin:
    m = None  # the PpsMaster (set by PpsServicer)

    def _secrets(self):
        store = getattr(self.m, "secrets", None)
        if store is None:
            raise FailedPrecondition("this pachd has no secret store (it runs without a pipeline runtime)")
        return store

    @rpc
    def CreateSecret(self, req, ctx):
        self._secrets().create(parse_manifest(req.file))
        return EMPTY

    @rpc
    def DeleteSecret(self, req, ctx):
        self._secrets().delete(req.secret.name)
        return EMPTY

    @rpc
    def InspectSecret(self, req, ctx):
        return _info(self._secrets().inspect(req.secret.name))

    @rpc
    def ListSecret(self, req, ctx):
        return pb.SecretInfos(secret_info=[_info(s) for s in self._secrets().list()])

    def delete_all_secrets(self) -> None:
        """Pachyderm's pps DeleteAll removes the user's secrets too."""
        store = getattr(self.m, "secrets", None)
        for s in (store.list() if store is not None else []):
            store.delete(s.name)
