"""GetFile with chunks in S3: one range at a time vs parallel read-ahead, next to boto3.

`python -m bench.s3_storage [--quick] [--size-mib 64] [--settings 1,default,8/8/4]`

A real SeaweedFS `weed mini` (same launch code as the tests) holds the chunks. pachd runs as
its own process with ``--storage s3://<bucket>/pfs``; the same random file is put once, then
read back with GetFile (raw gRPC stub, every byte hashed and checked) by pachds on the same
data that differ only in their read settings (`--settings`):
  1        one chunk range per request, one request at a time (how the core read before)
  default  the core's read-ahead as shipped (pfs.core.readahead: back-to-back chunks merged
           into requests of up to 4 MiB, several in flight)
  w/n/s    read-ahead with w threads, n requests in flight, merged up to s MiB
Baselines, same bytes, same server, same run: boto3 `get_object` of the file uploaded as one
object (one stream), and boto3 `download_file` (8 threads of ranged GETs). For reference, the
same GetFile from a pachd with its chunks on local disk (the ceiling of pachd's gRPC path).

Invariants: every figure is measured in this run next to its baseline; reads are checked
(size and hash); everything started here (weed, pachd) is stopped at the end; each figure is
the best of `repeats` runs (the first read of an object is not special on SeaweedFS).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path


from bench.common import REPO_ROOT, PachdProcess, Result, workdir, write_random_file
from bench.s3_gateway import client, s3_server
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

MiB = 1 << 20
_LAUNCH = ("import sys; from pfs.core import readahead as R; from pfs.core.content import ContentStore as C; "
           "w, win, span = (sys.argv[1].split('/') + ['', ''])[:3]; C.READ_WORKERS = int(w); "
           "C.READ_WINDOW = int(win or C.READ_WINDOW); R.MAX_SPAN = int(float(span or 0) * 2**20) or R.MAX_SPAN; "
           "from pachd.server import main; sys.exit(main(sys.argv[2:]))")


def _pachd(d: Path, storage: str | None, server, read_settings: str) -> PachdProcess:
    """pachd in its own process, its read-ahead settings set before it starts. `d`: pachd's
    data directory (metadata); the same one for every run, so all read the same commit (one
    pachd at a time). Only the server's AWS settings reach it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PACHD_"))}
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
               AWS_ENDPOINT_URL=server.endpoint_url, AWS_DEFAULT_REGION=server.region,
               PYTHONPATH=str(REPO_ROOT))
    return PachdProcess(d, env, storage, launch=[sys.executable, "-c", _LAUNCH, read_settings], inherit_env=False)


def _commit() -> pb.Commit:
    repo = pb.Repo(name="bench", type="user", project=pb.Project(name="default"))
    return pb.Commit(repo=repo, branch=pb.Branch(repo=repo, name="master"))


def _put(stub, src: Path) -> None:
    def reqs():
        yield pb.ModifyFileRequest(set_commit=_commit())
        with open(src, "rb") as f:
            for block in iter(lambda: f.read(4 * MiB), b""):
                yield pb.ModifyFileRequest(add_file=pb.AddFile(path="/big.bin", raw={"value": block}))
    stub.CreateRepo(pb.CreateRepoRequest(repo=_commit().repo))
    stub.ModifyFile(reqs())


def _get(stub, size: int, digest: bytes) -> float:
    t = time.perf_counter()
    h, n = hashlib.sha256(), 0
    for msg in stub.GetFile(pb.GetFileRequest(file=pb.File(commit=_commit(), path="/big.bin"))):
        h.update(msg.value)
        n += len(msg.value)
    took = time.perf_counter() - t
    assert n == size and h.digest() == digest, "GetFile returned wrong bytes"
    return took


def run(quick: bool = False, size_mib: int = 64, settings: tuple = ("1", "default"),
        repeats: int = 3) -> list[Result]:
    """`settings`: read-ahead settings to measure, each "default" (as shipped), "1" (one
    range at a time) or "workers/window/max-span-MiB" (e.g. "8/8/4")."""
    from boto3.s3.transfer import TransferConfig

    from pfs.core.content import ContentStore
    size = size_mib * MiB
    repeats = 2 if quick else repeats
    results: list[Result] = []
    with workdir("s3storage-") as d, s3_server("seaweed", d) as srv:
        src = d / "big.bin"
        write_random_file(src, size, seed=64)
        h = hashlib.sha256()
        with open(src, "rb") as f:
            for block in iter(lambda: f.read(4 * MiB), b""):
                h.update(block)
        digest = h.digest()
        # baselines: boto3 straight to SeaweedFS
        direct = client(srv.endpoint_url, srv.access_key, srv.secret_key)
        try:
            bucket = srv.new_bucket()
            direct.upload_file(str(src), bucket, "big.bin")

            def one_stream() -> float:
                t = time.perf_counter()
                hh, n = hashlib.sha256(), 0
                for chunk in direct.get_object(Bucket=bucket, Key="big.bin")["Body"].iter_chunks(MiB):
                    hh.update(chunk)
                    n += len(chunk)
                took = time.perf_counter() - t
                assert n == size and hh.digest() == digest
                return took

            tc = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=8)
            dst = d / "download.bin"

            def ranged() -> float:
                t = time.perf_counter()
                direct.download_file(bucket, "big.bin", str(dst), Config=tc)
                took = time.perf_counter() - t
                assert dst.stat().st_size == size
                return took

            base_stream = min(one_stream() for _ in range(repeats))
            base_ranged = min(ranged() for _ in range(repeats))
            dst.unlink(missing_ok=True)
        finally:
            direct.close()
        storage = f"s3://{srv.new_bucket()}/pfs"
        from pfs.core import readahead
        shipped = f"{ContentStore.READ_WORKERS}/{ContentStore.READ_WINDOW}/{readahead.MAX_SPAN / MiB:g}"
        figures = {}
        for i, spec in enumerate(settings):
            launch = shipped if spec == "default" else spec
            p = _pachd(d / "pachd", storage, srv, launch)
            try:
                stub = pfs_pb2_grpc.APIStub(p.channel)
                if i == 0:
                    _put(stub, src)
                figures[spec] = (launch, min(_get(stub, size, digest) for _ in range(repeats)))
            finally:
                p.stop()
        p = _pachd(d / "pachd-local", None, srv, "1")  # reference: chunks on local disk
        try:
            stub = pfs_pb2_grpc.APIStub(p.channel)
            _put(stub, src)
            local = min(_get(stub, size, digest) for _ in range(repeats))
        finally:
            p.stop()
        results.append(Result("R0", f"GetFile {size_mib} MiB, chunks on local disk (reference)", size / MiB / local,
                              "MiB/s", size / MiB / base_stream, "boto3 get_object, one stream", "reported", None,
                              extra={"boto3_download_file_8_threads_MiBps": size / MiB / base_ranged,
                                     "seconds": local}))
        for spec, (launch, took) in figures.items():
            w, win, span = (launch.split("/") + ["", ""])[:3]
            if int(w) <= 1:
                rid, label = "R1", "one chunk range per request, one at a time (the read before read-ahead)"
            else:
                rid = "R2" if spec == "default" else f"R2-{launch}"
                label = (f"read-ahead: {w} threads, {win or ContentStore.READ_WINDOW} requests in flight, "
                         f"back-to-back chunks merged up to {float(span or readahead.MAX_SPAN / MiB):g} MiB")
            results.append(Result(rid, f"GetFile {size_mib} MiB, chunks in SeaweedFS: {label}", size / MiB / took,
                                  "MiB/s", size / MiB / base_stream, "boto3 get_object, one stream", "reported",
                                  None, extra={"boto3_download_file_8_threads_MiBps": size / MiB / base_ranged,
                                               "seconds": took, "settings": launch}))
    return results


def s3_storage_bench(quick: bool) -> list[Result]:
    """Entry point for `python -m bench`."""
    return run(quick)


ALL = [s3_storage_bench]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.s3_storage", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats instead of 3")
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--settings", default="1,default",
                    help='comma-separated read settings to compare: "1" (one range at a time), "default" '
                         '(as shipped), or "workers/window/max-span-MiB" such as "8/8/4"')
    args = ap.parse_args(argv)
    results = run(args.quick, args.size_mib, tuple(x.strip() for x in args.settings.split(",") if x.strip()))
    print(f"{'id':<6} {'pachd':>9} {'boto3 1 stream':>15} {'boto3 8 threads':>16}  what")
    for r in results:
        print(f"{r.id:<6} {r.figure:>9.1f} {r.baseline:>15.1f} {r.extra['boto3_download_file_8_threads_MiBps']:>16.1f}"
              f"  {r.what} [MiB/s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
