"""`pachctl fsck --zombie COMMIT` / `--zombie-all` (Pachyderm's Fsck ZombieTarget/ZombieAll):
files in a pipeline's output commit that no datum of its job produced are reported; a healthy
pipeline has none; a commit that is not a job's output is refused naming why. And CheckStorage
honours chunk_begin/chunk_end."""
from __future__ import annotations

import sys

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps

from pachd.server import Pachd
from pfs.model import Repo
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from tests.sdk_clients import sdk_clients

SCRIPT = r'''
import os, shutil
for name in os.listdir("/pfs/src"):
    shutil.copy(os.path.join("/pfs/src", name), os.path.join("/pfs/out", name))
'''


@pytest.fixture
def pd(tmp_path):
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", gc_period=0).start()
    try:
        yield p
    finally:
        p.stop(grace=1.0)


def _fsck(address, **kw) -> list[str]:
    with grpc.insecure_channel(address) as ch:
        return [r.error for r in pfs_pb2_grpc.APIStub(ch).Fsck(pfs_pb2.FsckRequest(**kw), timeout=60)]


def _commit(repo: str, branch: str = "master") -> pfs_pb2.Commit:
    r = pfs_pb2.Repo(name=repo, type="user", project=pfs_pb2.Project(name="default"))
    return pfs_pb2.Commit(repo=r, branch=pfs_pb2.Branch(repo=r, name=branch))


def test_zombie_files_are_reported_and_a_healthy_pipeline_has_none(pd):
    with sdk_clients() as make:
        c = make(pd.port)
        c.pfs.create_repo(repo=pfs.Repo(name="src"))
        with c.pfs.commit(branch=pfs.Branch.from_uri("src@master")) as commit:
            for name in ("a", "b", "c"):
                commit.put_file_from_bytes(f"/{name}", name.encode())
        c.pps.create_pipeline(pipeline=pps.Pipeline(name="copy"),
                              transform=pps.Transform(cmd=[sys.executable, "-c", SCRIPT]),
                              input=pps.Input(pfs=pps.PfsInput(repo="src", glob="/*")))
        job = c.pps.inspect_job(job=next(iter(c.pps.list_job(pipeline=pps.Pipeline(name="copy")))).job, wait=True)
        assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    assert _fsck(pd.address, zombie_target=_commit("copy")) == []
    assert _fsck(pd.address, zombie_all=True) == []
    # a datum the job no longer lists (as if its input had gone and its output were left behind)
    out = pd.pfs.commit_for_read(Repo("default", "copy"), "", "master")
    entry = dict(pd.pfs.tree(out).files("/"))["/b"]
    assert entry.datum
    store = pd.pfs_servicer.zombies.store
    rec = store.get_job("default", "copy", job.job.id)
    assert store.summary(rec, entry.datum) is not None
    rec.datum_root = store.tree("default", "copy").update(rec.datum_root, [(entry.datum, None)])
    store.put_job(rec)
    found = _fsck(pd.address, zombie_target=_commit("copy"))
    assert len(found) == 1 and "zombie file" in found[0] and ":/b" in found[0] and entry.datum in found[0], found
    assert _fsck(pd.address, zombie_all=True) == found
    # an input commit is no job's output: refused, naming why
    with pytest.raises(grpc.RpcError) as ei:
        _fsck(pd.address, zombie_target=_commit("src"))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is not the output commit of a pipeline job" in ei.value.details()


def test_check_storage_honours_chunk_begin_and_end(pd):
    with sdk_clients() as make:
        c = make(pd.port)
        c.pfs.create_repo(repo=pfs.Repo(name="r"))
        with c.pfs.commit(branch=pfs.Branch.from_uri("r@master")) as commit:
            for i in range(40):
                commit.put_file_from_bytes(f"/f{i}", f"file {i} ".encode() * 50)
    with grpc.insecure_channel(pd.address) as ch:
        stub = pfs_pb2_grpc.APIStub(ch)
        total = stub.CheckStorage(pfs_pb2.CheckStorageRequest(read_chunk_data=True)).chunk_object_count
        assert total >= 40
        mid = bytes([0x80])
        low = stub.CheckStorage(pfs_pb2.CheckStorageRequest(read_chunk_data=True, chunk_end=mid)).chunk_object_count
        high = stub.CheckStorage(pfs_pb2.CheckStorageRequest(read_chunk_data=True, chunk_begin=mid)).chunk_object_count
        assert low + high == total and 0 < low < total, (low, high, total)
        none = stub.CheckStorage(pfs_pb2.CheckStorageRequest(chunk_begin=mid, chunk_end=mid)).chunk_object_count
        assert none == 0
