"""Objects through boto3: get/head/put/copy/delete, ranges, versions, pinned buckets."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from pfs.model import Branch, Repo

B = "master.data"


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def status(e: ClientError) -> int:
    return e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_get_head_metadata(pfs, s3, repo):
    ci = pfs.commit_for_read(repo, "", "master")
    fi = pfs.inspect_file(ci, "/a.txt")
    r = s3.get_object(Bucket=B, Key="a.txt")
    assert r["Body"].read() == b"alpha"
    assert r["ETag"] == '"' + fi.hash.hex() + '"'
    assert r["ContentLength"] == 5 and r["VersionId"] == ci.commit.id
    assert r["AcceptRanges"] == "bytes"
    h = s3.head_object(Bucket=B, Key="a.txt")
    assert (h["ETag"], h["ContentLength"], h["LastModified"]) == (r["ETag"], 5, r["LastModified"])
    listed = s3.list_objects_v2(Bucket=B)["Contents"][0]
    assert listed["ETag"] == r["ETag"] and listed["LastModified"] == r["LastModified"]
    for key in ("nope", "dir", "dir/", "a.txt/x"):
        with pytest.raises(ClientError) as ei:
            s3.get_object(Bucket=B, Key=key)
        assert code(ei.value) == "NoSuchKey"
    with pytest.raises(ClientError) as ei:
        s3.head_object(Bucket=B, Key="nope")
    assert status(ei.value) == 404


@pytest.mark.parametrize("rng,expect,content_range", [
    ("bytes=0-0", b"0", "bytes 0-0/10"),
    ("bytes=2-5", b"2345", "bytes 2-5/10"),
    ("bytes=7-", b"789", "bytes 7-9/10"),
    ("bytes=-3", b"789", "bytes 7-9/10"),
    ("bytes=-30", b"0123456789", "bytes 0-9/10"),
    ("bytes=8-100", b"89", "bytes 8-9/10"),
])
def test_ranges(s3, pfs, repo, rng, expect, content_range):
    pfs.put_bytes(repo, "master", "/digits", b"0123456789")
    r = s3.get_object(Bucket=B, Key="digits", Range=rng)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["Body"].read() == expect and r["ContentRange"] == content_range
    assert r["ContentLength"] == len(expect)


def test_bad_ranges(s3, pfs, repo):
    pfs.put_bytes(repo, "master", "/digits", b"0123456789")
    for rng in ("bytes=10-", "bytes=10-20", "bytes=-0"):
        with pytest.raises(ClientError) as ei:
            s3.get_object(Bucket=B, Key="digits", Range=rng)
        assert code(ei.value) == "InvalidRange" and status(ei.value) == 416
        assert ei.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == "bytes */10"
    for rng in ("bytes=0-1,4-5", "items=0-1", "bytes=5-2"):  # ignored: the whole object
        r = s3.get_object(Bucket=B, Key="digits", Range=rng)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200 and r["Body"].read() == b"0123456789"


def test_big_file_ranges_cross_chunks(s3, pfs, repo):
    import random
    data = random.Random(7).randbytes(5 * 1024 * 1024 + 123)
    pfs.put_bytes(repo, "master", "/big", data)
    rnd = random.Random(1)
    for _ in range(20):
        a = rnd.randrange(len(data))
        b = min(len(data) - 1, a + rnd.randrange(3 * 1024 * 1024))
        got = s3.get_object(Bucket=B, Key="big", Range=f"bytes={a}-{b}")["Body"].read()
        assert got == data[a:b + 1]


def test_conditional_get(s3, repo):
    tag = s3.head_object(Bucket=B, Key="a.txt")["ETag"]
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=B, Key="a.txt", IfNoneMatch=tag)
    assert status(ei.value) == 304
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=B, Key="a.txt", IfMatch='"0000"')
    assert code(ei.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=B, Key="a.txt", IfMatch=tag)["Body"].read() == b"alpha"


def test_response_overrides(s3, repo):
    r = s3.get_object(Bucket=B, Key="a.txt", ResponseContentType="text/plain",
                      ResponseContentDisposition="attachment")
    assert r["ContentType"] == "text/plain" and r["ContentDisposition"] == "attachment"


def test_put_makes_one_commit_each(pfs, s3, repo):
    before = pfs.inspect_branch(Branch(repo, "master")).head
    r = s3.put_object(Bucket=B, Key="new/file.bin", Body=b"\x00\x01" * 1000)
    head = pfs.commit_for_read(repo, "", "master")
    assert r["VersionId"] == head.commit.id and head.parent == before
    assert r["ETag"] == '"' + pfs.inspect_file(head, "/new/file.bin").hash.hex() + '"'
    s3.put_object(Bucket=B, Key="new/file.bin", Body=b"replaced")  # overwrite
    assert s3.get_object(Bucket=B, Key="new/file.bin")["Body"].read() == b"replaced"
    s3.put_object(Bucket=B, Key="empty", Body=b"")
    assert s3.get_object(Bucket=B, Key="empty")["Body"].read() == b""
    assert len(pfs.list_commits(repo)) == 5  # branch creation, fixture write, 3 puts


def test_versions_and_pinned_buckets(pfs, s3, repo):
    v1 = s3.put_object(Bucket=B, Key="model", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket=B, Key="model", Body=b"v2")["VersionId"]
    assert v1 != v2
    assert s3.get_object(Bucket=B, Key="model", VersionId=v1)["Body"].read() == b"v1"
    assert s3.get_object(Bucket=B, Key="model")["Body"].read() == b"v2"
    pinned = f"{v1}.master.data"
    assert s3.get_object(Bucket=pinned, Key="model")["Body"].read() == b"v1"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=pinned)["Contents"]] == ["a.txt", "dir/b.csv", "model"]
    for call in (lambda: s3.put_object(Bucket=pinned, Key="x", Body=b"no"),
                 lambda: s3.delete_object(Bucket=pinned, Key="model"),
                 lambda: s3.delete_object(Bucket=B, Key="model", VersionId=v1),
                 lambda: s3.create_multipart_upload(Bucket=pinned, Key="x"),
                 lambda: s3.copy_object(Bucket=pinned, Key="y", CopySource={"Bucket": B, "Key": "model"})):
        with pytest.raises(ClientError) as ei:
            call()
        assert code(ei.value) == "MethodNotAllowed" and "read-only" in ei.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=B, Key="model", VersionId="f" * 32)
    assert code(ei.value) == "NoSuchVersion"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=B, Key="model", VersionId="bogus")
    assert code(ei.value) == "InvalidArgument"
    versions = s3.list_object_versions(Bucket=B, Prefix="model")
    assert [(v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == [(v2, True), (v1, False)]


def test_copy_object(pfs, s3, repo):
    pfs.create_repo(Repo("default", "other"))
    pfs.create_branch(Branch(Repo("default", "other"), "master"))
    r = s3.copy_object(Bucket="master.other", Key="copied/a.txt", CopySource={"Bucket": B, "Key": "a.txt"})
    assert s3.get_object(Bucket="master.other", Key="copied/a.txt")["Body"].read() == b"alpha"
    assert r["CopyObjectResult"]["ETag"] == s3.head_object(Bucket=B, Key="a.txt")["ETag"]
    old = s3.put_object(Bucket=B, Key="a.txt", Body=b"changed")["VersionId"]
    s3.put_object(Bucket=B, Key="a.txt", Body=b"changed again")
    s3.copy_object(Bucket=B, Key="restored.txt", CopySource={"Bucket": B, "Key": "a.txt", "VersionId": old})
    assert s3.get_object(Bucket=B, Key="restored.txt")["Body"].read() == b"changed"
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=B, Key="x", CopySource={"Bucket": B, "Key": "missing"})
    assert code(ei.value) == "NoSuchKey"


def test_delete(pfs, s3, repo):
    n = len(pfs.list_commits(repo))
    s3.delete_object(Bucket=B, Key="does/not/exist")
    assert len(pfs.list_commits(repo)) == n  # nothing to delete: no commit
    s3.delete_object(Bucket=B, Key="a.txt")
    assert len(pfs.list_commits(repo)) == n + 1
    for i in range(5):
        pfs.put_bytes(repo, "master", f"/many/{i}", b"x")
    n = len(pfs.list_commits(repo))
    r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": f"many/{i}"} for i in range(5)] + [{"Key": "ghost"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == sorted([f"many/{i}" for i in range(5)] + ["ghost"])
    assert "Errors" not in r
    assert len(pfs.list_commits(repo)) == n + 1  # one commit for the whole batch
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=B)["Contents"]] == ["dir/b.csv"]
    r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "dir/b.csv", "VersionId": "a" * 32}], "Quiet": True})
    assert r["Errors"][0]["Code"] == "MethodNotAllowed"


def test_key_rules(pfs, s3, repo):
    for key in ("a//b", "./x", "x/../y", "star*", "q?"):
        with pytest.raises(ClientError) as ei:
            s3.put_object(Bucket=B, Key=key, Body=b"1")
        assert code(ei.value) == "InvalidArgument", key
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=B, Key="a.txt/inner", Body=b"1")  # a.txt is a file
    assert code(ei.value) == "InvalidArgument"
    s3.put_object(Bucket=B, Key="folder/", Body=b"")  # folder marker: accepted, not stored
    assert "folder/" not in [o["Key"] for o in s3.list_objects_v2(Bucket=B)["Contents"]]
    weird = "sp ace/per%cent/tilde~/quote'/amp&=,;$#"
    s3.put_object(Bucket=B, Key=weird, Body=b"w")
    assert s3.get_object(Bucket=B, Key=weird)["Body"].read() == b"w"
    assert weird in [o["Key"] for o in s3.list_objects_v2(Bucket=B)["Contents"]]
    assert weird in [o["Key"] for o in s3.list_objects(Bucket=B)["Contents"]]

