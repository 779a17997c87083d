"""With chunks in S3 (SeaweedFS): garbage collection empties the bucket of a deleted repo's data,
a killed upload's data is kept until its lease expires, and a pachd killed with -9 whose
`--root` is then deleted comes back from the bucket alone (metadata shipping, pachd.shipping)."""
from __future__ import annotations

import random
import shutil
import time

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from proto.maintenance_v1 import maintenance_pb2 as mpb
from proto.maintenance_v1 import maintenance_pb2_grpc
from tests.s3pachd import start_in as _start

pytestmark = pytest.mark.s3
KiB, MiB = 1 << 10, 1 << 20


def _gc(p, **kw) -> mpb.GarbageCollectResponse:
    with grpc.insecure_channel(p.address) as ch:
        return maintenance_pb2_grpc.APIStub(ch).GarbageCollect(mpb.GarbageCollectRequest(**kw), timeout=120)


def _bucket_bytes(raw, bucket: str, prefix: str) -> int:
    total = 0
    for page in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        total += sum(o["Size"] for o in page.get("Contents", []))
    return total


def _read(c, uri: str) -> bytes:
    with c.pfs.pfs_file(pfs.File.from_uri(uri)) as f:
        return f.read()


def test_gc_returns_the_bucket_to_its_size_before_the_repo(seaweed_server, procs, sdk, raw, tmp_path):
    bucket = seaweed_server.new_bucket()
    storage = f"s3://{bucket}/gc"
    p = _start(procs, seaweed_server, tmp_path / "p", storage, PACHD_GC_PERIOD="0")
    c = sdk(p)
    rng = random.Random(4)
    c.pfs.create_repo(repo=pfs.Repo(name="keep"))
    with c.pfs.commit(branch=pfs.Branch.from_uri("keep@master")) as commit:
        commit.put_file_from_bytes("/k.bin", rng.randbytes(3 * MiB))
    _gc(p, orphans=True)
    before = _bucket_bytes(raw, bucket, "gc/packs/")

    c.pfs.create_repo(repo=pfs.Repo(name="doomed"))
    with c.pfs.commit(branch=pfs.Branch.from_uri("doomed@master")) as commit:
        commit.put_file_from_bytes("/big.bin", rng.randbytes(20 * MiB))
        for i in range(500):
            commit.put_file_from_bytes(f"/small/{i}", rng.randbytes(rng.randrange(1, 4000)))
    assert _bucket_bytes(raw, bucket, "gc/packs/") > before + 20 * MiB
    c.pfs.delete_repo(repo=pfs.Repo(name="doomed"))
    r = _gc(p)
    after = _bucket_bytes(raw, bucket, "gc/packs/")
    assert after <= before * 1.02, (before, after, r)
    assert r.pack_bytes_deleted >= 20 * MiB and r.objects_deleted > 0
    assert _read(c, "keep@master:/k.bin") == random.Random(4).randbytes(3 * MiB)


def test_a_killed_upload_is_reclaimed_after_its_lease_expires_and_not_before(seaweed_server, procs, sdk, raw,
                                                                             tmp_path):
    bucket = seaweed_server.new_bucket()
    storage = f"s3://{bucket}/lease"
    ttl = 15
    env = dict(PACHD_GC_PERIOD="0", PACHD_LEASE_TTL=str(ttl))
    p = _start(procs, seaweed_server, tmp_path / "p", storage, **env)
    c = sdk(p)
    c.pfs.create_repo(repo=pfs.Repo(name="r"))
    data = random.Random(7).randbytes(40 * MiB)

    def feed():  # a put that stops half-way: pachd is killed while it streams
        yield pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri("r@master"))
        for i in range(0, len(data), MiB):
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/big", raw=data[i:i + MiB]))
            if i >= 24 * MiB:
                if _bucket_bytes(raw, bucket, "lease/packs/") >= 8 * MiB:
                    p.proc.kill()  # kill -9 while the upload is in flight
                    p.proc.wait()
                    return
                time.sleep(0.2)

    with pytest.raises(Exception):
        c.pfs.modify_file(feed())
    killed_at = time.time()
    p2 = _start(procs, seaweed_server, p.root, storage, **env)  # same root: the metadata survived
    written = _bucket_bytes(raw, bucket, "lease/packs/")  # uploads in flight at the kill have landed
    assert written >= 8 * MiB
    r = _gc(p2, orphans=True)
    assert time.time() - killed_at < ttl * 2 / 3, "the restart took too long for this test's lease TTL"
    assert r.leases_live >= 1 and r.pack_bytes_deleted == 0, r
    assert _bucket_bytes(raw, bucket, "lease/packs/") == written, "nothing reclaimed before the lease expires"
    time.sleep(max(0.0, killed_at + ttl + 1 - time.time()))
    r = _gc(p2, orphans=True)
    assert _bucket_bytes(raw, bucket, "lease/packs/") == 0, r
    assert r.pack_bytes_deleted + 0 >= 8 * MiB or r.orphans_deleted > 0, r
    c2 = sdk(p2)
    assert list(c2.pfs.list_commit(repo=pfs.Repo(name="r"))) == [] or \
        not list(c2.pfs.list_file(file=pfs.File.from_uri("r@master:/"))), "the killed put published nothing"


def test_recovery_from_the_bucket_after_kill_9_and_a_lost_root(seaweed_server, procs, sdk, tmp_path):
    bucket = seaweed_server.new_bucket()
    storage = f"s3://{bucket}/rec"
    env = dict(PACHD_METADATA_SHIP_PERIOD="0.5", PACHD_GC_PERIOD="1")
    p = _start(procs, seaweed_server, tmp_path / "old", storage, **env)
    c = sdk(p)
    rng = random.Random(11)
    files = {f"/f{i}.txt": rng.randbytes(rng.randrange(1, 200 * KiB)) for i in range(20)}
    files["/big.bin"] = rng.randbytes(9 * MiB)
    c.pfs.create_repo(repo=pfs.Repo(name="src"))
    with c.pfs.commit(branch=pfs.Branch.from_uri("src@master")) as first:
        for path, data in list(files.items())[:10]:
            first.put_file_from_bytes(path, data)
    with c.pfs.commit(branch=pfs.Branch.from_uri("src@master")) as second:
        for path, data in list(files.items())[10:]:
            second.put_file_from_bytes(path, data)
    c.pfs.create_branch(branch=pfs.Branch.from_uri("src@dev"), head=pfs.Commit.from_uri(f"src@{first.id}"))
    c.pps.create_pipeline(pipeline=pps.Pipeline(name="copy"),
                          transform=pps.Transform(cmd=["sh"], stdin=["cp /pfs/src/* /pfs/out/"]),
                          input=pps.Input(pfs=pps.PfsInput(repo="src", glob="/*")))
    job = c.pps.inspect_job(job=list(c.pps.list_job(pipeline=pps.Pipeline(name="copy")))[0].job, wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    commits = [ci.commit.id for ci in c.pfs.list_commit(repo=pfs.Repo(name="src"))]
    out_commits = [ci.commit.id for ci in c.pfs.list_commit(repo=pfs.Repo(name="copy"))]
    time.sleep(2.5)  # the RPO: one shipping period (0.5 s) and the shipment itself
    p.proc.kill()
    p.proc.wait()
    shutil.rmtree(p.root)

    new = _start(procs, seaweed_server, tmp_path / "new", storage, **env)
    c2 = sdk(new)
    assert [ci.commit.id for ci in c2.pfs.list_commit(repo=pfs.Repo(name="src"))] == commits
    assert [ci.commit.id for ci in c2.pfs.list_commit(repo=pfs.Repo(name="copy"))] == out_commits
    assert c2.pfs.inspect_branch(branch=pfs.Branch.from_uri("src@dev")).head.id == first.id
    for path, data in files.items():
        assert _read(c2, f"src@master:{path}") == data, path
        assert _read(c2, f"copy@master:{path}") == data, path
    info = c2.pps.inspect_pipeline(pipeline=pps.Pipeline(name="copy"))
    assert info.pipeline.name == "copy"
    assert c2.pps.inspect_job(job=job.job).state == pps.JobState.JOB_SUCCESS
    # the next put and the next pipeline run work
    with c2.pfs.commit(branch=pfs.Branch.from_uri("src@master")) as third:
        third.put_file_from_bytes("/after.txt", b"after recovery")
    jobs = list(c2.pps.list_job(pipeline=pps.Pipeline(name="copy")))
    newest = c2.pps.inspect_job(job=jobs[0].job, wait=True)
    assert newest.state == pps.JobState.JOB_SUCCESS, newest.reason
    assert _read(c2, "copy@master:/after.txt") == b"after recovery"
