"""pachd's gRPC server interceptor: authenticate the caller, check the method's rule, filter
what list calls return.

Invariants:
- With auth off every call passes untouched (the auth_v2 servicer answers "not activated").
- With auth on: a method missing from rules.RULES is refused (PERMISSION_DENIED); a call
  that is not open needs a valid `authn-token` (else UNAUTHENTICATED, before the servicer
  sees the request); the rule's permissions are checked before the servicer runs, and a
  client stream's messages are checked as they arrive, before the servicer gets them.
- Streamed results the caller may not see are dropped, never reported as errors.
- A call that a transaction queues (`queued` says so) is checked now, but its rule's `after`
  does not run: the transaction runs it when it applies the call (rules.queued_rule).
- A rule's `before` runs after its checks pass and before the servicer (unary calls); its
  `abandon` if the servicer fails. pachd uses them to make CreatePipeline's grants survive a
  crash (pachd.auth_wiring.PipelineGrants).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import grpc

from auth.core import Auth
from auth.model import AuthError, NotAuthorized
from auth.rules import RULES, Rule, queued_rule

log = logging.getLogger("pachd.auth")
TOKEN_KEY = "authn-token"
_CODES = {"UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED, "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
          "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT, "UNIMPLEMENTED": grpc.StatusCode.UNIMPLEMENTED,
          "NOT_FOUND": grpc.StatusCode.NOT_FOUND, "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
          "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED}


def status_of(e: AuthError) -> grpc.StatusCode:
    return _CODES.get(e.code, grpc.StatusCode.INTERNAL)


class _Denied(grpc.RpcError):
    """Raised inside a request stream; servicers re-raise RpcErrors untouched."""

    def __init__(self, error: AuthError):
        super().__init__(str(error))
        self.error = error


class Call:
    """What a rule sees of one call."""

    def __init__(self, auth: Auth, hooks, subject: str):
        self.auth, self.hooks, self.subject = auth, hooks, subject
        self.state: dict = {}

    def check(self, need) -> None:
        for resource, perm in need:
            self.auth.check(self.subject, resource, perm)

    @staticmethod
    def decorate(auth_info, perms, roles) -> None:
        from proto.auth_v2 import auth_pb2
        del auth_info.permissions[:]
        auth_info.permissions.extend(auth_pb2.Permission.Value(p) for p in perms)
        del auth_info.roles[:]
        auth_info.roles.extend(roles)


def token_of(metadata) -> Optional[str]:
    for k, v in metadata or ():
        if k == TOKEN_KEY:
            return v
    return None


def _handler(kind: str, behavior, h):
    make = {"uu": grpc.unary_unary_rpc_method_handler, "us": grpc.unary_stream_rpc_method_handler,
            "su": grpc.stream_unary_rpc_method_handler, "ss": grpc.stream_stream_rpc_method_handler}[kind]
    return make(behavior, request_deserializer=h.request_deserializer, response_serializer=h.response_serializer)


def _kind(h) -> str:
    return ("s" if h.request_streaming else "u") + ("s" if h.response_streaming else "u")


def deny(h, code: grpc.StatusCode, message: str):
    kind = _kind(h)

    def refuse(request, context):
        context.abort(code, message)

    def refuse_stream(request, context):
        context.abort(code, message)
        yield  # pragma: no cover - a generator, as the method's kind requires

    return _handler(kind, refuse_stream if kind[1] == "s" else refuse, h)


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, auth: Auth, hooks, rules: dict[str, Rule] = RULES):
        self.auth, self.hooks, self.rules = auth, hooks, rules
        # method -> Rule fields this pachd adds to the method's rule (its `before`, ...)
        self.extra: dict[str, dict] = {}
        # (method, metadata, subject) -> None if the call runs now; if a transaction queues
        # it, the repos the subject creates earlier in that transaction
        self.queued = lambda method, metadata, subject: None

    def intercept_service(self, continuation, details):
        h = continuation(details)
        if h is None or not self.auth.active:
            return h
        rule = self.rules.get(details.method)
        if rule is not None and details.method in self.extra:
            rule = dataclasses.replace(rule, **self.extra[details.method])
        if rule is None:
            return deny(h, grpc.StatusCode.PERMISSION_DENIED,
                        f"{details.method} is not in pachd's permission map, so it is refused while auth is active")
        if rule.open:
            return h
        try:
            subject = self.auth.authenticate(token_of(details.invocation_metadata))
        except AuthError as e:
            return deny(h, status_of(e), str(e))
        made = self.queued(details.method, details.invocation_metadata, subject)
        if made is not None:
            rule = queued_rule(rule, made)
        if rule.need is None and rule.each is None and rule.keep is None and rule.after is None:
            return h
        return self._wrap(h, rule, subject)

    def _wrap(self, h, rule: Rule, subject: str):
        kind = _kind(h)
        auth, hooks = self.auth, self.hooks

        def start(request, context) -> Call:
            call = Call(auth, hooks, subject)
            try:
                if rule.need is not None:
                    call.check(rule.need(call, request))
            except AuthError as e:
                context.abort(status_of(e), str(e))
            return call

        def finish(call, request) -> None:
            if rule.after is not None:
                try:
                    rule.after(call, request)
                except Exception:  # noqa: BLE001 - the call itself succeeded
                    log.exception("auth bookkeeping after a successful call failed")

        if kind == "uu":
            def unary(request, context):
                call = start(request, context)
                if rule.before is not None:
                    rule.before(call, request)
                try:
                    resp = h.unary_unary(request, context)
                except BaseException:
                    if rule.abandon is not None:
                        rule.abandon(call, request)
                    raise
                if rule.keep is not None and resp is not None:
                    resp = rule.keep(call, resp)
                    if resp is None:
                        context.abort(grpc.StatusCode.PERMISSION_DENIED, "not authorized to see this")
                finish(call, request)
                return resp
            return _handler(kind, unary, h)

        if kind == "us":
            def stream(request, context):
                call = start(request, context)
                for resp in h.unary_stream(request, context):
                    if rule.keep is not None:
                        resp = rule.keep(call, resp)
                        if resp is None:
                            continue
                    yield resp
                finish(call, request)
            return _handler(kind, stream, h)

        def checked(call, requests):
            for msg in requests:
                if rule.each is not None:
                    try:
                        call.check(rule.each(call, msg))
                    except AuthError as e:
                        raise _Denied(e) from None
                yield msg

        if kind == "su":
            def client_stream(requests, context):
                call = start(None, context)  # a rule's `need` here looks at no request
                try:
                    resp = h.stream_unary(checked(call, requests), context)
                except _Denied as d:
                    context.abort(status_of(d.error), str(d.error))
                finish(call, None)
                return resp
            return _handler(kind, client_stream, h)

        def bidi(requests, context):
            call = start(None, context)
            try:
                yield from h.stream_stream(checked(call, requests), context)
            except _Denied as d:
                context.abort(status_of(d.error), str(d.error))
        return _handler(kind, bidi, h)


__all__ = ["AuthInterceptor", "NotAuthorized", "token_of"]
