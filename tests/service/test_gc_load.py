"""GC under load: 8 writers (one feeding a pipeline), squashes making garbage all along, and
pachd's own background collector running every second. Afterwards the storage check (with
re-hashing) passes, every acknowledged commit that still exists reads back byte for byte, the
pipeline's output matches its input, and the unreferenced bytes are (nearly) all gone.

`PFS_GC_LOAD_SECONDS` sets how long the writers run (default 8; the issue's figure is 60)."""
from __future__ import annotations

import os
import random
import threading
import time

import grpc
from pachyderm_sdk.api import pfs, pps

from proto.maintenance_v1 import maintenance_pb2 as mpb
from proto.maintenance_v1 import maintenance_pb2_grpc
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from tests.s3pachd import PachdProc, s3_env
from tests.sdk_clients import sdk_clients

KiB, MiB = 1 << 10, 1 << 20


def _storage(address: str) -> dict:
    with grpc.insecure_channel(address) as ch:
        _resp, call = pfs_pb2_grpc.APIStub(ch).CheckStorage.with_call(
            pfs_pb2.CheckStorageRequest(read_chunk_data=True), timeout=600)
        return {k: int(v) for k, v in call.trailing_metadata()}


def test_gc_every_second_under_8_writers_and_a_pipeline(tmp_path):
    seconds = float(os.environ.get("PFS_GC_LOAD_SECONDS", "8"))
    tuning = {k: os.environ[k] for k in ("PACHD_GC_COMPACT_RATIO", "PACHD_GC_COMPACT_MIN_DEAD") if k in os.environ}
    p = PachdProc(tmp_path / "pachd", None, s3_env(None, PACHD_GC_PERIOD="1", **tuning))
    try:
        with sdk_clients() as make:
            admin = make(p.port)
            repos = ["in"] + [f"w{i}" for i in range(1, 8)]
            for r in repos:
                admin.pfs.create_repo(repo=pfs.Repo(name=r))
            admin.pps.create_pipeline(pipeline=pps.Pipeline(name="copy"),
                                      transform=pps.Transform(cmd=["sh"], stdin=["cp -r /pfs/in/* /pfs/out/"]),
                                      input=pps.Input(pfs=pps.PfsInput(repo="in", glob="/*")))
            expected: dict = {}  # (repo, commit id) -> {path: bytes}, for commits that still exist
            lock = threading.Lock()
            written = [0]
            errors: list = []
            stop = threading.Event()

            def writer(repo: str, seed: int):
                rng = random.Random(seed)
                c = make(p.port)
                files: dict = {}
                mine: list = []
                try:
                    while not stop.is_set():
                        new = {f"/f{rng.randrange(10)}": rng.randbytes(
                            rng.choice([rng.randrange(1, 2000), rng.randrange(2000, 300 * KiB), 2 * MiB]))
                            for _ in range(rng.randrange(1, 4))}
                        with c.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as commit:
                            for path, data in new.items():
                                commit.put_file_from_bytes(path, data)
                        files.update(new)
                        with lock:
                            expected[(repo, commit.id)] = dict(files)
                            written[0] += sum(len(d) for d in new.values())
                        mine.append(commit.id)
                        if repo != "in" and len(mine) > 3 and rng.random() < 0.5:
                            victim = mine.pop(rng.randrange(0, len(mine) - 1))  # never the head
                            c.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=victim))
                            with lock:
                                expected.pop((repo, victim), None)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append((repo, e))

            threads = [threading.Thread(target=writer, args=(r, i)) for i, r in enumerate(repos)]
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join()
            assert not errors, errors
            # the pipeline catches up with the last input commit
            last_in = max((cid for (r, cid) in expected if r == "in"),
                          key=lambda cid: admin.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"in@{cid}")).started)
            for ci in admin.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=last_in), wait=True):
                assert not ci.error, ci.error
            # every acknowledged commit that was not squashed reads back byte for byte
            n = 0
            for (repo, cid), files in expected.items():
                for path, data in files.items():
                    with admin.pfs.pfs_file(pfs.File.from_uri(f"{repo}@{cid}:{path}")) as f:
                        assert f.read() == data, (repo, cid, path)
                    n += 1
            assert n > 50
            for path, data in expected[("in", last_in)].items():
                with admin.pfs.pfs_file(pfs.File.from_uri(f"copy@master:{path}")) as f:
                    assert f.read() == data, path
        time.sleep(2.5)  # two more background collections, with no writer left
        with grpc.insecure_channel(p.address) as ch:
            maintenance_pb2_grpc.APIStub(ch).GarbageCollect(mpb.GarbageCollectRequest(orphans=True), timeout=600)
        s = _storage(p.address)  # raises DATA_LOSS on any missing or corrupt chunk
        unreferenced_made = written[0] - s["live-bytes"]
        left = s["dead-bytes"]  # chunks nothing refers to that are still stored (page padding aside)
        print(f"\nwritten {written[0]} B, live {s['live-bytes']} B, {s['packs']} packs of {s['pack-bytes']} B, "
              f"{left} B unreferenced; {1 - left / max(unreferenced_made, 1):.2%} of the unreferenced bytes are gone")
        assert unreferenced_made > 0
        assert left <= 0.01 * unreferenced_made, (left, unreferenced_made)
    finally:
        code = p.stop()
    assert code == 0, p.log_tail()
