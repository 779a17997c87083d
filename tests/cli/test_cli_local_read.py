"""`get file` on pachd's machine: pachd writes the bytes into the client's descriptor
(pfs.service.local_read, pachctl.local_read), with GetFile's checks, and falls back to
streaming wherever that path is not available."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from pachctl import local_read
from pachctl.client import PachClient
from pfs.errors import FailedPrecondition
from proto.pfs_v2 import pfs_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
SIZE = 5 * 1024 * 1024 + 12345  # several chunks, not a whole number of messages


def _file(repo: str, path: str) -> pb.File:
    r = pb.Repo(name=repo, type="user", project=pb.Project(name="default"))
    return pb.File(commit=pb.Commit(repo=r, branch=pb.Branch(name="master", repo=r)), path=path)


@pytest.fixture
def data(pachd):
    blob = os.urandom(SIZE)
    pachd.pfs.create_repo(_repo("r"))
    pachd.pfs.put_bytes(_repo("r"), "master", "/big.bin", blob)
    return blob


def _repo(name):
    from pfs.model import Repo
    return Repo("default", name)


def _cli(env, *args, stdout=None):
    e = {k: v for k, v in os.environ.items() if k != "PACH_CONTEXT"}
    e.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run([sys.executable, "-m", "pachctl", *args], cwd=ROOT, env=e, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=120)


def test_get_file_to_output_is_written_by_pachd(pachd, env, data, tmp_path):
    out = tmp_path / "out.bin"
    out.write_bytes(b"x" * (SIZE + 999))  # an older, longer file: cut to the new content
    before = pachd.local_reads.used
    r = _cli(env, "get", "file", "r@master:/big.bin", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data
    assert pachd.local_reads.used == before + 1  # it went through pachd, not the stream


def test_get_file_to_dev_null(pachd, env, data):
    before = pachd.local_reads.used
    r = _cli(env, "get", "file", "r@master:/big.bin", "-o", "/dev/null")
    assert r.returncode == 0, r.stderr
    assert pachd.local_reads.used == before + 1


def test_get_file_to_stdout_file_with_offset(pachd, env, data, tmp_path):
    out = tmp_path / "stdout.bin"
    before = pachd.local_reads.used
    with open(out, "wb") as f:
        r = _cli(env, "get", "file", "r@master:/big.bin", "--offset", "1000001", stdout=f)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data[1000001:]
    assert pachd.local_reads.used == before + 1


def test_turned_off_or_a_pipe_streams_instead(pachd, env, data, tmp_path):
    before = pachd.local_reads.used
    out = tmp_path / "off.bin"
    r = _cli({**env, "PACHCTL_LOCAL_READ": "0"}, "get", "file", "r@master:/big.bin", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data
    r = _cli(env, "get", "file", "r@master:/big.bin", stdout=subprocess.PIPE)  # a pipe: streamed
    assert r.returncode == 0 and r.stdout == data
    assert pachd.local_reads.used == before


def test_missing_file_creates_no_output_and_keeps_an_old_one(pachd, env, data, tmp_path):
    out = tmp_path / "none.bin"
    r = _cli(env, "get", "file", "r@master:/nope", "-o", str(out))
    assert r.returncode != 0 and b"not found" in r.stderr
    assert not out.exists()
    out.write_bytes(b"keep me")
    r = _cli(env, "get", "file", "r@master:/nope", "-o", str(out))
    assert r.returncode != 0 and out.read_bytes() == b"keep me"


def test_unknown_handle_falls_back_with_nothing_written(pachd, data, tmp_path, monkeypatch):
    c = PachClient(f"127.0.0.1:{pachd.port}")
    try:
        with open(tmp_path / "o.bin", "wb") as f:
            monkeypatch.setattr(local_read, "_hand_over", lambda name, fd: (_Closable(), "0" * 32))
            assert local_read.get_into(c, _file("r", "/big.bin"), 0, f.fileno()) is False
        assert (tmp_path / "o.bin").read_bytes() == b""
    finally:
        c.close()


class _Closable:
    def close(self):
        pass


def test_remote_peers_get_no_handle(pachd):
    with pytest.raises(FailedPrecondition, match="only for clients on pachd's machine"):
        pachd.local_reads.take("pachd-local-fd:" + "0" * 32, "ipv4:10.1.2.3:5555")


def test_remote_client_still_streams(pachd, data):
    """What a remote client does: a plain GetFile stream, whole and at an offset."""
    c = PachClient(f"127.0.0.1:{pachd.port}")
    try:
        got = b"".join(m.value for m in c.pfs.GetFile(pb.GetFileRequest(file=_file("r", "/big.bin"))))
        assert got == data
        got = b"".join(m.value for m in c.pfs.GetFile(pb.GetFileRequest(file=_file("r", "/big.bin"), offset=SIZE - 7)))
        assert got == data[-7:]
    finally:
        c.close()


def test_a_pipe_nobody_reads_ends_the_call_after_the_stall_limit(pachd, data):
    """pachd writes a pipe without blocking: a reader that takes nothing for `stall_limit`
    seconds ends the call (ABORTED, after the bytes the pipe holds) and frees pachd's thread."""
    pachd.local_reads.stall_limit = 0.5
    c = PachClient(f"127.0.0.1:{pachd.port}")
    r, w = os.pipe()
    try:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            local_read.get_into(c, _file("r", "/big.bin"), 0, w)
        assert e.value.code() == grpc.StatusCode.ABORTED
        assert "took nothing" in e.value.details()
        assert time.monotonic() - t0 < 30
        os.close(w)
        w = -1
        got = b""
        while chunk := os.read(r, 1 << 20):
            got += chunk
        assert got and data.startswith(got) and len(got) < SIZE  # what the pipe held, in order
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        c.close()


def test_a_pipe_whose_reader_goes_away_ends_the_call(pachd, data):
    """A reader that closes its end (the mount's reader after a seek) stops pachd at once."""
    c = PachClient(f"127.0.0.1:{pachd.port}")
    r, w = os.pipe()
    try:
        name = local_read.socket_name(c)
        call, conn = local_read.start_into(c, name, _file("r", "/big.bin"), 0, w)
        os.close(w)
        w = -1
        assert os.read(r, 1000) == data[:1000]
        os.close(r)
        r = -1
        for _ in call:  # pachd's next write fails (EPIPE): the call ends, without an error
            pass
        assert call.code() == grpc.StatusCode.OK
        conn.close()
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
        c.close()


def test_a_socket_is_refused_by_pachd(pachd, data):
    """Even a client that skips its own check cannot have pachd write into a socket."""
    c = PachClient(f"127.0.0.1:{pachd.port}")
    a, b = socket.socketpair()
    try:
        with pytest.raises(grpc.RpcError) as e:
            local_read.get_into(c, _file("r", "/big.bin"), 0, a.fileno())
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a socket" in e.value.details()
    finally:
        a.close()
        b.close()
        c.close()


def test_corrupt_chunk_is_data_loss_through_the_local_path(pachd, data, tmp_path):
    packs = [p for p in (Path(pachd.root) / "chunks").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert packs
    for p in packs:  # one flipped byte in the middle of every pack
        with open(p, "r+b") as f:
            size = f.seek(0, 2)
            f.seek(size // 2)
            b = f.read(1)
            f.seek(size // 2)
            f.write(bytes([b[0] ^ 0xFF]))
    c = PachClient(f"127.0.0.1:{pachd.port}")
    try:
        with open(tmp_path / "bad.bin", "wb") as f, pytest.raises(grpc.RpcError) as e:
            local_read.get_into(c, _file("r", "/big.bin"), 0, f.fileno())
        assert e.value.code() == grpc.StatusCode.DATA_LOSS
        assert "/big.bin" in e.value.details() and "corrupt" in e.value.details()
    finally:
        c.close()
