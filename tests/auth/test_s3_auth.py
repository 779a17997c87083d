"""The S3 gateway under multi-user auth: the access key (and secret) is the caller's own
token; every S3 operation x (unsigned, forged, expired, revoked, no role, repoReader,
repoWriter, repoOwner, root) gives the expected allow or deny, and ListBuckets shows only
what the caller may read."""
from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from pachyderm_sdk.api import auth as sdk_auth
from pachyderm_sdk.api import pfs

from pachd.server import Pachd
from tests.s3gateway.conftest import boto3_client
from tests.sdk_clients import sdk_clients
from tests.auth.conftest import strip_default_grants

B = "master.data"


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


# (name, needs, call): needs is the weakest repo role that allows it
OPS = [
    ("ListObjects", "repoReader", lambda c: c.list_objects(Bucket=B)),
    ("ListObjectsV2", "repoReader", lambda c: c.list_objects_v2(Bucket=B)),
    ("GetObject", "repoReader", lambda c: c.get_object(Bucket=B, Key="a.txt")["Body"].read()),
    ("HeadObject", "repoReader", lambda c: c.head_object(Bucket=B, Key="a.txt")),
    ("GetBucketLocation", "repoReader", lambda c: c.get_bucket_location(Bucket=B)),
    ("ListObjectVersions", "repoReader", lambda c: c.list_object_versions(Bucket=B)),
    ("PutObject", "repoWriter", lambda c: c.put_object(Bucket=B, Key="w.txt", Body=b"w")),
    ("CopyObject", "repoWriter", lambda c: c.copy_object(Bucket=B, Key="c.txt",
                                                         CopySource={"Bucket": B, "Key": "a.txt"})),
    ("DeleteObject", "repoWriter", lambda c: c.delete_object(Bucket=B, Key="c.txt")),
    ("DeleteObjects", "repoWriter", lambda c: c.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "w.txt"}]})),
    ("Multipart", "repoWriter", lambda c: c.abort_multipart_upload(
        Bucket=B, Key="m", UploadId=c.create_multipart_upload(Bucket=B, Key="m")["UploadId"])),
    ("CreateBucket(branch)", "repoWriter", lambda c: c.create_bucket(Bucket="dev.data")),
    # deleting a bucket deletes its branch, and the repo with its last branch: repoOwner
    ("DeleteBucket", "repoOwner", lambda c: c.delete_bucket(Bucket="dev.data")),
]
RANK = {None: 0, "repoReader": 1, "repoWriter": 2, "repoOwner": 3, "root": 4}


@pytest.fixture
def setup(tmp_path):
    pd = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", enable_pps=False, s3_gateway_port=0).start()
    try:
        with sdk_clients() as make:
            root = make(pd.port).auth.activate().pach_token
            admin = make(pd.port, auth_token=root)
            strip_default_grants(admin)
            yield pd, admin, root
    finally:
        pd.stop(grace=0.5)


def fresh_repo(admin):
    for name in ("data", "secret"):
        if admin.pfs.repo_exists(pfs.Repo(name=name)):
            admin.pfs.delete_repo(repo=pfs.Repo(name=name), force=True)
        admin.pfs.create_repo(repo=pfs.Repo(name=name))
        admin.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri(f"{name}@master"), path="/a.txt", data=b"A")


@pytest.mark.parametrize("who", [None, "repoReader", "repoWriter", "repoOwner", "root"])
def test_s3_operations_by_role(setup, who):
    pd, admin, root = setup
    fresh_repo(admin)
    if who == "root":
        token = root
    else:
        token = admin.auth.get_robot_token(robot="u").token
        if who:
            admin.auth.modify_role_binding(resource=sdk_auth.Resource(type=sdk_auth.ResourceType.REPO,
                                                                      name="default/data"),
                                           principal="robot:u", roles=[who])
    c = boto3_client(pd.s3_gateway.endpoint_url, token, token)
    try:
        buckets = {b["Name"] for b in c.list_buckets()["Buckets"]}
        expected_buckets = {"master.data.default", "master.secret.default"} if who == "root" else \
            {"master.data.default"} if who else set()
        assert buckets == expected_buckets
        for name, needs, op in OPS:
            allowed = RANK[who] >= RANK[needs]
            try:
                op(c)
                assert allowed, f"{who} could {name}"
            except ClientError as e:
                assert not allowed, (who, name, e.response["Error"])
                if name == "HeadObject":  # a HEAD answer has no body: the status says it
                    assert code(e) == "403"
                    continue
                assert code(e) == "AccessDenied", (name, e.response["Error"])
                msg = e.response["Error"]["Message"]
                assert "robot:u is not authorized to perform this operation" in msg, msg
        if who != "root":  # the other repo: nothing at all
            with pytest.raises(ClientError) as ei:
                c.get_object(Bucket="master.secret", Key="a.txt")
            assert code(ei.value) == "AccessDenied"
    finally:
        c.close()


def test_new_bucket_needs_project_role_and_makes_owner(setup):
    pd, admin, root = setup
    token = admin.auth.get_robot_token(robot="maker").token
    c = boto3_client(pd.s3_gateway.endpoint_url, token, token)
    try:
        with pytest.raises(ClientError) as ei:
            c.create_bucket(Bucket="master.fresh")
        assert "PROJECT_CREATE_REPO" in ei.value.response["Error"]["Message"]
        admin.auth.modify_role_binding(resource=sdk_auth.Resource(type=sdk_auth.ResourceType.PROJECT, name="default"),
                                       principal="robot:maker", roles=["projectWriter"])
        c.create_bucket(Bucket="master.fresh")
        c.put_object(Bucket="master.fresh", Key="k", Body=b"v")
        c.delete_object(Bucket="master.fresh", Key="k")
        c.delete_bucket(Bucket="master.fresh")  # its creator owns it (REPO_DELETE)
    finally:
        c.close()


@pytest.mark.parametrize("kind", ["unsigned", "forged", "expired", "revoked", "wrong-secret"])
def test_bad_credentials_refused(setup, kind):
    pd, admin, root = setup
    fresh_repo(admin)
    key = secret = {"forged": "f" * 32}.get(kind, "")
    if kind == "expired":
        key = secret = admin.auth.get_robot_token(robot="t", ttl=1).token
        time.sleep(1.1)
    elif kind == "revoked":
        key = secret = admin.auth.get_robot_token(robot="t").token
        admin.auth.revoke_auth_token(token=key)
    elif kind == "wrong-secret":
        key, secret = root, "not-the-token"
    if kind == "unsigned":
        from botocore import UNSIGNED
        c = boto3_client(pd.s3_gateway.endpoint_url, signature_version=UNSIGNED)
    else:
        c = boto3_client(pd.s3_gateway.endpoint_url, key, secret)
    refused = 0
    try:
        for name, _needs, op in OPS + [("ListBuckets", None, lambda c: c.list_buckets())]:
            with pytest.raises(ClientError) as ei:
                op(c)
            assert code(ei.value) in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"), name
            refused += 1
    finally:
        c.close()
    assert refused == len(OPS) + 1
    assert admin.pfs.inspect_repo(repo=pfs.Repo(name="data")).repo.name == "data"  # nothing was deleted
