"""The mount's RangeReader against a real pachd: random reads come one request each through
pfs_batch_v1.API/ReadRange (exactly the range asked for); a pachd without ReadRange (as a
Pachyderm cluster is) gets GetFile streams instead, with the same bytes."""
from __future__ import annotations

import random
from concurrent import futures

import grpc
import pytest

from pachctl.client import PachClient
from pachctl.mount.reader import RangeReader
from pachctl.mount.remote import Remote
from pachctl.mount.views import View

SIZE = 5 * (1 << 20) + 333


def _blob(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _reader(remote: Remote, commit: str, ranges: list):
    view = View(name="r", repo="r", branch="master")

    def range_call(off, length):
        got = remote.read_range(view, commit, "/f", off, length)
        ranges.append((off, length, got is not None))
        return got
    return RangeReader(lambda off: remote.stream(view, commit, "/f", off), SIZE, "r:/f", range_call)


def _random_reads(reader: RangeReader, data: bytes) -> None:
    rng = random.Random(7)
    for _ in range(40):
        off = rng.randrange(1, SIZE - 10)
        n = rng.choice([1, 4096, 65536])
        assert reader.read(off, n) == data[off:off + n], (off, n)


@pytest.fixture
def stored(put):
    data = _blob(SIZE, 4)
    return data, put("r", {"/f": data})


def test_random_reads_are_one_readrange_each(pachd, stored):
    data, commit = stored
    ranges: list = []
    with PachClient(f"127.0.0.1:{pachd.port}") as c:
        reader = _reader(Remote(c), commit, ranges)
        try:
            _random_reads(reader, data)
            assert reader.read(SIZE - 5, 4096) == data[-5:]  # the end: fewer bytes
        finally:
            reader.close()
    assert ranges and all(ok for _, _, ok in ranges)
    assert all(length <= 65536 for _, length, _ in ranges)  # no read-ahead on a random read
    assert len(ranges) >= 30  # (a few reads land in bytes just fetched)


class _GetFileOnly(grpc.GenericRpcHandler):
    """A server with pfs_v2.API/GetFile (forwarded to the real pachd) and nothing else: what
    the mount meets at a Pachyderm cluster, which has no pfs_batch_v1."""

    def __init__(self, channel):
        self.get = channel.unary_stream("/pfs_v2.API/GetFile", request_serializer=None, response_deserializer=None)

    def service(self, details):
        if details.method == "/pfs_v2.API/GetFile":
            return grpc.unary_stream_rpc_method_handler(lambda req, ctx: iter(self.get(req)))
        return None  # UNIMPLEMENTED


def test_without_readrange_the_reader_streams(pachd, stored):
    data, commit = stored
    with grpc.insecure_channel(f"127.0.0.1:{pachd.port}") as upstream:
        server = grpc.server(futures.ThreadPoolExecutor(4))
        server.add_generic_rpc_handlers([_GetFileOnly(upstream)])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            ranges: list = []
            with PachClient(f"127.0.0.1:{port}") as c:
                reader = _reader(Remote(c), commit, ranges)
                try:
                    _random_reads(reader, data)
                finally:
                    reader.close()
            assert ranges == [ranges[0]] and ranges[0][2] is False  # asked once, then streams
            assert reader.restarts >= 30
        finally:
            server.stop(0)
