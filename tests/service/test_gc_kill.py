"""kill -9 of pachd in the middle of garbage collections, again and again: afterwards the
storage check (re-hashing every chunk) passes, every referenced file reads back byte for byte,
and the next collection finishes what the killed one started (the store returns to its size
before the garbage, and a second collection finds nothing left to do).

Each round makes garbage of both kinds a collection handles: a deleted repo (whole packs dead)
and a squashed commit that leaves packs mostly dead (compaction rewrites them). Kills:
- one round per GC failpoint (pfs.failpoints: after mark, packs claimed, mid pack removal,
  compaction's new pack stored, compaction's moves and claims done): pachd is started with
  `PACH_FAILPOINTS=<point>` and kills itself exactly there, so these kills always land inside
  a collection, on any machine;
- `PFS_GC_KILLS` rounds (default 3; the issue's figure is 20 in all:
  `PFS_GC_KILLS=15 pytest tests/service/test_gc_kill.py`) with a kill after a random delay,
  wherever that lands.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time

import grpc
import pytest
from google.protobuf import wrappers_pb2
from pachyderm_sdk.api import pfs

from proto.maintenance_v1 import maintenance_pb2 as mpb
from proto.maintenance_v1 import maintenance_pb2_grpc
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from tests.s3pachd import PachdProc, s3_env
from tests.sdk_clients import sdk_clients

KiB, MiB = 1 << 10, 1 << 20
# (failpoint spec, what the collection after the restart must still finish)
GC_FAILPOINTS = [
    ("gc.after_mark@1", "everything: nothing was deleted"),
    ("gc.packs_claimed@1", "removing the claimed (DELETING) packs"),
    ("gc.pack_removed@2", "the claimed packs after the first two objects"),
    ("gc.compact_written@1", "the new pack nobody refers to, and the compaction itself"),
    ("gc.compact_claimed@1", "removing the packs compaction emptied"),
]


def _packs_bytes(root) -> int:
    return sum(p.stat().st_size for p in (root / "chunks" / "packs").rglob("*") if p.is_file())


def _gc(address: str, **kw):
    with grpc.insecure_channel(address) as ch:
        return maintenance_pb2_grpc.APIStub(ch).GarbageCollect(mpb.GarbageCollectRequest(**kw), timeout=300)


def _check(address: str) -> None:
    with grpc.insecure_channel(address) as ch:
        pfs_pb2_grpc.APIStub(ch).CheckStorage(pfs_pb2.CheckStorageRequest(read_chunk_data=True), timeout=300)


def _make_garbage(port: int, k: int, rng: random.Random, live: dict) -> None:
    """A repo written then deleted, and a squashed commit leaving packs mostly dead; the files
    that stay live go into `live` ({(repo, path): bytes})."""
    with sdk_clients() as make:
        c = make(port)
        name = f"junk{k}"
        c.pfs.create_repo(repo=pfs.Repo(name=name))
        for n in range(3):  # three commits: the squash-free history GC must walk
            with c.pfs.commit(branch=pfs.Branch.from_uri(f"{name}@master")) as commit:
                commit.put_file_from_bytes(f"/big{n}", rng.randbytes(6 * MiB))
                for i in range(40):
                    commit.put_file_from_bytes(f"/s{n}/{i}", rng.randbytes(rng.randrange(1, 20 * KiB)))
        c.pfs.delete_repo(repo=pfs.Repo(name=name))
        mix = f"mix{k}"
        c.pfs.create_repo(repo=pfs.Repo(name=mix))
        files = {f"/m/{i:03d}": rng.randbytes(rng.randrange(1000, 3000)) for i in range(200)}
        # one ModifyFile stream: one write session, so the files share packs
        repo = pfs_pb2.Repo(name=mix, type="user", project=pfs_pb2.Project(name="default"))
        reqs = [pfs_pb2.ModifyFileRequest(set_commit=pfs_pb2.Commit(branch=pfs_pb2.Branch(repo=repo, name="master")))]
        reqs += [pfs_pb2.ModifyFileRequest(add_file=pfs_pb2.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=data)))
                 for path, data in files.items()]
        with grpc.insecure_channel(f"localhost:{port}") as ch:
            pfs_pb2_grpc.APIStub(ch).ModifyFile(iter(reqs), timeout=120)
        first = c.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{mix}@master")).head
        kept = {p: d for i, (p, d) in enumerate(files.items()) if i % 10 == 0}
        with c.pfs.commit(branch=pfs.Branch.from_uri(f"{mix}@master")) as commit:
            for path in files:
                if path not in kept:
                    commit.delete_file(path=path)
        c.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=first.id))  # the deleted files are garbage now
        live.update({(mix, p): d for p, d in kept.items()})


def _reads_back(port: int, live: dict) -> None:
    with sdk_clients() as make:
        c = make(port)
        for (repo, path), data in live.items():
            with c.pfs.pfs_file(pfs.File.from_uri(f"{repo}@master:{path}")) as f:
                assert f.read() == data, (repo, path)


@pytest.mark.timeout(900)  # a fixed amount of work: 8 rounds of ~20 MiB, 11 pachd starts (164 s loaded)
def test_kill_9_during_gc_loses_nothing_referenced(tmp_path):
    random_kills = int(os.environ.get("PFS_GC_KILLS", "3"))
    base_env = s3_env(None, PACHD_GC_PERIOD="0", PACHD_LEASE_TTL="2")
    root = tmp_path / "pachd"
    rng = random.Random(5)
    live = {("keep", f"/k/{i}"): rng.randbytes(rng.randrange(1, 300 * KiB)) for i in range(30)}
    p = PachdProc(root, None, base_env)
    try:
        with sdk_clients() as make:
            c = make(p.port)
            c.pfs.create_repo(repo=pfs.Repo(name="keep"))
            with c.pfs.commit(branch=pfs.Branch.from_uri("keep@master")) as commit:
                for (_repo, path), data in live.items():
                    commit.put_file_from_bytes(path, data)
        _gc(p.address, orphans=True)
        baseline = _packs_bytes(root)
        rounds = [fp for fp, _ in GC_FAILPOINTS] + [None] * random_kills
        killed_mid_run = 0
        for k, point in enumerate(rounds):
            if point is not None:  # this round's pachd kills itself at the failpoint
                p.stop()
                p = PachdProc(root, None, dict(base_env, PACH_FAILPOINTS=point))
            _make_garbage(p.port, k, rng, live)
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
            if point is not None:
                p.proc.wait(timeout=300)  # the failpoint kills it
                assert p.proc.returncode == -signal.SIGKILL, (point, p.proc.returncode, p.log_tail())
                assert f"failpoint {point.split('@')[0]} hit" in p.log_tail(), (point, p.log_tail())
                killed_mid_run += 1
            else:
                time.sleep(rng.uniform(0.0, 0.4))
                killed_mid_run += not done.is_set()
                p.proc.kill()
                p.proc.wait()
            t.join()
            p.stop()
            p = PachdProc(root, None, base_env)
            _check(p.address)  # nothing referenced is missing or corrupt
            _reads_back(p.port, live)
            if point is not None:
                # the next collection finishes what the killed one left, and leaves nothing
                time.sleep(2.1)  # orphans (none expected) are older than the lease TTL
                first = _gc(p.address, orphans=True)
                assert first.packs_deleted > 0, (point, first)
                again = _gc(p.address, orphans=True)
                assert (again.packs_deleted, again.packs_compacted, again.orphans_deleted) == (0, 0, 0), (point, again)
                live_mix = sum(len(d) for (repo, _), d in live.items() if repo != "keep")
                after = _packs_bytes(root)
                assert after <= (baseline + live_mix) * 1.02 + 64 * KiB, (point, baseline, live_mix, after)
                _check(p.address)
                _reads_back(p.port, live)
        assert killed_mid_run >= 1, "no kill landed while a collection ran"
        time.sleep(2.5)  # leases of the killed pachds' uploads (none were in flight) and orphans age out
        _gc(p.address, orphans=True)
        _gc(p.address, orphans=True)
        after = _packs_bytes(root)
        live_mix = sum(len(d) for (repo, _), d in live.items() if repo != "keep")
        assert after <= (baseline + live_mix) * 1.02 + 64 * KiB, (baseline, live_mix, after)
        _check(p.address)
        _reads_back(p.port, live)
    finally:
        code = p.stop()
    assert code == 0, p.log_tail()
