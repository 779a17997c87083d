"""Shared plumbing for the benchmarks: a pachd in a subprocess, a raw gRPC client, timers,
data generators and the result record every benchmark returns.

Invariants:
- Every figure is measured in the same run as its baseline, on the same generated data.
- pachd runs as its own process (as a user would run it), on a free loopback port, with its
  data in a temporary directory that is removed afterwards.
- Data is generated deterministically and streamed; nothing holds a whole large file.
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import grpc

REPO_ROOT = Path(__file__).resolve().parent.parent
MSG = 4 << 20


@dataclass
class Result:
    id: str
    what: str
    figure: float
    unit: str
    baseline: Optional[float]
    baseline_what: str
    target: str
    met: Optional[bool]
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> Optional[float]:
        if self.baseline in (None, 0) or self.figure in (None, 0):
            return None
        return self.figure / self.baseline

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def peak_rss_of(pid: int) -> int:
    """VmHWM (peak resident set) of process `pid`, in bytes; 0 if /proc does not say."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0

class PachdProcess:
    """pachd as a subprocess; `.channel` for raw stubs; `.peak_rss()` from /proc."""

    def __init__(self, root: Path, env: Optional[dict] = None, storage: Optional[str] = None,
                 launch: Optional[list[str]] = None, inherit_env: bool = True):
        """`launch`: the program before pachd's flags (default `python -m pachd`);
        `env` is added to this process's environment, or replaces it when not `inherit_env`."""
        self.root = root
        self.port = free_port()
        cmd = [*(launch or [sys.executable, "-m", "pachd"]), "--port", str(self.port),
               "--root", str(root), "--s3-gateway-port", "-1", "--host", "127.0.0.1", "--log-level", "WARNING"]
        if storage:
            cmd += ["--storage", storage]
        root.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(root.parent / f"pachd-{self.port}.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**(os.environ if inherit_env else {}), **(env or {})})
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
        try:
            grpc.channel_ready_future(self.channel).result(timeout=60)
        except grpc.FutureTimeoutError as e:
            self.stop()
            raise RuntimeError(f"pachd did not start; see {self.log.name}") from e

    def peak_rss(self) -> int:
        """VmHWM of the pachd process, in bytes."""
        return peak_rss_of(self.proc.pid)

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@contextlib.contextmanager
def workdir(prefix: str = "pachbench-") -> Iterator[Path]:
    base = os.environ.get("BENCH_TMP")
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def pachd(env: Optional[dict] = None) -> Iterator[PachdProcess]:
    with workdir("pachd-") as d:
        p = PachdProcess(d / "data", env)
        try:
            yield p
        finally:
            p.stop()


def write_random_file(path: Path, size: int, seed: int = 1, block: int = 4 << 20) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(block, left)
            f.write(rng.randbytes(n))
            left -= n


def file_chunks(path: Path, size: int = MSG) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            b = f.read(size)
            if not b:
                return
            yield b


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def run(cmd: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    return time.perf_counter() - t0


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


_STREAM_SERVER = r'''
import sys, time
from concurrent import futures
import grpc
n, path = int(sys.argv[1]), sys.argv[2]
payload = open(path, "rb").read()
def stream(req, ctx):
    for _ in range(n):
        yield payload
h = grpc.method_handlers_generic_handler("bench.Stream", {"List": grpc.unary_stream_rpc_method_handler(stream)})
srv = grpc.server(futures.ThreadPoolExecutor(4))
srv.add_generic_rpc_handlers((h,))
print(srv.add_insecure_port("127.0.0.1:0"), flush=True)
srv.start()
sys.stdin.read()  # until the bench closes our stdin
'''


def grpc_stream_floor(n: int, size: int = 0, runs: int = 7, payload: Optional[bytes] = None,
                      decode=None) -> float:
    """Median seconds for a client here to receive `n` messages from a bare Python gRPC server
    streaming them from another process: the transport's own floor for a streamed listing
    (what a ListFile of n entries costs before any pfs work). Each message is `payload`
    (already serialized: the server does no work) or `size` bytes of filler; the client passes
    each through `decode` (e.g. `FileInfo.FromString`, the work a real client does) if given."""
    with tempfile.NamedTemporaryFile(prefix="stream-floor-") as f:
        f.write(payload if payload is not None else b"x" * size)
        f.flush()
        proc = subprocess.Popen([sys.executable, "-c", _STREAM_SERVER, str(n), f.name],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=[
                    ("grpc.max_receive_message_length", 64 << 20)]) as ch:
                call = ch.unary_stream("/bench.Stream/List", response_deserializer=decode)
                list(call(b""))  # warm up
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    got = sum(1 for _ in call(b""))
                    times.append(time.perf_counter() - t0)
                    assert got == n, got
            return percentile(times, 50)
        finally:
            proc.stdin.close()
            proc.wait(10)
