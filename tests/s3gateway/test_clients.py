"""One read/write/list/delete/multipart scenario, run with four real S3 clients: boto3,
minio-py, s3fs (+ pandas reading a CSV through fsspec) and the aws CLI, all against a
gateway with auth ON (so every client's own request signing is verified too)."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pfs.model import Repo
from tests.s3gateway.conftest import TOKEN, boto3_client

MiB = 1024 * 1024
SMALL = b"hello, versioned world\n" * 10
BIG = os.urandom(11 * MiB + 5)  # above every client's multipart threshold used here


def check_core(pfs, repo_name: str, keys: dict[str, bytes]) -> None:
    """What the clients wrote is what pfs holds, as commits with parents."""
    repo = Repo("default", repo_name)
    ci = pfs.commit_for_read(repo, "", "master")
    for k, v in keys.items():
        assert b"".join(pfs.read_file(ci, "/" + k)[1]) == v
    assert ci.parent is not None


def test_boto3(auth_gateway, pfs):
    s3 = boto3_client(auth_gateway.endpoint_url, TOKEN, TOKEN)
    b = "master.viaboto"
    try:
        s3.create_bucket(Bucket=b)
        s3.put_object(Bucket=b, Key="dir/small.txt", Body=SMALL)
        s3.upload_fileobj(io.BytesIO(BIG), b, "dir/big.bin")  # multipart (8 MiB threshold)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="dir/")["Contents"]]
        assert keys == ["dir/big.bin", "dir/small.txt"]
        assert s3.get_object(Bucket=b, Key="dir/big.bin", Range="bytes=100-199")["Body"].read() == BIG[100:200]
        out = io.BytesIO()
        s3.download_fileobj(b, "dir/big.bin", out)
        assert out.getvalue() == BIG
        check_core(pfs, "viaboto", {"dir/small.txt": SMALL, "dir/big.bin": BIG})
        s3.delete_object(Bucket=b, Key="dir/small.txt")
        s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "dir/big.bin"}]})
        assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0
        s3.delete_bucket(Bucket=b)
    finally:
        s3.close()


def test_minio(auth_gateway, pfs):
    import urllib3
    from minio import Minio
    from minio.deleteobjects import DeleteObject
    http = urllib3.PoolManager()
    m = Minio(f"127.0.0.1:{auth_gateway.port}", access_key=TOKEN, secret_key=TOKEN, secure=False,
              region="us-east-1", http_client=http)
    b = "master.viaminio"
    try:
        m.make_bucket(b)
        assert m.bucket_exists(b)
        m.put_object(b, "dir/small.txt", io.BytesIO(SMALL), len(SMALL))
        m.put_object(b, "dir/big.bin", io.BytesIO(BIG), len(BIG), part_size=5 * MiB)  # multipart
        assert [o.object_name for o in m.list_objects(b, prefix="dir/", recursive=True)] == ["dir/big.bin",
                                                                                          "dir/small.txt"]
        assert [o.object_name for o in m.list_objects(b)] == ["dir/"]
        assert m.stat_object(b, "dir/big.bin").size == len(BIG)
        r = m.get_object(b, "dir/big.bin", offset=5 * MiB, length=1000)
        try:
            assert r.read() == BIG[5 * MiB:5 * MiB + 1000]
        finally:
            r.close()
            r.release_conn()
        r = m.get_object(b, "dir/big.bin")
        try:
            assert r.read() == BIG
        finally:
            r.close()
            r.release_conn()
        check_core(pfs, "viaminio", {"dir/small.txt": SMALL, "dir/big.bin": BIG})
        m.remove_object(b, "dir/small.txt")
        errors = list(m.remove_objects(b, [DeleteObject("dir/big.bin")]))
        assert errors == []
        assert list(m.list_objects(b, recursive=True)) == []
        m.remove_bucket(b)
        assert not m.bucket_exists(b)
    finally:
        http.clear()


def test_s3fs_and_pandas(auth_gateway, pfs):
    import pandas as pd
    import s3fs
    opts = {"key": TOKEN, "secret": TOKEN, "skip_instance_cache": True, "use_listings_cache": False,
            "client_kwargs": {"endpoint_url": auth_gateway.endpoint_url, "region_name": "us-east-1"},
            "config_kwargs": {"s3": {"addressing_style": "path"}}}
    fs = s3fs.S3FileSystem(**opts)
    b = "master.vias3fs"
    fs.mkdir(b)
    fs.pipe(f"{b}/dir/small.txt", SMALL)
    with fs.open(f"{b}/dir/big.bin", "wb", block_size=5 * MiB) as f:  # multipart
        for i in range(0, len(BIG), MiB):
            f.write(BIG[i:i + MiB])
    assert fs.ls(f"{b}/dir", detail=False) == [f"{b}/dir/big.bin", f"{b}/dir/small.txt"]
    assert fs.find(b) == [f"{b}/dir/big.bin", f"{b}/dir/small.txt"]
    assert fs.isdir(f"{b}/dir") and fs.isfile(f"{b}/dir/small.txt")
    assert fs.info(f"{b}/dir/big.bin")["size"] == len(BIG)
    assert fs.cat_file(f"{b}/dir/big.bin", start=10, end=20) == BIG[10:20]
    with fs.open(f"{b}/dir/big.bin", "rb", block_size=MiB) as f:
        f.seek(3 * MiB)
        assert f.read(100) == BIG[3 * MiB:3 * MiB + 100]
    assert fs.cat(f"{b}/dir/big.bin") == BIG
    df = pd.DataFrame({"x": range(100), "y": [i * i for i in range(100)]})
    df.to_csv(f"s3://{b}/tables/squares.csv", index=False, storage_options=opts)
    back = pd.read_csv(f"s3://{b}/tables/squares.csv", storage_options=opts)
    assert back.equals(df)
    check_core(pfs, "vias3fs", {"dir/small.txt": SMALL, "dir/big.bin": BIG})
    fs.rm(f"{b}/dir/small.txt")
    fs.rm(f"{b}/dir", recursive=True)
    fs.rm(f"{b}/tables/squares.csv")
    assert fs.find(b) == []
    fs.rmdir(b)


def _aws() -> str:
    exe = Path(sys.executable).parent / "aws"
    found = str(exe) if exe.exists() else shutil.which("aws")
    if not found:
        pytest.fail("the aws CLI is a test dependency: pip install awscli", pytrace=False)
    return found


def test_aws_cli(auth_gateway, pfs, tmp_path):
    cfg = tmp_path / "aws-config"
    cfg.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
                   "    multipart_threshold = 8MB\n    multipart_chunksize = 5MB\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=TOKEN, AWS_SECRET_ACCESS_KEY=TOKEN, AWS_CONFIG_FILE=str(cfg),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    aws = [_aws(), "--endpoint-url", auth_gateway.endpoint_url]

    def run(*args) -> str:
        p = subprocess.run(aws + list(args), env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout

    (tmp_path / "small.txt").write_bytes(SMALL)
    (tmp_path / "big.bin").write_bytes(BIG)
    b = "s3://master.viacli"
    run("s3", "mb", b)
    run("s3", "cp", str(tmp_path / "small.txt"), f"{b}/dir/small.txt")
    run("s3", "cp", str(tmp_path / "big.bin"), f"{b}/dir/big.bin")  # multipart upload
    listing = run("s3", "ls", f"{b}/dir/")
    assert "small.txt" in listing and "big.bin" in listing and str(len(BIG)) in listing
    run("s3api", "get-object", "--bucket", "master.viacli", "--key", "dir/big.bin", "--range", "bytes=0-99",
        str(tmp_path / "range.out"))
    assert (tmp_path / "range.out").read_bytes() == BIG[:100]
    run("s3", "cp", f"{b}/dir/big.bin", str(tmp_path / "big.out"))  # ranged multipart download
    assert (tmp_path / "big.out").read_bytes() == BIG
    check_core(pfs, "viacli", {"dir/small.txt": SMALL, "dir/big.bin": BIG})
    run("s3", "rm", f"{b}/dir/small.txt")
    run("s3", "rm", b, "--recursive")
    assert run("s3", "ls", f"{b}/", "--recursive").strip() == ""
    run("s3", "rb", b)
    assert all(r.repo.name != "viacli" for r in pfs.list_repos())
