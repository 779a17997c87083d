"""S3 gateway throughput vs a real S3 server, in the same run (issue 5's bench).

`python -m bench.s3_gateway [--quick] [--server seaweed|moto] [--storage local,s3]`

pachd runs as its own process with its S3 gateway on a free loopback port. The same boto3
client code then moves the same bytes two ways:
  gateway  boto3 → pachd's S3 gateway → pfs (chunks on local disk, or in the S3 server
           with `--storage s3`)
  direct   boto3 → the S3 server itself (SeaweedFS `weed mini` if installed, else moto)
Workloads: one big object PUT and GET as single streams, the same object through boto3's
transfer manager (multipart upload, concurrent ranged GETs), and many small objects PUT
and GET one by one. Each row prints both figures and gateway/direct.

Invariants: both sides see identical data and identical client settings; every figure is
measured in this run; GET results are checked (size and hash) so a fast wrong answer
cannot pass; everything started here (pachd, the S3 server) is stopped at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from bench.common import REPO_ROOT, Result, free_port, workdir, write_random_file

MiB = 1 << 20
SMALL_SIZE = 4096


class _Tmp:
    """The bit of pytest's tmp_path_factory that tests.s3servers' fixtures use."""

    def __init__(self, d: Path):
        self.d = d

    def mktemp(self, name: str) -> Path:
        p = self.d / name
        p.mkdir(parents=True, exist_ok=True)
        return p


@contextlib.contextmanager
def s3_server(kind: str, d: Path):
    """A real S3 server from tests.s3servers (same launch code as the test fixtures)."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests import s3servers
    if kind == "auto":
        kind = "seaweed" if s3servers.find_weed() else "moto"
    fixture = {"moto": s3servers.moto_server, "seaweed": s3servers.seaweed_server}[kind]
    gen = fixture.__wrapped__(_Tmp(d / kind))
    server = next(gen)
    try:
        yield server
    finally:
        gen.close()


@contextlib.contextmanager
def pachd_with_gateway(d: Path, storage: str | None, server) -> Iterator[str]:
    """pachd in a subprocess, gateway on; yields the gateway's endpoint URL."""
    grpc_port, s3_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "pachd", "--port", str(grpc_port), "--root", str(d / "pachd"),
           "--s3-gateway-port", str(s3_port), "--host", "127.0.0.1", "--log-level", "WARNING"]
    env = dict(os.environ)
    if storage:
        cmd += ["--storage", storage]
        env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
                   AWS_ENDPOINT_URL=server.endpoint_url, AWS_DEFAULT_REGION=server.region)
    d.mkdir(parents=True, exist_ok=True)
    log = open(d / f"pachd-{s3_port}.log", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"pachd exited with {proc.returncode}; see {log.name}")
            try:
                socket.create_connection(("127.0.0.1", s3_port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pachd's S3 gateway did not come up; see {log.name}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{s3_port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def client(endpoint: str, key: str, secret: str):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16,
                                      retries={"max_attempts": 2, "mode": "standard"}))


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def workloads(c, bucket: str, src: Path, size: int, digest: bytes, n_small: int, tmp: Path) -> dict:
    """Seconds per workload for one endpoint."""
    from boto3.s3.transfer import TransferConfig
    out = {}

    def put_big():
        with open(src, "rb") as f:
            c.put_object(Bucket=bucket, Key="big.bin", Body=f)

    def get_big():
        h, n = hashlib.sha256(), 0
        for chunk in c.get_object(Bucket=bucket, Key="big.bin")["Body"].iter_chunks(MiB):
            h.update(chunk)
            n += len(chunk)
        assert n == size and h.digest() == digest, "GET returned wrong bytes"

    tc = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=8)
    dst = tmp / "download.bin"

    def upload_tm():
        c.upload_file(str(src), bucket, "big-tm.bin", Config=tc)

    def download_tm():
        c.download_file(bucket, "big-tm.bin", str(dst), Config=tc)
        assert dst.stat().st_size == size

    small = [os.urandom(SMALL_SIZE) for _ in range(n_small)]

    def put_small():
        for i, body in enumerate(small):
            c.put_object(Bucket=bucket, Key=f"small/{i:05d}", Body=body)

    def get_small():
        for i, body in enumerate(small):
            assert c.get_object(Bucket=bucket, Key=f"small/{i:05d}")["Body"].read() == body

    for name, fn in (("put_big", put_big), ("get_big", get_big), ("upload_tm", upload_tm),
                     ("download_tm", download_tm), ("put_small", put_small), ("get_small", get_small)):
        out[name] = _timed(fn)
    dst.unlink(missing_ok=True)
    return out


def run(quick: bool = False, server_kind: str = "auto", storages: tuple = ("local", "s3")) -> list[Result]:
    size = (64 if quick else 256) * MiB
    n_small = 200 if quick else 1000
    results: list[Result] = []
    with workdir("s3bench-") as d, s3_server(server_kind, d) as srv:
        src = d / "big.bin"
        write_random_file(src, size)
        h = hashlib.sha256()
        with open(src, "rb") as f:
            for block in iter(lambda: f.read(4 * MiB), b""):
                h.update(block)
        digest = h.digest()
        direct = client(srv.endpoint_url, srv.access_key, srv.secret_key)
        try:
            bucket = srv.new_bucket()
            base = workloads(direct, bucket, src, size, digest, n_small, d)
        finally:
            direct.close()
        for storage in storages:
            where = f"s3://{srv.new_bucket()}/pfs" if storage == "s3" else None
            with pachd_with_gateway(d / f"run-{storage}", where, srv) as url:
                c = client(url, "any", "any")
                try:
                    c.create_bucket(Bucket="master.bench")
                    gw = workloads(c, "master.bench", src, size, digest, n_small, d)
                finally:
                    c.close()
            label = f"chunks on {'local disk' if storage == 'local' else srv.name}"
            rows = [
                ("S1", f"PUT one {size // MiB} MiB object, single stream", "put_big", size / MiB, "MiB/s"),
                ("S2", f"GET one {size // MiB} MiB object, single stream", "get_big", size / MiB, "MiB/s"),
                ("S3", f"upload_file {size // MiB} MiB (multipart, 8 threads)", "upload_tm", size / MiB, "MiB/s"),
                ("S4", f"download_file {size // MiB} MiB (ranged, 8 threads)", "download_tm", size / MiB, "MiB/s"),
                ("S5", f"PUT {n_small} x {SMALL_SIZE // 1024} KiB objects, one by one", "put_small", n_small, "objects/s"),
                ("S6", f"GET {n_small} x {SMALL_SIZE // 1024} KiB objects, one by one", "get_small", n_small, "objects/s"),
            ]
            for rid, what, key, amount, unit in rows:
                fig, bl = amount / gw[key], amount / base[key]
                results.append(Result(f"{rid}-{storage}", f"S3 gateway: {what} ({label})", fig, unit, bl,
                                      f"boto3 direct to {srv.name}", "reported", None,
                                      notes="each small PUT is one commit" if key == "put_small" else ""))
    return results


def s3_gateway_bench(quick: bool) -> list[Result]:
    """Entry point for `python -m bench` (bench/__main__.py collects module-level ALL lists)."""
    return run(quick)


ALL = [s3_gateway_bench]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.s3_gateway", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64 MiB and 200 small objects instead of 256 MiB and 1,000")
    ap.add_argument("--server", default="auto", choices=["auto", "seaweed", "moto"])
    ap.add_argument("--storage", default="local,s3", help="comma-separated: local, s3 (pachd's chunk store)")
    args = ap.parse_args(argv)
    results = run(args.quick, args.server, tuple(s for s in args.storage.split(",") if s))
    print(f"{'id':<9} {'gateway':>12} {'direct':>12} {'ratio':>6}  what")
    for r in results:
        print(f"{r.id:<9} {r.figure:>12,.1f} {r.baseline:>12,.1f} {r.ratio:>6.2f}  {r.what} [{r.unit}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
