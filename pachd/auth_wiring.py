"""Wiring multi-user auth and TLS into pachd: the Auth core over `<root>/auth.json`, the
interceptor, the auth_v2 servicer, the S3 gateway's access checks, pipeline tokens, and the
TLS credentials for gRPC and the gateway.

Invariants:
- Auth lives in the top-level `auth` package; `pfs/` and `pps/` never import it. What auth
  needs to know about pfs (does a repo exist, which repos a commit set spans) comes through
  PfsHooks here, and what pps needs from auth (a worker's token, bindings of a pipeline)
  through plain callables set on the master.
- `--auth-token T` (the single shared token of earlier versions) still works: it activates
  auth with T as a root token (pach:root).
- Calls queued in a transaction change nothing for auth until the transaction applies them
  (TransactionAuth): the queuer's grants are made at finish, never for a deleted transaction.
- OIDC logins: one OIDCLogins (auth.oidc) shared by the auth_v2 servicer (GetOIDCLogin,
  Authenticate) and the callback endpoint (pachd.oidc_callback), so a login's state is
  known to both.
- A CreatePipeline's auth changes (its creator's repoOwner on a new output repo, the
  pipeline's own bindings) survive a crash between the pipeline's creation and their save
  (PipelineGrants): an intent record is written before the pipeline is created and removed
  once they are saved; one left by a crash is applied at the next start if the pipeline
  reached the version it names, and dropped otherwise. Outside and inside transactions.
- A CreateRepo outside a transaction gives its creator repoOwner crash-safely the same way
  (RepoGrants): intent `Y\\0repoauth\\0<project>\\0<name>` before a new repo is created,
  removed once the grant is saved; one left by a crash is granted at the next start if the
  repo exists, and dropped otherwise. (Inside a transaction the grant is already part of the
  transaction's own atomic record.)
- With TLS, workers reach pachd over TLS too: they get the certificate to trust (PEM
  text) in PACHD_TLS_CA_PEM.
"""
from __future__ import annotations

import base64
import json
import logging
import ssl
from pathlib import Path
from typing import Optional

import grpc

from auth.core import Auth
from auth.interceptor import AuthInterceptor, Call, token_of
from auth.model import AuthError, Resource, repo_resource
from auth.rules import (after_create_pipeline, after_create_repo, pipeline_request, prepare_after,
                        transaction_rule)
from auth.s3 import S3Access
from auth.service import AuthServicer, oidc_logins
from pfs.core.keys import pachd_key, pachd_prefix
from pfs.errors import NotFound
from pfs.failpoints import failpoint
from pfs.model import Repo
from proto.auth_v2 import auth_pb2_grpc
from proto.pps_v2 import pps_pb2

log = logging.getLogger("pachd.auth")


class PfsHooks:
    def __init__(self, pfs):
        self.pfs = pfs

    def repo_exists(self, res: Resource) -> bool:
        project, _, name = res.name.partition("/")
        try:
            self.pfs.inspect_repo(Repo(project or "default", name, "user"))
            return True
        except NotFound:
            return False

    def project_exists(self, name: str) -> bool:
        try:
            self.pfs.inspect_project(name)
            return True
        except NotFound:
            return False

    def commit_set_repos(self, set_id: str) -> list[Resource]:
        out = []
        for ci in self.pfs.commit_set(set_id):
            r = repo_resource(ci.commit.repo.project, ci.commit.repo.name, ci.commit.repo.type)
            if r not in out:
                out.append(r)
        return out


class AuthSetup:
    def __init__(self, root: Path, pfs, auth_token: Optional[str]):
        self.auth = Auth(Path(root) / "auth.json")
        self.hooks = PfsHooks(pfs)
        if auth_token:
            self.auth.ensure_root_token(auth_token, default_project_exists=self.hooks.project_exists("default"))
        self.grants = PipelineGrants(self.auth, self.hooks, pfs.meta)
        self.interceptor = AuthInterceptor(self.auth, self.hooks)
        for m in ("/pps_v2.API/CreatePipeline", "/pps_v2.API/CreatePipelineV2"):
            self.interceptor.extra[m] = dict(before=self.grants.before, abandon=self.grants.abandon,
                                             after=self.grants.after)
        self.repo_grants = RepoGrants(self.auth, self.hooks, pfs.meta)
        self.interceptor.extra["/pfs_v2.API/CreateRepo"] = dict(
            before=self.repo_grants.before, abandon=self.repo_grants.abandon, after=self.repo_grants.after)
        try:
            if self.repo_grants.replay():
                log.info("saved the owners of repos created just before a crash")
        except Exception:  # noqa: BLE001 - pachd still starts; the records stay for the next start
            log.exception("the owners of repos created just before a crash could not be saved")
        self.s3_access = S3Access(self.auth, self.hooks.repo_exists)
        self.oidc = oidc_logins(self.auth)  # served by the auth servicer and pachd.oidc_callback

    def wire_transactions(self, runner) -> None:
        ta = TransactionAuth(self.auth, self.hooks, runner, self.grants)
        runner.auth_effects = ta
        self.interceptor.queued = ta.queued
        try:
            if runner.replay_pending():
                log.info("applied the auth changes of transactions interrupted by a crash")
        except Exception:  # noqa: BLE001 - pachd still starts; the records stay for the next start
            log.exception("the auth changes of transactions interrupted by a crash could not be applied")

    def add_servicer(self, server) -> None:
        self.servicer = AuthServicer(self.auth, self.oidc)
        self.servicer.default_project_exists = lambda: self.hooks.project_exists("default")
        auth_pb2_grpc.add_APIServicer_to_server(self.servicer, server)

    def caller_may(self, ctx, permission: str, project: str, repo: str) -> bool:
        """Whether the caller of a gRPC call (its authn-token) has `permission` on the user
        repo project/repo; always with auth off. Servicers use it to count or act only on
        what the caller may (summaries, DeleteRepos)."""
        if not self.auth.active:
            return True
        try:
            subject = self.auth.authenticate(token_of(ctx.invocation_metadata()))
        except AuthError:
            return False
        return self.auth.has(subject, permission, repo_resource(project, repo))

    def wire_pps(self, master, servicer) -> None:
        """Each pipeline's workers hold their own `pipeline:` token; pipelines that exist when
        auth is activated get their bindings and restart their workers with a token (what
        Pachyderm's pps ActivateAuth does)."""
        servicer.caller_may = self.caller_may
        master.worker_token = self.auth.pipeline_token
        self.servicer.on_activate = lambda: self._activate_pipelines(master)

        def version_of(project: str, name: str) -> int:
            p = master.store.get_pipeline(project, name)
            return p.version if p is not None else 0

        self.grants.version_of = version_of
        try:
            if self.grants.replay():
                log.info("saved the role bindings of pipelines created just before a crash")
        except Exception:  # noqa: BLE001 - pachd still starts; the records stay for the next start
            log.exception("the role bindings of pipelines created just before a crash could not be saved")

    def _activate_pipelines(self, master) -> None:
        from pps.spec import input_repos
        for p in master.store.list_pipelines():
            spec = master.spec_of(p)
            self.auth.setup_pipeline(p.project, p.name, [(proj, repo) for proj, repo, _ in input_repos(spec)])
            if not p.stopped:
                master.ensure_workers(p, spec)


class PipelineGrants:
    """CreatePipeline's `after` (auth.rules.after_create_pipeline), made crash-safe with an
    intent record `Y\\0pipeauth\\0<project>\\0<name>` in the metadata store: {caller,
    the rule's call state, the CreatePipelineRequest, the pipeline version it makes}."""

    def __init__(self, auth: Auth, hooks: PfsHooks, meta):
        self.auth, self.hooks, self.meta = auth, hooks, meta
        self.version_of = lambda project, name: 0  # set by wire_pps: the stored pipeline's version

    @staticmethod
    def _target(request) -> tuple[Optional[tuple[str, str]], object]:
        spec = pipeline_request(request)
        if getattr(spec, "dry_run", False) or getattr(request, "dry_run", False) or not spec.pipeline.name:
            return None, spec
        return (spec.pipeline.project.name or "default", spec.pipeline.name), spec

    def begin(self, caller: str, request, state: dict) -> None:
        target, spec = self._target(request)
        if target is None or not self.auth.active:
            return
        rec = {"caller": caller, "state": state, "version": self.version_of(*target) + 1,
               "request": base64.b64encode(spec.SerializeToString()).decode()}
        self.meta.put(pachd_key("pipeauth", *target), json.dumps(rec).encode())

    def end(self, request) -> None:
        target, _ = self._target(request)
        if target is not None:
            self.meta.delete(pachd_key("pipeauth", *target))

    def apply(self, call: Call, request) -> None:
        """The pipeline exists: save its grants, then drop the intent."""
        failpoint("pipeline.before_grant")
        after_create_pipeline(call, request)
        self.end(request)

    # the interceptor's hooks (auth.rules.Rule before / abandon / after)
    def before(self, call: Call, request) -> None:
        self.begin(call.subject, request, dict(call.state))

    def abandon(self, call: Call, request) -> None:
        self.end(request)

    def after(self, call: Call, request) -> None:
        self.apply(call, request)

    def replay(self) -> int:
        n = 0
        for key, raw in list(self.meta.scan(prefix=pachd_prefix("pipeauth"))):
            rec = json.loads(raw)
            spec = pps_pb2.CreatePipelineRequest.FromString(base64.b64decode(rec["request"]))
            target, _ = self._target(spec)
            if target is not None and self.auth.active and self.version_of(*target) == rec["version"]:
                call = Call(self.auth, self.hooks, rec["caller"])
                call.state.update(rec["state"])
                after_create_pipeline(call, spec)
                n += 1
            self.meta.delete(key)
        return n


class RepoGrants:
    """CreateRepo's `after` (auth.rules.after_create_repo: a new repo's creator becomes its
    owner), made crash-safe with an intent record `Y\\0repoauth\\0<project>\\0<name>`:
    {caller, project, name}, written only for a user repo that does not exist yet."""

    def __init__(self, auth: Auth, hooks: PfsHooks, meta):
        self.auth, self.hooks, self.meta = auth, hooks, meta

    @staticmethod
    def _target(request) -> Optional[tuple[str, str]]:
        if request is None or request.repo.type not in ("", "user") or not request.repo.name:
            return None
        return request.repo.project.name or "default", request.repo.name

    def before(self, call: Call, request) -> None:
        target = self._target(request)
        if target is None or call.state.get("repo_existed"):
            return
        rec = {"caller": call.subject, "project": target[0], "name": target[1]}
        self.meta.put(pachd_key("repoauth", *target), json.dumps(rec).encode())

    def abandon(self, call: Call, request) -> None:
        target = self._target(request)
        if target is not None and not call.state.get("repo_existed"):
            self.meta.delete(pachd_key("repoauth", *target))

    def after(self, call: Call, request) -> None:
        failpoint("repo.before_grant")
        after_create_repo(call, request)
        self.abandon(call, request)

    def replay(self) -> int:
        n = 0
        for key, raw in list(self.meta.scan(prefix=pachd_prefix("repoauth"))):
            rec = json.loads(raw)
            res = repo_resource(rec["project"], rec["name"], "user")
            if self.auth.active and self.hooks.repo_exists(res):
                self.auth.grant(res, rec["caller"], ["repoOwner"])
                n += 1
            self.meta.delete(key)
        return n


class TransactionAuth:
    """Auth's side of transactions (pachd.transactions.TransactionRunner.auth_effects and the
    interceptor's `queued`): who queued a request, and the rule's `after` run when the
    transaction applies it, as the queuer."""

    def __init__(self, auth: Auth, hooks: PfsHooks, runner, grants: Optional[PipelineGrants] = None):
        self.auth, self.hooks, self.runner, self.grants = auth, hooks, runner, grants

    def caller(self, metadata) -> str:
        if not self.auth.active:
            return ""
        try:
            return self.auth.authenticate(token_of(metadata))
        except AuthError:
            return ""

    def prepare(self, kind: str, request, caller: str) -> Optional[dict]:
        rule = transaction_rule(kind)
        if not self.auth.active or rule is None or rule.after is None:
            return None
        call = Call(self.auth, self.hooks, caller)
        prepare_after(rule, call, request)
        return call.state

    def apply(self, kind: str, request, caller: str, state: dict) -> None:
        rule = transaction_rule(kind)
        if rule is None or rule.after is None or not self.auth.active:
            return
        call = Call(self.auth, self.hooks, caller)
        call.state.update(state)
        if kind == "create_pipeline" and self.grants is not None:
            self.grants.apply(call, request)
        else:
            rule.after(call, request)

    def begin(self, kind: str, request, caller: str, state: dict) -> None:
        """Before a pipeline request of a transaction runs: its grants' intent record."""
        if kind == "create_pipeline" and self.grants is not None:
            self.grants.begin(caller, request, state)

    def abandon(self, kind: str, request) -> None:
        if kind == "create_pipeline" and self.grants is not None:
            self.grants.end(request)

    def queued(self, method: str, metadata, subject: str) -> Optional[set]:
        """None if the call runs now; else the repos `subject` creates earlier in the
        transaction that queues it."""
        from pachd.transactions import INTERCEPTED, METADATA_KEY
        if method not in INTERCEPTED:
            return None
        txn_id = next((v for k, v in metadata or () if k == METADATA_KEY and v), "")
        if not txn_id:
            return None
        return {repo_resource(p, r) for p, r in self.runner.created_by(txn_id, subject)
                if not self.hooks.repo_exists(repo_resource(p, r))}


class TLS:
    """`pachd --tls-cert/--tls-key`: gRPC and the S3 gateway serve TLS with this pair."""

    def __init__(self, cert: str, key: str):
        self.cert_path, self.key_path = Path(cert), Path(key)
        try:
            self.cert, self.key = self.cert_path.read_bytes(), self.key_path.read_bytes()
        except OSError as e:
            raise OSError(f"cannot read the TLS certificate or key: {e}") from None

    def grpc_credentials(self):
        return grpc.ssl_server_credentials([(self.key, self.cert)])

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(str(self.cert_path), str(self.key_path))
        except ssl.SSLError as e:
            raise OSError(f"the TLS certificate and key do not load ({e})") from None
        return ctx
