"""The gateway under concurrency, over a remote (S3) chunk store, and the read-ahead reader."""
from __future__ import annotations

import os
import random
import threading

import pytest
from botocore.exceptions import ClientError

from pfs.core import Pfs
from pfs.core.readahead import read_ahead
from pfs.model import Branch, Repo
from pfs.s3gateway import S3Gateway
from pfs.storage import MemoryMetadataStore
from tests.s3gateway.conftest import boto3_client

B = "master.data"
MiB = 1024 * 1024


def test_concurrent_writers_and_readers(pfs, gateway, repo):
    n_threads, per_thread = 6, 8
    before = len(pfs.list_commits(repo))
    errors: list = []

    def writer(t: int) -> None:
        c = boto3_client(gateway.endpoint_url)
        try:
            for i in range(per_thread):
                c.put_object(Bucket=B, Key=f"w{t}/{i}", Body=os.urandom(1000 + i))
                c.list_objects_v2(Bucket=B, Prefix=f"w{t}/")
                assert c.get_object(Bucket=B, Key="a.txt")["Body"].read() == b"alpha"
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(pfs.list_commits(repo)) == before + n_threads * per_thread
    c = boto3_client(gateway.endpoint_url)
    try:
        keys = [o["Key"] for o in c.list_objects_v2(Bucket=B, Prefix="w")["Contents"]]
    finally:
        c.close()
    assert len(keys) == n_threads * per_thread


def test_put_never_replaces_a_directory(s3, pfs, repo):
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=B, Key="dir", Body=b"would clobber dir/b.csv")
    assert ei.value.response["Error"]["Code"] == "InvalidArgument"
    with pytest.raises(ClientError):
        s3.copy_object(Bucket=B, Key="dir", CopySource={"Bucket": B, "Key": "a.txt"})
    assert s3.get_object(Bucket=B, Key="dir/b.csv")["Body"].read().startswith(b"x,y")


@pytest.mark.s3
def test_gateway_over_an_s3_chunk_store(moto_server):
    store = moto_server.store(prefix="pfs")
    meta = MemoryMetadataStore()
    pfs = Pfs(meta, store)
    gw = S3Gateway(pfs, "127.0.0.1", 0).start()
    assert gw.read_ahead
    c = boto3_client(gw.endpoint_url)
    try:
        c.create_bucket(Bucket="master.remote")
        data = random.Random(3).randbytes(9 * MiB + 11)
        c.put_object(Bucket="master.remote", Key="big", Body=data)
        assert c.get_object(Bucket="master.remote", Key="big")["Body"].read() == data
        for a, b in ((0, 0), (1, MiB), (3 * MiB - 5, 7 * MiB), (len(data) - 10, len(data) - 1)):
            got = c.get_object(Bucket="master.remote", Key="big", Range=f"bytes={a}-{b}")["Body"].read()
            assert got == data[a:b + 1]
        u = c.create_multipart_upload(Bucket="master.remote", Key="mp")["UploadId"]
        tags = [c.upload_part(Bucket="master.remote", Key="mp", UploadId=u, PartNumber=i + 1,
                              Body=data[i * 5 * MiB:(i + 1) * 5 * MiB])["ETag"] for i in range(2)]
        c.complete_multipart_upload(Bucket="master.remote", Key="mp", UploadId=u, MultipartUpload={
            "Parts": [{"PartNumber": i + 1, "ETag": t} for i, t in enumerate(tags)]})
        assert c.get_object(Bucket="master.remote", Key="mp")["Body"].read() == data
    finally:
        c.close()
        gw.stop()
        pfs.close()
        store.close()
        meta.close()


def test_read_ahead_equals_sequential_read(pfs):
    r = Repo("default", "ra")
    pfs.create_repo(r)
    pfs.create_branch(Branch(r, "master"))
    data = random.Random(5).randbytes(6 * MiB + 99)
    ci = pfs.put_bytes(r, "master", "/f", data)
    refs = pfs.tree(ci).entry("/f").refs
    assert len(refs) > 4
    rnd = random.Random(9)
    cases = [(0, None), (0, len(data)), (1, 10), (len(data) - 1, 1), (len(data), None)]
    cases += [(a, rnd.randrange(len(data) - a + 1)) for a in (rnd.randrange(len(data)) for _ in range(20))]
    for off, n in cases:
        want = data[off:] if n is None else data[off:off + n]
        for workers, window in ((1, 1), (2, 2), (4, 8)):
            assert b"".join(read_ahead(pfs.content, refs, off, n, workers, window)) == want
    # closing early: the read fetches nothing more (its fetches run on the store's shared
    # pool), and closing the store leaves no read-ahead thread behind (threads of other reads
    # in this process, such as a server of an earlier test finishing a stream, are not its own)
    before = set(threading.enumerate())
    calls, real = [], pfs.chunks.get_range
    pfs.chunks.get_range = lambda *a: (calls.append(a), real(*a))[1]
    try:
        gen = read_ahead(pfs.content, refs, 0, None, 4, 8)
        next(gen)
        next(gen)  # past the first chunk, read inline: read-ahead is running
        gen.close()
        assert len(calls) >= 2
        n = len(calls)
        threading.Event().wait(0.5)
        assert len(calls) == n
    finally:
        pfs.chunks.get_range = real
    pfs.content.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("readahead") and t not in before]


def test_worker_gateway_fixed_buckets(pfs, repo):
    """A pipeline worker's gateway: the job's input pinned read-only, `out` = its open output commit."""
    from pfs.s3gateway import fixed_bucket
    out = Repo("default", "edges")
    pfs.create_repo(out)
    pfs.create_branch(Branch(out, "master"), provenance=(Branch(repo, "master"),))
    in_commit = pfs.commit_for_read(repo, "", "master").commit.id
    out_commit = pfs.commit_for_read(out, "", "master")
    assert out_commit.finished is None  # the job's open output commit
    gw = S3Gateway(pfs, "127.0.0.1", 0, buckets={
        "data": fixed_bucket("data", repo, in_commit),
        "out": fixed_bucket("out", out, out_commit.commit.id, "master", writable=True)}).start()
    c = boto3_client(gw.endpoint_url)
    try:
        assert [b["Name"] for b in c.list_buckets()["Buckets"]] == ["data", "out"]
        assert c.get_object(Bucket="data", Key="a.txt")["Body"].read() == b"alpha"
        for call, code in ((lambda: c.put_object(Bucket="data", Key="x", Body=b"1"), "MethodNotAllowed"),
                           (lambda: c.list_objects_v2(Bucket="master.data"), "NoSuchBucket"),
                           (lambda: c.create_bucket(Bucket="more"), "MethodNotAllowed")):
            with pytest.raises(ClientError) as ei:
                call()
            assert ei.value.response["Error"]["Code"] == code
        n = len(pfs.list_commits(out))
        c.put_object(Bucket="out", Key="result.txt", Body=b"edges!")
        u = c.create_multipart_upload(Bucket="out", Key="big")["UploadId"]
        t = c.upload_part(Bucket="out", Key="big", UploadId=u, PartNumber=1, Body=b"z" * 1000)["ETag"]
        c.complete_multipart_upload(Bucket="out", Key="big", UploadId=u,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": t}]})
        assert len(pfs.list_commits(out)) == n  # writes went into the open output commit
        oc = pfs.commit_for_read(out, out_commit.commit.id)
        assert sorted(f.path for f in pfs.list_file(oc, "/")) == ["/big", "/result.txt"]
        pfs.finish_commit(out, out_commit.commit.id, force=True)
        with pytest.raises(ClientError) as ei:
            c.put_object(Bucket="out", Key="late.txt", Body=b"too late")
        assert ei.value.response["Error"]["Code"] == "MethodNotAllowed"
    finally:
        c.close()
        gw.stop()
