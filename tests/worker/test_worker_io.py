"""pps.worker.datum_io and pps.worker.scratch in-process against a real pachd: batched
downloads (brace-glob GetFileTAR when pachd supports it, per path otherwise), staging and
batched uploads, directory recycling."""
from __future__ import annotations

import os
import tarfile
import time
from io import BytesIO

import grpc
import pytest

from pfs.model import Repo
from pps.worker.datum_io import PfsIO, Prefetcher, _Stream, commit_pb, glob_escape, read_tar
from pps.worker.scratch import Dirs, _umask
from pps.worker.upload import Uploader
from tests.worker.conftest import Env


@pytest.fixture(params=[False, True], ids=["per-path", "glob"])
def genv(request, tmp_path):
    e = Env(tmp_path / "env", glob_tar=request.param)
    calls = []
    plain = e.pachd.pfs.tar_stream

    def counting(ci, path, chunk_size=1 << 20):
        calls.append(path)
        return plain(ci, path, chunk_size)

    e.pachd.pfs.tar_stream = counting
    e.tar_calls = calls
    e.glob = request.param
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def io(genv, tmp_path):
    dirs = Dirs(tmp_path / "pool")
    with grpc.insecure_channel(genv.address) as ch:
        pio = PfsIO(ch, dirs)
        yield pio
        pio.close()
    dirs.close()


def test_download_layout_sharing_and_batching(genv, io, tmp_path):
    c = genv.repo("in", {f"/f{i}": f"data{i}".encode() for i in range(6)} | {"/dir/x": b"X", "/dir/y/z": b"Z"})
    cs = genv.repo("lib", {"/m": b"model"})
    ds = [genv.datum(("in", "in", c, f"/f{i}"), ("lib", "lib", cs, "/")) for i in range(6)]
    ds.append(genv.datum(("in", "in", c, "/dir/")))
    stage = tmp_path / "stage"
    stage.mkdir()
    staged = io.download(ds, stage)
    assert [s.error for s in staged] == [""] * 7
    for i in range(6):
        assert (staged[i].dirs["in"] / f"f{i}").read_bytes() == f"data{i}".encode()
        assert (staged[i].dirs["lib"] / "m").read_bytes() == b"model"
        assert staged[i].nbytes == 5 + len(f"data{i}")
    assert os.stat(staged[0].dirs["lib"] / "m").st_nlink == 6  # fetched once, hard-linked
    assert (staged[6].dirs["in"] / "dir" / "y" / "z").read_bytes() == b"Z"
    assert io.glob_ok is genv.glob
    if genv.glob:  # one call for the six files, one for /lib, one for /dir/
        assert sorted(genv.tar_calls) == ["/", "/dir/", "/{f0,f1,f2,f3,f4,f5}"]
    else:  # the probe, then per path
        assert len(genv.tar_calls) == 1 + 6 + 2


def test_prefetcher_in_order_and_missing_paths(genv, io, tmp_path):
    c = genv.repo("in", {f"/f{i:03d}": b"x" for i in range(40)})
    ds = [genv.datum(("in", "in", c, f"/f{i:03d}")) for i in range(40)]
    ds[7] = genv.datum(("in", "in", c, "/missing"))
    pf = Prefetcher(io, ds, tmp_path / "stage", ahead=8)
    try:
        for i in range(40):
            s = pf.get(i)
            assert s.index == i
            if i == 7:
                assert "downloading in:/missing" in s.error
            else:
                assert s.error == "" and (s.dirs["in"] / f"f{i:03d}").exists()
    finally:
        pf.close()


def test_uploader_batches_tags_and_failures(genv, io, tmp_path):
    out_repo = Repo("default", "outp")
    oc = genv.output_commit("outp")
    up = Uploader(io, commit_pb("default", "outp", oc, "master"), tmp_path / "up", batch_datums=2)
    out = tmp_path / "out"
    for i in range(5):
        out.mkdir(exist_ok=True)
        (out / "sub").mkdir()
        (out / "sub" / f"o{i}").write_bytes(b"y" * (i + 1))
        paths, n = up.stage(f"datum{i}", out)
        assert paths == [f"/sub/o{i}"] and n == i + 1
        assert os.listdir(out) == []  # emptied, not removed
    up.finish()
    assert sorted(up.times) == [f"datum{i}" for i in range(5)] and not up.failed
    files = genv.output_files("outp", oc)
    assert files == {f"/sub/o{i}": (b"y" * (i + 1), f"datum{i}") for i in range(5)}
    # the commit is finished now: the next upload fails and says why
    up2 = Uploader(io, commit_pb("default", "outp", oc, "master"), tmp_path / "up2")
    (out / "late").write_bytes(b"z")
    up2.stage("late", out)
    up2.finish()
    assert "uploading outputs" in up2.failed["late"]
    assert out_repo


def test_glob_escape():
    assert glob_escape("a,b{c}*d") == "a\\,b\\{c\\}\\*d"


def test_dirs_recycle_instead_of_rmdir(tmp_path):
    dirs = Dirs(tmp_path / "pool")
    try:
        a = tmp_path / "a" / "b"
        dirs.make(a)
        (a / "f").write_text("x")
        (a / "sub").mkdir()
        (a / "sub" / "g").write_text("y")
        recycled = {os.stat(a).st_ino, os.stat(a / "sub").st_ino}
        dirs.discard(a)
        assert not a.exists()
        deadline = time.monotonic() + 5
        while not dirs.idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        for name in ("c", "d"):  # recycled (emptied) directories, no mkdir
            dirs.make(tmp_path / name, fresh=True)
            assert os.listdir(tmp_path / name) == []
        assert {os.stat(tmp_path / "c").st_ino, os.stat(tmp_path / "d").st_ino} == recycled
        dirs.make(tmp_path / "e")  # pool empty: a plain mkdir
        assert (tmp_path / "e").is_dir()
        dirs.discard(tmp_path / "nothing-here")  # missing is fine
    finally:
        dirs.close()


def _wait_idle(dirs: Dirs) -> None:
    deadline = time.monotonic() + 5
    while not dirs.idle() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_dirs_reuse_file_inodes_without_old_bytes(tmp_path):
    """Files of a tree discarded with reuse_files come back through create_file: same inode,
    fresh mode, nothing of the old contents once the writer truncates; hard-linked files and
    trees discarded without reuse_files are freed, never reused."""
    dirs = Dirs(tmp_path / "pool")
    try:
        src = tmp_path / "in"
        src.mkdir()
        (src / "big").write_bytes(b"old contents, longer than the new ones")
        os.chmod(src / "big", 0o700)
        (src / "linked").write_bytes(b"shared")
        os.link(src / "linked", tmp_path / "other-name")
        ino = os.stat(src / "big").st_ino
        dirs.discard(src, reuse_files=True)
        _wait_idle(dirs)
        fd = dirs.create_file(tmp_path / "new")
        with open(fd, "wb") as out:
            out.write(b"new")
            out.truncate()
        st = os.stat(tmp_path / "new")
        assert st.st_ino == ino and (tmp_path / "new").read_bytes() == b"new"
        assert st.st_mode & 0o777 == 0o666 & ~_umask()
        fd = dirs.create_file(tmp_path / "fresh")  # the hard-linked file was not pooled
        os.close(fd)
        assert os.stat(tmp_path / "fresh").st_ino != os.stat(tmp_path / "other-name").st_ino
        assert (tmp_path / "other-name").read_bytes() == b"shared"

        out = tmp_path / "out"
        out.mkdir()
        (out / "user-file").write_bytes(b"user")
        dirs.discard(out)  # written by user code: freed, not pooled
        _wait_idle(dirs)
        fd = dirs.create_file(tmp_path / "fresh2")
        os.close(fd)
        assert os.stat(tmp_path / "fresh2").st_size == 0
    finally:
        dirs.close()


def test_dirs_bury_keeps_until_freed(tmp_path):
    dirs = Dirs(tmp_path / "pool")
    try:
        f = tmp_path / "uploaded"
        f.write_bytes(b"output")
        ino = os.stat(f).st_ino
        dirs.bury(f, 6)
        assert not f.exists()
        _wait_idle(dirs)
        assert any(os.stat(p).st_ino == ino for p in (tmp_path / "pool").iterdir())  # still there
        dirs.free_buried()  # idle: no user code left; the file joins the pool
        _wait_idle(dirs)
        fd = dirs.create_file(tmp_path / "reused")
        with open(fd, "wb") as out:
            out.write(b"x")
            out.truncate()
        assert os.stat(tmp_path / "reused").st_ino == ino
        assert (tmp_path / "reused").read_bytes() == b"x"
        dirs.bury(tmp_path / "missing")  # missing is fine
    finally:
        dirs.close()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("step", [1, 511, 4096, 1 << 20])
def test_read_tar_matches_tarfile(fmt, step):
    """The worker's tar reader yields what tarfile reads, over any message boundaries: long
    names (pax / GNU), non-ASCII names, directories, empty and multi-block files, symlinks."""
    buf = BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for n in ["a", "dir/", "dir/b.txt", "x" * 150, "d/" + "y" * 120 + "/z", "ünï/cödé", "empty", "big"]:
            ti = tarfile.TarInfo(n.rstrip("/"))
            if n.endswith("/"):
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
                continue
            data = b"" if n == "empty" else bytes(range(256)) * 5000 if n == "big" else n.encode() * 3
            ti.size = len(data)
            tf.addfile(ti, BytesIO(data))
        ln = tarfile.TarInfo("link")
        ln.type, ln.linkname = tarfile.SYMTYPE, "a"
        tf.addfile(ln)
    raw = buf.getvalue()

    class Msg:
        def __init__(self, value):
            self.value = value

    stream = _Stream([Msg(raw[i:i + step]) for i in range(0, len(raw), step)])
    got = []
    for name, kind, size in read_tar(stream):
        if kind == "file":
            out = BytesIO()
            stream.copy_to(out, size)
            got.append((name, kind, out.getvalue()))
        else:
            got.append((name, kind))
    want = []
    with tarfile.open(fileobj=BytesIO(raw)) as tf:
        for m in tf:
            want.append((m.name, "file", tf.extractfile(m).read()) if m.isfile() else
                        (m.name, "dir" if m.isdir() else "other"))
    assert got == want


def test_read_tar_rejects_a_damaged_header():
    buf = BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("f")
        ti.size = 1
        tf.addfile(ti, BytesIO(b"x"))
    raw = bytearray(buf.getvalue())
    raw[0] ^= 0xFF

    class Msg:
        value = bytes(raw)

    with pytest.raises(tarfile.ReadError, match="checksum"):
        list(read_tar(_Stream([Msg()])))
