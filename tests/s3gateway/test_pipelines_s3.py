"""Pipelines that speak S3 (issue 5 §3): an input with `s3: true` is a bucket named after the
input pinned to the job's input commit, `s3_out: true` gives a bucket `out` writing into the
job's output commit; user code gets S3_ENDPOINT and keys in its environment."""
from __future__ import annotations

import json
import sys

import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps

from pachd.server import Pachd

SCRIPT = r'''
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                  aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="data").get("Contents", []))
total = sum(len(s3.get_object(Bucket="data", Key=k)["Body"].read()) for k in keys)
s3.put_object(Bucket="out", Key="summary.txt", Body=("%d files, %d bytes: %s" % (len(keys), total, ",".join(keys))).encode())
try:
    s3.put_object(Bucket="data", Key="nope.txt", Body=b"x")
    print("WROTE INPUT")
except Exception as e:
    print("input is read-only:", type(e).__name__)
'''


@pytest.mark.parametrize("token", [None, "s3cr3t-token"])
def test_s3_input_and_s3_out(tmp_path, token):
    pd = Pachd(tmp_path / "pachd", port=0, s3_gateway_port=None, auth_token=token).start()
    try:
        c = Client(host="localhost", port=pd.port, auth_token=token)
        c.pfs.create_repo(repo=pfs.Repo(name="data"))
        with c.pfs.commit(branch=pfs.Branch.from_uri("data@master")) as commit:
            commit.put_file_from_bytes(path="/a.txt", data=b"hello")
            commit.put_file_from_bytes(path="/b/c.txt", data=b"world!")
        c.pps.create_pipeline(
            pipeline=pps.Pipeline(name="summarize"),
            input=pps.Input(pfs=pps.PfsInput(repo="data", glob="/", s3=True)),
            transform=pps.Transform(cmd=[sys.executable, "-c", SCRIPT]),
            s3_out=True)
        job = next(iter(c.pps.list_job(pipeline=pps.Pipeline(name="summarize"))))
        info = c.pps.inspect_job(job=job.job, wait=True)
        logs = [m.message for m in c.pps.get_logs(pipeline=pps.Pipeline(name="summarize"))]
        assert info.state == pps.JobState.JOB_SUCCESS, (info.reason, logs)
        with c.pfs.pfs_file(file=pfs.File.from_uri("summarize@master:/summary.txt")) as f:
            assert f.read() == b"2 files, 11 bytes: a.txt,b/c.txt"
        assert any("input is read-only" in m for m in logs), logs
        # the input commit did not change
        assert [f.file.path for f in c.pfs.walk_file(file=pfs.File.from_uri("data@master:/"))] == \
            ["/", "/a.txt", "/b/", "/b/c.txt"]
        # a second commit: the job sees only its own (pinned) input commit
        with c.pfs.commit(branch=pfs.Branch.from_uri("data@master")) as commit2:
            commit2.put_file_from_bytes(path="/d.txt", data=b"!")
        info2 = c.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name="summarize"), id=commit2.id), wait=True)
        assert info2.state == pps.JobState.JOB_SUCCESS
        with c.pfs.pfs_file(file=pfs.File.from_uri("summarize@master:/summary.txt")) as f:
            assert f.read() == b"3 files, 12 bytes: a.txt,b/c.txt,d.txt"
        with c.pfs.pfs_file(file=pfs.File.from_uri(f"summarize@{job.job.id}:/summary.txt")) as f:
            assert f.read().startswith(b"2 files")
    finally:
        pd.stop(grace=1.0)
