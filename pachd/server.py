"""pachd: one process serving pfs_v2 and pps_v2 over gRPC, plus the S3 gateway.

Usage: `pachd [--port 30650] [--root ~/.pachyderm/data] [--storage s3://bucket/prefix]
[--s3-gateway-port 30600] [--auth-token TOKEN] [--tls-cert CERT --tls-key KEY] [--gc-period 60]
[--lease-ttl 600] [--metadata-ship-period 2] [--oidc-port 1657]`; every flag has an environment
equivalent (PACHD_PORT, PACHD_ROOT, PACHD_STORAGE, PACHD_S3_GATEWAY_PORT, PACHD_AUTH_TOKEN,
PACHD_TLS_CERT, PACHD_TLS_KEY, PACHD_GC_PERIOD, PACHD_LEASE_TTL, PACHD_METADATA_SHIP_PERIOD,
PACHD_OIDC_PORT). The OIDC port serves the identity provider's callback of `pachctl auth
login` (pachd.oidc_callback). Auth (users,
robots, pipelines, roles) is the `auth` package, wired in by pachd/auth_wiring.py; its state
is `<root>/auth.json`.

Invariants:
- Metadata lives in RocksDB under `<root>/meta`; chunks under `<root>/chunks` or in the
  S3 bucket given by --storage. One pachd owns a root at a time (RocksDB's lock).
- With --storage, the metadata is shipped to the bucket (pachd.shipping) and a pachd whose
  `<root>/meta` is missing or empty restores it from there before opening it.
- Garbage collection runs every --gc-period seconds (pachd.maintenance).
- With --storage, one pachd per bucket prefix: pachd holds the lease object `meta/OWNER`
  (pachd.bucket_lease, renewed every PACHD_BUCKET_LEASE_PERIOD s, default 5) and refuses to
  start while another live pachd or another cluster holds the prefix; a pachd whose prefix
  was taken over stops collecting and shipping at once and exits with status 1.
- SIGTERM/SIGINT stop accepting calls, end waits and subscriptions (UNAVAILABLE), stop the
  pipeline workers, let running calls finish (grace period), then close the stores:
  nothing is left half-written.
- gRPC health checking (grpc.health.v1) and server reflection are served.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path
from typing import Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pfs.core import Pfs
from pachd.auth_wiring import TLS, AuthSetup
from pachd.maintenance import DEFAULT_GC_PERIOD, GcLoop, MaintenanceServicer, make_collector
from pachd.misc_api import AdminServicer, VersionServicer, version_string
from pachd.shipping import DEFAULT_PERIOD as DEFAULT_SHIP_PERIOD
from pachd.shipping import MetadataShipper
from pachd.bucket_lease import DEFAULT_PERIOD as DEFAULT_LEASE_PERIOD
from pachd.bucket_lease import BucketLease, check_cluster
from pfs.core.gc import DEFAULT_TTL
from pfs.service.pfs_api import PfsServicer
from pfs.service.pfs_batch import PfsBatchServicer
from proto.maintenance_v1 import maintenance_pb2, maintenance_pb2_grpc
from proto.pfs_batch_v1 import pfs_batch_pb2, pfs_batch_pb2_grpc
from proto.admin_v2 import admin_pb2, admin_pb2_grpc
from proto.auth_v2 import auth_pb2
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from proto.transaction_v2 import transaction_pb2_grpc
from proto.versionpb_v2 import version_pb2, version_pb2_grpc

log = logging.getLogger("pachd")
MAX_MSG = 64 * 1024 * 1024
DEFAULT_ROOT = "~/.pachyderm/data"


def open_stores(root: Path, storage: Optional[str] = None):
    from pfs.storage import LocalChunkStore, RocksMetadataStore, open_chunkstore
    root.mkdir(parents=True, exist_ok=True)
    chunks = open_chunkstore(storage) if storage else LocalChunkStore(root / "chunks")
    try:
        meta_dir = root / "meta"
        if storage and (not meta_dir.exists() or not any(meta_dir.iterdir())):
            from pachd.shipping import restore
            if meta_dir.exists():
                meta_dir.rmdir()
            if restore(chunks, meta_dir, root) is not None:
                log.info("metadata restored from %s into %s", storage, meta_dir)
        meta = RocksMetadataStore(meta_dir)
    except BaseException:
        chunks.close()
        raise
    return meta, chunks


class Pachd:
    """An embeddable pachd (tests start one on port 0)."""

    def __init__(self, root: str | Path, port: int = 30650, storage: Optional[str] = None,
                 s3_gateway_port: Optional[int] = None, auth_token: Optional[str] = None,
                 host: str = "0.0.0.0", workers: int = 32, enable_pps: bool = True,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                 gc_period: float = DEFAULT_GC_PERIOD, lease_ttl: Optional[float] = None,
                 ship_period: float = DEFAULT_SHIP_PERIOD, oidc_port: Optional[int] = None):
        self.root = Path(root).expanduser().absolute()
        if bool(tls_cert) != bool(tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        self.tls = TLS(tls_cert, tls_key) if tls_cert else None
        self.storage = storage
        self.gc_period, self.lease_ttl, self.ship_period = gc_period, lease_ttl, ship_period
        self.oidc_port = oidc_port  # None: no OIDC callback endpoint (embedded pachds)
        self.oidc_callback = None
        self.meta, self.chunks = open_stores(self.root, storage)
        try:
            self._setup(port, s3_gateway_port, auth_token, host, workers, enable_pps)
        except BaseException:  # e.g. the port is taken: release the root for the next try
            self.meta.close()
            self.chunks.close()
            raise

    def _setup(self, port: int, s3_gateway_port: Optional[int], auth_token: Optional[str],
               host: str, workers: int, enable_pps: bool) -> None:
        self.pfs = Pfs(self.meta, self.chunks, lease_ttl=self.lease_ttl or DEFAULT_TTL)
        self.cluster_id = self._cluster_id()
        self.on_fenced = None  # main(): stop the process when another pachd took the bucket over
        self.bucket_lease = None
        if self.storage:  # one pachd per bucket prefix (pachd.bucket_lease)
            check_cluster(self.chunks, self.cluster_id, self.storage)
            self.bucket_lease = BucketLease(self.chunks, self.storage, self.cluster_id,
                                            _env_float("PACHD_BUCKET_LEASE_PERIOD", DEFAULT_LEASE_PERIOD),
                                            on_lost=self._bucket_lost)
            self.bucket_lease.acquire()
        self.shipper = None
        if self.storage and self.ship_period > 0:
            self.shipper = MetadataShipper(self.meta, self.chunks, self.ship_period, tmp_root=self.root,
                                           root=self.root, cluster_id=self.cluster_id)
        self.gc = make_collector(self.pfs, self.shipper.ship_now if self.shipper else None)
        if self.bucket_lease is not None:
            self.gc.guard = self.bucket_lease.verify
        self.gc_loop = GcLoop(self.gc, self.gc_period)
        self.auth_token = auth_token or None
        self.host = host
        self.requested_port = port
        self.s3_gateway_port = s3_gateway_port
        self.s3_gateway = None
        self.pps = None
        self._stopped = threading.Event()
        from pachd.transactions import TransactionInterceptor, TransactionRunner, TransactionServicer
        from pfs.service.local_read import LocalReadServer, add_socket_service
        from pfs.service.pfs_api import SerializedGetFile
        self.local_reads = LocalReadServer()
        self.local_puts = None  # pachd.local_put, once the port is known
        pfs_servicer = self.pfs_servicer = PfsServicer(self.pfs, self.local_reads if self.local_reads.start() else None)
        self.transactions = TransactionRunner(
            self.pfs, pfs_servicer, lambda: self.pps.servicer if self.pps is not None else None)
        self.authn = AuthSetup(self.root, self.pfs, self.auth_token)
        pfs_servicer.caller_may = self.authn.caller_may  # summaries and DeleteRepos: what the caller may
        self.authn.wire_transactions(self.transactions)  # grants of queued calls: at finish
        # auth first: a call queued in a transaction is checked as its caller makes it
        interceptors = [self.authn.interceptor, TransactionInterceptor(self.transactions), SerializedGetFile()]
        pfs_servicer.serialized = True
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", MAX_MSG),
                     ("grpc.max_send_message_length", MAX_MSG),
                     ("grpc.so_reuseport", 0)])
        pfs_pb2_grpc.add_APIServicer_to_server(pfs_servicer, self.server)
        add_socket_service(self.server, self.local_reads)
        version_pb2_grpc.add_APIServicer_to_server(VersionServicer(), self.server)
        self.admin = AdminServicer(self.cluster_id)
        admin_pb2_grpc.add_APIServicer_to_server(self.admin, self.server)
        self.authn.add_servicer(self.server)
        maintenance_pb2_grpc.add_APIServicer_to_server(MaintenanceServicer(self), self.server)
        pfs_batch_pb2_grpc.add_APIServicer_to_server(PfsBatchServicer(pfs_servicer), self.server)
        services = [pfs_pb2.DESCRIPTOR.services_by_name["API"].full_name,
                    version_pb2.DESCRIPTOR.services_by_name["API"].full_name,
                    admin_pb2.DESCRIPTOR.services_by_name["API"].full_name,
                    auth_pb2.DESCRIPTOR.services_by_name["API"].full_name,
                    maintenance_pb2.DESCRIPTOR.services_by_name["API"].full_name,
                    pfs_batch_pb2.DESCRIPTOR.services_by_name["API"].full_name]
        services += self._add_enterprise_services()
        transaction_pb2_grpc.add_APIServicer_to_server(TransactionServicer(self.transactions), self.server)
        services.append("transaction_v2.API")
        from pachd.extra_services import add_extra_services
        services += add_extra_services(self)
        if enable_pps:
            name = self._add_pps()
            if name:
                services.append(name)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        services.append(health.SERVICE_NAME)
        services.append(reflection.SERVICE_NAME)
        reflection.enable_server_reflection(services, self.server)
        try:
            if self.tls is not None:
                self.port = self.server.add_secure_port(f"{host}:{port}", self.tls.grpc_credentials())
            else:
                self.port = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError:  # grpc raises when the address is taken
            self.port = 0
        if self.port == 0:
            raise OSError(f"pachd cannot listen on {host}:{port} (is another pachd running?)")
        from pachd.local_put import LocalPutServer, loopback_target
        target = loopback_target(host, self.port) if self.tls is None and self.local_reads.name else None
        self.local_puts = LocalPutServer(self.port, target, self.local_reads) if target else None

    def _add_enterprise_services(self) -> list[str]:
        """enterprise_v2, license_v2, identity_v2: an unlicensed Pachyderm's answers."""
        from pachd.enterprise_api import EnterpriseServicer, IdentityServicer, LicenseServicer
        from proto.enterprise_v2 import enterprise_pb2_grpc
        from proto.identity_v2 import identity_pb2_grpc
        from proto.license_v2 import license_pb2_grpc
        enterprise_pb2_grpc.add_APIServicer_to_server(EnterpriseServicer(), self.server)
        license_pb2_grpc.add_APIServicer_to_server(LicenseServicer(), self.server)
        identity_pb2_grpc.add_APIServicer_to_server(IdentityServicer(self.auth_token), self.server)
        return ["enterprise_v2.API", "license_v2.API", "identity_v2.API"]

    def _add_pps(self) -> str:
        from pachd.pps_runtime import add_pps  # noqa: WPS433 - pps loads only when enabled
        self.pps = add_pps(self)
        return "pps_v2.API"

    def _bucket_lost(self, reason: str) -> None:
        """Another pachd took this bucket prefix over: never delete or ship anything again."""
        if self.shipper is not None:
            self.shipper.halt(reason)
        if self.on_fenced is not None:
            self.on_fenced(reason)

    def _cluster_id(self) -> str:
        p = self.root / "cluster-id"
        if not p.exists():
            p.write_text(uuid.uuid4().hex)
        return p.read_text().strip()

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def start(self) -> "Pachd":
        self.server.start()
        if self.local_puts is not None and not self.local_puts.start():
            self.local_puts = None
        if self.s3_gateway_port is not None:
            self._start_s3_gateway()
        if self.oidc_port is not None:
            self._start_oidc_callback()
        if self.pps is not None:
            self.pps.start()
        self.gc_loop.start()
        if self.shipper is not None:
            self.shipper.start()
        if self.bucket_lease is not None:
            self.bucket_lease.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info("pachd %s serving gRPC on %s:%d (data in %s)", version_string(), self.host, self.port, self.root)
        return self

    def _start_s3_gateway(self) -> None:
        try:
            from pfs.s3gateway import S3Gateway
        except ImportError:
            log.warning("S3 gateway not available in this build")
            return
        self.s3_gateway = S3Gateway(self.pfs, self.host, self.s3_gateway_port, auth_token=self.auth_token,
                                    access=self.authn.s3_access,
                                    ssl_context=self.tls.ssl_context() if self.tls else None)
        self.s3_gateway.start()
        self.s3_gateway_port = self.s3_gateway.port
        log.info("S3 gateway on %s:%d", self.host, self.s3_gateway_port)

    def _start_oidc_callback(self) -> None:
        from pachd.oidc_callback import OIDCCallbackServer
        auth = self.authn.auth
        try:
            server = OIDCCallbackServer(self.authn.oidc, self.host, self.oidc_port, active=lambda: auth.active,
                                        ssl_context=self.tls.ssl_context() if self.tls else None)
        except OSError as e:  # pachd still serves; only browser logins cannot complete here
            log.warning("the OIDC callback cannot listen on %s:%d (%s): `pachctl auth login` through a "
                        "browser will not complete on this pachd; pick another --oidc-port", self.host,
                        self.oidc_port, e.strerror or e)
            self.oidc_port = None
            return
        self.oidc_callback = server.start()
        self.oidc_port = self.oidc_callback.port
        log.info("OIDC callback on %s:%d", self.host, self.oidc_port)

    def stop(self, grace: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.pfs.stop_waiting()  # waits and subscriptions end now, not after the grace
        self.gc_loop.stop()  # lets a running collection finish
        if self.pps is not None:
            self.pps.stop()
        if self.s3_gateway is not None:
            self.s3_gateway.stop()
        if self.local_puts is not None:
            self.local_puts.stop()  # no new lean puts; those under way finish within the grace
        if self.oidc_callback is not None:
            self.oidc_callback.stop()
        self.server.stop(grace).wait()
        if self.local_puts is not None:
            self.local_puts.close()
        self.local_reads.stop()
        self.pfs.close()  # after the last call: uploads in their grace still write packs
        if self.shipper is not None:
            self.shipper.stop(final=True)  # a clean stop loses nothing (RPO 0)
        if self.bucket_lease is not None:
            self.bucket_lease.release()  # the next pachd on this prefix need not wait
        self.meta.close()
        self.chunks.close()
        log.info("pachd stopped")

    def wait(self) -> None:
        self.server.wait_for_termination()

    def __enter__(self) -> "Pachd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(grace=1.0)


def _env_int(name: str, default: Optional[int]) -> Optional[int]:
    v = os.environ.get(name)
    return int(v) if v else default


def _env_float(name: str, default: float) -> float:
    v = os.environ.get(name)
    return float(v) if v else default


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="pachd", description="Serve Pachyderm's gRPC API (pfs, pps) and S3 gateway from one process.")
    ap.add_argument("--port", type=int, default=_env_int("PACHD_PORT", 30650),
                    help="gRPC port (env PACHD_PORT, default 30650)")
    ap.add_argument("--root", default=os.environ.get("PACHD_ROOT", DEFAULT_ROOT),
                    help="data directory (env PACHD_ROOT, default ~/.pachyderm/data)")
    ap.add_argument("--storage", default=os.environ.get("PACHD_STORAGE"),
                    help="where chunks live: s3://bucket/prefix (AWS_* variables and AWS_ENDPOINT_URL apply); "
                         "default: <root>/chunks on local disk (env PACHD_STORAGE)")
    ap.add_argument("--s3-gateway-port", type=int, default=_env_int("PACHD_S3_GATEWAY_PORT", 30600),
                    help="S3 gateway port, -1 to disable (env PACHD_S3_GATEWAY_PORT, default 30600)")
    ap.add_argument("--auth-token", default=os.environ.get("PACHD_AUTH_TOKEN"),
                    help="require this token on every call (env PACHD_AUTH_TOKEN); off by default")
    ap.add_argument("--tls-cert", default=os.environ.get("PACHD_TLS_CERT"),
                    help="PEM certificate (chain): serve gRPC and the S3 gateway over TLS (env PACHD_TLS_CERT)")
    ap.add_argument("--tls-key", default=os.environ.get("PACHD_TLS_KEY"),
                    help="PEM private key of --tls-cert (env PACHD_TLS_KEY)")
    ap.add_argument("--host", default=os.environ.get("PACHD_HOST", "0.0.0.0"),
                    help="address to listen on (env PACHD_HOST, default all interfaces)")
    ap.add_argument("--gc-period", type=float, default=_env_float("PACHD_GC_PERIOD", DEFAULT_GC_PERIOD),
                    help="seconds between garbage collections of unreferenced data; 0 turns them off "
                         "(env PACHD_GC_PERIOD, default 60). `pachctl garbage-collect` runs one now")
    ap.add_argument("--lease-ttl", type=float, default=_env_float("PACHD_LEASE_TTL", DEFAULT_TTL),
                    help="seconds an upload's data is kept after its writer stops renewing its lease, "
                         "e.g. when pachd was killed mid-upload (env PACHD_LEASE_TTL, default 600)")
    ap.add_argument("--metadata-ship-period", type=float,
                    default=_env_float("PACHD_METADATA_SHIP_PERIOD", DEFAULT_SHIP_PERIOD),
                    help="with --storage: seconds between copies of the metadata (repos, commits, "
                         "pipelines, jobs) to the bucket, which bound what a lost --root can lose; "
                         "0 turns shipping off (env PACHD_METADATA_SHIP_PERIOD, default 2)")
    ap.add_argument("--oidc-port", type=int, default=_env_int("PACHD_OIDC_PORT", 1657),
                    help="port of the OIDC callback (the redirect_uri of `pachctl auth set-config` points "
                         "here: http://HOST:PORT/authorization-code/callback); -1 to disable "
                         "(env PACHD_OIDC_PORT, default 1657)")
    ap.add_argument("--log-level", default=os.environ.get("PACHD_LOG_LEVEL", "INFO"))
    return ap.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["restore"]:
        from pachd.backup import restore_main
        logging.basicConfig(level="INFO", stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        return restore_main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # boto3's INFO lines ("Found credentials in environment variables") are not pachd's
        # news; a start-up failure stays one line on stderr.
        for name in ("boto3", "botocore", "s3transfer", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)
    s3_port = None if args.s3_gateway_port is not None and args.s3_gateway_port < 0 else args.s3_gateway_port
    try:
        pachd = Pachd(args.root, args.port, args.storage, s3_port, args.auth_token, host=args.host,
                      tls_cert=args.tls_cert, tls_key=args.tls_key, gc_period=args.gc_period,
                      lease_ttl=args.lease_ttl, ship_period=args.metadata_ship_period,
                      oidc_port=None if args.oidc_port is not None and args.oidc_port < 0 else args.oidc_port)
    except Exception as e:  # noqa: BLE001 - a clear one-line reason for the person starting pachd
        print(f"pachd: cannot start: {e}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # exit now: tearing down the interpreter with gRPC's event engine half started can
        # abort the process (SIGABRT) instead of exiting 1
        os._exit(1)
    stop = threading.Event()
    restart = threading.Event()

    def on_restart(reason: str) -> None:
        log.info("restart requested: %s", reason)
        restart.set()
        stop.set()

    pachd.admin.request_restart = on_restart
    fenced: list[str] = []

    def on_fenced(reason: str) -> None:
        fenced.append(reason)
        stop.set()

    pachd.on_fenced = on_fenced

    def on_signal(signum, frame):
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pachd.start()
    print(f"pachd listening on {args.host}:{pachd.port}", file=sys.stderr, flush=True)
    while not stop.wait(1.0):
        pass
    if restart.is_set():
        time.sleep(0.5)  # let the RestartPachyderm call answer before the server stops
    pachd.stop()
    if restart.is_set():
        log.info("restarting pachd")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "pachd", *(sys.argv[1:] if argv is None else argv)])
    if fenced:
        print(f"pachd: stopped: {fenced[0]}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
