"""B10: garbage collection throughput, and `put file` latency while the collector runs.

`python -m bench --only b10_gc [--quick]`

- B10a/B10b: a pachd process (local chunk store) holds a repo of many small files and a few
  big ones; the repo is deleted and one collection is run through the maintenance API
  (`pachctl garbage-collect`). Figures: pack objects deleted per second and GiB reclaimed per
  second. Baseline, same run, same disk: `os.unlink` of as many files holding the same bytes
  (the floor of deleting that many objects).
- B10d: the same repo on SeaweedFS (`pachd --storage s3://...`, background GC at its default
  period of 60 s): seconds from `delete repo` until the bucket is back within 2% of its size
  before the repo existed (the issue's "within one GC period").
- B10c: p99 latency of small puts (ModifyFile, one 64 KiB file per commit) while nothing else
  runs, then while a collector loops (every 0.2 s) and another client keeps creating and
  deleting a repo so that every collection has garbage to delete. Target: <= 1.5x.
"""
from __future__ import annotations

import os
import threading
import time

from google.protobuf import wrappers_pb2

from bench.common import Result, pachd, percentile, workdir
from proto.maintenance_v1 import maintenance_pb2 as mpb
from proto.maintenance_v1 import maintenance_pb2_grpc
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def _repo(name: str) -> pb.Repo:
    return pb.Repo(name=name, type="user", project=pb.Project(name="default"))


def _put(stub, repo: str, files: dict) -> None:
    reqs = [pb.ModifyFileRequest(set_commit=pb.Commit(branch=pb.Branch(repo=_repo(repo), name="master")))]
    for path, data in files.items():
        reqs.append(pb.ModifyFileRequest(add_file=pb.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=data))))
    stub.ModifyFile(iter(reqs))


def _fill(stub, repo: str, n_small: int, big: int, n_big: int) -> int:
    stub.CreateRepo(pb.CreateRepoRequest(repo=_repo(repo)))
    total = 0
    batch: dict = {}
    for i in range(n_small):
        data = os.urandom(1 + (i * 7919) % (8 * KiB))
        batch[f"/small/{i:07d}"] = data
        total += len(data)
        if len(batch) >= 2000:
            _put(stub, repo, batch)
            batch = {}
    if batch:
        _put(stub, repo, batch)
    for i in range(n_big):
        _put_big(stub, repo, f"/big/{i}", big)
        total += big
    return total


def _put_big(stub, repo: str, path: str, size: int, piece: int = 4 * MiB) -> None:
    """One file of `size` random bytes in its own commit, made and sent `piece` bytes at a
    time: never whole in memory, and no message near gRPC's 64 MiB limit."""
    def reqs():
        yield pb.ModifyFileRequest(set_commit=pb.Commit(branch=pb.Branch(repo=_repo(repo), name="master")))
        left = size
        while left > 0:
            n = min(piece, left)
            yield pb.ModifyFileRequest(add_file=pb.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=os.urandom(n))))
            left -= n
    stub.ModifyFile(reqs(), timeout=None)


def b10_gc(quick: bool) -> list[Result]:
    n_small, n_big, big = (20_000, 4, 32 * MiB) if quick else (100_000, 16, 64 * MiB)
    out = []
    with pachd({"PACHD_GC_PERIOD": "0"}) as p:
        stub = pfs_pb2_grpc.APIStub(p.channel)
        gc = maintenance_pb2_grpc.APIStub(p.channel)
        stub.CreateRepo(pb.CreateRepoRequest(repo=_repo("keep")))
        _put(stub, "keep", {f"/k{i}": os.urandom(100 * KiB) for i in range(20)})
        gc.GarbageCollect(mpb.GarbageCollectRequest(orphans=True), timeout=None)
        size_before = _dir_bytes(p.root / "chunks" / "packs")
        data_bytes = _fill(stub, "doomed", n_small, big, n_big)
        stub.DeleteRepo(pb.DeleteRepoRequest(repo=_repo("doomed")))
        t0 = time.perf_counter()
        r = gc.GarbageCollect(mpb.GarbageCollectRequest(orphans=False), timeout=None)
        secs = time.perf_counter() - t0
        size_after = _dir_bytes(p.root / "chunks" / "packs")
        objects = r.packs_deleted
        # baseline: unlink as many files holding the same bytes, on the same disk
        with workdir("gc-baseline-") as d:
            each = max(1, r.pack_bytes_deleted // max(objects, 1))
            block = os.urandom(min(each, 16 * MiB))
            for i in range(objects):
                with open(d / f"{i}", "wb") as f:
                    left = each
                    while left > 0:
                        f.write(block[:left])
                        left -= len(block)
            os.sync()
            t1 = time.perf_counter()
            for i in range(objects):
                os.unlink(d / f"{i}")
            base = time.perf_counter() - t1
        out.append(Result("B10a", f"GC: pack objects deleted/s after deleting a repo of {n_small:,} small + "
                                  f"{n_big} x {big // MiB} MiB files", objects / secs, "objects/s",
                          objects / base if base > 0 else None, "os.unlink of as many files", "-", None,
                          notes=f"{objects} packs, {r.nodes_deleted:,} index nodes, {r.chunk_entries_deleted:,} "
                                f"chunk entries in {secs:.2f}s (whole run: snapshot, mark, sweep)"))
        out.append(Result("B10b", "GC: GiB reclaimed per second", r.pack_bytes_deleted / GiB / secs, "GiB/s",
                          r.pack_bytes_deleted / GiB / base if base > 0 else None, "os.unlink, same bytes", "-", None,
                          notes=f"{r.pack_bytes_deleted / MiB:.0f} MiB of packs for {data_bytes / MiB:.0f} MiB "
                                f"of file data; chunk store {size_before / MiB:.1f} MiB before the repo, "
                                f"{size_after / MiB:.1f} MiB after one collection "
                                f"({'within' if size_after <= size_before * 1.02 else 'NOT within'} 2%)"))
        out.append(_put_latency(p, quick))
    out.append(_s3_reclaim(n_small, big, n_big))
    return out


def _dir_bytes(d) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def _s3_reclaim(n_small: int, big: int, n_big: int) -> Result:
    from bench.common import REPO_ROOT, PachdProcess
    from bench.s3_gateway import client, s3_server
    with workdir("gc-s3-") as d, s3_server("seaweed", d) as srv:
        raw = client(srv.endpoint_url, srv.access_key, srv.secret_key)
        bucket = srv.new_bucket()

        def bucket_bytes() -> int:
            total = 0
            for page in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="gc/packs/"):
                total += sum(o["Size"] for o in page.get("Contents", []))
            return total

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PACHD_"))}
        env.update(AWS_ACCESS_KEY_ID=srv.access_key, AWS_SECRET_ACCESS_KEY=srv.secret_key,
                   AWS_ENDPOINT_URL=srv.endpoint_url, AWS_DEFAULT_REGION=srv.region, PYTHONPATH=str(REPO_ROOT))
        p = PachdProcess(d / "data", env, f"s3://{bucket}/gc", inherit_env=False)
        try:
            stub = pfs_pb2_grpc.APIStub(p.channel)
            gc = maintenance_pb2_grpc.APIStub(p.channel)
            stub.CreateRepo(pb.CreateRepoRequest(repo=_repo("keep")))
            _put(stub, "keep", {f"/k{i}": os.urandom(100 * KiB) for i in range(20)})
            gc.GarbageCollect(mpb.GarbageCollectRequest(orphans=True), timeout=None)
            before = bucket_bytes()
            _fill(stub, "doomed", n_small, big, n_big)
            peak = bucket_bytes()
            stub.DeleteRepo(pb.DeleteRepoRequest(repo=_repo("doomed")))
            t0 = time.perf_counter()
            while True:
                now = bucket_bytes()
                secs = time.perf_counter() - t0
                if now <= before * 1.02 or secs > 300:
                    break
                time.sleep(1.0)
        finally:
            p.stop()
            raw.close()
    return Result("B10d", "SeaweedFS: seconds from delete repo until the bucket is within 2% of its size "
                          "before the repo (background GC, --gc-period 60)", secs, "s", None,
                  "-", "<= 60 s + one collection", now <= before * 1.02 and secs <= 90,
                  notes=f"bucket {before / MiB:.1f} MiB before, {peak / MiB:.0f} MiB with the repo, "
                        f"{now / MiB:.1f} MiB after; {n_small:,} small + {n_big} x {big // MiB} MiB files")


def _put_latency(p, quick: bool) -> Result:
    stub = pfs_pb2_grpc.APIStub(p.channel)
    gc = maintenance_pb2_grpc.APIStub(p.channel)
    stub.CreateRepo(pb.CreateRepoRequest(repo=_repo("lat")))
    n = 150 if quick else 400
    payload = os.urandom(64 * KiB)

    def measure() -> list[float]:
        lat = []
        for i in range(n):
            t = time.perf_counter()
            _put(stub, "lat", {f"/f{i % 50}": payload[: (i * 131) % len(payload)] + os.urandom(16)})
            lat.append(time.perf_counter() - t)
        return lat

    quiet = measure()
    stop = threading.Event()
    runs = [0]

    def collector():
        while not stop.is_set():
            gc.GarbageCollect(mpb.GarbageCollectRequest(), timeout=None)
            runs[0] += 1
            stop.wait(0.2)

    def churn():
        i = 0
        while not stop.is_set():
            name = f"churn{i % 2}"
            stub.CreateRepo(pb.CreateRepoRequest(repo=_repo(name)))
            _put(stub, name, {f"/c{j}": os.urandom(32 * KiB) for j in range(40)})
            stub.DeleteRepo(pb.DeleteRepoRequest(repo=_repo(name)))
            i += 1

    threads = [threading.Thread(target=collector), threading.Thread(target=churn)]
    for t in threads:
        t.start()
    try:
        busy = measure()
    finally:
        stop.set()
        for t in threads:
            t.join()
    q99, b99 = percentile(quiet, 99) * 1000, percentile(busy, 99) * 1000
    return Result("B10c", "put file p99 latency while GC runs (and a client churns garbage)", b99, "ms",
                  q99, "p99 with GC off, same run", "<= 1.5x", b99 <= 1.5 * q99,
                  notes=f"{n} puts each; {runs[0]} collections ran meanwhile; p50 {percentile(busy, 50) * 1000:.1f} "
                        f"vs {percentile(quiet, 50) * 1000:.1f} ms. The churn client competes for the same "
                        "pachd too, so this overstates what GC alone costs")


ALL = [b10_gc]
