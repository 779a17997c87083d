"""Big files read through a pipe pachd writes into (pachctl.mount.local_stream) when pachd is
on this machine: the same bytes as `get file`, a fallback to GetFile streams wherever that
path is not there, and pachd giving up on a pipe nobody reads without the reader noticing."""
from __future__ import annotations

import os
import random
import time

import pytest

from pachctl.client import PachClient
from pachctl.mount.local_stream import LocalReads, PipeStream
from pachctl.mount.reader import RangeReader
from pachctl.mount.remote import Remote
from pachctl.mount.views import View
from tests.mount.conftest import get_file, pytestmark  # noqa: F401

SIZE = 5 * (1 << 20) + 333  # several chunks and pipe-fulls, not a whole number of MiB


def _blob(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _read_through(path, step: int = 1 << 20) -> bytes:
    out = bytearray()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(step):
            out += chunk
    return bytes(out)


def test_big_file_comes_through_the_pipe_byte_identical(mounter, put, client, pachd, tmp_path):
    big, small = _blob(SIZE, 1), _blob(300_000, 2)
    put("imgs", {"/big.bin": big, "/small.bin": small})
    m = mounter.mount(tmp_path / "mnt", "-r", "imgs")
    before = pachd.local_reads.used
    assert _read_through(m.path / "imgs" / "big.bin") == big == get_file(client, "imgs", "master", "/big.bin")
    assert pachd.local_reads.used > before  # pachd wrote it into our pipe
    used = pachd.local_reads.used
    assert _read_through(m.path / "imgs" / "small.bin") == small
    assert pachd.local_reads.used == used  # a small file streams by gRPC
    # a seek far ahead, then on to the end: a new pipe from there, the same bytes
    with open(m.path / "imgs" / "big.bin", "rb", buffering=0) as f:
        assert f.read(1000) == big[:1000]
        f.seek(3 * (1 << 20) + 7)
        rest = bytearray()
        while chunk := f.read(1 << 20):
            rest += chunk
        assert bytes(rest) == big[3 * (1 << 20) + 7:]


def test_without_pachds_local_socket_the_mount_streams(mounter, put, pachd, tmp_path):
    big = _blob(SIZE, 3)
    put("imgs", {"/big.bin": big})
    pachd.local_reads.stop()
    pachd.local_reads.name = ""  # pachd answers "local reads are off"
    m = mounter.mount(tmp_path / "mnt", "-r", "imgs")
    before = pachd.local_reads.used
    assert _read_through(m.path / "imgs" / "big.bin") == big
    assert pachd.local_reads.used == before


def test_local_reads_turned_off_in_the_environment(mounter, put, pachd, tmp_path):
    big = _blob(SIZE, 4)
    put("imgs", {"/big.bin": big})
    m = mounter.mount(tmp_path / "mnt", "-r", "imgs", extra_env={"PACHCTL_LOCAL_READ": "0"})
    before = pachd.local_reads.used
    assert _read_through(m.path / "imgs" / "big.bin") == big
    assert pachd.local_reads.used == before


def _pipe_reader(client, commit: str, local: LocalReads) -> RangeReader:
    view = View(name="r", repo="r", branch="master")
    remote = Remote(client)
    file_msg = remote.file(view, commit, "/f")
    return RangeReader(lambda off: remote.stream(view, commit, "/f", off), SIZE, "r:/f", None,
                       lambda off: local.open(file_msg, off))


def test_a_pipe_pachd_gave_up_on_goes_on_by_itself(pachd, put):
    """A reader that stops for longer than pachd waits on a full pipe (the call ends ABORTED)
    reads on with a new call, from where it stopped, getting the same bytes."""
    data = _blob(SIZE, 5)
    commit = put("r", {"/f": data})
    pachd.local_reads.stall_limit = 0.3
    with PachClient(f"127.0.0.1:{pachd.port}") as c:
        local = LocalReads(c)
        reader = _pipe_reader(c, commit, local)
        try:
            assert reader.read(0, 1 << 20) == data[:1 << 20]
            assert isinstance(reader._stream, PipeStream)
            time.sleep(2.0)  # pachd waits 0.3 s for room in the full pipe, then ends the call
            got = bytearray()
            off = 1 << 20
            while off < SIZE:
                piece = reader.read(off, 1 << 20)
                assert piece
                got += piece
                off += len(piece)
            assert bytes(got) == data[1 << 20:]
            assert reader._stream._stalls >= 1
            assert local.opened >= 2
        finally:
            reader.close()


def test_pachd_refusing_the_pipe_turns_the_reader_to_grpc(pachd, put, monkeypatch):
    """A pachd that will not write into a pipe (an older one: INVALID_ARGUMENT) costs one
    try: the reader goes on by gRPC from the same offset, with the same bytes."""
    data = _blob(SIZE, 6)
    commit = put("r", {"/f": data})
    from pfs.errors import InvalidArgument
    real_take = pachd.local_reads.take

    def old_take(url, peer, for_put=False):
        fd = real_take(url, peer, for_put)
        os.close(fd)
        raise InvalidArgument("a local read writes only into a regular file or a character device "
                              "(such as /dev/null), not a pipe, socket or directory")
    monkeypatch.setattr(pachd.local_reads, "take", old_take)
    with PachClient(f"127.0.0.1:{pachd.port}") as c:
        local = LocalReads(c)
        reader = _pipe_reader(c, commit, local)
        try:
            got = bytearray()
            off = 0
            while off < SIZE:
                piece = reader.read(off, 1 << 20)
                got += piece
                off += len(piece)
            assert bytes(got) == data
            assert not isinstance(reader._stream, PipeStream)
        finally:
            reader.close()


def test_pachd_gone_is_an_error_not_a_short_file(pachd, put):
    data = _blob(SIZE, 7)
    commit = put("r", {"/f": data})
    from pachctl.mount.remote import RemoteError
    with PachClient(f"127.0.0.1:{pachd.port}") as c:
        local = LocalReads(c)
        reader = _pipe_reader(c, commit, local)
        try:
            assert reader.read(0, 1 << 20) == data[:1 << 20]
            pachd.stop(grace=0)
            with pytest.raises(RemoteError):
                off = 1 << 20
                while off < SIZE:
                    piece = reader.read(off, 1 << 20)
                    assert piece == data[off:off + len(piece)]
                    off += len(piece)
                raise AssertionError("the whole file came although pachd stopped")  # pragma: no cover
        finally:
            reader.close()
