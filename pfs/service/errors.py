"""The one place where core errors become gRPC statuses.

Invariants:
- A `PfsError` becomes its own status code with its message unchanged (clients match on
  Pachyderm's texts).
- Anything else becomes INTERNAL with a short message, and the traceback goes to the log;
  a client never sees a Python traceback.
- `rpc` wraps unary and server-streaming handlers alike (generators are wrapped lazily, so
  errors raised mid-stream are mapped too).
"""
from __future__ import annotations

import functools
import inspect
import logging

import grpc

from pfs.errors import PfsError

log = logging.getLogger("pachd")

CODES = {
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "ABORTED": grpc.StatusCode.ABORTED,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "UNIMPLEMENTED": grpc.StatusCode.UNIMPLEMENTED,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "UNKNOWN": grpc.StatusCode.UNKNOWN,
    "DATA_LOSS": grpc.StatusCode.DATA_LOSS,
}


def _abort(context, e: BaseException, name: str):
    if isinstance(e, PfsError):
        context.abort(CODES.get(e.code, grpc.StatusCode.UNKNOWN), e.message)
    log.exception("internal error in %s", name)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {name}: {type(e).__name__}: {e}")


def rpc(fn):
    name = fn.__name__
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(self, request, context):
            try:
                yield from fn(self, request, context)
            except grpc.RpcError:
                raise
            except Exception as e:  # noqa: BLE001 - mapped to a status
                if context.is_active() or isinstance(e, PfsError):
                    _abort(context, e, name)
                raise
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(self, request, context):
        try:
            return fn(self, request, context)
        except grpc.RpcError:
            raise
        except Exception as e:  # noqa: BLE001 - mapped to a status
            _abort(context, e, name)
    return wrapper
