"""transaction_v2: Pachyderm's transactions (start, add operations, finish or delete).

A client starts a transaction and sends later calls with the `pach-transaction` metadata.
Calls that Pachyderm runs inside transactions (CreateRepo, DeleteRepo, StartCommit,
FinishCommit, SquashCommitSet, CreateBranch, DeleteBranch, UpdateJobState, StopJob,
CreatePipeline[V2]) are then not executed but appended to the transaction; the rest run as
usual. FinishTransaction runs everything; BatchTransaction appends and finishes in one call.

Invariants:
- Appending first dry-runs the whole transaction with the new request (nothing written):
  a request that cannot run is refused at once with Pachyderm's message
  `error running request i of n: ...` and is not added. StartCommit's answer (the commit
  and its id) is the one the finish will produce: every commit a transaction makes belongs
  to the commit set whose id is the transaction id, as in Pachyderm.
- Finishing applies consecutive pfs requests as ONE atomic core transaction (all or none).
  A pipeline request (CreatePipeline, StopJob, UpdateJobState) applies on its own, in order,
  between them: pfs requests before it stay applied if it fails (reported like Pachyderm,
  `error running request i of n: ...`). In the dry run pipeline requests are checked without
  touching the pipeline system (spec, project, input repos including ones the transaction
  creates, job state).
- Open transactions are records in the metadata store (`Y\\0txn\\0<id>`), so they survive a
  restart; appends and finishes are serialized.
- Auth (when `auth_effects` is set): who queued each request is kept next to the
  transaction (`Y\\0txncaller\\0<id>`); what a request changes for auth (its creator's
  repoOwner, a pipeline's bindings, a deleted repo's bindings dropped) is done only when the
  request is applied, never when it is queued, so a deleted transaction leaves no grant. For
  pfs requests the list of those changes is written in the same atomic core transaction as
  the requests (`Y\\0txnauth\\0<id>\\0<first request>`), applied right after it and then removed; one left
  by a crash in between is applied at the next start (`replay_pending`), so a repo a
  transaction created always gets its owner. A pipeline request's changes are made right
  after it succeeds (as for a CreatePipeline outside a transaction), and an intent record
  written before it runs makes them survive a crash in between (auth_effects.begin).
- python-pachyderm 7.6 (Pachyderm 2.7) batches pipelines as TransactionRequest field 9
  (`create_pipeline`), which 2.12 reserved; it is read from the unknown fields and run.
"""
from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from typing import Callable, Optional

import grpc
from google.protobuf import empty_pb2, json_format
from google.protobuf import unknown_fields

from pfs.core.keys import pachd_key, pachd_prefix
from pfs.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PfsError
from pfs.service.errors import rpc
from pps.store import TERMINAL
from proto.pfs_v2 import pfs_pb2
from proto.pps_v2 import pps_pb2
from proto.transaction_v2 import transaction_pb2 as tpb
from proto.transaction_v2 import transaction_pb2_grpc

log = logging.getLogger("pachd.transactions")
METADATA_KEY = "pach-transaction"
PFS_KINDS = ("create_repo", "delete_repo", "start_commit", "finish_commit", "squash_commit_set",
             "create_branch", "delete_branch")
PPS_KINDS = ("update_job_state", "stop_job", "create_pipeline_v2")
LEGACY_CREATE_PIPELINE = 9  # python-pachyderm 7.6's TransactionRequest.create_pipeline
EMPTY = empty_pb2.Empty()

# RPC path -> (request class, TransactionRequest field, answer built from (request, response))
INTERCEPTED: dict[str, tuple] = {
    "/pfs_v2.API/CreateRepo": (pfs_pb2.CreateRepoRequest, "create_repo", lambda r, resp: EMPTY),
    "/pfs_v2.API/DeleteRepo": (pfs_pb2.DeleteRepoRequest, "delete_repo",
                               lambda r, resp: pfs_pb2.DeleteRepoResponse(deleted=True)),
    "/pfs_v2.API/StartCommit": (pfs_pb2.StartCommitRequest, "start_commit", lambda r, resp: resp.commit),
    "/pfs_v2.API/FinishCommit": (pfs_pb2.FinishCommitRequest, "finish_commit", lambda r, resp: EMPTY),
    "/pfs_v2.API/SquashCommitSet": (pfs_pb2.SquashCommitSetRequest, "squash_commit_set", lambda r, resp: EMPTY),
    "/pfs_v2.API/CreateBranch": (pfs_pb2.CreateBranchRequest, "create_branch", lambda r, resp: EMPTY),
    "/pfs_v2.API/DeleteBranch": (pfs_pb2.DeleteBranchRequest, "delete_branch", lambda r, resp: EMPTY),
    "/pps_v2.API/UpdateJobState": (pps_pb2.UpdateJobStateRequest, "update_job_state", lambda r, resp: EMPTY),
    "/pps_v2.API/StopJob": (pps_pb2.StopJobRequest, "stop_job", lambda r, resp: EMPTY),
    "/pps_v2.API/CreatePipeline": (pps_pb2.CreatePipelineRequest, "create_pipeline_v2", lambda r, resp: EMPTY),
    "/pps_v2.API/CreatePipelineV2": (pps_pb2.CreatePipelineV2Request, "create_pipeline_v2",
                                     lambda r, resp: pps_pb2.CreatePipelineV2Response(
                                         effective_create_pipeline_request_json=r.create_pipeline_request_json)),
}


def _to_txn_request(field: str, req) -> tpb.TransactionRequest:
    out = tpb.TransactionRequest()
    if field != "create_pipeline_v2":
        getattr(out, field).CopyFrom(req)
        return out
    cpt = out.create_pipeline_v2
    if isinstance(req, pps_pb2.CreatePipelineV2Request):
        try:
            spec = json.loads(req.create_pipeline_request_json or "{}")
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"pipeline spec is not valid JSON: {e}") from e
        json_format.ParseDict(spec, cpt.create_pipeline_request, ignore_unknown_fields=True)
        cpt.user_json = req.create_pipeline_request_json
        cpt.create_pipeline_request.update = req.update or cpt.create_pipeline_request.update
        cpt.create_pipeline_request.reprocess = req.reprocess or cpt.create_pipeline_request.reprocess
    else:
        cpt.create_pipeline_request.CopyFrom(req)
    return out


def request_kind(r: tpb.TransactionRequest) -> str:
    for f in PFS_KINDS + PPS_KINDS:
        if r.HasField(f):
            return f
    for field in unknown_fields.UnknownFieldSet(r):
        if field.field_number == LEGACY_CREATE_PIPELINE:
            return "create_pipeline_legacy"
    return ""


def _legacy_pipeline(r: tpb.TransactionRequest) -> pps_pb2.CreatePipelineRequest:
    for field in unknown_fields.UnknownFieldSet(r):
        if field.field_number == LEGACY_CREATE_PIPELINE:
            return pps_pb2.CreatePipelineRequest.FromString(field.data)
    raise InvalidArgument("no pipeline in the request")


def auth_view(r: tpb.TransactionRequest, kind: str) -> tuple[str, object]:
    """(kind, request) as auth rules see a transaction request: every pipeline request is a
    `create_pipeline` with its CreatePipelineRequest."""
    if kind == "create_pipeline_legacy":
        return "create_pipeline", _legacy_pipeline(r)
    if kind == "create_pipeline_v2":
        return "create_pipeline", r.create_pipeline_v2.create_pipeline_request
    return kind, getattr(r, kind)


def _request_class(kind: str):
    if kind == "create_pipeline":
        return pps_pb2.CreatePipelineRequest
    return type(getattr(tpb.TransactionRequest(), kind))


class TransactionRunner:
    """Stores open transactions and runs them against pfs (atomically) and pps."""

    def __init__(self, pfs, pfs_servicer, get_pps: Callable[[], Optional[object]]):
        self.pfs = pfs
        self.pfs_servicer = pfs_servicer
        self.get_pps = get_pps  # the PpsServicer, or None when pps is off
        self.meta = pfs.meta
        self._lock = threading.Lock()
        # set by pachd's auth wiring: caller(metadata) -> subject or "";
        # prepare(kind, request, caller) -> state dict or None (nothing to do);
        # apply(kind, request, caller, state) -> None
        self.auth_effects = None

    # ---- records ---------------------------------------------------------------------------
    def _key(self, txn_id: str) -> bytes:
        return pachd_key("txn", txn_id)

    def _callers_key(self, txn_id: str) -> bytes:
        return pachd_key("txncaller", txn_id)

    def _pending_key(self, txn_id: str, first: int) -> bytes:
        return pachd_key("txnauth", txn_id, f"{first:08d}")

    def caller_of(self, metadata) -> str:
        return self.auth_effects.caller(metadata) if self.auth_effects is not None else ""

    def callers(self, txn_id: str, n: int) -> list[str]:
        """Who queued each of the transaction's first n requests ("" if unknown)."""
        raw = self.meta.get(self._callers_key(txn_id))
        got = json.loads(raw) if raw else []
        return (got + [""] * n)[:n]

    def created_by(self, txn_id: str, subject: str) -> list[tuple[str, str]]:
        """(project, repo) of the repos `subject`'s queued requests in the transaction create."""
        try:
            info = self.load(txn_id)
        except NotFound:
            return []
        out = []
        for r, who in zip(info.requests, self.callers(txn_id, len(info.requests))):
            if who != subject:
                continue
            kind = request_kind(r)
            if kind == "create_repo":
                out.append((r.create_repo.repo.project.name or "default", r.create_repo.repo.name))
            elif kind in ("create_pipeline_v2", "create_pipeline_legacy"):
                p = auth_view(r, kind)[1].pipeline
                out.append((p.project.name or "default", p.name))
        return out

    def load(self, txn_id: str) -> tpb.TransactionInfo:
        raw = self.meta.get(self._key(txn_id)) if txn_id else None
        if raw is None:
            raise NotFound(f"transactions {txn_id} not found")
        return tpb.TransactionInfo.FromString(raw)

    def _save(self, info: tpb.TransactionInfo) -> None:
        self.meta.put(self._key(info.transaction.id), info.SerializeToString())

    def start(self) -> tpb.Transaction:
        info = tpb.TransactionInfo(transaction=tpb.Transaction(id=uuid.uuid4().hex))
        info.started.FromNanoseconds(time.time_ns())
        self._save(info)
        return info.transaction

    def list(self) -> list[tpb.TransactionInfo]:
        return [tpb.TransactionInfo.FromString(v) for _, v in self.meta.scan(prefix=pachd_prefix("txn"))]

    def delete(self, txn_id: str) -> None:
        with self._lock:
            self.load(txn_id)
            self._forget(txn_id)

    def _forget(self, txn_id: str) -> None:
        self.meta.delete(self._key(txn_id))
        self.meta.delete(self._callers_key(txn_id))

    def delete_all(self, keep: str = "") -> None:
        with self._lock:
            for info in self.list():
                if info.transaction.id != keep:
                    self._forget(info.transaction.id)

    # ---- append / finish -------------------------------------------------------------------
    def append(self, txn_id: str, request: tpb.TransactionRequest, caller: str = "") -> tpb.TransactionResponse:
        with self._lock:
            info = self.load(txn_id)
            callers = self.callers(txn_id, len(info.requests)) + [caller]
            info.requests.append(request)
            responses = self._run(info, dry_run=True)
            del info.responses[:]
            info.responses.extend(responses)
            info.version += 1
            self.meta.put(self._callers_key(txn_id), json.dumps(callers).encode())
            self._save(info)
            return responses[-1]

    def finish(self, txn_id: str) -> tpb.TransactionInfo:
        with self._lock:
            info = self.load(txn_id)
            callers = self.callers(txn_id, len(info.requests))
            try:
                responses = self._run(info, dry_run=False, callers=callers)
            finally:
                self._forget(txn_id)  # as in Pachyderm: a failed finish ends it too
            del info.responses[:]
            info.responses.extend(responses)
            return info

    def batch(self, requests, caller: str = "") -> tpb.TransactionInfo:
        info = tpb.TransactionInfo(transaction=tpb.Transaction(id=uuid.uuid4().hex), requests=list(requests))
        info.started.FromNanoseconds(time.time_ns())
        with self._lock:
            responses = self._run(info, dry_run=False, callers=[caller] * len(info.requests))
        info.responses.extend(responses)
        return info

    # ---- auth changes of applied requests -----------------------------------------------------
    def _prepare(self, r: tpb.TransactionRequest, kind: str, caller: str) -> Optional[dict]:
        """What applying request r changes for auth (read before it is applied), or None."""
        if self.auth_effects is None:
            return None
        akind, inner = auth_view(r, kind)
        state = self.auth_effects.prepare(akind, inner, caller)
        if state is None:
            return None
        return {"kind": akind, "caller": caller, "state": state,
                "request": base64.b64encode(inner.SerializeToString()).decode()}

    def _apply_effects(self, effects: list[dict]) -> None:
        for e in effects:
            inner = _request_class(e["kind"]).FromString(base64.b64decode(e["request"]))
            self.auth_effects.apply(e["kind"], inner, e["caller"], e["state"])

    def replay_pending(self) -> int:
        """Apply auth changes of transactions whose pfs part committed just before a crash."""
        n = 0
        for key, raw in list(self.meta.scan(prefix=pachd_prefix("txnauth"))):
            if self.auth_effects is None:
                break
            self._apply_effects(json.loads(raw))
            self.meta.delete(key)
            n += 1
        return n

    # ---- running ---------------------------------------------------------------------------
    def _run(self, info: tpb.TransactionInfo, dry_run: bool,
             callers: Optional[list[str]] = None) -> list[tpb.TransactionResponse]:
        requests = list(info.requests)
        callers = callers or [""] * len(requests)
        n = len(requests)
        txn_id = info.transaction.id
        responses: list[tpb.TransactionResponse] = [tpb.TransactionResponse() for _ in requests]
        kinds = [request_kind(r) for r in requests]
        for i, k in enumerate(kinds):
            if not k:
                raise InvalidArgument(f"error running request {i + 1} of {n}: unrecognized transaction request type")
        created_repos: set = set()
        i = 0
        while i < n:
            if kinds[i] in PFS_KINDS:
                j = i
                while j < n and kinds[j] in PFS_KINDS:
                    j += 1
                if dry_run:  # every pfs request, in one discarded transaction
                    pfs_idx = [x for x in range(n) if kinds[x] in PFS_KINDS]
                    self._pfs_segment(requests, kinds, pfs_idx, responses, txn_id, n, True)
                    created_repos = {(r.create_repo.repo.project.name or "default", r.create_repo.repo.name)
                                     for r, k in zip(requests, kinds) if k == "create_repo"}
                    for x in range(n):
                        if kinds[x] not in PFS_KINDS:
                            self._check_pps(requests[x], kinds[x], x, n, created_repos)
                    return responses
                self._pfs_segment(requests, kinds, list(range(i, j)), responses, txn_id, n, False, callers)
                i = j
            else:
                if dry_run:
                    self._check_pps(requests[i], kinds[i], i, n, created_repos)
                else:
                    effect = self._prepare(requests[i], kinds[i], callers[i])
                    if effect is not None:  # its grants survive a crash (pachd.auth_wiring.PipelineGrants)
                        akind, inner = auth_view(requests[i], kinds[i])
                        self.auth_effects.begin(akind, inner, callers[i], effect["state"])
                    try:
                        self._run_pps(requests[i], kinds[i], i, n)
                    except BaseException:
                        if effect is not None:
                            self.auth_effects.abandon(akind, inner)
                        raise
                    if effect is not None:
                        try:
                            self._apply_effects([effect])
                        except Exception:  # noqa: BLE001 - the pipeline exists; as CreatePipeline's `after`
                            log.exception("auth bookkeeping of the pipeline in request %d of %d failed", i + 1, n)
                i += 1
        return responses

    def _pfs_segment(self, requests, kinds, idx, responses, txn_id, n, dry_run, callers=None) -> None:
        s = self.pfs_servicer
        handlers = {"create_repo": s.CreateRepo, "delete_repo": s.DeleteRepo, "start_commit": s.StartCommit,
                    "finish_commit": s.FinishCommit, "squash_commit_set": s.SquashCommitSet,
                    "create_branch": s.CreateBranch, "delete_branch": s.DeleteBranch}
        effects: list[dict] = []
        with self.pfs.atomic(txn_id, dry_run=dry_run) as t:
            for x in idx:
                if not dry_run:
                    effect = self._prepare(requests[x], kinds[x], callers[x])
                    if effect is not None:
                        effects.append(effect)
                fn = handlers[kinds[x]].__wrapped__  # the handler without its status mapping
                try:
                    out = fn(s, getattr(requests[x], kinds[x]), None)
                except PfsError as e:
                    raise type(e)(f"error running request {x + 1} of {n}: {e.message}") from e
                if kinds[x] == "start_commit":
                    responses[x].commit.CopyFrom(out)
            if effects:  # committed with the requests, or not at all
                t.put(self._pending_key(txn_id, idx[0]), json.dumps(effects).encode())
        if effects:
            try:
                self._apply_effects(effects)
            except Exception:  # noqa: BLE001 - the requests are applied; their grants follow at restart
                log.exception("auth changes of transaction %s could not be saved; pachd applies them "
                              "when it next starts", txn_id)
                return
            self.meta.delete(self._pending_key(txn_id, idx[0]))

    def _pps(self):
        pps = self.get_pps()
        if pps is None:
            raise FailedPrecondition("the pipeline system is not running in this pachd")
        return pps

    def _run_pps(self, r: tpb.TransactionRequest, kind: str, x: int, n: int) -> None:
        pps = self._pps()
        try:
            if kind == "stop_job":
                pps.StopJob.__wrapped__(pps, r.stop_job, None)
            elif kind == "update_job_state":
                pps.UpdateJobState.__wrapped__(pps, r.update_job_state, None)
            elif kind == "create_pipeline_legacy":
                pps.CreatePipeline.__wrapped__(pps, _legacy_pipeline(r), None)
            else:
                cpt = r.create_pipeline_v2
                if cpt.user_json:
                    pps.CreatePipelineV2.__wrapped__(pps, pps_pb2.CreatePipelineV2Request(
                        create_pipeline_request_json=cpt.user_json, update=cpt.create_pipeline_request.update,
                        reprocess=cpt.create_pipeline_request.reprocess), None)
                else:
                    pps.CreatePipeline.__wrapped__(pps, cpt.create_pipeline_request, None)
        except PfsError as e:
            raise type(e)(f"error running request {x + 1} of {n}: {e.message}") from e

    def _check_pps(self, r: tpb.TransactionRequest, kind: str, x: int, n: int, created_repos: set) -> None:
        """Dry-run checks of a pipeline request that do not touch the pipeline system."""
        pps = self._pps()
        try:
            if kind in ("stop_job", "update_job_state"):
                job = getattr(r, kind).job
                j = pps.m.inspect_job(job.pipeline.project.name or "default", job.pipeline.name, job.id)
                if kind == "update_job_state" and j.state in TERMINAL:
                    raise FailedPrecondition(f"job {j.project}/{j.pipeline}@{j.id} has already finished")
                return
            if kind == "create_pipeline_legacy":
                req = _legacy_pipeline(r)
            else:
                req = r.create_pipeline_v2.create_pipeline_request
            pps.check_pipeline_request(req, created_repos)
        except PfsError as e:
            raise type(e)(f"error running request {x + 1} of {n}: {e.message}") from e


class TransactionServicer(transaction_pb2_grpc.APIServicer):
    def __init__(self, runner: TransactionRunner):
        self.r = runner

    @rpc
    def StartTransaction(self, req, ctx):
        return self.r.start()

    @rpc
    def InspectTransaction(self, req, ctx):
        return self.r.load(req.transaction.id)

    @rpc
    def ListTransaction(self, req, ctx):
        return tpb.TransactionInfos(transaction_info=self.r.list())

    @rpc
    def DeleteTransaction(self, req, ctx):
        self.r.delete(req.transaction.id)
        return EMPTY

    @rpc
    def FinishTransaction(self, req, ctx):
        return self.r.finish(req.transaction.id)

    @rpc
    def BatchTransaction(self, req, ctx):
        return self.r.batch(req.requests, caller=self.r.caller_of(ctx.invocation_metadata()))

    @rpc
    def DeleteAll(self, req, ctx):
        self.r.delete_all()
        return EMPTY


class TransactionInterceptor(grpc.ServerInterceptor):
    """Calls carrying `pach-transaction` metadata that Pachyderm runs in transactions are
    appended to that transaction instead of running."""

    def __init__(self, runner: TransactionRunner):
        self.runner = runner
        self._handlers = {path: self._handler(path, *spec) for path, spec in INTERCEPTED.items()}

    def _handler(self, path, req_cls, field, answer):
        runner = self.runner

        class _Append:  # a named holder so `rpc` reports the method name
            @rpc
            def append(self, request, context):
                txn_id = dict(context.invocation_metadata()).get(METADATA_KEY, "")
                resp = runner.append(txn_id, _to_txn_request(field, request),
                                     caller=runner.caller_of(context.invocation_metadata()))
                return answer(request, resp)

        holder = _Append()
        return grpc.unary_unary_rpc_method_handler(
            holder.append, request_deserializer=req_cls.FromString,
            response_serializer=lambda m: m.SerializeToString())

    def intercept_service(self, continuation, handler_call_details):
        handler = self._handlers.get(handler_call_details.method)
        if handler is not None:
            for k, v in handler_call_details.invocation_metadata or ():
                if k == METADATA_KEY and v:
                    return handler
        return continuation(handler_call_details)
