"""A 64 MiB object streams through the gateway: the server's peak RSS grows by far less
than the object's size on PUT and on GET (measured in a child process)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3gateway.conftest import boto3_client

MiB = 1024 * 1024
SIZE = 64 * MiB
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def child(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "tests.s3gateway.serve_child", str(tmp_path / "chunks")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        port = int(p.stdout.readline())
        yield p, port
    finally:
        try:
            p.stdin.write("quit\n")
            p.stdin.flush()
            p.wait(timeout=20)
        except Exception:
            p.kill()
            p.wait()
        p.stdin.close()
        p.stdout.close()


def rss(p) -> tuple[int, int]:
    p.stdin.write("rss\n")
    p.stdin.flush()
    peak, cur = p.stdout.readline().split()
    return int(peak) * 1024, int(cur) * 1024


def test_64mib_put_and_get_stream(child, tmp_path):
    p, port = child
    src = tmp_path / "big.bin"
    h = hashlib.sha256()
    with open(src, "wb") as f:
        for i in range(SIZE // MiB):
            block = os.urandom(MiB)
            h.update(block)
            f.write(block)
    s3 = boto3_client(f"http://127.0.0.1:{port}")
    try:
        s3.put_object(Bucket="master.big", Key="warm", Body=os.urandom(9 * MiB))  # warm up pools, imports
        s3.get_object(Bucket="master.big", Key="warm")["Body"].read()
        base_peak, _ = rss(p)
        with open(src, "rb") as f:
            s3.put_object(Bucket="master.big", Key="big.bin", Body=f)  # one streamed PUT
        put_peak, _ = rss(p)
        r = s3.get_object(Bucket="master.big", Key="big.bin")
        got = hashlib.sha256()
        n = 0
        for chunk in r["Body"].iter_chunks(MiB):
            got.update(chunk)
            n += len(chunk)
        get_peak, _ = rss(p)
    finally:
        s3.close()
    assert n == SIZE and got.digest() == h.digest()
    grew_put, grew_get = put_peak - base_peak, get_peak - put_peak
    print(f"peak RSS growth: PUT {grew_put / MiB:.1f} MiB, GET {grew_get / MiB:.1f} MiB for a {SIZE // MiB} MiB object")
    assert grew_put < SIZE / 2, grew_put
    assert grew_get < SIZE / 4, grew_get
