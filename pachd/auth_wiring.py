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
- With TLS, workers reach pachd over TLS too: they get the certificate to trust (PEM
  text) in PACHD_TLS_CA_PEM.
"""
from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Optional

import grpc

from auth.core import Auth
from auth.interceptor import AuthInterceptor, Call, token_of
from auth.model import AuthError, Resource, repo_resource
from auth.rules import prepare_after, transaction_rule
from auth.s3 import S3Access
from auth.service import AuthServicer, oidc_logins
from pfs.errors import NotFound
from pfs.model import Repo
from proto.auth_v2 import auth_pb2_grpc

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
        self.interceptor = AuthInterceptor(self.auth, self.hooks)
        self.s3_access = S3Access(self.auth, self.hooks.repo_exists)
        self.oidc = oidc_logins(self.auth)  # served by the auth servicer and pachd.oidc_callback

    def wire_transactions(self, runner) -> None:
        ta = TransactionAuth(self.auth, self.hooks, runner)
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

    def _activate_pipelines(self, master) -> None:
        from pps.spec import input_repos
        for p in master.store.list_pipelines():
            spec = master.spec_of(p)
            self.auth.setup_pipeline(p.project, p.name, [(proj, repo) for proj, repo, _ in input_repos(spec)])
            if not p.stopped:
                master.ensure_workers(p, spec)


class TransactionAuth:
    """Auth's side of transactions (pachd.transactions.TransactionRunner.auth_effects and the
    interceptor's `queued`): who queued a request, and the rule's `after` run when the
    transaction applies it, as the queuer."""

    def __init__(self, auth: Auth, hooks: PfsHooks, runner):
        self.auth, self.hooks, self.runner = auth, hooks, runner

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
        rule.after(call, request)

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
