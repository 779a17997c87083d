"""Issue 14's must-show at full size: a repo of 1 GiB + 100,000 small files is deleted, and a
collection killed with kill -9 half-way, then run again, brings the store back to its size
before the repo; the storage check with re-hashing passes before and after.

`python -m bench.gc_full_size [--backend local|seaweed|both] [--small 100000] [--big 16]`

Duration: about 25-40 minutes for both backends on an idle 2-core machine (most of it writing
the repo: ~1.4 GiB through gRPC, and two re-hashing checks per backend); several times that on
a loaded one. Needs ~3 GiB free under BENCH_TMP (default /tmp).

Per backend (local disk `<root>/chunks`; SeaweedFS `weed mini` with `pachd --storage s3://`):
1. pachd with `PACH_FAILPOINTS=gc.pack_removed@<n>` (pfs.failpoints; n = a third of the
   repo's packs) and no background GC; a
   `keep` repo of 20 x 100 KiB; one collection; the store's size (pack objects) is S0.
2. `doomed`: 100,000 files of 1 B-8 KiB + 16 x 64 MiB (1 GiB); size S1; `delete repo`.
3. A collection: pachd kills itself (SIGKILL) after removing its n-th pack, mid-sweep.
4. A new pachd on the same root/bucket: `check storage --read-chunk-data` (every chunk of every
   live commit re-read and re-hashed) passes; `keep` reads back byte for byte.
5. One collection finishes the killed one: size S2, must be within 2% of S0; the check passes again.
Baseline, same run, same disk (local): os.unlink of as many files holding the same bytes as the
packs the two collections deleted.
"""
from __future__ import annotations

import argparse
import os
import time

import grpc

from bench.common import REPO_ROOT, PachdProcess, dir_bytes, workdir
from bench.gc_bench import _fill as fill
from bench.gc_bench import _put, _repo
from proto.maintenance_v1 import maintenance_pb2 as mpb
from proto.maintenance_v1 import maintenance_pb2_grpc
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def _fill(stub, n_small: int, n_big: int, big: int) -> int:
    return fill(stub, "doomed", n_small, big, n_big)  # as gc_bench writes them: big files streamed


def _read_all(stub, path: str) -> bytes:
    req = pb.GetFileRequest(file=pb.File(commit=pb.Commit(branch=pb.Branch(repo=_repo("keep"), name="master")),
                                         path=path))
    return b"".join(m.value for m in stub.GetFile(req, timeout=None))


def _check(channel) -> float:
    t0 = time.perf_counter()
    pfs_pb2_grpc.APIStub(channel).CheckStorage(pb.CheckStorageRequest(read_chunk_data=True), timeout=None)
    return time.perf_counter() - t0


def _unlink_baseline(objects: int, nbytes: int) -> float:
    with workdir("gc-full-baseline-") as d:
        each = max(1, nbytes // max(objects, 1))
        block = os.urandom(min(each, 16 * MiB))
        for i in range(objects):
            with open(d / f"{i}", "wb") as f:
                left = each
                while left > 0:
                    f.write(block[:left])
                    left -= len(block)
        os.sync()
        t0 = time.perf_counter()
        for i in range(objects):
            os.unlink(d / f"{i}")
        return time.perf_counter() - t0


def run_backend(kind: str, n_small: int, n_big: int, big: int) -> dict:
    with workdir(f"gc-full-{kind}-") as d:
        srv = raw = None
        storage, env = None, {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PACHD_"))}
        env.update(PYTHONPATH=str(REPO_ROOT), PACHD_GC_PERIOD="0")
        if kind == "seaweed":
            from bench.s3_gateway import client, s3_server
            srv_cm = s3_server("seaweed", d)
            srv = srv_cm.__enter__()
            raw = client(srv.endpoint_url, srv.access_key, srv.secret_key)
            bucket = srv.new_bucket()
            storage = f"s3://{bucket}/gc"
            env.update(AWS_ACCESS_KEY_ID=srv.access_key, AWS_SECRET_ACCESS_KEY=srv.secret_key,
                       AWS_ENDPOINT_URL=srv.endpoint_url, AWS_DEFAULT_REGION=srv.region)
        root = d / "data"

        def store_bytes() -> int:
            if raw is None:
                return dir_bytes(root / "chunks" / "packs")
            total = 0
            for page in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="gc/packs/"):
                total += sum(o["Size"] for o in page.get("Contents", []))
            return total

        # kill about a third of the way through removing the repo's packs (~8 MiB each)
        kill_after = max(2, (n_small * 4 * KiB + n_big * big) // (8 * MiB) // 3)
        out: dict = {"backend": kind, "kill_after": kill_after}
        try:
            armed = dict(env, PACH_FAILPOINTS=f"gc.pack_removed@{kill_after}")
            p = PachdProcess(root, armed, storage, inherit_env=False)
            stub = pfs_pb2_grpc.APIStub(p.channel)
            gc = maintenance_pb2_grpc.APIStub(p.channel)
            stub.CreateRepo(pb.CreateRepoRequest(repo=_repo("keep")))
            keep = {f"/k{i}": os.urandom(100 * KiB) for i in range(20)}
            _put(stub, "keep", keep)
            gc.GarbageCollect(mpb.GarbageCollectRequest(orphans=True), timeout=None)
            s0 = store_bytes()
            t0 = time.perf_counter()
            out["data_bytes"] = _fill(stub, n_small, n_big, big)
            out["write_s"] = time.perf_counter() - t0
            s1 = store_bytes()
            stub.DeleteRepo(pb.DeleteRepoRequest(repo=_repo("doomed")), timeout=None)
            t0 = time.perf_counter()
            try:
                gc.GarbageCollect(mpb.GarbageCollectRequest(orphans=True), timeout=None)
                out["killed"] = False
            except grpc.RpcError:
                out["killed"] = True
            p.proc.wait(timeout=600)
            out["killed_after_s"] = time.perf_counter() - t0
            out["kill_exit"] = p.proc.returncode
            s_killed = store_bytes()
            p.stop()
            p = PachdProcess(root, env, storage, inherit_env=False)
            stub = pfs_pb2_grpc.APIStub(p.channel)
            gc = maintenance_pb2_grpc.APIStub(p.channel)
            out["check1_s"] = _check(p.channel)
            assert all(_read_all(stub, path) == data for path, data in keep.items()), "keep changed"
            t0 = time.perf_counter()
            r = gc.GarbageCollect(mpb.GarbageCollectRequest(orphans=True), timeout=None)
            out["gc_s"] = time.perf_counter() - t0
            out["gc_packs_deleted"] = r.packs_deleted
            out["gc_bytes"] = r.pack_bytes_deleted
            s2 = store_bytes()
            out["check2_s"] = _check(p.channel)
            assert all(_read_all(stub, path) == data for path, data in keep.items()), "keep changed"
            p.stop()
            out.update(s0=s0, s1=s1, s_killed=s_killed, s2=s2, meta_bytes=dir_bytes(root / "meta"))
            out["within_2pct"] = s2 <= s0 * 1.02
            if kind == "local":
                # packs the killed run removed + what the second removed
                n_packs = kill_after + r.packs_deleted
                out["unlink_baseline_s"] = _unlink_baseline(n_packs, s1 - s2)
                out["unlink_objects"] = n_packs
        finally:
            if raw is not None:
                raw.close()
            if srv is not None:
                srv_cm.__exit__(None, None, None)
    return out


def report(o: dict) -> str:
    lines = [f"== {o['backend']}",
             f"wrote {o['data_bytes'] / GiB:.2f} GiB of file data in {o['write_s']:.0f}s",
             f"store (pack objects): {o['s0'] / MiB:.1f} MiB before the repo, {o['s1'] / MiB:.0f} MiB with it",
             f"collection killed (exit {o['kill_exit']}) after removing {o['kill_after']} packs, "
             f"{o['killed_after_s']:.1f}s after it started; "
             f"store then {o['s_killed'] / MiB:.0f} MiB",
             f"check --read-chunk-data after the kill: passed in {o['check1_s']:.1f}s",
             f"next collection: {o['gc_packs_deleted']} packs, {o['gc_bytes'] / MiB:.0f} MiB in {o['gc_s']:.1f}s",
             f"store after: {o['s2'] / MiB:.2f} MiB = {100 * o['s2'] / max(o['s0'], 1):.1f}% of before "
             f"({'within' if o['within_2pct'] else 'NOT within'} 2%); metadata dir {o['meta_bytes'] / MiB:.1f} MiB",
             f"check --read-chunk-data after: passed in {o['check2_s']:.1f}s"]
    if "unlink_baseline_s" in o:
        lines.append(f"baseline (same run, same disk): os.unlink of {o['unlink_objects']} files holding the same "
                     f"bytes: {o['unlink_baseline_s']:.2f}s")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gc_full_size", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["local", "seaweed", "both"], default="both")
    ap.add_argument("--small", type=int, default=100_000, help="small files (1 B - 8 KiB each)")
    ap.add_argument("--big", type=int, default=16, help="64 MiB files")
    args = ap.parse_args(argv)
    kinds = ["local", "seaweed"] if args.backend == "both" else [args.backend]
    ok = True
    for kind in kinds:
        t0 = time.perf_counter()
        o = run_backend(kind, args.small, args.big, 64 * MiB)
        print(report(o), flush=True)
        print(f"({kind}: {time.perf_counter() - t0:.0f}s in all)", flush=True)
        ok &= o["within_2pct"] and o["kill_exit"] == -9
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
