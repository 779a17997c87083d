"""The read path of `pachctl mount` on real FUSE against a real pachd: listings, stat, byte
ranges, head following, commit mounts, stable inodes, and the errors of bad mounts."""
from __future__ import annotations

import errno
import hashlib
import mmap
import os
import subprocess
import time

import pytest

from tests.mount.conftest import get_file, pytestmark  # noqa: F401


def _blob(n: int, seed: int = 0) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def test_read_only_mount_lists_stats_and_reads_exact_bytes(mounter, put, client, tmp_path):
    big = _blob(5 * 1024 * 1024 + 123, 1)
    files = {"/a.txt": b"hello\n", "/dir/b.bin": big, "/dir/sub/c.csv": b"x,y\n1,2\n3,4\n",
             "/empty": b""}
    put("images", files)
    mp = tmp_path / "mnt"
    mounter.mount(mp, "-r", "images@master")
    root = mp / "images"
    assert os.listdir(mp) == ["images"]
    assert sorted(os.listdir(root)) == ["a.txt", "dir", "empty"]
    assert sorted(os.listdir(root / "dir")) == ["b.bin", "sub"]
    for path, data in files.items():
        p = root / path.lstrip("/")
        st = os.stat(p)
        assert st.st_size == len(data)
        assert st.st_mode & 0o222 == 0  # read-only
        assert p.read_bytes() == data == get_file(client, "images", "master", path)
    assert os.path.isdir(root / "dir/sub")
    # byte ranges: seeks forward and back, reads across message boundaries, past the end
    with open(root / "dir/b.bin", "rb") as f:
        for off, n in [(3 * 1024 * 1024 - 7, 70000), (100, 10), (len(big) - 5, 100), (1 << 20, 1 << 20),
                       (len(big) + 10, 10), (0, 1)]:
            f.seek(off)
            assert f.read(n) == big[off:off + n]
    # mmap reads
    with open(root / "dir/b.bin", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert m[4096 * 300:4096 * 301] == big[4096 * 300:4096 * 301]
        assert hashlib.sha256(m).digest() == hashlib.sha256(big).digest()
    # a missing path is ENOENT; a read-only mount refuses every change with EROFS
    with pytest.raises(FileNotFoundError):
        os.stat(root / "nope")
    for change in (lambda: open(root / "a.txt", "w"), lambda: open(root / "new.txt", "w"),
                   lambda: os.mkdir(root / "newdir"), lambda: os.unlink(root / "a.txt"),
                   lambda: os.rename(root / "a.txt", root / "b.txt")):
        with pytest.raises(OSError) as ei:
            change()
        assert ei.value.errno == errno.EROFS
    # ordinary tools
    r = subprocess.run(["sha256sum", str(root / "dir/b.bin")], capture_output=True, text=True, check=True)
    assert r.stdout.split()[0] == hashlib.sha256(big).hexdigest()
    r = subprocess.run(["find", str(root), "-type", "f"], capture_output=True, text=True, check=True)
    assert sorted(r.stdout.split()) == sorted(str(root) + p for p in files)
    out = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(root), str(out)], check=True)
    for path, data in files.items():
        assert (out / path.lstrip("/")).read_bytes() == data


def test_inode_numbers_are_stable_and_content_keyed(mounter, put, tmp_path):
    put("r", {"/f": b"one", "/g": b"same"})
    mp = tmp_path / "mnt"
    m = mounter.mount(mp, "-r", "r")
    ino_f, ino_g, ino_dir = os.stat(mp / "r/f").st_ino, os.stat(mp / "r/g").st_ino, os.stat(mp / "r").st_ino
    assert len({ino_f, ino_g, ino_dir}) == 3
    # the same thing, looked up again (after the kernel forgot it, and in a new mount): same number
    subprocess.run(["sh", "-c", "echo 2 > /proc/sys/vm/drop_caches"], check=False)
    assert os.stat(mp / "r/f").st_ino == ino_f
    mounter.unmount(m)
    mounter.mount(mp, "-r", "r")
    assert os.stat(mp / "r/f").st_ino == ino_f
    assert os.stat(mp / "r/g").st_ino == ino_g
    # new content at the same path: a new inode (the page cache can never serve the old bytes)
    put("r", {"/f": b"two!"})
    deadline = time.monotonic() + 5
    while os.stat(mp / "r/f").st_ino == ino_f and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.stat(mp / "r/f").st_ino != ino_f
    assert (mp / "r/f").read_bytes() == b"two!"
    assert os.stat(mp / "r/g").st_ino == ino_g  # unchanged content keeps its number


def test_branch_mount_follows_head_open_files_keep_their_commit(mounter, put, tmp_path):
    first = _blob(3 * 1024 * 1024, 2)
    put("r", {"/data": first, "/keep": b"k"})
    mp = tmp_path / "mnt"
    mounter.mount(mp, "-r", "r@master")
    f = open(mp / "r/data", "rb")
    try:
        assert f.read(1000) == first[:1000]
        second = _blob(2 * 1024 * 1024, 3)
        put("r", {"/data": second, "/new": b"n"})
        t0 = time.monotonic()
        while not os.path.exists(mp / "r/new"):
            assert time.monotonic() - t0 < 1.5, "a new commit was not visible within a second"
            time.sleep(0.05)
        # a new open sees the new commit: names the kernel looked up before the commit keep
        # their old entry until it expires (HEAD_TTL), so /data may follow /new by that much
        while (mp / "r/data").read_bytes() != second:
            assert time.monotonic() - t0 < 1.5, "a new open did not see the new commit within a second"
            time.sleep(0.05)
        assert f.read() == first[1000:]                 # the open file keeps its commit
    finally:
        f.close()
    # a deleted file disappears
    put("r", {}, deletes=["/keep"])
    t0 = time.monotonic()
    while os.path.exists(mp / "r/keep"):
        assert time.monotonic() - t0 < 1.5
        time.sleep(0.05)


def test_commit_mount_never_changes(mounter, put, tmp_path):
    c1 = put("r", {"/f": b"v1"})
    put("r", {"/f": b"v2", "/g": b"g"})
    mp = tmp_path / "mnt"
    mounter.mount(mp, "-r", f"r@{c1}")
    assert (mp / "r/f").read_bytes() == b"v1"
    assert os.listdir(mp / "r") == ["f"]
    put("r", {"/f": b"v3"})
    time.sleep(1.2)
    assert (mp / "r/f").read_bytes() == b"v1"
    with pytest.raises(OSError) as ei:
        open(mp / "r/f", "a")
    assert ei.value.errno == errno.EROFS


def test_listings_are_paged_and_complete(mounter, put, tmp_path):
    from pachctl.mount.remote import Remote
    n = Remote.PAGE * 2 + 17  # three pages
    put("many", {f"/d/f{i:05d}": str(i).encode() for i in range(n)})
    mp = tmp_path / "mnt"
    mounter.mount(mp, "-r", "many")
    names = os.listdir(mp / "many/d")
    assert len(names) == n and len(set(names)) == n
    assert sorted(names) == [f"f{i:05d}" for i in range(n)]
    assert (mp / "many/d/f03000").read_bytes() == b"3000"
    r = subprocess.run(["ls", "-l", str(mp / "many/d")], capture_output=True, text=True, check=True)
    assert len(r.stdout.splitlines()) == n + 1  # "total" + one line each


def test_a_walk_sees_every_entry(mounter, put, tmp_path):
    """`find` over several directories, one of them bigger than a listing page: every path
    once, nothing else; then one directory changed in a new commit is seen as it is."""
    from pachctl.mount.remote import Remote
    files = {f"/d{i}/f{j:03d}": b"x" for i in range(6) for j in range(40)}
    files.update({f"/d1x/g{j:05d}": b"y" for j in range(Remote.PAGE + 50)})
    put("walk", files)
    mp = tmp_path / "mnt"
    mounter.mount(mp, "-r", "walk")
    r = subprocess.run(["find", str(mp / "walk")], capture_output=True, text=True, check=True)
    got = [line[len(str(mp / "walk")):] for line in r.stdout.splitlines()]
    dirs = {"/" + p.strip("/").rsplit("/", 1)[0] for p in files}
    want = set(files) | dirs | {""}
    assert len(got) == len(set(got)) and set(got) == want
    put("walk", {"/d4/new": b"z"}, deletes=["/d5/f000"])
    time.sleep(1.5)  # the branch head is re-read after at most a second
    r = subprocess.run(["find", str(mp / "walk")], capture_output=True, text=True, check=True)
    got2 = {line[len(str(mp / "walk")):] for line in r.stdout.splitlines()}
    assert got2 == (want | {"/d4/new"}) - {"/d5/f000"}


def test_all_repos_of_project_at_master_without_repos(mounter, put, tmp_path):
    put("a", {"/x": b"ax"})
    put("b", {"/y": b"by"})
    put("c", {"/z": b"cz"}, branch="dev")  # no master: an empty directory
    mp = tmp_path / "mnt"
    mounter.mount(mp)
    assert sorted(os.listdir(mp)) == ["a", "b", "c"]
    assert (mp / "a/x").read_bytes() == b"ax"
    assert (mp / "b/y").read_bytes() == b"by"
    assert os.listdir(mp / "c") == []


@pytest.mark.parametrize("args,needle", [
    (["-r", "nope"], "repo default/nope not found"),
    (["-r", "r@nobranch"], "nobranch"),
    (["-r", "r@0123456789abcdef0123456789abcdef"], "0123456789abcdef0123456789abcdef"),
    (["-r", "r+x"], "unrecognized mode"),
    (["-r", "r", "-r", "r@dev"], "given twice"),
    (["-w", "-r", "r"], "--write applies when no --repos"),
])
def test_bad_mount_arguments_are_one_line_errors(mounter, put, tmp_path, args, needle):
    put("r", {"/f": b"1"})
    mp = tmp_path / "mnt"
    mp.mkdir()
    m = mounter.start(mp, *args)
    assert m.proc.wait(timeout=60) == 1
    err = m.stderr().strip()
    assert needle in err, err
    assert len(err.splitlines()) == 1, err
    assert os.listdir(mp) == []  # nothing mounted


def test_bad_mountpoints(mounter, put, tmp_path):
    put("r", {"/f": b"1"})
    cases = []
    cases.append((tmp_path / "missing", "does not exist"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases.append((afile, "is not a directory"))
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    cases.append((full, "is not empty"))
    for mp, needle in cases:
        m = mounter.start(mp, "-r", "r")
        assert m.proc.wait(timeout=60) == 1
        assert needle in m.stderr() and len(m.stderr().strip().splitlines()) == 1, m.stderr()
    mp = tmp_path / "mnt"
    mounter.mount(mp, "-r", "r")
    m = mounter.start(mp, "-r", "r")
    assert m.proc.wait(timeout=60) == 1
    assert "already mounted" in m.stderr(), m.stderr()


def test_random_reads_seeks_and_a_sequential_read_after_them(mounter, put, tmp_path):
    import random
    data = _blob(9 * 1024 * 1024 + 77, 9)
    put("r", {"/f": data})
    mp = tmp_path / "mnt"
    mounter.mount(mp, "-r", "r")
    rng = random.Random(3)
    fd = os.open(mp / "r/f", os.O_RDONLY | os.O_DIRECT)
    try:
        import mmap as _m
        buf = _m.mmap(-1, 1 << 20)
        try:
            for _ in range(60):  # O_DIRECT: every read reaches the mount, none from the page cache
                off = rng.randrange(0, len(data) // 4096) * 4096
                n = rng.choice([4096, 8192, 65536, 1 << 20])
                got = os.preadv(fd, [memoryview(buf)[:n]], off)
                want = data[off:off + n]
                assert got == len(want) and buf[:got] == want, (off, n, got)
        finally:
            buf.close()
    finally:
        os.close(fd)
    with open(mp / "r/f", "rb") as f:
        f.seek(5 * 1024 * 1024)
        f.read(100)
        f.seek(0)
        assert f.read() == data


def test_mount_a_repo_of_another_project(mounter, put, client, tmp_path):
    """The tutorial's form: `pachctl mount mnt --project video-to-frame-traces --repos
    content_collager@master`."""
    from proto.pfs_v2 import pfs_pb2 as pfs
    client.pfs.CreateProject(pfs.CreateProjectRequest(project=pfs.Project(name="video-to-frame-traces")))
    put("content_collager", {"/index.html": b"<html>collage</html>", "/static/a.gif": b"GIF89a"},
        project="video-to-frame-traces")
    put("content_collager", {"/other": b"default project"})
    mp = tmp_path / "mnt"
    mounter.mount(mp, "--project", "video-to-frame-traces", "--repos", "content_collager@master")
    assert (mp / "content_collager/index.html").read_bytes() == b"<html>collage</html>"
    assert sorted(os.listdir(mp / "content_collager")) == ["index.html", "static"]
    (tmp_path / "mnt2").mkdir()
    bad = mounter.start(tmp_path / "mnt2", "--project", "nope", "-r", "content_collager")
    assert bad.proc.wait(timeout=60) == 1
    assert "nope" in bad.stderr() and len(bad.stderr().strip().splitlines()) == 1, bad.stderr()
