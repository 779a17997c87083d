"""kill -9 of pachd in the middle of garbage collections, again and again: afterwards the
storage check passes, every referenced file reads back byte for byte, and the next collections
finish what the killed ones started (the store returns to its size before the garbage).

`PFS_GC_KILLS` sets how many kills (default 6; the issue's figure is 20:
`PFS_GC_KILLS=20 pytest tests/service/test_gc_kill.py`)."""
from __future__ import annotations

import os
import random
import threading
import time

import grpc
from pachyderm_sdk.api import pfs

from proto.maintenance_v1 import maintenance_pb2 as mpb
from proto.maintenance_v1 import maintenance_pb2_grpc
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from tests.s3pachd import PachdProc, s3_env
from tests.sdk_clients import sdk_clients

KiB, MiB = 1 << 10, 1 << 20


def _packs_bytes(root) -> int:
    return sum(p.stat().st_size for p in (root / "chunks" / "packs").rglob("*") if p.is_file())


def _gc(address: str, **kw):
    with grpc.insecure_channel(address) as ch:
        return maintenance_pb2_grpc.APIStub(ch).GarbageCollect(mpb.GarbageCollectRequest(**kw), timeout=300)


def _check(address: str) -> None:
    with grpc.insecure_channel(address) as ch:
        pfs_pb2_grpc.APIStub(ch).CheckStorage(pfs_pb2.CheckStorageRequest(read_chunk_data=True), timeout=300)


def test_kill_9_during_gc_loses_nothing_referenced(tmp_path):
    kills = int(os.environ.get("PFS_GC_KILLS", "6"))
    env = s3_env(None, PACHD_GC_PERIOD="0", PACHD_LEASE_TTL="2")
    root = tmp_path / "pachd"
    rng = random.Random(5)
    keep = {f"/k/{i}": rng.randbytes(rng.randrange(1, 300 * KiB)) for i in range(30)}
    p = PachdProc(root, None, env)
    try:
        with sdk_clients() as make:
            c = make(p.port)
            c.pfs.create_repo(repo=pfs.Repo(name="keep"))
            with c.pfs.commit(branch=pfs.Branch.from_uri("keep@master")) as commit:
                for path, data in keep.items():
                    commit.put_file_from_bytes(path, data)
        _gc(p.address, orphans=True)
        baseline = _packs_bytes(root)
        killed_mid_run = 0
        for k in range(kills):
            with sdk_clients() as make:
                c = make(p.port)
                name = f"junk{k}"
                c.pfs.create_repo(repo=pfs.Repo(name=name))
                for n in range(3):  # three commits: the squash-free history GC must walk
                    with c.pfs.commit(branch=pfs.Branch.from_uri(f"{name}@master")) as commit:
                        commit.put_file_from_bytes(f"/big{n}", rng.randbytes(6 * MiB))
                        for i in range(40):
                            commit.put_file_from_bytes(f"/s{n}/{i}", rng.randbytes(rng.randrange(1, 20 * KiB)))
                c.pfs.delete_repo(repo=pfs.Repo(name=name))
            done = threading.Event()

            def run_gc(address=p.address):
                try:
                    _gc(address, orphans=True)
                except grpc.RpcError:
                    pass  # killed under it
                finally:
                    done.set()

            t = threading.Thread(target=run_gc)
            t.start()
            time.sleep(rng.uniform(0.0, 0.4))
            killed_mid_run += not done.is_set()
            p.proc.kill()
            p.proc.wait()
            t.join()
            p.stop()
            p = PachdProc(root, None, env)
            _check(p.address)  # nothing referenced is missing or corrupt
            with sdk_clients() as make:
                c = make(p.port)
                for path, data in keep.items():
                    with c.pfs.pfs_file(pfs.File.from_uri(f"keep@master:{path}")) as f:
                        assert f.read() == data, (k, path)
        # a fast or a loaded machine moves where the kills land; at least one must hit a running collection
        assert killed_mid_run >= 1, "no kill landed while a collection ran"
        time.sleep(2.5)  # leases of the killed pachds' uploads (none were in flight) and orphans age out
        _gc(p.address, orphans=True)
        _gc(p.address, orphans=True)
        after = _packs_bytes(root)
        assert after <= baseline * 1.02 + 64 * KiB, (baseline, after)
        _check(p.address)
    finally:
        code = p.stop()
    assert code == 0, p.log_tail()
