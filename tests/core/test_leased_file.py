"""Reading a local file in place under a read lease (pfs.core.leased_file), alone and
inside a local put (pfs.core.local_ingest): real leases, real writer processes."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import blake3
import pytest

from pfs.core import local_ingest
from pfs.core.leased_file import LeasedFile
from tests.core.helpers import R, read
from tests.tools import skip_unless_leases

# A writer in another process: opens the file for writing (which waits while a read lease
# is held), says when its open returned, then overwrites the first bytes.
WRITER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
print(time.monotonic(), flush=True)
os.pwrite(fd, b"CHANGED!", 0)
os.close(fd)
"""


def _writer(path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)


def _wait_until(cond, timeout=10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture
def leasable(tmp_path):
    skip_unless_leases(tmp_path)
    path = tmp_path / "data.bin"
    body = random.Random(1).randbytes(3 * 4096 + 100)
    path.write_bytes(body)
    fd = os.open(path, os.O_RDONLY)
    yield path, fd, body
    os.close(fd)


def test_windows_read_the_file_and_end_at_its_size(leasable):
    path, fd, body = leasable
    lf = LeasedFile.open(fd)
    assert lf is not None and lf.intact()
    w, n, final = lf.read(4096, 1 << 20)
    assert (n, final) == (len(body) - 4096, True) and bytes(w[:n]) == body[4096:]
    w2, n2, final2 = lf.read(0, 4096)
    assert (n2, final2) == (4096, False) and bytes(w2[:n2]) == body[:4096]
    _, n3, final3 = lf.read(len(body) + 4096, 4096)  # past the end: nothing, final
    assert (n3, final3) == (0, True)
    for x in (w, w2, _):
        lf.release(x)
    lf.close()


def test_no_lease_while_the_file_is_open_for_writing(leasable):
    path, fd, _ = leasable
    wfd = os.open(path, os.O_WRONLY)
    try:
        assert LeasedFile.open(fd) is None  # the caller copies instead
    finally:
        os.close(wfd)
    lf = LeasedFile.open(fd)
    assert lf is not None
    lf.close()


def test_a_writer_waits_until_every_window_is_released_and_the_lease_given_up(leasable):
    path, fd, body = leasable
    lf = LeasedFile.open(fd)
    w, n, _ = lf.read(0, 8192)
    pending: Future = Future()
    lf.hold(w)
    lf.release_when_done([w], pending)  # a pack write still pointing into the window
    writer = _writer(path)
    _wait_until(lambda: not lf.intact())  # the writer asked: the lease is being broken
    time.sleep(0.3)
    assert writer.poll() is None  # and it waits; this process was not killed by the break's signal
    assert bytes(w[:n]) == body[:8192]  # the window is unchanged
    lf.release(w)
    closed = threading.Thread(target=lf.close)
    closed.start()
    closed.join(0.3)
    assert closed.is_alive() and writer.poll() is None  # close waits for the pending write
    released_at = time.monotonic()
    pending.set_result(None)
    closed.join(10)
    assert not closed.is_alive()
    opened_at = float(writer.communicate(timeout=10)[0])
    assert writer.returncode == 0 and opened_at >= released_at
    assert path.read_bytes()[:8] == b"CHANGED!"


def _spy_leases(monkeypatch) -> list:
    """Record what LeasedFile.open returned (the real thing still runs)."""
    got = []
    real = LeasedFile.open.__func__

    def spy(cls, fd):
        lf = real(cls, fd)
        got.append(lf)
        return lf
    monkeypatch.setattr(LeasedFile, "open", classmethod(spy))
    return got


def _chunks_match_their_hashes(pfs, refs) -> None:
    for r in refs:
        assert blake3.blake3(b"".join(pfs.content.read([r]))).digest() == r.hash


def test_put_local_reads_a_big_file_in_place_under_a_lease(pfs, tmp_path, monkeypatch):
    skip_unless_leases(tmp_path)
    leases = _spy_leases(monkeypatch)
    body = random.Random(2).randbytes(20 * 1024 * 1024 + 12345)  # ends mid-page
    (tmp_path / "big").write_bytes(body)
    pfs.create_repo(R("a"))
    with pfs.open_writer(R("a"), "master") as w:
        w.put_local("/big", str(tmp_path / "big"))
    assert len(leases) == 1 and leases[0] is not None and not leases[0]._leased  # given up after
    assert read(pfs, R("a"), "master", "/big") == body
    wfd = os.open(tmp_path / "big", os.O_WRONLY | os.O_NONBLOCK)  # no lease left: does not wait
    os.close(wfd)


def test_put_local_copies_a_file_someone_has_open_for_writing(pfs, tmp_path, monkeypatch):
    leases = _spy_leases(monkeypatch)
    body = random.Random(3).randbytes(20 * 1024 * 1024)
    (tmp_path / "big").write_bytes(body)
    pfs.create_repo(R("a"))
    wfd = os.open(tmp_path / "big", os.O_WRONLY)
    try:
        with pfs.open_writer(R("a"), "master") as w:
            w.put_local("/big", str(tmp_path / "big"))
    finally:
        os.close(wfd)
    assert leases == [None]
    assert read(pfs, R("a"), "master", "/big") == body


def test_put_local_starts_over_by_copying_when_a_writer_breaks_the_lease(pfs, tmp_path, monkeypatch, caplog):
    """A writer opens the file while it is read in place: the ingest notices, waits for its
    pack writes, lets the writer in and reads the file again by copying. What is stored is
    the file as the writer left it, and every chunk (of both passes) matches its hash."""
    skip_unless_leases(tmp_path)
    from pfs.core.content import ContentWriter
    monkeypatch.setattr(ContentWriter, "LOCAL_BLOCK", 1)  # many small segments
    body = bytearray(random.Random(4).randbytes(40 * 1024 * 1024 + 999))
    path = tmp_path / "big"
    path.write_bytes(body)
    writers: list = []
    real_intact = LeasedFile.intact

    def writer_arrives_at_the_fourth_segment(self):
        if len(checks) == 3:
            writers.append(_writer(path))
            _wait_until(lambda: not real_intact(self))  # the writer is waiting on the lease now
        checks.append(1)
        return real_intact(self)
    checks: list = []
    monkeypatch.setattr(LeasedFile, "intact", writer_arrives_at_the_fourth_segment)
    real_copied = local_ingest.copied_ingest

    def copied_after_the_writer(*args):
        writers[0].communicate(timeout=10)  # let in only once the in-place pass had stopped
        assert writers[0].returncode == 0
        return real_copied(*args)
    monkeypatch.setattr(local_ingest, "copied_ingest", copied_after_the_writer)
    pfs.create_repo(R("a"))
    with caplog.at_level("INFO", logger="pfs.core.local_ingest"):
        with pfs.open_writer(R("a"), "master") as w:
            w.put_local("/big", str(path))
    assert "opened for writing" in caplog.text and len(checks) == 4  # packs were written before the break
    body[:8] = b"CHANGED!"
    assert read(pfs, R("a"), "master", "/big") == bytes(body)
    ci = pfs.commit_for_read(R("a"), "master")
    _chunks_match_their_hashes(pfs, pfs.tree(ci).entry("/big").refs)
