"""pachctl start/stop/resume/finish/delete/inspect/list transaction against a real pachd."""
import json
import re

from proto.pfs_v2 import pfs_pb2 as pfs


def _repos(client):
    return sorted(r.repo.name for r in client.pfs.ListRepo(pfs.ListRepoRequest()))


def test_transaction_lifecycle(pachctl, ok, client, env):
    out = ok("start", "transaction")
    m = re.fullmatch(r'started new transaction: "([0-9a-f]{32})"\n', out)
    assert m, out
    txn = m.group(1)
    with open(env["PACH_CONFIG"]) as f:
        assert json.load(f)["v2"]["contexts"]["default"]["active_transaction"] == txn
    r = pachctl("create", "repo", "a")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", f"Added to transaction: {txn}\n")
    r = pachctl("start", "commit", "a@master")
    assert r.exit_code == 0 and r.stdout == f"{txn}\n" and r.stderr == f"Added to transaction: {txn}\n"
    assert _repos(client) == []  # queued, not run
    r = pachctl("start", "transaction")
    assert (r.exit_code, r.stderr) == (1, f'cannot start a new transaction, since transaction with ID "{txn}" already exists\n')
    inspect = ok("inspect", "transaction").splitlines()
    assert inspect[0] == f"ID: {txn}" and re.fullmatch(r"Started: .* ago", inspect[1])
    assert inspect[2:] == ["Requests:", "  create repo default/a", f"  start commit default/a@master ({txn})"]
    rows = ok("list", "transaction").splitlines()
    assert re.fullmatch(r"TRANSACTION +STARTED +OPS *", rows[0])
    assert rows[1].split()[0] == txn and rows[1].split()[-1] == "2"
    assert json.loads(ok("inspect", "transaction", txn, "--raw"))["transaction"]["id"] == txn
    # a request that cannot run is refused and not queued
    r = pachctl("create", "repo", "a")
    assert (r.exit_code, r.stderr) == (1, "error running request 3 of 3: repo default/a already exists\n")
    assert ok("stop", "transaction") == f"Cleared active transaction: {txn}\n"
    ok("create", "repo", "outside")  # runs now
    assert _repos(client) == ["outside"]
    assert ok("resume", "transaction", txn) == f"Resuming existing transaction with 2 requests: {txn}\n"
    assert ok("finish", "transaction") == f"Completed transaction with 2 requests: {txn}\n"
    assert _repos(client) == ["a", "outside"]
    r = pachctl("finish", "transaction")
    assert (r.exit_code, r.stderr) == (1, "no active transaction\n")


def test_delete_transaction(pachctl, ok, client):
    txn = re.search(r'"(\w+)"', ok("start", "transaction")).group(1)
    ok("create", "repo", "never")
    assert ok("delete", "transaction") == ""
    assert _repos(client) == [] and ok("list", "transaction").splitlines()[1:] == []
    ok("create", "repo", "now")  # the transaction is no longer active
    assert _repos(client) == ["now"]
    r = pachctl("inspect", "transaction", txn)
    assert (r.exit_code, r.stderr) == (1, f"transactions {txn} not found\n")
