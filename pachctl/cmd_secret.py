"""Secrets: `pachctl create|delete|inspect|list secret` (Pachyderm's src/server/pps/cmds).

Invariants:
- `create secret -f` takes a Kubernetes Secret manifest, JSON or YAML, from a path, an
  http(s) URL or `-` (stdin), and sends it as is; pachd checks it.
- Output never holds a secret's values (pachd never sends them): `list secret` is the
  NAME/TYPE/CREATED table, `inspect secret` the Name/Type/Created template, --raw the
  SecretInfo message.
"""
from __future__ import annotations

import sys

import click
from google.protobuf import empty_pb2

from pachctl.cli import CliError, command, emit, encoder, get_app, raw_options
from pachctl.pretty import GoTabWriter, ago
from proto.pps_v2 import pps_pb2 as pb
from proto.pps_v2 import pps_pb2_grpc


def _stub(app):
    return app.client()._api(pps_pb2_grpc.APIStub)


def _created(info):
    from pachctl.pfs_pretty import dt
    return dt(info, "creation_timestamp")


@command("create", "secret", help="Create a secret on the cluster.")
@click.option("-f", "--file", "path", default="", metavar="PATH|URL|-",
              help="The JSON or YAML file containing the Kubernetes secret; it can be a URL or a local "
                   "file; - reads from stdin.")
def create_secret(path):
    from pachctl.cmd_pps import read_source
    if not path:
        raise CliError("a secret manifest is required: pachctl create secret -f <file>")
    try:
        data = read_source(path)
    except OSError as e:
        raise CliError(f"could not read {path}: {e.strerror or e}") from None
    _stub(get_app()).CreateSecret(pb.CreateSecretRequest(file=data.encode()))


@command("delete", "secret", arity=(1, 1), metavar="<secret>", help="Delete a secret from the cluster.")
def delete_secret(args):
    _stub(get_app()).DeleteSecret(pb.DeleteSecretRequest(secret=pb.Secret(name=args[0])))


@command("inspect", "secret", arity=(1, 1), metavar="<secret>", help="Inspect a secret from the cluster.")
@raw_options
def inspect_secret(args, raw, output):
    enc = encoder(raw, output)
    info = _stub(get_app()).InspectSecret(pb.InspectSecretRequest(secret=pb.Secret(name=args[0])))
    if enc:
        emit(enc, info)
        return
    sys.stdout.write(f"Name: {info.secret.name}\nType: {info.type}\nCreated: {ago(_created(info))}\n")


@command("list", "secret", help="List all secrets from a namespace in the cluster.")
@raw_options
def list_secret(raw, output):
    enc = encoder(raw, output)
    infos = _stub(get_app()).ListSecret(empty_pb2.Empty()).secret_info
    if enc:
        for info in infos:
            emit(enc, info)
        return
    w = GoTabWriter(sys.stdout)
    w.write("NAME\tTYPE\tCREATED\t\n")
    for info in infos:
        w.write(f"{info.secret.name}\t{info.type}\t{ago(_created(info))}\t\n")
    w.flush()
