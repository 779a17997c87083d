"""pfs_batch_v1.API/ListFile (many FileInfos to a message) against pfs_v2.API/ListFile: the
same entries, order, paging and errors; and pachctl's client falling back to ListFile on a
server without the batched service (as a Pachyderm cluster is)."""
from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from google.protobuf import wrappers_pb2

from pachctl.client import PachClient
from pfs.service.pfs_batch import MAX_ENTRIES
from proto.pfs_batch_v1 import pfs_batch_pb2_grpc
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

WIDE = MAX_ENTRIES * 2 + 17  # three messages


def _repo(name="lst"):
    return pb.Repo(name=name, type="user", project=pb.Project(name="default"))


def _commit(name="lst"):
    return pb.Commit(repo=_repo(name), branch=pb.Branch(repo=_repo(name), name="master"))


@pytest.fixture
def stubs(pachd):
    with grpc.insecure_channel(f"127.0.0.1:{pachd.port}") as ch:
        one, many = pfs_pb2_grpc.APIStub(ch), pfs_batch_pb2_grpc.APIStub(ch)
        one.CreateRepo(pb.CreateRepoRequest(repo=_repo()))

        def reqs():
            yield pb.ModifyFileRequest(set_commit=_commit())
            for i in range(WIDE):
                yield pb.ModifyFileRequest(add_file=pb.AddFile(
                    path=f"/wide/f{i:05d}", raw=wrappers_pb2.BytesValue(value=b"x" * (i % 7))))
            for path in ("/a.txt", "/sub/b/c.txt", "/sub/d.txt", "/z"):
                yield pb.ModifyFileRequest(add_file=pb.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=b"abc")))
        one.ModifyFile(reqs())
        yield pachd.port, one, many


def _both(one, many, req):
    singles = list(one.ListFile(req))
    batches = list(many.ListFile(req))
    return singles, batches, [fi for b in batches for fi in b.file_infos]


@pytest.mark.parametrize("path,number,after,reverse", [
    ("/", 0, None, False),
    ("/wide", 0, None, False),
    ("/wide", 0, None, True),
    ("/wide", 1500, "/wide/f00100", False),
    ("/wide", 3, "/wide/f00100", True),
    ("/sub", 0, None, False),
    ("/sub/d.txt", 0, None, False),  # a file lists as itself
])
def test_batched_listing_equals_listfile(stubs, path, number, after, reverse):
    _, one, many = stubs
    req = pb.ListFileRequest(file=pb.File(commit=_commit(), path=path), number=number, reverse=reverse)
    if after:
        req.paginationMarker.CopyFrom(pb.File(commit=_commit(), path=after))
    singles, batches, flat = _both(one, many, req)
    assert singles, "the listing should not be empty"
    assert [fi.SerializeToString() for fi in flat] == [fi.SerializeToString() for fi in singles]
    assert all(0 < len(b.file_infos) <= MAX_ENTRIES for b in batches)


def test_a_wide_directory_comes_in_few_messages(stubs):
    _, one, many = stubs
    singles, batches, flat = _both(one, many, pb.ListFileRequest(file=pb.File(commit=_commit(), path="/wide")))
    assert len(singles) == WIDE and len(flat) == WIDE
    assert [len(b.file_infos) for b in batches] == [MAX_ENTRIES, MAX_ENTRIES, WIDE - 2 * MAX_ENTRIES]
    assert flat[0].file.commit.id and flat[0].file.commit.repo.name == "lst" and flat[0].HasField("committed")


def test_batched_listing_errors_are_listfiles(stubs):
    _, one, many = stubs
    for req in (pb.ListFileRequest(file=pb.File(commit=_commit(), path="/nope")),
                pb.ListFileRequest(file=pb.File(commit=_commit("no-such-repo"), path="/"))):
        with pytest.raises(grpc.RpcError) as e1:
            list(one.ListFile(req))
        with pytest.raises(grpc.RpcError) as e2:
            list(many.ListFile(req))
        assert e2.value.code() == e1.value.code() == grpc.StatusCode.NOT_FOUND
        assert e2.value.details() == e1.value.details()


def test_pachctl_client_lists_batched(stubs):
    port, one, _ = stubs
    req = pb.ListFileRequest(file=pb.File(commit=_commit(), path="/wide"))
    with PachClient(f"127.0.0.1:{port}") as c:
        got = list(c.list_file(req))
        assert c._batched_listings is True
        assert [fi.file.path for fi in got] == [fi.file.path for fi in one.ListFile(req)]
        with pytest.raises(grpc.RpcError) as e:
            list(c.list_file(pb.ListFileRequest(file=pb.File(commit=_commit(), path="/nope"))))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


class _OnlyPfsV2(pfs_pb2_grpc.APIServicer):
    """A server with pfs_v2.API alone (as a Pachyderm cluster: no pfs_batch_v1)."""

    def ListFile(self, request, context):
        for name in ("a", "b"):
            yield pb.FileInfo(file=pb.File(commit=request.file.commit, path=f"/{name}"), file_type=pb.FILE)


def test_pachctl_client_falls_back_to_listfile():
    server = grpc.server(futures.ThreadPoolExecutor(2))
    pfs_pb2_grpc.add_APIServicer_to_server(_OnlyPfsV2(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with PachClient(f"127.0.0.1:{port}") as c:
            req = pb.ListFileRequest(file=pb.File(commit=_commit(), path="/"))
            assert [fi.file.path for fi in c.list_file(req)] == ["/a", "/b"]
            assert c._batched_listings is False
            assert [fi.file.path for fi in c.list_file(req)] == ["/a", "/b"]  # straight to ListFile now
    finally:
        server.stop(0).wait()
