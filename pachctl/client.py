"""A small gRPC client for pachd, built on the generated stubs (used by pachctl, tests, FUSE).

    with PachClient.from_config() as c:            # active context, PACHD_ADDRESS wins
        for ri in c.pfs.ListRepo(pfs_pb2.ListRepoRequest()):
            ...

Invariants:
- One channel per client; `close()` (or the context manager) releases it. Nothing connects
  until the first call (gRPC channels are lazy).
- Every call carries the context's `authn-token` metadata when a session token is set, and
  the client-wide timeout (`--rpc-timeout`) unless the caller passes its own `timeout=`;
  long-lived streams (SubscribeCommit) are called with `timeout=None`.
- Send/receive limits are 64 MiB, matching pachd, so large messages never fail on size.
- TLS (`grpcs://`) uses the context's `server_cas` (base64 PEM) or the system roots.
"""
from __future__ import annotations

import base64
import logging
from typing import Any, Iterator, Mapping, Optional

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pachctl.config import Config, PachdAddress, parse_address
from pachctl.rpc_text import describe_status
from proto.admin_v2 import admin_pb2_grpc
from proto.auth_v2 import auth_pb2_grpc
from proto.pfs_batch_v1 import pfs_batch_pb2_grpc
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from proto.versionpb_v2 import version_pb2_grpc

log = logging.getLogger("pachctl.client")
MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]
_UNSET: Any = object()
# calls pachd queues in the active transaction instead of running them (pachd.transactions)
TRANSACTIONAL = frozenset({"CreateRepo", "DeleteRepo", "StartCommit", "FinishCommit", "SquashCommitSet",
                           "CreateBranch", "DeleteBranch", "UpdateJobState", "StopJob", "CreatePipeline",
                           "CreatePipelineV2"})


class _Api:
    """A stub whose methods add the auth metadata and the default timeout to each call."""

    def __init__(self, stub: Any, metadata: tuple, timeout: Optional[float], client: Any = None):
        self._stub, self._metadata, self._timeout, self._client = stub, metadata, timeout, client

    def __getattr__(self, name: str):
        method = getattr(self._stub, name)
        metadata, default_timeout, client = self._metadata, self._timeout, self._client

        def call(request, timeout=_UNSET, metadata_extra=(), **kw):
            t = default_timeout if timeout is _UNSET else timeout
            md = metadata + tuple(metadata_extra)
            log.debug("rpc %s (timeout %s)", name, t)
            out = method(request, timeout=t, metadata=md or None, **kw)
            if client is not None and client.transaction and name in TRANSACTIONAL:
                client.queued_in_transaction += 1
            return out

        call.__name__ = name
        return call


class PachClient:
    def __init__(self, address: str | PachdAddress = "localhost:30650", *, token: str = "",
                 timeout: Optional[float] = None, server_cas: str = "",
                 transaction: str = ""):
        self.address = address if isinstance(address, PachdAddress) else parse_address(address)
        self.timeout = timeout
        if self.address.secured:
            roots = base64.b64decode(server_cas) if server_cas else None
            creds = grpc.ssl_channel_credentials(root_certificates=roots)
            self.channel = grpc.secure_channel(self.address.target, creds, options=CHANNEL_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(self.address.target, options=CHANNEL_OPTIONS)
        md = []
        if token:
            md.append(("authn-token", token))
        if transaction:
            md.append(("pach-transaction", transaction))
        self.transaction = transaction
        self.queued_in_transaction = 0  # calls pachd queued in `transaction` instead of running
        self.metadata = tuple(md)
        self.pfs = self._api(pfs_pb2_grpc.APIStub)
        self.pfs_batch = self._api(pfs_batch_pb2_grpc.APIStub)
        self._batched_listings: Optional[bool] = None  # unknown until the first listing
        self.version = self._api(version_pb2_grpc.APIStub)
        self.admin = self._api(admin_pb2_grpc.APIStub)
        self.auth = self._api(auth_pb2_grpc.APIStub)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self._pps = None

    def _api(self, stub_cls) -> _Api:
        return _Api(stub_cls(self.channel), self.metadata, self.timeout, self)

    @property
    def pps(self) -> _Api:
        if self._pps is None:
            from proto.pps_v2 import pps_pb2_grpc
            self._pps = self._api(pps_pb2_grpc.APIStub)
        return self._pps

    def list_file(self, request: pfs_pb2.ListFileRequest, timeout=_UNSET) -> Iterator[pfs_pb2.FileInfo]:
        """The FileInfos of ListFile(request), in its order, fetched many to a message from
        pachd's pfs_batch_v1.API (see pfs.service.pfs_batch); from pfs_v2.API/ListFile, one to
        a message, when the server does not have it (a Pachyderm cluster answers UNIMPLEMENTED).
        Errors are ListFile's, raised while iterating."""
        if self._batched_listings is not False:
            call = self.pfs_batch.ListFile(request, timeout=timeout)
            try:
                first = next(call, None)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._batched_listings = False
            else:
                self._batched_listings = True
                if first is not None:
                    yield from first.file_infos
                    for batch in call:
                        yield from batch.file_infos
                return
        yield from self.pfs.ListFile(request, timeout=timeout)

    @classmethod
    def from_config(cls, config: Optional[Config] = None, env: Optional[Mapping[str, str]] = None,
                    timeout: Optional[float] = None) -> "PachClient":
        """The active context's pachd (PACHD_ADDRESS overrides its address)."""
        cfg = config if config is not None else Config.load(env=env)
        _, ctx = cfg.active_context(env, error_on_no_active=False)
        ctx = ctx or {}
        return cls(cfg.pachd_address(env), token=ctx.get("session_token", ""), timeout=timeout,
                   server_cas=ctx.get("server_cas", ""),
                   transaction=ctx.get("active_transaction", ""))

    def healthy(self, timeout: float = 1.0) -> bool:
        """True if pachd answers the gRPC health check with SERVING."""
        try:
            resp = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "PachClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe_rpc_error(e: grpc.RpcError, address: PachdAddress | None = None) -> str:
    """The text pachctl prints for a failed call: the status message only (ScrubGRPC)."""
    code = e.code() if hasattr(e, "code") else None
    details = (e.details() if hasattr(e, "details") else "") or ""
    return describe_status(code.name if code is not None else None, details,
                           address.qualified if address is not None else None)
