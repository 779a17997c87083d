"""`pachctl config ...`: Pachyderm's config file (`$PACH_CONFIG`, else ~/.pachyderm/config.json).

    config get|set active-context, config get|set active-enterprise-context,
    config get|set|update|delete|list context, config get|set metrics

Invariants:
- The file is the one pachctl 2.x and pachyderm-sdk's `Client.from_config()` read
  (pachctl.config.Config); every change is written atomically before the command returns.
- None of these commands contact pachd (so none of them autostart it).
- `update context` changes only the flags given (an empty value clears a field).
"""
from __future__ import annotations

import json
import sys

import click

from pachctl.cli import CliError, PCommand, VerbGroup, get_app, root
from pachctl.config import ConfigError
from pachctl.encode import encode_json
from pachctl.pretty import TabWriter


@root.group("config", cls=VerbGroup, help="Manage the pachyderm config.")
def config():
    pass


def _group(name: str, help: str) -> VerbGroup:
    grp = VerbGroup(name, help=help)
    config.add_command(grp)
    return grp


get_grp = _group("get", "Commands for getting pachyderm config values")
set_grp = _group("set", "Commands for setting pachyderm config values")
update_grp = _group("update", "Commands for updating pachyderm config values")
delete_grp = _group("delete", "Commands for deleting pachyderm config values")
list_grp = _group("list", "Commands for listing pachyderm config values")


def _cmd(grp: VerbGroup, name: str, arity=(0, 0), metavar: str = "", **kw):
    def deco(f):
        if arity != (0, 0):
            f = click.argument("args", nargs=-1, metavar=metavar)(f)
        cmd = click.command(name, cls=PCommand, arity=arity, **kw)(f)
        grp.add_command(cmd)
        return cmd
    return deco


@_cmd(get_grp, "active-context", help="Gets the currently active context.")
def get_active_context():
    app = get_app()
    name = app.config.active_context_name
    sys.stdout.write((name or "NONE") + "\n")


@_cmd(set_grp, "active-context", arity=(1, 1), metavar="<context>", help="Sets the currently active context.")
def set_active_context(args):
    cfg = get_app().config
    cfg.set_active_context(args[0])
    cfg.save()


@_cmd(get_grp, "active-enterprise-context", help="Gets the currently active enterprise context.")
def get_active_enterprise_context():
    name = get_app().config.active_enterprise_context_name
    sys.stdout.write((name or "NONE") + "\n")


@_cmd(set_grp, "active-enterprise-context", arity=(1, 1), metavar="<context>",
      help="Sets the currently active enterprise context.")
def set_active_enterprise_context(args):
    cfg = get_app().config
    cfg.set_active_enterprise_context(args[0])
    cfg.save()


@_cmd(get_grp, "metrics", help="Gets whether metrics are enabled.")
def get_metrics():
    sys.stdout.write(("true" if get_app().config.metrics else "false") + "\n")


@_cmd(set_grp, "metrics", arity=(1, 1), metavar="(true | false)", help="Controls whether metrics are enabled or not.")
def set_metrics(args):
    value = args[0].lower()
    if value not in ("true", "false"):
        raise CliError("invalid argument; use either `true` or `false`")
    cfg = get_app().config
    cfg.metrics = value == "true"
    cfg.save()


@_cmd(get_grp, "context", arity=(1, 1), metavar="<context>", help="Gets a context (as JSON).")
def get_context(args):
    ctx = get_app().config.get_context(args[0])
    sys.stdout.write(encode_json(ctx) + "\n")


@_cmd(set_grp, "context", arity=(1, 1), metavar="<context>",
      help="Set a context from the JSON object read on stdin, e.g. "
           "'{\"pachd_address\": \"grpc://localhost:30650\"}'.")
@click.option("--overwrite", is_flag=True, help="Overwrite a context if it already exists.")
def set_context(args, overwrite):
    text = sys.stdin.read()
    try:
        ctx = json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"could not parse context JSON: {e}") from None
    if not isinstance(ctx, dict):
        raise CliError("could not parse context JSON: not an object")
    cfg = get_app().config
    cfg.set_context(args[0], ctx, overwrite=overwrite)
    cfg.save()


@_cmd(update_grp, "context", arity=(0, 1), metavar="[<context>]",
      help="Updates a context (the active one when no name is given); only the flags given change.")
@click.option("--pachd-address", default=None, help="Set a new name pachd address.")
@click.option("--cluster-name", default=None, help="Set a new cluster name.")
@click.option("--auth-info", default=None, help="Set a new k8s auth info.")
@click.option("--server-cas", default=None, help="Set new trusted CA certs.")
@click.option("--namespace", default=None, help="Set a new namespace.")
@click.option("--project", default=None, help="Set a new project.")
@click.option("--remove-cluster-deployment-id", is_flag=True, help="Remove the cluster deployment ID field.")
def update_context(args, pachd_address, cluster_name, auth_info, server_cas, namespace, project,
                   remove_cluster_deployment_id):
    cfg = get_app().config
    if args:
        name = args[0]
    else:
        name = cfg.active_context_name
        sys.stdout.write(f'editing the currently active context "{name}"\n')
    if name not in cfg.contexts:
        raise ConfigError(f"context does not exist: {name}")
    cfg.update_context(name, pachd_address=pachd_address, cluster_name=cluster_name, auth_info=auth_info,
                       server_cas=server_cas, namespace=namespace, project=project,
                       remove_cluster_deployment_id=remove_cluster_deployment_id)
    cfg.save()


@_cmd(delete_grp, "context", arity=(1, 1), metavar="<context>", help="Deletes a context.")
def delete_context(args):
    cfg = get_app().config
    cfg.delete_context(args[0])
    cfg.save()


@_cmd(list_grp, "context", help="Lists contexts.")
def list_context():
    lines = get_app().config.list_context_lines()
    tw = TabWriter(sys.stdout, lines[0] + "\n")
    for line in lines[1:]:
        tw.write(line + "\n")
    tw.flush()
