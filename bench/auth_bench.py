"""A1: InspectFile latency with auth on vs off (goal <= 1.2x).

Two pachd processes from the same code, each with one repo holding one file: one with auth
off, one with auth on where the caller is a robot user holding repoReader on the repo (so
every call is authenticated and its roles evaluated, not the root shortcut). Rounds
alternate between the two; the figure is the median per-call latency over all rounds.
"""
from __future__ import annotations

import statistics
import time

from google.protobuf.wrappers_pb2 import BytesValue

from bench.common import PachdProcess, Result, workdir
from proto.auth_v2 import auth_pb2, auth_pb2_grpc
from proto.pfs_v2 import pfs_pb2 as pb
from proto.pfs_v2 import pfs_pb2_grpc


def _setup(p: PachdProcess, auth_on: bool) -> tuple:
    """(stub, metadata) for InspectFile calls as the measured caller."""
    pfs = pfs_pb2_grpc.APIStub(p.channel)
    md: tuple = ()
    if auth_on:
        a = auth_pb2_grpc.APIStub(p.channel)
        root = a.Activate(auth_pb2.ActivateRequest()).pach_token
        md = (("authn-token", root),)
    repo = pb.Repo(name="r", type="user", project=pb.Project(name="default"))
    pfs.CreateRepo(pb.CreateRepoRequest(repo=repo), metadata=md)
    commit = pb.Commit(repo=repo, branch=pb.Branch(repo=repo, name="master"))
    pfs.ModifyFile(iter([pb.ModifyFileRequest(set_commit=commit),
                         pb.ModifyFileRequest(add_file=pb.AddFile(path="/f", raw=BytesValue(value=b"x" * 1024)))]), metadata=md)
    if auth_on:
        a = auth_pb2_grpc.APIStub(p.channel)
        bot = a.GetRobotToken(auth_pb2.GetRobotTokenRequest(robot="bench"), metadata=md).token
        a.ModifyRoleBinding(auth_pb2.ModifyRoleBindingRequest(
            resource=auth_pb2.Resource(type=auth_pb2.REPO, name="default/r"), principal="robot:bench",
            roles=["repoReader"]), metadata=md)
        md = (("authn-token", bot),)
    req = pb.InspectFileRequest(file=pb.File(commit=commit, path="/f"))
    return pfs, md, req


def _round(stub, md, req, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        stub.InspectFile(req, metadata=md)
        out.append(time.perf_counter() - t)
    return out


def a1_inspect_file_auth(quick: bool) -> list[Result]:
    n, rounds = (200, 3) if quick else (1000, 7)
    with workdir("auth-bench-") as d:
        off = PachdProcess(d / "off" / "data")
        on = PachdProcess(d / "on" / "data")
        try:
            s_off, s_on = _setup(off, False), _setup(on, True)
            _round(*s_off, 50)
            _round(*s_on, 50)  # warm-up
            t_off: list[float] = []
            t_on: list[float] = []
            for i in range(rounds):  # alternate who goes first
                pair = [(s_off, t_off), (s_on, t_on)]
                for s, acc in (pair if i % 2 == 0 else pair[::-1]):
                    acc += _round(*s, n)
        finally:
            off.stop()
            on.stop()
    m_on, m_off = statistics.median(t_on) * 1e6, statistics.median(t_off) * 1e6
    ratio = m_on / m_off
    return [Result("A1", "InspectFile latency, auth on (robot user with repoReader)", m_on, "µs", m_off,
                   "same call, auth off", "<= 1.2x auth off", ratio <= 1.2,
                   notes=f"median of {len(t_on):,} calls each, {rounds} alternating rounds; "
                         f"p90 {sorted(t_on)[int(len(t_on) * .9)] * 1e6:.0f} vs "
                         f"{sorted(t_off)[int(len(t_off) * .9)] * 1e6:.0f} µs")]


ALL = [a1_inspect_file_auth]
