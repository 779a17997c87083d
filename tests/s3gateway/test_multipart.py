"""Multipart uploads through boto3: lifecycle, listing, errors, copy parts, durability."""
from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from pfs.model import Branch
from pfs.s3gateway import S3Gateway
from tests.s3gateway.conftest import boto3_client

B = "master.data"
MiB = 1024 * 1024


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def upload(s3, key, parts):
    u = s3.create_multipart_upload(Bucket=B, Key=key)["UploadId"]
    tags = [s3.upload_part(Bucket=B, Key=key, UploadId=u, PartNumber=i + 1, Body=p)["ETag"]
            for i, p in enumerate(parts)]
    return u, tags


def test_complete_concatenates_parts_in_one_commit(pfs, s3, repo):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 7), b"tail"]
    n = len(pfs.list_commits(repo))
    u, tags = upload(s3, "obj.bin", parts)
    assert len(pfs.list_commits(repo)) == n  # parts are not commits
    listed = s3.list_parts(Bucket=B, Key="obj.bin", UploadId=u)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [
        (i + 1, len(p), t) for i, (p, t) in enumerate(zip(parts, tags))]
    r = s3.complete_multipart_upload(Bucket=B, Key="obj.bin", UploadId=u, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": t} for i, t in enumerate(tags)]})
    assert len(pfs.list_commits(repo)) == n + 1
    head = pfs.commit_for_read(repo, "", "master")
    assert r["VersionId"] == head.commit.id
    assert s3.get_object(Bucket=B, Key="obj.bin")["Body"].read() == b"".join(parts)
    assert r["ETag"] == s3.head_object(Bucket=B, Key="obj.bin")["ETag"]
    with pytest.raises(ClientError) as ei:  # the upload is gone
        s3.list_parts(Bucket=B, Key="obj.bin", UploadId=u)
    assert code(ei.value) == "NoSuchUpload"


def test_subset_of_parts_and_reupload(s3, repo):
    u, tags = upload(s3, "k", [b"1" * 10, b"2" * 10, b"3" * 10])
    t2 = s3.upload_part(Bucket=B, Key="k", UploadId=u, PartNumber=2, Body=b"two")["ETag"]  # replace part 2
    s3.complete_multipart_upload(Bucket=B, Key="k", UploadId=u, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": tags[0]}, {"PartNumber": 2, "ETag": t2}]})
    assert s3.get_object(Bucket=B, Key="k")["Body"].read() == b"1" * 10 + b"two"


def test_errors(s3, repo):
    u, tags = upload(s3, "k", [b"a", b"b"])
    bad = [
        ([{"PartNumber": 2, "ETag": tags[1]}, {"PartNumber": 1, "ETag": tags[0]}], "InvalidPartOrder"),
        ([{"PartNumber": 1, "ETag": tags[1]}], "InvalidPart"),
        ([{"PartNumber": 3, "ETag": tags[0]}], "InvalidPart"),
    ]
    for parts, expected in bad:
        with pytest.raises(ClientError) as ei:
            s3.complete_multipart_upload(Bucket=B, Key="k", UploadId=u, MultipartUpload={"Parts": parts})
        assert code(ei.value) == expected
    with pytest.raises(ClientError) as ei:
        s3.upload_part(Bucket=B, Key="k", UploadId="0" * 32, PartNumber=1, Body=b"x")
    assert code(ei.value) == "NoSuchUpload"
    with pytest.raises(ClientError) as ei:
        s3.upload_part(Bucket=B, Key="other-key", UploadId=u, PartNumber=1, Body=b"x")
    assert code(ei.value) == "NoSuchUpload"
    with pytest.raises(ClientError) as ei:
        s3.upload_part(Bucket=B, Key="k", UploadId=u, PartNumber=10001, Body=b"x")
    assert code(ei.value) == "InvalidArgument"
    s3.abort_multipart_upload(Bucket=B, Key="k", UploadId=u)
    with pytest.raises(ClientError) as ei:
        s3.abort_multipart_upload(Bucket=B, Key="k", UploadId=u)
    assert code(ei.value) == "NoSuchUpload"
    with pytest.raises(ClientError) as ei:
        s3.create_multipart_upload(Bucket=B, Key="dir")  # a directory
    assert code(ei.value) == "InvalidArgument"


def test_list_uploads(s3, repo):
    ids = {}
    for k in ("b/2", "a/1", "b/1", "b/1"):
        ids.setdefault(k, []).append(s3.create_multipart_upload(Bucket=B, Key=k)["UploadId"])
    r = s3.list_multipart_uploads(Bucket=B)
    assert [u["Key"] for u in r["Uploads"]] == ["a/1", "b/1", "b/1", "b/2"]
    r = s3.list_multipart_uploads(Bucket=B, Prefix="b/")
    assert len(r["Uploads"]) == 3
    got = [(u["Key"], u["UploadId"]) for p in s3.get_paginator("list_multipart_uploads").paginate(
        Bucket=B, PaginationConfig={"PageSize": 1}) for u in p.get("Uploads", [])]
    assert sorted(got) == sorted((k, i) for k, v in ids.items() for i in v) and len(got) == 4
    s3.create_bucket(Bucket="dev.data")
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="dev.data")


def test_list_parts_paging(s3, repo):
    u, tags = upload(s3, "k", [b"%d" % i for i in range(7)])
    got = [p["PartNumber"] for page in s3.get_paginator("list_parts").paginate(
        Bucket=B, Key="k", UploadId=u, PaginationConfig={"PageSize": 3}) for p in page["Parts"]]
    assert got == list(range(1, 8))


def test_upload_part_copy(pfs, s3, repo):
    src = os.urandom(3 * MiB + 5)
    s3.put_object(Bucket=B, Key="src", Body=src)
    u = s3.create_multipart_upload(Bucket=B, Key="dst")["UploadId"]
    p1 = s3.upload_part_copy(Bucket=B, Key="dst", UploadId=u, PartNumber=1,
                             CopySource={"Bucket": B, "Key": "src"}, CopySourceRange="bytes=0-1048575")
    p2 = s3.upload_part_copy(Bucket=B, Key="dst", UploadId=u, PartNumber=2,
                             CopySource={"Bucket": B, "Key": "src"}, CopySourceRange=f"bytes=1048576-{len(src) - 1}")
    s3.complete_multipart_upload(Bucket=B, Key="dst", UploadId=u, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=B, Key="dst")["Body"].read() == src


def test_boto3_transfer_manager_uses_multipart(pfs, s3, repo, tmp_path):
    from boto3.s3.transfer import TransferConfig
    data = os.urandom(12 * MiB + 3)
    f = tmp_path / "in.bin"
    f.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=3)
    n = len(pfs.list_commits(repo))
    s3.upload_file(str(f), B, "managed.bin", Config=cfg)
    assert len(pfs.list_commits(repo)) == n + 1
    out = tmp_path / "out.bin"
    s3.download_file(B, "managed.bin", str(out), Config=cfg)  # ranged, concurrent GETs
    assert out.read_bytes() == data


def test_parts_survive_a_gateway_restart(pfs, repo):
    """Parts are durable: a new gateway over the same core completes an upload."""
    gw = S3Gateway(pfs, "127.0.0.1", 0).start()
    c = boto3_client(gw.endpoint_url)
    try:
        u, tags = upload(c, "durable", [b"x" * 100, b"y" * 100])
    finally:
        c.close()
        gw.stop()
    gw = S3Gateway(pfs, "127.0.0.1", 0).start()
    c = boto3_client(gw.endpoint_url)
    try:
        c.complete_multipart_upload(Bucket=B, Key="durable", UploadId=u, MultipartUpload={
            "Parts": [{"PartNumber": i + 1, "ETag": t} for i, t in enumerate(tags)]})
        assert c.get_object(Bucket=B, Key="durable")["Body"].read() == b"x" * 100 + b"y" * 100
    finally:
        c.close()
        gw.stop()
    assert pfs.inspect_branch(Branch(repo, "master")).head
