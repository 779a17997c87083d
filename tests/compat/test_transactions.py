"""The transaction API (transaction_v2) as Pachyderm runs it: calls made with the
`pach-transaction` metadata are checked and queued, then applied together at finish; all
commits of a transaction form one commit set whose id is the transaction id."""
from __future__ import annotations

import textwrap

import grpc
import pytest
from pachyderm_sdk.api import pfs, pps, transaction

from tests.compat.helpers import run_pp
from tests.service.helpers import expect_error, get_bytes


def _repo(name):
    return pfs.Repo.from_uri(name)


def _names(client):
    return sorted(r.repo.name for r in client.pfs.list_repo())


def test_operations_wait_for_finish_and_share_one_commit_set(client):
    with client.transaction.transaction() as txn:
        client.pfs.create_repo(repo=_repo("a"))
        client.pfs.create_repo(repo=_repo("b"))
        ca = client.pfs.start_commit(branch=pfs.Branch.from_uri("a@master"))
        cb = client.pfs.start_commit(branch=pfs.Branch.from_uri("b@master"))
        client.pfs.create_branch(branch=pfs.Branch.from_uri("a@dev"), head=ca)
        assert ca.id == cb.id == txn.id  # the answer a finish will produce
        assert _names(client) == []  # nothing happened yet
        info = client.transaction.inspect_transaction(transaction=txn)
        assert [r.to_dict().popitem()[0] for r in info.requests] == [
            "createRepo", "createRepo", "startCommit", "startCommit", "createBranch"]
        assert info.responses[2].commit.id == txn.id and info.version == 5
    assert _names(client) == ["a", "b"]
    assert not client.transaction.transaction_exists(txn)
    commits = list(client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=txn.id)))
    assert sorted(c.commit.repo.name for c in commits) == ["a", "b"]
    assert client.pfs.inspect_branch(branch=pfs.Branch.from_uri("a@dev")).head.id == txn.id
    for c in (ca, cb):
        client.pfs.put_file_from_bytes(commit=c, path="/f", data=c.repo.name.encode())
        client.pfs.finish_commit(commit=c)
    assert get_bytes(client, pfs.File(commit=pfs.Commit.from_uri("b@master"), path="/f")) == b"b"


def test_a_request_that_cannot_run_is_refused_and_not_added(client):
    client.pfs.create_repo(repo=_repo("exists"))
    txn = client.transaction.start_transaction()
    client.pfs.create_repo(repo=_repo("new"))
    d = expect_error(grpc.StatusCode.ALREADY_EXISTS, client.pfs.create_repo, repo=_repo("exists"))
    assert d == "error running request 2 of 2: repo default/exists already exists"
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.pfs.start_commit, branch=pfs.Branch.from_uri("nope@master"))
    assert d == "error running request 2 of 2: repo default/nope not found"
    assert len(client.transaction.inspect_transaction(transaction=txn).requests) == 1
    info = client.transaction.finish_transaction(transaction=txn)
    assert len(info.requests) == 1 and _names(client) == ["exists", "new"]


def test_finish_is_all_or_nothing(client):
    txn = client.transaction.start_transaction()
    client.pfs.create_repo(repo=_repo("first"))
    client.pfs.create_repo(repo=_repo("second"))
    client.transaction_id = ""  # outside the transaction, someone takes the second name
    client.pfs.create_repo(repo=_repo("second"))
    d = expect_error(grpc.StatusCode.ALREADY_EXISTS, client.transaction.finish_transaction, transaction=txn)
    assert d == "error running request 2 of 2: repo default/second already exists"
    assert _names(client) == ["second"]  # "first" was not created either
    assert not client.transaction.transaction_exists(txn)


def test_delete_list_batch_and_not_found(client):
    t1 = client.transaction.start_transaction()
    client.pfs.create_repo(repo=_repo("never"))
    client.transaction_id = ""
    t2 = client.transaction.start_transaction()
    client.transaction_id = ""
    ids = {i.transaction.id for i in client.transaction.list_transaction().transaction_info}
    assert ids == {t1.id, t2.id}
    client.transaction.delete_transaction(transaction=t1)
    assert _names(client) == []
    d = expect_error(grpc.StatusCode.NOT_FOUND, client.transaction.inspect_transaction, transaction=t1)
    assert d == f"transactions {t1.id} not found"
    client.transaction.delete_all()
    assert client.transaction.list_transaction().transaction_info == []
    info = client.transaction.batch_transaction(requests=[
        transaction.TransactionRequest(create_repo=pfs.CreateRepoRequest(repo=_repo("x"))),
        transaction.TransactionRequest(start_commit=pfs.StartCommitRequest(branch=pfs.Branch.from_uri("x@master"))),
        transaction.TransactionRequest(finish_commit=pfs.FinishCommitRequest(commit=pfs.Commit.from_uri("x@master"))),
    ])
    assert info.responses[1].commit.id == info.transaction.id
    assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri("x@master")).finished


def test_pipeline_created_in_a_transaction_sees_its_inputs_as_one_job(pps_client):
    c = pps_client
    spec = pps.CreatePipelineRequest(
        pipeline=pps.Pipeline(name="cat"),
        transform=pps.Transform(cmd=["sh"], stdin=["cat /pfs/left/* /pfs/right/* > /pfs/out/both"]),
        input=pps.Input(cross=[pps.Input(pfs=pps.PfsInput(repo="left", glob="/")),
                               pps.Input(pfs=pps.PfsInput(repo="right", glob="/"))]))
    with c.transaction.transaction() as txn:
        c.pfs.create_repo(repo=_repo("left"))
        c.pfs.create_repo(repo=_repo("right"))
        c.pps.create_pipeline(**{k: getattr(spec, k) for k in ("pipeline", "transform", "input")})
        cl = c.pfs.start_commit(branch=pfs.Branch.from_uri("left@master"))
        cr = c.pfs.start_commit(branch=pfs.Branch.from_uri("right@master"))
    # a pipeline on a repo that neither exists nor is created in the transaction is refused
    with c.transaction.transaction():
        d = expect_error(grpc.StatusCode.NOT_FOUND, c.pps.create_pipeline, pipeline=pps.Pipeline(name="bad"),
                         transform=spec.transform, input=pps.Input(pfs=pps.PfsInput(repo="missing", glob="/")))
        assert d == "error running request 1 of 1: repo default/missing not found"
    c.pfs.put_file_from_bytes(commit=cl, path="/l", data=b"L")
    c.pfs.put_file_from_bytes(commit=cr, path="/r", data=b"R")
    c.pfs.finish_commit(commit=cl)
    c.pfs.finish_commit(commit=cr)
    job = c.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name="cat"), id=txn.id), wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS and job.data_total == 1, job.reason
    # the transaction's output commit reads both input commits of the transaction
    out = c.pfs.inspect_commit(commit=pfs.Commit(repo=_repo("cat"), id=txn.id))
    assert {(p.repo.name, p.id) for p in out.direct_provenance if p.repo.name != "cat"} == {
        ("left", txn.id), ("right", txn.id)}
    assert get_bytes(c, pfs.File(commit=pfs.Commit.from_uri("cat@master"), path="/both")) == b"LR"


PP_SCRIPT = textwrap.dedent('''
    import sys, python_pachyderm
    from python_pachyderm.service import pfs_proto, transaction_proto
    c = python_pachyderm.Client(host="127.0.0.1", port=int(sys.argv[1]))
    with c.transaction() as t:
        c.create_repo("foo")
        c.create_repo("bar")
        c1 = c.start_commit("foo", "master")
        c2 = c.start_commit("bar", "master")
        assert c1.id == c2.id == t.id
        assert list(c.list_repo()) == []
    c.put_file_bytes(c1, "/x", b"1")
    c.put_file_bytes(c2, "/x", b"2")
    c.finish_commit(c1)
    c.finish_commit(c2)
    assert sorted(r.repo.name for r in c.list_repo()) == ["bar", "foo"]
    assert sorted(ci.commit.repo.name for ci in c.inspect_commit(t.id)) == ["bar", "foo"]
    t2 = c.start_transaction()   # python-pachyderm does not switch to it by itself
    c.transaction_id = t2.id
    c.create_repo("later")
    c.transaction_id = None
    assert [i.transaction.id for i in c.list_transaction()] == [t2.id]
    assert len(c.inspect_transaction(t2).requests) == 1
    c.delete_transaction(t2)
    info = c.batch_transaction([transaction_proto.TransactionRequest(
        create_repo=pfs_proto.CreateRepoRequest(repo=pfs_proto.Repo(name="batched", type="user")))])
    assert sorted(r.repo.name for r in c.list_repo()) == ["bar", "batched", "foo"]
    c.start_transaction()
    c.transaction_id = None
    c.delete_all_transactions()
    assert list(c.list_transaction()) == []
    print("ok")
''')


@pytest.mark.slow
def test_python_pachyderm_transactions(pp_python, pachd):
    run_pp(pp_python, PP_SCRIPT, pachd.port)
