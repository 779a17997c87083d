"""B9 reads (issue 16): `get file` of a big file on pachd's machine and over gRPC.

Rows:
- B9-local: a client on pachd's machine (pachctl.local_read: pachd writes the file into the
  client's descriptor, here /dev/null) vs `cat` of pachd's stored pack files > /dev/null.
- B9-cli: the same through the `pachctl get file` command (its ~0.5 s start included;
  informative).
- B9-remote: GetFile streamed over gRPC (what a remote client gets) vs a bare Python gRPC
  server streaming the same file's bytes in messages of the same size (1 MiB), in the same run.

Invariants:
- Both sides of every row read the same bytes in the same cache state: the pack files are
  read once before the timed rounds, so every timed read (ours and `cat`) comes from the page
  cache; rounds alternate which side goes first; the figure is the median.
- pachd verifies every chunk's hash on every read (issue 14) in all rows.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc

from bench.common import REPO_ROOT, Result, pachd, run, workdir, write_random_file
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc

MiB, GiB = 1 << 20, 1 << 30
MSG = 1 << 20  # GetFile's message size (pfs.service.pfs_api.GET_CHUNK)

_FILE_STREAM_SERVER = r'''
import sys
from concurrent import futures
import grpc
path, size = sys.argv[1], int(sys.argv[2])
def stream(req, ctx):
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(size)
            if not b:
                return
            yield b
h = grpc.method_handlers_generic_handler("bench.Stream", {"File": grpc.unary_stream_rpc_method_handler(stream)})
srv = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.max_send_message_length", 64 << 20)])
srv.add_generic_rpc_handlers((h,))
print(srv.add_insecure_port("127.0.0.1:0"), flush=True)
srv.start()
sys.stdin.read()
'''


def _pachctl_env(p) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PACH_CONTEXT"}
    env.update({"PACHD_ADDRESS": f"127.0.0.1:{p.port}", "PACHCTL_NO_AUTOSTART": "1",
                "PACH_CONFIG": str(p.root.parent / "pachctl-config.json")})
    return env


def _median_pair(rounds: int, a, b) -> tuple[float, float, list, list]:
    ta, tb = [], []
    for i in range(rounds):
        if i % 2:
            tb.append(b())
            ta.append(a())
        else:
            ta.append(a())
            tb.append(b())
    return statistics.median(ta), statistics.median(tb), ta, tb


def b9_get_file(quick: bool) -> list[Result]:
    size = 256 * MiB if quick else GiB
    rounds = 3 if quick else 5
    out = []
    with workdir() as d, pachd() as p:
        from pachctl.client import PachClient
        from pachctl import local_read
        src = d / "big.bin"
        write_random_file(src, size, seed=9)
        env = _pachctl_env(p)
        subprocess.run([sys.executable, "-m", "pachctl", "create", "repo", "big"], check=True, env=env, cwd=REPO_ROOT)
        subprocess.run([sys.executable, "-m", "pachctl", "put", "file", "big@master:/big.bin", "-f", str(src)],
                       check=True, env=env, cwd=REPO_ROOT)
        packs = sorted(str(x) for x in (p.root / "chunks").rglob("*") if x.is_file() and not x.name.startswith("."))
        cat_packs = ["sh", "-c", 'cat "$@" > /dev/null', "cat", *packs]
        run(cat_packs)  # into the page cache: every timed read below is a cached read
        client = PachClient(f"127.0.0.1:{p.port}")
        file_msg = pb.File(commit=pb.Commit(repo=pb.Repo(name="big", type="user", project=pb.Project(name="default")),
                                            branch=pb.Branch(name="master", repo=pb.Repo(name="big", type="user",
                                                             project=pb.Project(name="default")))),
                           path="/big.bin")
        devnull = os.open("/dev/null", os.O_WRONLY)
        try:
            def ours_local() -> float:
                t0 = time.perf_counter()
                assert local_read.get_into(client, file_msg, 0, devnull), "the local read path was refused"
                return time.perf_counter() - t0

            t_local, t_cat, ls, cs = _median_pair(rounds, ours_local, lambda: run(cat_packs))
        finally:
            os.close(devnull)
        out.append(Result("B9-local", f"get file of a {size // MiB} MiB file by a client on pachd's machine "
                          "(pachd writes into the client's descriptor, /dev/null)", size / t_local / MiB, "MiB/s",
                          size / t_cat / MiB, "cat of pachd's stored pack files > /dev/null", ">= 0.8x cat",
                          size / t_local >= 0.8 * size / t_cat,
                          notes=f"median of {rounds} alternating rounds, all from the page cache (ours "
                                f"{', '.join(f'{t:.3f}' for t in ls)} s; cat {', '.join(f'{t:.3f}' for t in cs)} s); "
                                "every chunk re-hashed"))
        t_cli, t_cat2, cl, _ = _median_pair(
            rounds, lambda: run([sys.executable, "-m", "pachctl", "get", "file", "big@master:/big.bin"],
                                stdout=subprocess.DEVNULL, env=env, cwd=REPO_ROOT), lambda: run(cat_packs))
        out.append(Result("B9-cli", f"pachctl get file of the {size // MiB} MiB file > /dev/null (command start "
                          "included)", size / t_cli / MiB, "MiB/s", size / t_cat2 / MiB,
                          "cat of pachd's stored pack files > /dev/null", "(informative)", None))

        stub = pfs_pb2_grpc.APIStub(p.channel)

        def ours_stream() -> float:
            t0 = time.perf_counter()
            n = sum(len(m.value) for m in stub.GetFile(pb.GetFileRequest(file=file_msg)))
            assert n == size, n
            return time.perf_counter() - t0

        proc = subprocess.Popen([sys.executable, "-c", _FILE_STREAM_SERVER, str(src), str(MSG)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())
            with grpc.insecure_channel(f"127.0.0.1:{port}",
                                       options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
                call = ch.unary_stream("/bench.Stream/File")

                def bare() -> float:
                    t0 = time.perf_counter()
                    n = sum(len(m) for m in call(b""))
                    assert n == size, n
                    return time.perf_counter() - t0

                bare()  # the source file into the page cache, the channel up
                t_stream, t_bare, ss, bs = _median_pair(rounds, ours_stream, bare)
        finally:
            proc.stdin.close()
            proc.wait(10)
        client.close()
        out.append(Result("B9-remote", f"GetFile of the {size // MiB} MiB file streamed over gRPC (a remote "
                          "client's path), 1 MiB messages", size / t_stream / MiB, "MiB/s", size / t_bare / MiB,
                          "bare Python gRPC server streaming the same file in 1 MiB messages", ">= 0.5x bare stream",
                          size / t_stream >= 0.5 * size / t_bare,
                          notes=f"median of {rounds} alternating rounds (ours {', '.join(f'{t:.3f}' for t in ss)} s; "
                                f"bare {', '.join(f'{t:.3f}' for t in bs)} s)"))
    return out


ALL = [b9_get_file]
