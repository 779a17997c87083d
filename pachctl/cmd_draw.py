"""`draw pipeline` (the DAG) and `draw lineage` (one commit's jobs and data), over gRPC.

Invariants:
- `draw pipeline` prints Pachyderm's terminal picture by default (colour only when stdout is
  a TTY and colour is on); `-o dot` prints DOT text; `-o png|svg` runs graphviz `dot` (without
  graphviz, SVG is drawn by pachctl.draw.svg, with a note on stderr, and PNG fails naming the
  package). With `--output-file F` the result goes to F (format from `-o`, else from F's
  suffix).
- `draw lineage REPO@REF` walks upstream from the commit (its job, that job's input commits,
  their jobs, ...) and with `--downstream` also what was derived from it; `-n` bounds the
  walk in job steps (`all` by default). Output is DOT unless `-o png|svg`.
- Drawing code (pachctl.draw) never does I/O; here the callbacks fetch commits and jobs. It
  is imported by the commands themselves: networkx costs every other pachctl command ~90 ms.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click
import grpc
from google.protobuf import json_format

from pachctl import pb, pretty
from pachctl.cli import CliError, command, get_app, project_option
from pachctl.cmd_pps import pipeline_msg
from pachctl.pfs_pretty import commit_repo, dt
from pachctl.refs import parse_commit
from proto.pfs_v2 import pfs_pb2 as pfs
from proto.pps_v2 import pps_pb2 as pps

FORMATS = ("dot", "png", "svg")


def _format(output: str, output_file: str, default: str) -> str:
    fmt = (output or "").lower()
    if not fmt and output_file:
        suffix = Path(output_file).suffix.lstrip(".").lower()
        fmt = suffix if suffix in FORMATS else ""
    fmt = fmt or default
    if fmt not in FORMATS + ("ascii",):
        raise CliError(f'unrecognized output format "{output}" (must be "dot", "png" or "svg")')
    return fmt


def _emit(text: str, fmt: str, output_file: str) -> None:
    """Write DOT/ASCII text, or render it with graphviz, to the file or stdout."""
    from pachctl.draw import GraphvizNotFound, have_graphviz, render_image
    if fmt in ("dot", "ascii"):
        if output_file:
            Path(output_file).write_text(text)
        else:
            sys.stdout.write(text)
        return
    if fmt == "svg" and not have_graphviz():
        click.echo("note: graphviz is not installed; drawing the SVG with pachctl's own layout "
                   "(sudo apt-get install graphviz for graphviz's)", err=True)
    try:
        if output_file:
            render_image(text, output_file, fmt)
            return
        fd, tmp = tempfile.mkstemp(suffix="." + fmt)
        os.close(fd)
        try:
            render_image(text, tmp, fmt)
            sys.stdout.flush()
            sys.stdout.buffer.write(Path(tmp).read_bytes())
        finally:
            os.unlink(tmp)
    except GraphvizNotFound as e:
        raise CliError(str(e)) from None
    except RuntimeError as e:
        raise CliError(str(e)) from None


# ---- draw pipeline ---------------------------------------------------------------------------
def pipeline_records(infos) -> list[dict]:
    recs = []
    for pi in infos:
        d = pi.details
        recs.append({
            "name": pi.pipeline.name, "project": pi.pipeline.project.name or "default",
            "input": json_format.MessageToDict(d.input, preserving_proto_field_name=True) if d.HasField("input") else None,
            "last_job_state": pps.JobState.Name(pi.last_job_state),
            "state": pps.PipelineState.Name(pi.state), "description": d.description,
        })
    return recs


@command("draw", "pipeline", help="Draw a DAG of the pipelines of the current project: terminal art by "
                                   "default, DOT with -o dot, an image with -o png|svg (PNG needs graphviz).")
@click.option("-c", "--commit", default="", metavar="COMMIT-SET", help="Commit set at which to draw the DAG")
@click.option("--box-width", default=11, type=int, help="Character width of each box in the DAG")
@click.option("--edge-height", default=5, type=int, help="Number of vertical lines spanned by each edge")
@click.option("-o", "--output", default="", metavar="dot|png|svg", help="Draw DOT text or a graphviz image instead.")
@click.option("--output-file", default="", metavar="FILE", help="Write the picture to FILE instead of stdout.")
@project_option
def draw_pipeline(commit, box_width, edge_height, output, output_file, project):
    from pachctl.draw import build_pipeline_graph, render_ascii, render_dot
    fmt = _format(output, output_file, "ascii")
    if box_width < 3:
        raise CliError("--box-width must be at least 3")
    if edge_height < 0:
        raise CliError("--edge-height cannot be negative")
    app = get_app()
    proj = app.project(project)
    req = pps.ListPipelineRequest(details=True, projects=[pb.project(proj)])
    if commit:
        req.commit_set.id = commit
    infos = list(app.client().pps.ListPipeline(req))
    graph = build_pipeline_graph(pipeline_records(infos), project=proj)
    if fmt == "ascii":
        text = render_ascii(graph, box_width, edge_height,
                            color=not output_file and pretty.color_enabled(sys.stdout))
    else:
        text = render_dot(graph)
    _emit(text, fmt, output_file)


# ---- draw lineage ----------------------------------------------------------------------------
def _when(msg, field):
    return dt(msg, field)


def commit_record(ci) -> dict:
    repo = commit_repo(ci.commit)
    refs = lambda cs: [{"repo": c.repo.name or c.branch.repo.name, "id": c.id,  # noqa: E731
                        "project": commit_repo(c).project.name or "default",
                        "type": commit_repo(c).type or "user"} for c in cs]
    return {
        "repo": repo.name, "id": ci.commit.id, "project": repo.project.name or "default",
        "repo_type": repo.type or "user", "branch": ci.commit.branch.name,
        "origin": pfs.OriginKind.Name(ci.origin.kind), "started": _when(ci, "started"),
        "finished": _when(ci, "finished"), "error": ci.error,
        "size": ci.details.size_bytes if ci.HasField("details") else ci.size_bytes_upper_bound,
        "direct_provenance": refs(ci.direct_provenance), "direct_subvenance": refs(ci.direct_subvenance),
    }


def _input_names(inp, out: dict) -> None:
    if inp.HasField("pfs"):
        out.setdefault(inp.pfs.repo, inp.pfs.name or inp.pfs.repo)
    elif inp.HasField("cron"):
        out.setdefault(inp.cron.repo, inp.cron.name)
    for field in ("cross", "union", "join", "group"):
        for child in getattr(inp, field):
            _input_names(child, out)


def job_record(ji) -> dict:
    names: dict = {}
    if ji.HasField("details") and ji.details.HasField("input"):
        _input_names(ji.details.input, names)
    return {"id": ji.job.id, "pipeline": ji.job.pipeline.name, "state": pps.JobState.Name(ji.state),
            "reason": ji.reason, "data_processed": ji.data_processed, "data_skipped": ji.data_skipped,
            "data_failed": ji.data_failed, "data_recovered": ji.data_recovered, "data_total": ji.data_total,
            "started": _when(ji, "started"), "finished": _when(ji, "finished"), "input_names": names}


def _not_found(e: grpc.RpcError) -> bool:
    return e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNKNOWN) and "not found" in (e.details() or "")


@command("draw", "lineage", arity=(1, 1), metavar="<repo>@<branch-or-commit>",
         help="Draw the lineage of a commit as DOT (or -o png|svg; PNG needs graphviz): the jobs and input "
              "commits upstream of it and, with --downstream, what was derived from it.")
@click.option("--downstream", is_flag=True, help="Also draw the jobs and commits derived from this commit.")
@click.option("-n", "--depth", default="all", metavar="N|all", help="How many job steps to walk (default: all).")
@click.option("-o", "--output", default="", metavar="dot|png|svg", help="Output format (default dot).")
@click.option("--output-file", default="", metavar="FILE", help="Write the picture to FILE instead of stdout.")
@project_option
def draw_lineage(args, downstream, depth, output, output_file, project):
    from pachctl.draw import build_lineage, lineage_dot, parse_depth
    from pachctl.draw.lineage import CommitRef
    fmt = _format(output, output_file, "dot")
    try:
        n = parse_depth(depth)
    except ValueError as e:
        raise CliError(str(e)) from None
    app = get_app()
    ref = parse_commit(args[0], app.project(project))
    c = app.client()
    start = c.pfs.InspectCommit(pfs.InspectCommitRequest(commit=pb.commit(ref)))

    def fetch_commit(r: CommitRef):
        commit = pfs.Commit(repo=pfs.Repo(name=r.repo, type=r.type or "user", project=pb.project(r.project)), id=r.id)
        try:
            return commit_record(c.pfs.InspectCommit(pfs.InspectCommitRequest(commit=commit)))
        except grpc.RpcError as e:
            if _not_found(e):
                return None
            raise

    def fetch_job(project_name: str, pipeline: str, job_id: str):
        try:
            ji = c.pps.InspectJob(pps.InspectJobRequest(
                job=pps.Job(pipeline=pipeline_msg(pipeline, project_name), id=job_id), details=True))
        except grpc.RpcError as e:
            if _not_found(e) or e.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise
        return job_record(ji)

    graph = build_lineage(commit_record(start), fetch_commit, fetch_job, upstream=True,
                          downstream=downstream, depth=n)
    _emit(lineage_dot(graph), fmt, output_file)
