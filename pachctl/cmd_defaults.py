"""Pipeline defaults: `pachctl create|update|inspect|delete defaults` (Pachyderm 2.8+'s commands,
with `--project` as Pachyderm 2.10+ adds it).

Invariants:
- Exactly one scope: `--cluster` (SetClusterDefaults/GetClusterDefaults) or `--project P`
  (SetProjectDefaults/GetProjectDefaults); neither or both is a usage error naming the flags.
- `create` and `update` send the file as is (JSON, from a path, an http(s) URL or `-` for stdin,
  the default); pachd checks it, and with `--regenerate` re-creates every pipeline whose
  effective spec changes. `--reprocess` implies `--regenerate`, as in Pachyderm. `delete`
  sets the defaults to `{}`.
- With `--regenerate` or `--dry-run`, the affected pipelines are printed one per line as
  `project/pipeline`, so a dry run says what a real run would change; otherwise nothing is
  printed.
- `inspect` prints the stored defaults JSON exactly as pachd returns it.
"""
from __future__ import annotations

import sys

import click

from pachctl.cli import CliError, command, get_app
from proto.pfs_v2 import pfs_pb2
from proto.pps_v2 import pps_pb2 as pb
from proto.pps_v2 import pps_pb2_grpc


def _stub():
    return get_app().client()._api(pps_pb2_grpc.APIStub)


def _scope(cluster: bool, project: str | None) -> str | None:
    if cluster == bool(project):
        raise CliError("name exactly one of --cluster or --project PROJECT")
    return project


def _scope_options(f):
    f = click.option("--project", default=None, metavar="PROJECT", help="Use the defaults of this project.")(f)
    return click.option("--cluster", is_flag=True, help="Use the cluster defaults.")(f)


def _change_options(f):
    f = click.option("--dry-run", is_flag=True, help="Do not change the defaults; print the pipelines that "
                                                     "would be regenerated.")(f)
    f = click.option("--reprocess", is_flag=True, help="Reprocess regenerated pipelines. Implies --regenerate.")(f)
    return click.option("--regenerate", is_flag=True, help="Regenerate pipeline specs from the new defaults.")(f)


def _set(cluster, project, defaults_json: str, regenerate: bool, reprocess: bool, dry_run: bool) -> None:
    project = _scope(cluster, project)
    regenerate = regenerate or reprocess
    if project is None:
        resp = _stub().SetClusterDefaults(pb.SetClusterDefaultsRequest(
            cluster_defaults_json=defaults_json, regenerate=regenerate, reprocess=reprocess, dry_run=dry_run))
    else:
        resp = _stub().SetProjectDefaults(pb.SetProjectDefaultsRequest(
            project=pfs_pb2.Project(name=project), project_defaults_json=defaults_json,
            regenerate=regenerate, reprocess=reprocess, dry_run=dry_run))
    if regenerate or dry_run:
        for p in resp.affected_pipelines:
            sys.stdout.write(f"{p.project.name}/{p.name}\n")


def _read(path: str) -> str:
    from pachctl.cmd_pps import read_source
    try:
        return read_source(path)
    except OSError as e:
        raise CliError(f"could not read {path}: {e.strerror or e}") from None


def _file_option(f):
    return click.option("-f", "--file", "path", default="-", metavar="PATH|URL|-",
                        help='A JSON file containing the defaults; "-" reads from stdin (the default).')(f)


def _setter(verb: str, help_: str):
    """`pachctl create defaults` and `update defaults`: the same call (Pachyderm's are too)."""
    @command(verb, "defaults", help=help_)
    @_scope_options
    @_file_option
    @_change_options
    def run(cluster, project, path, regenerate, reprocess, dry_run):
        _scope(cluster, project)
        _set(cluster, project, _read(path), regenerate, reprocess, dry_run)
    return run


create_defaults = _setter("create", "Set cluster or project defaults.")
update_defaults = _setter("update", "Update cluster or project defaults.")


@command("delete", "defaults", help="Delete cluster or project defaults.")
@_scope_options
@_change_options
def delete_defaults(cluster, project, regenerate, reprocess, dry_run):
    _set(cluster, project, "{}", regenerate, reprocess, dry_run)


@command("inspect", "defaults", help="Return cluster or project defaults.")
@_scope_options
def inspect_defaults(cluster, project):
    project = _scope(cluster, project)
    if project is None:
        text = _stub().GetClusterDefaults(pb.GetClusterDefaultsRequest()).cluster_defaults_json
    else:
        text = _stub().GetProjectDefaults(pb.GetProjectDefaultsRequest(
            project=pfs_pb2.Project(name=project))).project_defaults_json
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
