"""A pachd killed (-9, failpoint `pipeline.before_grant`) after creating a pipeline and before
saving its role bindings: at the next start its creator owns the output repo and the pipeline
reads its input and writes its output, as if nothing had happened. Outside a transaction and
inside one (BatchTransaction)."""
from __future__ import annotations

import os

import grpc
import pytest

from proto.auth_v2 import auth_pb2, auth_pb2_grpc
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from proto.pps_v2 import pps_pb2, pps_pb2_grpc
from proto.transaction_v2 import transaction_pb2, transaction_pb2_grpc
from tests.reliability.harness import CrashablePachd

pytestmark = pytest.mark.slow


def _repo(name):
    return pfs_pb2.Repo(name=name, type="user", project=pfs_pb2.Project(name="default"))


def _pipeline(name, input_repo):
    return pps_pb2.CreatePipelineRequest(
        pipeline=pps_pb2.Pipeline(name=name, project=pfs_pb2.Project(name="default")),
        transform=pps_pb2.Transform(cmd=["true"]),
        input=pps_pb2.Input(pfs=pps_pb2.PFSInput(repo=input_repo, glob="/*")))


def _bindings(port, root, repo):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = auth_pb2_grpc.APIStub(ch).GetRoleBinding(
            auth_pb2.GetRoleBindingRequest(resource=auth_pb2.Resource(type=auth_pb2.REPO, name=f"default/{repo}")),
            metadata=(("authn-token", root),), timeout=30)
    return {s: sorted(r for r, on in v.roles.items() if on) for s, v in resp.binding.entries.items()}


def _activate_with_alice(ch):
    """Activate auth: (the root token, call metadata of a new robot user alice)."""
    auth = auth_pb2_grpc.APIStub(ch)
    root = auth.Activate(auth_pb2.ActivateRequest(), timeout=30).pach_token
    alice_token = auth.GetRobotToken(auth_pb2.GetRobotTokenRequest(robot="alice"),
                                     metadata=(("authn-token", root),), timeout=30).token
    return root, (("authn-token", alice_token),)


@pytest.mark.parametrize("in_transaction", [False, True])
def test_pipeline_grants_survive_a_crash(tmp_path, in_transaction):
    p = CrashablePachd(tmp_path, env={**os.environ, "PACHD_EXECUTOR": "none"})
    p.start(failpoints="pipeline.before_grant")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{p.port}") as ch:
            root, alice = _activate_with_alice(ch)
            client = p.client()
            client.pfs.CreateRepo(pfs_pb2.CreateRepoRequest(repo=_repo("in")), metadata=alice, timeout=30)
            client.close()
            with pytest.raises(grpc.RpcError) as ei:
                if in_transaction:
                    transaction_pb2_grpc.APIStub(ch).BatchTransaction(transaction_pb2.BatchTransactionRequest(
                        requests=[transaction_pb2.TransactionRequest(
                            create_pipeline_v2=pps_pb2.CreatePipelineTransaction(
                                create_pipeline_request=_pipeline("p", "in")))]),
                        metadata=alice, timeout=30)
                else:
                    pps_pb2_grpc.APIStub(ch).CreatePipeline(_pipeline("p", "in"), metadata=alice, timeout=30)
            assert ei.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                       grpc.StatusCode.UNKNOWN), ei.value
        assert p.wait_dead(30) and p.fired("pipeline.before_grant"), p.log_tail()
        p.start()
        assert _bindings(p.port, root, "p") == {"robot:alice": ["repoOwner"], "pipeline:default/p": ["repoWriter"]}
        assert _bindings(p.port, root, "in") == {"robot:alice": ["repoOwner"], "pipeline:default/p": ["repoReader"]}
        assert "saved the role bindings of pipelines created just before a crash" in p.log()
    finally:
        p.stop()


def test_repo_owner_survives_a_crash(tmp_path):
    """The same for CreateRepo outside a transaction (failpoint `repo.before_grant`): the repo
    was created, its creator's repoOwner not yet saved; after the restart alice owns it, and
    the intent is applied once: a later start and a refused second create change nothing."""
    p = CrashablePachd(tmp_path, env={**os.environ, "PACHD_EXECUTOR": "none"})
    p.start(failpoints="repo.before_grant")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{p.port}") as ch:
            root, alice = _activate_with_alice(ch)
            client = p.client()
            with pytest.raises(grpc.RpcError) as ei:
                client.pfs.CreateRepo(pfs_pb2.CreateRepoRequest(repo=_repo("mine")), metadata=alice, timeout=30)
            client.close()
            assert ei.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                       grpc.StatusCode.UNKNOWN), ei.value
        assert p.wait_dead(30) and p.fired("repo.before_grant"), p.log_tail()
        p.start()
        assert _bindings(p.port, root, "mine") == {"robot:alice": ["repoOwner"]}
        assert "saved the owners of repos created just before a crash" in p.log()
        with grpc.insecure_channel(f"127.0.0.1:{p.port}") as ch:  # refused: no intent, no owner
            with pytest.raises(grpc.RpcError) as ei:
                pfs_pb2_grpc.APIStub(ch).CreateRepo(pfs_pb2.CreateRepoRequest(repo=_repo("mine")),
                                                    metadata=(("authn-token", root),), timeout=30)
            assert ei.value.code() == grpc.StatusCode.ALREADY_EXISTS
        p.stop()
        p.start()
        assert "saved the owners of repos created just before a crash" not in p.log()  # this start's log: done once
        assert _bindings(p.port, root, "mine") == {"robot:alice": ["repoOwner"]}
    finally:
        p.stop()
