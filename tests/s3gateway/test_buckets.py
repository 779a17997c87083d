"""Bucket operations through boto3: names, create/delete, location, versioning, errors."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from pfs.model import Branch, Repo
from pfs.s3gateway.errors import S3Error
from pfs.s3gateway.names import parse_bucket


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


@pytest.mark.parametrize("name,repo,branch,project,commit", [
    ("images", "images", "master", "default", None),
    ("dev.images", "images", "dev", "default", None),
    ("dev.images.proj", "images", "dev", "proj", None),
    ("0123456789abcdef0123456789abcdef.dev.images", "images", "dev", "default", "0123456789abcdef0123456789abcdef"),
    ("0123456789abcdef0123456789abcdef.dev.images.p", "images", "dev", "p", "0123456789abcdef0123456789abcdef"),
    ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef", "master", "default", None),
])
def test_bucket_names(name, repo, branch, project, commit):
    b = parse_bucket(name)
    assert (b.repo.name, b.branch, b.repo.project, b.commit) == (repo, branch, project, commit)


@pytest.mark.parametrize("name", ["a..b", ".a", "a.b.c.d.e", "bad name", "x.y/z"])
def test_bad_bucket_names(name):
    with pytest.raises(S3Error) as ei:
        parse_bucket(name)
    assert ei.value.code == "InvalidBucketName"


def test_list_buckets_names_every_branch(pfs, s3, repo):
    pfs.create_branch(Branch(repo, "dev"))
    pfs.create_project("proj")
    pfs.create_repo(Repo("proj", "other"))
    pfs.create_branch(Branch(Repo("proj", "other"), "master"))
    pfs.create_repo(Repo("default", "nobranch"))
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == sorted(["dev.data.default", "master.data.default", "master.other.proj"])


def test_head_location_versioning(s3, repo):
    assert s3.head_bucket(Bucket="master.data")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket="data")["LocationConstraint"] in (None, "")
    assert s3.get_bucket_versioning(Bucket="master.data")["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket="master.data", VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(ClientError) as ei:
        s3.put_bucket_versioning(Bucket="master.data", VersioningConfiguration={"Status": "Suspended"})
    assert code(ei.value) == "NotImplemented"
    with pytest.raises(ClientError) as ei:
        s3.head_bucket(Bucket="master.nosuchrepo")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as ei:
        s3.list_objects_v2(Bucket="nobranch.data")
    assert code(ei.value) == "NoSuchBucket"


def test_create_and_delete_bucket(pfs, s3):
    s3.create_bucket(Bucket="master.fresh")
    assert pfs.inspect_branch(Branch(Repo("default", "fresh"), "master")).head
    with pytest.raises(ClientError) as ei:
        s3.create_bucket(Bucket="master.fresh")
    assert code(ei.value) == "BucketAlreadyExists"
    s3.create_bucket(Bucket="dev.fresh")  # a second branch of the same repo
    s3.put_object(Bucket="dev.fresh", Key="f", Body=b"1")
    with pytest.raises(ClientError) as ei:
        s3.delete_bucket(Bucket="dev.fresh")
    assert code(ei.value) == "BucketNotEmpty"
    s3.delete_object(Bucket="dev.fresh", Key="f")
    s3.delete_bucket(Bucket="dev.fresh")
    assert [b.branch.name for b in pfs.list_branches(Repo("default", "fresh"))] == ["master"]
    s3.delete_bucket(Bucket="master.fresh")  # the last branch: the repo goes too
    assert all(r.repo.name != "fresh" for r in pfs.list_repos())
    with pytest.raises(ClientError) as ei:
        s3.delete_bucket(Bucket="master.fresh")
    assert code(ei.value) == "NoSuchBucket"


def test_create_bucket_errors(s3, pfs, repo):
    with pytest.raises(ClientError) as ei:
        s3.create_bucket(Bucket="master.repo.noproject")
    assert code(ei.value) == "InvalidBucketName"
    head = pfs.inspect_branch(Branch(repo, "master")).head
    with pytest.raises(ClientError) as ei:
        s3.create_bucket(Bucket=f"{head}.master.data")
    assert code(ei.value) == "InvalidBucketName"
    with pytest.raises(ClientError) as ei:
        s3.delete_bucket(Bucket=f"{head}.master.data")
    assert code(ei.value) == "InvalidBucketName"
    # non-default region configuration is accepted (and ignored)
    s3.create_bucket(Bucket="master.elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})


def test_unsupported_subresources_are_not_implemented(s3, repo):
    for call in (lambda: s3.get_bucket_acl(Bucket="master.data"),
                 lambda: s3.get_bucket_policy(Bucket="master.data"),
                 lambda: s3.get_object_tagging(Bucket="master.data", Key="a.txt"),
                 lambda: s3.get_bucket_lifecycle_configuration(Bucket="master.data")):
        with pytest.raises(ClientError) as ei:
            call()
        assert code(ei.value) == "NotImplemented"
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
