"""The local read path (pachd writing a file into a client's descriptor) checks a caller's
permissions exactly as a streamed GetFile does."""
from __future__ import annotations

import grpc
import pytest

from pachctl import local_read
from pachctl.client import PachClient
from pfs.model import Repo
from proto.pfs_v2 import pfs_pb2 as pb


def _file() -> pb.File:
    r = pb.Repo(name="secret", type="user", project=pb.Project(name="default"))
    return pb.File(commit=pb.Commit(repo=r, branch=pb.Branch(name="master", repo=r)), path="/a.txt")


@pytest.fixture
def stored(server, root):
    server.pfs.create_repo(Repo("default", "secret"))
    server.pfs.put_bytes(Repo("default", "secret"), "master", "/a.txt", b"top secret\n" * 1000)


def test_caller_without_read_is_refused_and_nothing_written(server, clients, root, stored, tmp_path):
    nobody = clients(root).auth.get_robot_token(robot="nobody").token
    c = PachClient(f"127.0.0.1:{server.port}", token=nobody)
    out = tmp_path / "out"
    try:
        with open(out, "wb") as f, pytest.raises(grpc.RpcError) as e:
            local_read.get_into(c, _file(), 0, f.fileno())
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "REPO_READ" in e.value.details()
    finally:
        c.close()
    assert out.read_bytes() == b""
    assert server.local_reads.used == 0


def test_no_token_gets_no_socket(server, root, stored, tmp_path):
    c = PachClient(f"127.0.0.1:{server.port}")
    try:
        with open(tmp_path / "o", "wb") as f, pytest.raises(grpc.RpcError) as e:
            local_read.get_into(c, _file(), 0, f.fileno())
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        c.close()


def test_reader_gets_the_bytes(server, root, stored, tmp_path):
    c = PachClient(f"127.0.0.1:{server.port}", token=root)
    try:
        with open(tmp_path / "o", "wb") as f:
            assert local_read.get_into(c, _file(), 0, f.fileno()) is True
    finally:
        c.close()
    assert (tmp_path / "o").read_bytes() == b"top secret\n" * 1000
    assert server.local_reads.used == 1
