"""`pachctl next datum [--error MSG]`: step a datum-batching worker to its next datum.

Run by user code inside a pipeline with `transform.datum_batching: true` (hidden in
Pachyderm's CLI too). It calls the worker API `pachyderm.worker.Worker/NextDatum` on
127.0.0.1:$PPS_WORKER_GRPC_PORT. The first call says "ready"; each later call ends the
previous datum (`--error` marks it failed) and returns once the next datum is mounted under
/pfs (its env is in /pfs/.env; like Pachyderm's pachctl, nothing is printed). When no datums
are left the worker kills the calling process.

Invariants: no pachd connection, no config file, no autostart: only the worker's port.
Exit status 0 when a datum is ready, 1 with the reason on stderr otherwise.

`next_datum` is a standalone click command (`python -c 'from pachctl.cmd_worker import
next_datum; next_datum()' --error x` works); `next_group` is the hidden `next` verb holding
it as `datum`, for the lead to add to pachctl's root.
"""
from __future__ import annotations

import os
import sys

import click

WORKER_PORT_ENV = "PPS_WORKER_GRPC_PORT"


def call_next_datum(error: str = "", timeout: float | None = None) -> list[str]:
    """NextDatum on the local worker; returns the next datum's env ("K=V" strings)."""
    import grpc

    from proto.worker_v2 import worker_pb2, worker_pb2_grpc

    port = os.environ.get(WORKER_PORT_ENV)
    if not port:
        raise click.ClickException(
            f"{WORKER_PORT_ENV} is not set: `pachctl next datum` only works inside a pipeline "
            "with datum_batching enabled")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = worker_pb2_grpc.WorkerStub(ch)
        try:
            resp = stub.NextDatum(worker_pb2.NextDatumRequest(error=error), timeout=timeout)
        except grpc.RpcError as e:
            raise click.ClickException(e.details() or e.code().name) from None
    return list(resp.env)


@click.command("datum", help="Move to the next datum (datum batching). Used inside a worker.")
@click.option("--error", default="", help="Report the previous datum as failed with this message.")
def next_datum(error: str) -> None:
    try:
        call_next_datum(error)
    except click.ClickException as e:
        click.echo(e.message, err=True)
        sys.exit(1)


next_group = click.Group("next", hidden=True, help="Batched datum control.")
next_group.add_command(next_datum)
