"""Unmodified `pachyderm_sdk` clients for tests, all closed at the end.

`with sdk_clients() as make:` yields `make(port, **kw) -> Client` (a `Client` on
localhost:port, extra keywords such as `auth_token` passed through); every client made is
closed when the block ends, so no channel outlives its test.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def sdk_clients() -> Iterator[Callable]:
    from pachyderm_sdk import Client
    clients: list = []

    def make(port: int, **kw) -> Client:
        c = Client(host="localhost", port=port, **kw)
        clients.append(c)
        return c

    try:
        yield make
    finally:
        for c in clients:
            c._channel.close()
