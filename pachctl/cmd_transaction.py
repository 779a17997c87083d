"""Transactions: `start|stop|resume|finish|delete|inspect|list transaction`.

Invariants:
- The active transaction is the active context's `active_transaction` in the config file;
  every call pachctl makes carries it (`pach-transaction` metadata), and pachd queues the
  calls that run in transactions (create/delete repo, start/finish commit, create/delete
  branch, create/update pipeline, stop job): pachctl then says `Added to transaction: <id>`.
- Texts are Pachyderm's (src/server/transaction/cmds and pretty): `started new transaction:
  "<id>"`, `Completed transaction with N requests: <id>`, `no active transaction`, the
  TRANSACTION/STARTED/OPS table and the inspect template.
"""
from __future__ import annotations

import json
import sys

from pachctl.cli import CliError, command, emit, encoder, get_app, raw_options, timestamp_option
from pachctl.pfs_pretty import dt
from pachctl.pretty import GoTabWriter, ago, timestamp
from proto.transaction_v2 import transaction_pb2 as tpb
from proto.transaction_v2 import transaction_pb2_grpc


def _stub(app):
    c = app.client()
    return c._api(transaction_pb2_grpc.APIStub)


def _active(app) -> str:
    _, ctx = app.config.active_context(app.env, error_on_no_active=False)
    return (ctx or {}).get("active_transaction", "")


def _set_active(app, txn_id: str) -> None:
    cfg = app.config
    name, _ = cfg.active_context(app.env)
    cfg.update_context(name, active_transaction=txn_id)
    cfg.save()


def _require_active(app) -> str:
    txn = _active(app)
    if not txn:
        raise CliError("no active transaction")
    return txn


@command("list", "transaction", help="List transactions.")
@raw_options
@timestamp_option
def list_transaction(raw, output, full_timestamps):
    app = get_app()
    enc = encoder(raw, output)
    infos = _stub(app).ListTransaction(tpb.ListTransactionRequest()).transaction_info
    if enc:
        for info in infos:
            emit(enc, info)
        return
    w = GoTabWriter(sys.stdout)
    w.write("TRANSACTION\tSTARTED\tOPS\t\n")
    for info in infos:
        started = dt(info, "started")
        w.write(f"{info.transaction.id}\t{timestamp(started) if full_timestamps else ago(started)}\t"
                f"{len(info.requests)}\n")
    w.flush()


@command("start", "transaction", help="Start a new transaction.")
def start_transaction():
    app = get_app()
    current = _active(app)
    if current:
        raise CliError(f"cannot start a new transaction, since transaction with ID {json.dumps(current)} already exists")
    txn = _stub(app).StartTransaction(tpb.StartTransactionRequest())
    _set_active(app, txn.id)
    sys.stdout.write(f"started new transaction: {json.dumps(txn.id)}\n")


@command("stop", "transaction", help="Stop modifying the current transaction.")
def stop_transaction():
    app = get_app()
    txn = _require_active(app)
    _set_active(app, "")
    sys.stdout.write(f"Cleared active transaction: {txn}\n")


@command("finish", "transaction", arity=(0, 1), metavar="[<transaction>]",
         help="Execute and clear the currently active transaction.")
def finish_transaction(args):
    app = get_app()
    txn = args[0] if args else _require_active(app)
    info = _stub(app).FinishTransaction(tpb.FinishTransactionRequest(transaction=tpb.Transaction(id=txn)))
    _set_active(app, "")
    sys.stdout.write(f"Completed transaction with {len(info.responses)} requests: {info.transaction.id}\n")


@command("delete", "transaction", arity=(0, 1), metavar="[<transaction>]",
         help="Cancel and delete an existing transaction.")
def delete_transaction(args):
    app = get_app()
    active = _active(app)
    txn = args[0] if args else _require_active(app)
    _stub(app).DeleteTransaction(tpb.DeleteTransactionRequest(transaction=tpb.Transaction(id=txn)))
    if txn == active:
        _set_active(app, "")


@command("inspect", "transaction", arity=(0, 1), metavar="[<transaction>]",
         help="Print information about an open transaction.")
@raw_options
@timestamp_option
def inspect_transaction(args, raw, output, full_timestamps):
    app = get_app()
    enc = encoder(raw, output)
    txn = args[0] if args else _require_active(app)
    info = _stub(app).InspectTransaction(tpb.InspectTransactionRequest(transaction=tpb.Transaction(id=txn)))
    if enc:
        emit(enc, info)
        return
    started = dt(info, "started")
    lines = [f"ID: {info.transaction.id}",
             f"Started: {timestamp(started) if full_timestamps else ago(started)}", "Requests:"]
    reqs = [_describe(r, info.responses[i] if i < len(info.responses) else None)
            for i, r in enumerate(info.requests)]
    lines += [f"  {r}" for r in reqs] or ["  -"]
    sys.stdout.write("\n".join(lines) + "\n")


@command("resume", "transaction", arity=(1, 1), metavar="<transaction>",
         help="Set an existing transaction as active.")
def resume_transaction(args):
    app = get_app()
    info = _stub(app).InspectTransaction(tpb.InspectTransactionRequest(transaction=tpb.Transaction(id=args[0])))
    _set_active(app, info.transaction.id)
    sys.stdout.write(f"Resuming existing transaction with {len(info.requests)} requests: {info.transaction.id}\n")


def _describe(r: tpb.TransactionRequest, resp) -> str:
    """One request as Pachyderm's `inspect transaction` prints it."""
    kind = None
    for f in ("create_repo", "delete_repo", "start_commit", "finish_commit", "squash_commit_set",
              "create_branch", "delete_branch", "update_job_state", "stop_job", "create_pipeline_v2"):
        if r.HasField(f):
            kind = f
            break
    if kind == "create_repo":
        return f"{'update' if r.create_repo.update else 'create'} repo {_repo_str(r.create_repo.repo)}"
    if kind == "delete_repo":
        return f"delete repo {_repo_str(r.delete_repo.repo)} {' --force' if r.delete_repo.force else ''}"
    if kind == "start_commit":
        cid = resp.commit.id if resp is not None and resp.HasField("commit") else "ERROR (unknown response type)"
        return f"start commit {_branch_str(r.start_commit.branch)} ({cid})"
    if kind == "finish_commit":
        c = r.finish_commit.commit
        return f"finish commit {_repo_str(c.repo if c.repo.name else c.branch.repo)}@{c.id or c.branch.name}"
    if kind == "squash_commit_set":
        return f"squash commitset {r.squash_commit_set.commit_set.id}"
    if kind == "create_branch":
        return f"create branch {_branch_str(r.create_branch.branch)}"
    if kind == "delete_branch":
        return f"delete branch {_branch_str(r.delete_branch.branch)}{' --force' if r.delete_branch.force else ''}"
    if kind == "update_job_state":
        u = r.update_job_state
        state = {2: "STARTING", 3: "RUNNING", 4: "FAILURE", 5: "SUCCESS", 6: "KILLED"}.get(u.state, "<unknown state>")
        return f"update job {u.job.id} -> {state} ({u.reason})"
    if kind == "stop_job":
        return f"stop job {r.stop_job.job.pipeline.name}@{r.stop_job.job.id}"
    if kind == "create_pipeline_v2":
        req = r.create_pipeline_v2.create_pipeline_request
        project = req.pipeline.project.name or "default"
        return f"{'update' if req.update else 'create'} pipeline {project}/{req.pipeline.name}"
    return "ERROR (unknown request type)"


def _repo_str(r) -> str:
    """Pachyderm's Repo.String(): `project/name`, `project/name.type` for system repos."""
    name = f"{r.project.name or 'default'}/{r.name}"
    return name if r.type in ("", "user") else f"{name}.{r.type}"


def _branch_str(b) -> str:
    return f"{_repo_str(b.repo)}@{b.name}"
