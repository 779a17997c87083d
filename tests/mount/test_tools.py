"""Ordinary tools through a read-only mount (ls -lR, find, du, cp -r, sha256sum, tar, pandas,
PIL, mmap), and seed 002's `pachctl mount images --repos images@staging`: every file read
through the mount is byte-identical to `pachctl get file`."""
from __future__ import annotations

import hashlib
import io
import mmap
import os
import subprocess
import tarfile

from tests.mount.conftest import pytestmark  # noqa: F401


def _png(color) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return buf.getvalue()


def test_seed_002_mount_staging_branch_matches_get_file(mounter, put, tmp_path):
    files = {"/liberty.png": _png((200, 10, 10)), "/kitten.png": _png((10, 200, 10)),
             "/notes/readme.txt": b"images for the edges pipeline\n"}
    put("images", files, branch="staging")
    put("images", {"/master-only.png": _png((0, 0, 0))}, branch="master")
    m = mounter.mount("images", "--repos", "images@staging", cwd=tmp_path)  # as in the seed
    root = tmp_path / "images" / "images"
    walked = {}
    for d, _, names in os.walk(root):
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                walked["/" + os.path.relpath(os.path.join(d, n), root)] = f.read()
    assert walked.keys() == files.keys()
    for path, data in walked.items():
        r = mounter.pachctl("get", "file", f"images@staging:{path}", "-o", tmp_path / "got")
        assert r.returncode == 0, r.stderr
        assert data == (tmp_path / "got").read_bytes() == files[path]
    mounter.unmount(m)


def test_ordinary_tools(mounter, put, tmp_path):
    import pandas
    from PIL import Image
    csv = b"name,score\n" + b"".join(f"n{i},{i * 3}\n".encode() for i in range(5000))
    big = os.urandom(3 * 1024 * 1024 + 5)
    files = {"/table.csv": csv, "/img/red.png": _png((255, 0, 0)), "/bin/big.bin": big, "/a/b/c/deep.txt": b"deep"}
    put("data", files)
    mp = tmp_path / "mnt"
    mounter.mount(mp, "-r", "data")
    root = mp / "data"
    r = subprocess.run(["ls", "-lR", str(root)], capture_output=True, text=True, check=True)
    for path, data in files.items():
        assert os.path.basename(path) in r.stdout
    r = subprocess.run(["find", str(root), "-type", "f", "-size", "+1M"], capture_output=True, text=True, check=True)
    assert r.stdout.split() == [str(root / "bin/big.bin")]
    r = subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True, check=True)
    assert int(r.stdout.split()[0]) >= sum(len(d) for d in files.values())
    r = subprocess.run(["sha256sum", str(root / "bin/big.bin"), str(root / "table.csv")], capture_output=True,
                       text=True, check=True)
    assert [line.split()[0] for line in r.stdout.splitlines()] == [hashlib.sha256(big).hexdigest(),
                                                                     hashlib.sha256(csv).hexdigest()]
    out = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(root), str(out)], check=True)
    assert {p: (out / p.lstrip("/")).read_bytes() for p in files} == files
    tar = tmp_path / "all.tar"
    subprocess.run(["tar", "cf", str(tar), "-C", str(root), "."], check=True)
    with tarfile.open(tar) as t:
        got = {"/" + os.path.normpath(m.name): t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    assert got == files
    df = pandas.read_csv(root / "table.csv")
    assert len(df) == 5000 and df["score"].sum() == sum(i * 3 for i in range(5000))
    with Image.open(root / "img/red.png") as im:
        assert im.size == (64, 48) and im.getpixel((3, 3)) == (255, 0, 0)
    with open(root / "bin/big.bin", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert mm[len(big) - 10:] == big[-10:]
        assert mm[1 << 20:(1 << 20) + 4096] == big[1 << 20:(1 << 20) + 4096]
