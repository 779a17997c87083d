"""Benchmarks of `pachctl mount` (M1-M7 of issue 13), each next to its baseline in the same run.

- M1 cold sequential read of a big file through a fresh mount vs `pachctl get file` of it,
  and vs `cat` of the same bytes as a plain (cached) file.
- M2 warm re-read through the mount (kernel page cache, keep_cache) vs `cat` of a cached file.
- M3 `ls -l` of a 10,000-entry directory, M4 `find` over a 100,000-file commit, each vs the
  same on a plain directory; with the mount process's CPU seconds, and (M4) `find` over the
  same tree served by a trivial pyfuse3 file system from memory (bench.fuse_floor): the
  floor of any pyfuse3 mount.
- M5 random 4 KiB reads vs the same reads of a plain file.
- M6 writing a big file through a `+w` mount plus the commit at unmount vs `pachctl put file`.
- M7 peak RSS of the mount process while reading 4 GiB.

Needs /dev/fuse and pyfuse3; yields nothing (with a note) where they are missing.
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO_ROOT, Result, pachd, peak_rss_of, run, workdir, write_random_file
from bench.pfs_bench import _repo, pachctl, put_stream
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

MiB, GiB = 1 << 20, 1 << 30


def _env(p) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PACH_CONTEXT"}
    env.update({"PACHD_ADDRESS": f"127.0.0.1:{p.port}", "PACHCTL_NO_AUTOSTART": "1",
                "PACH_CONFIG": str(p.root.parent / "pachctl-config.json"),
                "HOME": str(p.root.parent / "home")})
    return env


class _Mount:
    """`pachctl mount` as a subprocess, up until `close()` (which unmounts and waits)."""

    def __init__(self, p, mp: Path, *args: str):
        mp.mkdir(parents=True, exist_ok=True)
        self.mp, self.env = mp, _env(p)
        self.log = open(mp.parent / f"mount-{mp.name}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "pachctl", "mount", str(mp), *args], env=self.env,
                                     cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b"mounted " not in Path(self.log.name).read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pachctl mount did not start: {Path(self.log.name).read_text()}")
            time.sleep(0.05)

    def peak_rss(self) -> int:
        return peak_rss_of(self.proc.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.proc.pid)

    def close(self) -> float:
        """Unmount (the process commits what was written); seconds until it exited."""
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pachctl", "unmount", str(self.mp)], env=self.env, cwd=REPO_ROOT,
                       check=True, capture_output=True)
        self.proc.wait(timeout=600)
        self.log.close()
        return time.perf_counter() - t0


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cat(path: Path) -> float:
    return run(["sh", "-c", f"cat '{path}' > /dev/null"])


def _best_of_cats(paths: list[Path], times: int = 3) -> list[float]:
    """The fastest of `times` cats of each path, taken in turn (a shared, loaded machine
    slows single runs by 2x either way; both sides get the same treatment)."""
    best = [float("inf")] * len(paths)
    for _ in range(times):
        for i, p in enumerate(paths):
            best[i] = min(best[i], _cat(p))
    return best


def _available() -> str:
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    try:
        import pyfuse3  # noqa: F401
    except ImportError:
        return "pyfuse3 is not installed"
    return ""


def m_mount_read(quick: bool) -> list[Result]:
    why = _available()
    if why:
        return [Result("M1", f"mount benchmarks skipped: {why}", 0.0, "", None, "-", "-", None)]
    size = 256 * MiB if quick else GiB
    out = []
    with workdir("pachbench-mount-") as d, pachd() as p:
        stub = pfs_pb2_grpc.APIStub(p.channel)
        stub.CreateRepo(pb.CreateRepoRequest(repo=_repo("m")))
        src = d / "big.bin"
        write_random_file(src, size, seed=31)
        pachctl(p, "put", "file", "m@master:/big.bin", "-f", str(src))
        # M1: cold read through a fresh mount vs pachctl get file vs cat of the plain file
        t_get = pachctl(p, "get", "file", "m@master:/big.bin", "-o", "/dev/null")
        _cat(src)
        t_cat = _cat(src)
        m = _Mount(p, d / "mnt", "-r", "m")
        try:
            f = d / "mnt" / "m" / "big.bin"
            t_cold = _cat(f)
            t_warm, t_cat2 = _best_of_cats([f, src])
            # M5: random 4 KiB reads (a fresh mount, so none come from the page cache)
        finally:
            m.close()
        out.append(Result("M1", f"cold sequential read of a {size // MiB} MiB file through the mount (cat)",
                          size / t_cold / MiB, "MiB/s", size / t_get / MiB, "pachctl get file -o /dev/null",
                          ">= 0.8x get file", size / t_cold >= 0.8 * size / t_get,
                          notes=f"cat of the same bytes as a plain cached file: {size / t_cat / MiB:,.0f} MiB/s"))
        t_floor, t_cat3 = _floor_rereads(d / "floor", size, src)
        out.append(Result("M2", f"warm re-read of the {size // MiB} MiB file through the mount (page cache)",
                          size / t_warm / MiB, "MiB/s", size / t_cat2 / MiB, "cat of a plain cached file",
                          ">= 0.8x cat", size / t_warm >= 0.8 * size / t_cat2,
                          notes=f"best of 3 cats each, taken in turn; floor (bench.fuse_floor: a cached file of a "
                                f"trivial pyfuse3 file system) {size / t_floor / MiB:,.0f} MiB/s vs "
                                f"{size / t_cat3 / MiB:,.0f} MiB/s plain in its own turns"))
        # M5: random 4 KiB reads
        n = 500 if quick else 2000
        rng = random.Random(5)
        offsets = [rng.randrange(0, size - 4096) // 4096 * 4096 for _ in range(n)]
        m = _Mount(p, d / "mnt", "-r", "m")
        try:
            t_mount = _random_reads(d / "mnt" / "m" / "big.bin", offsets)
        finally:
            m.close()
        t_plain = _random_reads(src, offsets)
        out.append(Result("M5", f"{n} random 4 KiB reads of the {size // MiB} MiB file (cold mount)",
                          n / t_mount, "reads/s", n / t_plain, "the same reads of the plain (cached) file",
                          "reported", None))
        # M7: RSS of the mount process while reading a big file (4 GiB: the file read 4 times cold)
        times = 1 if quick else 4
        m = _Mount(p, d / "mnt", "-r", "m")
        try:
            for _ in range(times):
                subprocess.run(["dd", f"if={d / 'mnt' / 'm' / 'big.bin'}", "of=/dev/null", "bs=1M",
                                "iflag=direct"], check=True, capture_output=True)
            rss = m.peak_rss()
        finally:
            m.close()
        out.append(Result("M7", f"peak RSS of the mount process reading {times * size // MiB} MiB", rss / MiB,
                          "MiB", None, "-", "<= 300 MiB", rss <= 300 * MiB, notes="dd iflag=direct: every read "
                          "reaches the mount (no page cache)"))
        src.unlink()
    return out


def m_mount_write(quick: bool, rounds: int = 3) -> list[Result]:
    """M6: write a big file through a +w mount, commit at unmount, vs `pachctl put file`.

    `rounds` rounds, each: a fresh mount, the copy in, the unmount (its commit); the removal
    of the committed staging directory (a detached rm) waited for, untimed; then `put file`
    of as many other bytes. Every file is new random bytes, so nothing deduplicates. The
    fastest round of each side is reported (the machine is shared: single runs vary 2x
    either way; both sides get the same treatment)."""
    why = _available()
    if why:
        return [Result("M6", f"mount write benchmark skipped: {why}", 0.0, "", None, "-", "-", None)]
    size = 256 * MiB if quick else GiB
    best = {"write": float("inf"), "put": float("inf"), "floor": float("inf")}
    parts = (0.0, 0.0)
    with workdir("pachbench-mountw-") as d, pachd() as p:
        stub = pfs_pb2_grpc.APIStub(p.channel)
        src = d / "w.bin"
        staging = Path(_env(p)["HOME"]) / ".pachyderm" / "mounts" / "staging"
        for i in range(rounds):
            stub.CreateRepo(pb.CreateRepoRequest(repo=_repo(f"w{i}")))
            write_random_file(src, size, seed=41 + 2 * i)
            m = _Mount(p, d / "wmnt", "-r", f"w{i}+w")
            t0 = time.perf_counter()
            try:
                shutil.copyfile(src, d / "wmnt" / f"w{i}" / "w.bin")
                t_copied = time.perf_counter() - t0
            finally:
                t_unmount = m.close()
            t_write = time.perf_counter() - t0
            if t_write < best["write"]:
                best["write"], parts = t_write, (t_copied, t_unmount)
            _wait_removed(staging)
            write_random_file(src, size, seed=42 + 2 * i)
            stub.CreateRepo(pb.CreateRepoRequest(repo=_repo(f"p{i}")))
            best["put"] = min(best["put"], pachctl(p, "put", "file", f"p{i}@master:/w.bin", "-f", str(src)))
            best["floor"] = min(best["floor"], _write_floor_copy(d / "floor", src))
    t_write, t_put = best["write"], best["put"]
    return [Result("M6", f"write a {size // MiB} MiB file through a +w mount, committed at unmount",
                   size / t_write / MiB, "MiB/s", size / t_put / MiB, "pachctl put file of the same size",
                   ">= 0.7x put file", size / t_write >= 0.7 * size / t_put,
                   notes=f"best of {rounds} rounds each, taken in turn; the best mount round: the copy in "
                         f"(shutil.copyfile) {parts[0]:.2f} s, unmount + commit {parts[1]:.2f} s; the same copy "
                         f"into bench.fuse_write_floor (a trivial pyfuse3 file system, one pwrite per request) "
                         f"{best['floor']:.2f} s")]


def _wait_removed(staging: Path, timeout: float = 120.0) -> None:
    """Wait until no committed staging directory (`.removing-*`) is left being deleted."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not (staging.exists() and any(x.name.startswith(".removing-") for x in staging.iterdir())):
            return
        time.sleep(0.05)


def _write_floor_copy(where: Path, src: Path) -> float:
    """Seconds to copy `src` into bench.fuse_write_floor (pyfuse3's floor for writes)."""
    mp, staging = where / "mnt", where / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        with _floor(mp, str(staging), module="bench.fuse_write_floor"):
            t0 = time.perf_counter()
            shutil.copyfile(src, mp / src.name)
            return time.perf_counter() - t0
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _random_reads(path: Path, offsets: list[int]) -> float:
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        for off in offsets:
            os.pread(fd, 4096, off)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def _tree_commit(stub, repo: str, dirs: int, per_dir: int) -> None:
    stub.CreateRepo(pb.CreateRepoRequest(repo=_repo(repo)))
    files = ((f"/d{i:04d}/f{j:05d}", iter([b"x"])) for i in range(dirs) for j in range(per_dir))
    stub.ModifyFile(put_stream(repo, files))


def _plain_tree(root: Path, dirs: int, per_dir: int) -> None:
    for i in range(dirs):
        dd = root / f"d{i:04d}"
        dd.mkdir(parents=True)
        for j in range(per_dir):
            (dd / f"f{j:05d}").write_bytes(b"x")


def m_mount_listing(quick: bool) -> list[Result]:
    why = _available()
    if why:
        return []
    wide = 2000 if quick else 10_000
    dirs, per = (20, 1000) if quick else (100, 1000)
    out = []
    with workdir("pachbench-mountls-") as d, pachd() as p:
        stub = pfs_pb2_grpc.APIStub(p.channel)
        _tree_commit(stub, "wide", 1, wide)
        _tree_commit(stub, "tree", dirs, per)
        _plain_tree(d / "plain-wide", 1, wide)
        _plain_tree(d / "plain-tree", dirs, per)
        m = _Mount(p, d / "mnt", "-r", "wide", "-r", "tree")
        try:
            c0 = m.cpu_seconds()
            t_ls = run(["sh", "-c", f"ls -l '{d / 'mnt' / 'wide' / 'd0000'}' > /dev/null"])
            c1 = m.cpu_seconds()
            t_find = run(["sh", "-c", f"find '{d / 'mnt' / 'tree'}' > /dev/null"])
            c2 = m.cpu_seconds()
            t_find2 = run(["sh", "-c", f"find '{d / 'mnt' / 'tree'}' > /dev/null"])
        finally:
            m.close()
        t_floor, t_floor2 = _floor_finds(d / "floor", dirs, per)
        run(["sh", "-c", f"ls -l '{d / 'plain-wide' / 'd0000'}' > /dev/null"])
        t_ls0 = run(["sh", "-c", f"ls -l '{d / 'plain-wide' / 'd0000'}' > /dev/null"])
        run(["sh", "-c", f"find '{d / 'plain-tree'}' > /dev/null"])
        t_find0 = run(["sh", "-c", f"find '{d / 'plain-tree'}' > /dev/null"])
        out.append(Result("M3", f"ls -l of a {wide:,}-entry directory through a fresh mount", t_ls, "s", t_ls0,
                          "ls -l of the same plain directory (cached)", "<= 3x", t_ls <= 3 * t_ls0,
                          notes=f"mount process CPU {c1 - c0:.2f} s"))
        out.append(Result("M4", f"find over a {dirs * per:,}-file commit through a fresh mount", t_find, "s",
                          t_find0, "find over the same plain tree (cached)", "<= 3x", t_find <= 3 * t_find0,
                          notes=f"mount process CPU {c2 - c1:.2f} s; again on the same mount {t_find2:.2f} s; "
                                f"floor (bench.fuse_floor, the same tree from memory): fresh {t_floor:.2f} s, "
                                f"again {t_floor2:.2f} s"))
    return out


def _floor_finds(mp: Path, dirs: int, per: int) -> tuple[float, float]:
    """`find` twice over bench.fuse_floor's tree (fresh, then again): pyfuse3's floor."""
    with _floor(mp, str(dirs), str(per)):
        return (run(["sh", "-c", f"find '{mp}' > /dev/null"]), run(["sh", "-c", f"find '{mp}' > /dev/null"]))


def _floor_rereads(mp: Path, size: int, plain: Path) -> tuple[float, float]:
    """Best-of-3 re-reads of bench.fuse_floor's one cached file, and of `plain`, in turn."""
    with _floor(mp, "file", str(size)):
        _cat(mp / "f")
        t_floor, t_plain = _best_of_cats([mp / "f", plain])
    return t_floor, t_plain


@contextlib.contextmanager
def _floor(mp: Path, *args: str, module: str = "bench.fuse_floor"):
    """A trivial pyfuse3 file system (`module`) mounted at `mp` for the block's length."""
    mp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", module, str(mp), *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = proc.stdout.readline()
        if b"mounted" not in line:
            raise RuntimeError(f"{module} did not start: {line + proc.stdout.read()}")
        yield
    finally:
        subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


ALL = [m_mount_read, m_mount_write, m_mount_listing]
