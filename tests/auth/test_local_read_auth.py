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


def test_mount_pipe_reads_check_read_permission(server, clients, root, stored):
    """The mount's local path (pachd writing into a pipe) refuses a caller without REPO_READ
    with EACCES, before a byte reaches the pipe; a reader gets the exact bytes."""
    import errno

    from pachctl.mount.local_stream import LocalReads, PipeStream
    from pachctl.mount.reader import RangeReader
    from pachctl.mount.remote import RemoteError

    data = b"top secret\n" * 1000
    nobody = clients(root).auth.get_robot_token(robot="nobody").token
    for token, ok in ((nobody, False), (root, True)):
        c = PachClient(f"127.0.0.1:{server.port}", token=token)
        try:
            local = LocalReads(c)
            reader = RangeReader(lambda off: pytest.fail("streamed instead of the pipe"), len(data), "secret:/a.txt",
                                 None, lambda off: local.open(_file(), off))
            try:
                if ok:
                    assert reader.read(0, len(data)) == data
                    assert isinstance(reader._stream, PipeStream)
                else:
                    with pytest.raises(RemoteError) as e:
                        reader.read(0, len(data))
                    assert e.value.errno == errno.EACCES and "REPO_READ" in str(e.value)
                    assert server.local_reads.used == 0
            finally:
                reader.close()
        finally:
            c.close()
    assert server.local_reads.used == 1
