"""Pipelines: `create|update|inspect|list|delete|start|stop|rerun pipeline`, `run cron`.

Job, datum, log and drawing commands live in cmd_jobs, cmd_logs and cmd_draw (imported at
the bottom so `pachctl.main` loading this module registers all of them).

Invariants:
- A spec file (`-f` path, http(s) URL or `-` for stdin) may hold several specs (a JSON
  stream/array or YAML documents); each is sent as its own CreatePipelineV2 with the
  context's project filled into `pipeline.project.name` when the spec names none. The server
  validates; its message is printed as the error.
- create/update/delete/start/stop/rerun/run print nothing on success (Pachyderm 2.x);
  `--dry-run` prints the effective spec instead of creating (indented JSON, or compact JSON /
  YAML with --raw -o json|yaml).
- `list pipeline` warns on stderr when a pipeline is failing, crashing or restarting.
"""
from __future__ import annotations

import json
import sys
import urllib.request

import click

from pachctl import pb
from pachctl import pps_pretty as ppp
from pachctl.cli import (
    CliError,
    command,
    emit,
    encoder,
    get_app,
    project_option,
    raw_options,
    timestamp_option,
)
from pachctl.encode import Encoder, encode_yaml, validate_output_flags
from pachctl.pretty import TabWriter
from proto.pps_v2 import pps_pb2 as pps


def pipeline_msg(name: str, project: str) -> pps.Pipeline:
    return pps.Pipeline(name=name, project=pb.project(project))


def parse_history(text: str) -> int:
    """`none` -> 0, `all` -> -1, else an integer (Pachyderm's cmdutil.ParseHistory)."""
    if text == "all":
        return -1
    if text == "none":
        return 0
    try:
        return int(text)
    except ValueError:
        raise CliError(f'invalid history value: {text}: strconv.Atoi: parsing "{text}": invalid syntax') from None


def state_names(values, prefix: str, enum) -> set[str]:
    """`running` / `RUNNING` / `PIPELINE_RUNNING` -> {"PIPELINE_RUNNING"}."""
    out = set()
    for v in values:
        for item in v.split(","):
            if not item:
                continue
            name = item.upper()
            name = name if name.startswith(prefix) else prefix + name
            if name not in enum.DESCRIPTOR.values_by_name:
                kind = "pipeline" if prefix == "PIPELINE_" else "job"
                raise CliError(f'invalid {kind} state "{item}"')
            out.add(name)
    return out


# ---- reading specs ---------------------------------------------------------------------------
def read_source(path: str) -> str:
    """A spec file's text: `-` is stdin, http(s) URLs are fetched, else a local path."""
    if path in ("", "-"):
        return sys.stdin.read()
    if path.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(path, timeout=60) as resp:  # noqa: S310 - user-given URL
                return resp.read().decode()
        except OSError as e:
            raise CliError(f"could not fetch {path}: {e}") from None
    with open(path, encoding="utf-8") as f:
        return f.read()


def render_jsonnet(path: str, args: tuple[str, ...], client) -> str:
    """The JSON a jsonnet template renders to, with `name=value` top-level arguments; pachd
    renders it (RenderTemplate), as Pachyderm's pachctl has it do."""
    tla = {}
    for a in args:
        name, eq, value = a.partition("=")
        if not eq:
            raise CliError(f'could not parse --arg "{a}": expected name=value')
        tla[name] = value
    resp = client.pps.RenderTemplate(pps.RenderTemplateRequest(template=read_source(path), args=tla))
    return resp.json


def load_specs(file: str, jsonnet: str, args: tuple[str, ...], client=None) -> list[dict]:
    from pps.spec import parse_specs

    if file and jsonnet:
        raise CliError("cannot set both --file and --jsonnet; exactly one must be set")
    if args and not jsonnet:
        raise CliError("--arg can only be used with --jsonnet")
    text = render_jsonnet(jsonnet, args, client) if jsonnet else read_source(file or "-")
    if not text.strip():
        raise CliError("no pipeline spec found in " + (jsonnet or file or "stdin"))
    return parse_specs(text)


def fill_project(spec: dict, project: str) -> dict:
    pipe = spec.get("pipeline")
    if isinstance(pipe, dict):
        proj = pipe.get("project")
        if not isinstance(proj, dict):
            proj = {"name": proj} if isinstance(proj, str) and proj else {}
        if not proj.get("name"):
            proj["name"] = project
        pipe["project"] = proj
    return spec


def _create(file, jsonnet, args, push_images, project, dry_run, raw, output, update, reprocess) -> None:
    fmt = validate_output_flags(raw, output)
    if push_images:
        raise CliError("--push-images is not supported: this Pachyderm runs images from the local machine "
                       "and never pushes them to a registry")
    app = get_app()
    proj = app.project(project)
    c = app.client()
    specs = load_specs(file, jsonnet, args, c)
    for spec in specs:
        req = pps.CreatePipelineV2Request(create_pipeline_request_json=json.dumps(fill_project(spec, proj)),
                                          update=update, reprocess=reprocess, dry_run=dry_run)
        resp = c.pps.CreatePipelineV2(req)
        if not dry_run:
            continue
        eff = json.loads(resp.effective_create_pipeline_request_json or "{}")
        if fmt == "yaml":
            sys.stdout.write(encode_yaml(eff))
        elif fmt == "json":
            sys.stdout.write(json.dumps(eff, separators=(",", ":"), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(json.dumps(eff, indent=2, ensure_ascii=False) + "\n")


def create_options(f):
    f = raw_options(f)
    f = project_option(f)
    f = click.option("--dry-run", is_flag=True,
                     help="Don't actually create the pipeline; print the effective spec it would have.")(f)
    f = click.option("-u", "--username", default="", hidden=True, help="Registry user (unused).")(f)
    f = click.option("-r", "--registry", default="index.docker.io", hidden=True, help="Registry (unused).")(f)
    f = click.option("-p", "--push-images", is_flag=True, help="Not supported (images are never pushed).")(f)
    f = click.option("--arg", "args_", multiple=True, metavar="NAME=VALUE",
                     help="Top-level argument passed to the --jsonnet template (repeatable).")(f)
    f = click.option("--jsonnet", default="", metavar="PATH|URL",
                     help="A jsonnet template producing one or more pipeline specs (rendered by pachd).")(f)
    return click.option("-f", "--file", default="", metavar="PATH|URL|-",
                        help='A JSON or YAML file (path or http(s) URL) containing one or more pipelines. '
                             '"-" reads from stdin (the default).')(f)


@command("create", "pipeline", help="Create a new pipeline from a pipeline spec (JSON or YAML, one or more).")
@create_options
def create_pipeline(file, jsonnet, args_, push_images, registry, username, dry_run, project, raw, output):
    _create(file, jsonnet, args_, push_images, project, dry_run, raw, output, update=False, reprocess=False)


@command("update", "pipeline", help="Update an existing pipeline (or create it). Datums that already "
                                     "succeeded are skipped unless --reprocess.")
@create_options
@click.option("--reprocess", is_flag=True, help="Reprocess all datums that were already processed by "
                                                "previous versions of the pipeline.")
def update_pipeline(file, jsonnet, args_, push_images, registry, username, dry_run, project, raw, output,
                    reprocess):
    _create(file, jsonnet, args_, push_images, project, dry_run, raw, output, update=True, reprocess=reprocess)


# ---- inspect / list --------------------------------------------------------------------------
@command("inspect", "pipeline", arity=(1, 1), metavar="<pipeline>", help="Return info about a pipeline.")
@raw_options
@timestamp_option
@project_option
def inspect_pipeline(args, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    app = get_app()
    pi = app.client().pps.InspectPipeline(pps.InspectPipelineRequest(
        pipeline=pipeline_msg(args[0], app.project(project)), details=True))
    if enc:
        emit(enc, pi)
    else:
        sys.stdout.write(ppp.detailed_pipeline(pi, full_timestamps))


@command("list", "pipeline", arity=(0, 1), metavar="[<pipeline>]",
         help="Return info about all pipelines (or every version of one with --history).")
@click.option("-s", "--spec", is_flag=True, help="Output 'create pipeline' compatibility specs.")
@click.option("--history", default="none", metavar="N|all|none",
              help="Return revision history for pipelines: a number, 'all' or 'none'.")
@click.option("-c", "--commit", default="", metavar="COMMIT-SET",
              help="List the pipelines as they existed at this commit set.")
@click.option("--state", multiple=True, metavar="STATE",
              help="Return only pipelines in this state (running, paused, failure, ...; repeatable).")
@click.option("-A", "--all-projects", is_flag=True, help="Show pipelines from all projects.")
@raw_options
@timestamp_option
@project_option
def list_pipeline(args, spec, history, commit, state, all_projects, raw, output, full_timestamps, project):
    fmt = validate_output_flags(True, output) if spec else validate_output_flags(raw, output, alternative="--spec")
    hist = parse_history(history)
    states = state_names(state, "PIPELINE_", pps.PipelineState)
    app = get_app()
    proj = app.project(project)
    req = pps.ListPipelineRequest(history=hist, details=True)
    if args:
        req.pipeline.CopyFrom(pipeline_msg(args[0], proj))
    if not all_projects:
        req.projects.append(pb.project(proj))
    if commit:
        req.commit_set.id = commit
    infos = [pi for pi in app.client().pps.ListPipeline(req)
             if not states or pps.PipelineState.Name(pi.state) in states]
    if fmt:
        enc = Encoder(sys.stdout, fmt)
        for pi in infos:
            if spec:
                enc.encode(json.loads(pi.effective_spec_json or pi.user_spec_json or "{}"))
            else:
                emit(enc, pi)
        return
    tw = TabWriter(sys.stdout, ppp.PIPELINE_HEADER)
    failing = False
    for pi in infos:
        tw.write(ppp.pipeline_row(pi, full_timestamps))
        failing = failing or pps.PipelineState.Name(pi.state) in ppp.ERROR_STATES
    tw.flush()
    if failing:
        sys.stderr.write(ppp.PIPELINE_ERRORS_NOTE + "\n")


# ---- delete / start / stop / rerun / cron ----------------------------------------------------
@command("delete", "pipeline", arity=(0, 1), metavar="(<pipeline>|--all)",
         help="Delete a pipeline (and its output repo unless --keep-repo).")
@click.option("--all", "all_", is_flag=True, help="delete all pipelines")
@click.option("-f", "--force", is_flag=True, help="delete the pipeline regardless of errors; use with care")
@click.option("--keep-repo", is_flag=True, help="delete the pipeline, but keep the output repo data around "
                                                 "(the pipeline cannot be recreated later with the same name "
                                                 "unless the repo is deleted)")
@click.option("-A", "--all-projects", is_flag=True, help="delete pipelines from all projects; only valid with --all")
@project_option
def delete_pipeline(args, all_, force, keep_repo, all_projects, project):
    if args and all_:
        raise CliError("cannot use the --all flag with an argument")
    if not args and not all_:
        raise CliError("either a pipeline name or the --all flag needs to be provided")
    if all_projects and not all_:
        raise CliError("-A/--all-projects can only be used with --all")
    app = get_app()
    proj = app.project(project)
    c = app.client()
    if all_:
        req = pps.DeletePipelinesRequest(force=force, keep_repo=keep_repo, all=all_projects)
        if not all_projects:
            req.projects.append(pb.project(proj))
        c.pps.DeletePipelines(req)
        return
    c.pps.DeletePipeline(pps.DeletePipelineRequest(pipeline=pipeline_msg(args[0], proj), force=force,
                                                   keep_repo=keep_repo))


@command("start", "pipeline", arity=(1, 1), metavar="<pipeline>", help="Restart a stopped pipeline.")
@project_option
def start_pipeline(args, project):
    app = get_app()
    app.client().pps.StartPipeline(pps.StartPipelineRequest(pipeline=pipeline_msg(args[0], app.project(project))))


@command("stop", "pipeline", arity=(1, 1), metavar="<pipeline>",
         help="Stop a running pipeline: its jobs pause until it is started again.")
@project_option
def stop_pipeline(args, project):
    app = get_app()
    app.client().pps.StopPipeline(pps.StopPipelineRequest(pipeline=pipeline_msg(args[0], app.project(project))))


@command("rerun", "pipeline", arity=(1, 1), metavar="<pipeline>",
         help="Rerun a pipeline: a new version with the same spec and a new job.")
@click.option("--reprocess", is_flag=True, help="If true, reprocess datums that were already processed by "
                                                "previous pipeline runs.")
@project_option
def rerun_pipeline(args, reprocess, project):
    app = get_app()
    app.client().pps.RerunPipeline(pps.RerunPipelineRequest(
        pipeline=pipeline_msg(args[0], app.project(project)), reprocess=reprocess))


@command("run", "cron", arity=(1, 1), metavar="<pipeline>",
         help="Run an existing Pachyderm cron pipeline now (one tick on each of its cron inputs).")
@project_option
def run_cron(args, project):
    app = get_app()
    app.client().pps.RunCron(pps.RunCronRequest(pipeline=pipeline_msg(args[0], app.project(project))))


# the other pps command modules register themselves on import
from pachctl import cmd_draw, cmd_jobs, cmd_logs  # noqa: E402,F401
