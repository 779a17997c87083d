"""pfs_batch_v1.API/ReadRange (a byte range of a file in one reply) against pfs_v2.API/GetFile
from the same offset: the same bytes cut at the length, the same errors; and bad ranges
refused with INVALID_ARGUMENT naming what was wrong."""
from __future__ import annotations

import os

import grpc
import pytest
from google.protobuf import wrappers_pb2

from pfs.service.pfs_batch import MAX_RANGE
from proto.pfs_batch_v1 import pfs_batch_pb2 as bpb
from proto.pfs_batch_v1 import pfs_batch_pb2_grpc
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

SIZE = 3 * (1 << 20) + 12345  # several chunks and GetFile messages


def _repo():
    return pb.Repo(name="rr", type="user", project=pb.Project(name="default"))


@pytest.fixture
def stubs(pachd):
    with grpc.insecure_channel(f"127.0.0.1:{pachd.port}") as ch:
        one, many = pfs_pb2_grpc.APIStub(ch), pfs_batch_pb2_grpc.APIStub(ch)
        one.CreateRepo(pb.CreateRepoRequest(repo=_repo()))
        data = os.urandom(SIZE)
        commit = pb.Commit(repo=_repo(), branch=pb.Branch(repo=_repo(), name="master"))

        def reqs():
            yield pb.ModifyFileRequest(set_commit=commit)
            for i in range(0, SIZE, 1 << 20):
                yield pb.ModifyFileRequest(add_file=pb.AddFile(
                    path="/big", raw=wrappers_pb2.BytesValue(value=data[i:i + (1 << 20)])))
            yield pb.ModifyFileRequest(add_file=pb.AddFile(path="/dir/small", raw=wrappers_pb2.BytesValue(value=b"abc")))
        one.ModifyFile(reqs())
        yield one, many, pb.File(commit=commit, path="/big"), data


@pytest.mark.parametrize("offset,length", [(0, 4096), (123457, 4096), (SIZE - 100, 4096), (SIZE, 10),
                                           (SIZE + 5, 10), (999_999, 2_100_000), (5, 0)])
def test_same_bytes_as_getfile(stubs, offset, length):
    one, many, f, data = stubs
    got = many.ReadRange(bpb.ReadRangeRequest(file=f, offset=offset, length=length)).value
    streamed = b"".join(m.value for m in one.GetFile(pb.GetFileRequest(file=f, offset=offset)))
    assert got == streamed[:length] == data[offset:offset + length]


@pytest.mark.parametrize("offset,length,says", [(-1, 10, "offset >= 0"), (0, -1, "length >= 0"),
                                                (0, MAX_RANGE + 1, "at most")])
def test_bad_ranges_are_refused(stubs, offset, length, says):
    _, many, f, _ = stubs
    with pytest.raises(grpc.RpcError) as e:
        many.ReadRange(bpb.ReadRangeRequest(file=f, offset=offset, length=length))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and says in e.value.details()


@pytest.mark.parametrize("path,code", [("/nothing", grpc.StatusCode.NOT_FOUND),
                                       ("/dir", grpc.StatusCode.INVALID_ARGUMENT)])
def test_errors_are_getfiles(stubs, path, code):
    one, many, f, _ = stubs
    other = pb.File(commit=f.commit, path=path)
    with pytest.raises(grpc.RpcError) as a:
        many.ReadRange(bpb.ReadRangeRequest(file=other, offset=0, length=10))
    with pytest.raises(grpc.RpcError) as b:
        list(one.GetFile(pb.GetFileRequest(file=other)))
    assert a.value.code() == b.value.code() == code
    assert a.value.details() == b.value.details()
