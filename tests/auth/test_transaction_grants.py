"""Auth changes of calls queued in a transaction happen when the transaction applies them, on
a real pachd through pachyderm_sdk: a queued CreateRepo or CreatePipeline grants nothing until
FinishTransaction (and then to whoever queued it), a deleted transaction leaves no grant, a
queued DeleteRepo drops nothing until applied, and a crash between the pfs commit and the
auth file is repaired at the next start."""
from __future__ import annotations

import json

from pachyderm_sdk.api import auth, pfs, pps

from pachd.server import Pachd

PROJECT = auth.Resource(type=auth.ResourceType.PROJECT, name="default")


def repo_res(name: str) -> auth.Resource:
    return auth.Resource(type=auth.ResourceType.REPO, name=f"default/{name}")


def entries(admin, name: str) -> dict[str, set]:
    got = admin.auth.get_role_binding(resource=repo_res(name)).binding.entries
    return {k: set(v.roles) for k, v in got.items()}


def _alice(admin, clients):
    token = admin.auth.get_robot_token(robot="alice").token
    admin.auth.modify_role_binding(resource=PROJECT, principal="robot:alice", roles=["projectWriter"])
    return token, clients(token), clients(token)  # one client queues, the other finishes/deletes


def test_queued_create_repo_grants_only_when_applied(server, clients, root):
    admin = clients(root)
    token, queuer, alice = _alice(admin, clients)

    txn = queuer.transaction.start_transaction()
    queuer.pfs.create_repo(repo=pfs.Repo(name="t1"))
    # committing to a repo she creates earlier in the transaction: hers already for the check
    queuer.pfs.start_commit(branch=pfs.Branch.from_uri("t1@master"))
    assert entries(admin, "t1") == {}  # queued: no grant yet
    alice.transaction.delete_transaction(transaction=txn)
    assert not admin.pfs.repo_exists(pfs.Repo(name="t1"))
    assert entries(admin, "t1") == {}  # the deleted transaction left nothing behind
    # a new repo of that name by someone else is not alice's
    admin.pfs.create_repo(repo=pfs.Repo(name="t1"))
    assert "robot:alice" not in entries(admin, "t1")

    # finished by another user: the grant goes to the one who queued the call
    bob = clients(admin.auth.get_robot_token(robot="bob").token)
    txn = queuer.transaction.start_transaction()
    queuer.pfs.create_repo(repo=pfs.Repo(name="t2"))
    assert entries(admin, "t2") == {}
    bob.transaction.finish_transaction(transaction=txn)
    assert entries(admin, "t2") == {"robot:alice": {"repoOwner"}}


def test_queued_delete_repo_drops_bindings_only_when_applied(server, clients, root):
    admin = clients(root)
    token, queuer, alice = _alice(admin, clients)
    alice.pfs.create_repo(repo=pfs.Repo(name="mine"))
    assert entries(admin, "mine") == {"robot:alice": {"repoOwner"}}
    txn = queuer.transaction.start_transaction()
    queuer.pfs.delete_repo(repo=pfs.Repo(name="mine"))
    alice.transaction.delete_transaction(transaction=txn)
    assert entries(admin, "mine") == {"robot:alice": {"repoOwner"}}  # still hers
    txn = queuer.transaction.start_transaction()
    queuer.pfs.delete_repo(repo=pfs.Repo(name="mine"))
    alice.transaction.finish_transaction(transaction=txn)
    assert not admin.pfs.repo_exists(pfs.Repo(name="mine")) and entries(admin, "mine") == {}


def test_queued_create_pipeline_grants_only_when_applied(server, clients, root):
    admin = clients(root)
    token, queuer, alice = _alice(admin, clients)

    def queue_pipeline():
        txn = queuer.transaction.start_transaction()
        queuer.pfs.create_repo(repo=pfs.Repo(name="in"))
        queuer.pps.create_pipeline(pipeline=pps.Pipeline(name="p"), transform=pps.Transform(cmd=["true"]),
                                   input=pps.Input(pfs=pps.PfsInput(repo="in", glob="/*")))
        return txn

    txn = queue_pipeline()
    assert entries(admin, "in") == {} and entries(admin, "p") == {}
    alice.transaction.delete_transaction(transaction=txn)
    assert entries(admin, "in") == {} and entries(admin, "p") == {}  # no owner, no pipeline: bindings

    alice.transaction.finish_transaction(transaction=queue_pipeline())
    assert entries(admin, "in") == {"robot:alice": {"repoOwner"}, "pipeline:default/p": {"repoReader"}}
    assert entries(admin, "p") == {"robot:alice": {"repoOwner"}, "pipeline:default/p": {"repoWriter"}}


def test_updating_a_repo_does_not_make_a_writer_its_owner(server, clients, root):
    admin = clients(root)
    admin.pfs.create_repo(repo=pfs.Repo(name="shared"))
    carol = clients(admin.auth.get_robot_token(robot="carol").token)
    admin.auth.modify_role_binding(resource=repo_res("shared"), principal="robot:carol", roles=["repoWriter"])
    carol.pfs.create_repo(repo=pfs.Repo(name="shared"), description="new words", update=True)
    assert admin.pfs.inspect_repo(repo=pfs.Repo(name="shared")).description == "new words"
    assert entries(admin, "shared") == {"robot:carol": {"repoWriter"}}


def test_grants_committed_with_the_repo_are_applied_after_a_crash(tmp_path, monkeypatch):
    """The list of auth changes is written in the core transaction that creates the repo; if
    pachd dies before saving them to the auth file, the next start applies them."""
    from pfs.core.keys import pachd_key
    from proto.pfs_v2 import pfs_pb2
    monkeypatch.setenv("PACHD_EXECUTOR", "none")
    root_dir = tmp_path / "pachd"
    p = Pachd(root_dir, port=0, host="127.0.0.1").start()
    try:
        root = p.authn.auth.activate()
        p.authn.auth.issue_token("robot:dave")
        p.pfs.create_repo(pfs_model_repo("late"))  # the repo exists, its grant not yet saved
        effect = {"kind": "create_repo", "caller": "robot:dave", "state": {"repo_existed": False},
                  "request": __import__("base64").b64encode(pfs_pb2.CreateRepoRequest(
                      repo=pfs_pb2.Repo(name="late", type="user")).SerializeToString()).decode()}
        p.meta.put(pachd_key("txnauth", "crashed", "00000000"), json.dumps([effect]).encode())
    finally:
        p.stop(grace=0.5)
    p = Pachd(root_dir, port=0, host="127.0.0.1").start()
    try:
        from auth.model import repo_resource
        assert p.authn.auth.get_binding(repo_resource("default", "late")) == {"robot:dave": ["repoOwner"]}
        assert list(p.meta.scan(prefix=b"Y\x00txnauth")) == []
        assert root
    finally:
        p.stop(grace=0.5)


def pfs_model_repo(name):
    from pfs.model import Repo
    return Repo("default", name, "user")
