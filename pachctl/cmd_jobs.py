"""Jobs and datums: `list|inspect|wait|stop|delete job`, `list|inspect|restart datum`.

`list job` has Pachyderm's modes: no argument and no `-p`/`-x` lists job SETS (one row per
global id, with a ▇ progress bar); `-x`, `-p <pipeline>` or a job-set id argument list jobs.

Invariants:
- Job arguments are `<pipeline>@<job-id>` (Pachyderm's ParseJob texts on error); a bare
  job-set id where a job is expected gets Pachyderm's `Use "list job <id>" ...` hint.
- stop/delete job and restart datum print nothing on success; `wait job` prints the job table
  once the job (or every job of the set) is terminal.
- Flag conflicts are rejected before any RPC, with Pachyderm's texts.
"""
from __future__ import annotations

import sys

import click

from pachctl import pb
from pachctl import pps_pretty as ppp
from pachctl.cli import (
    CliError,
    command,
    emit,
    encoder,
    get_app,
    paged,
    project_option,
    raw_options,
    timestamp_option,
)
from pachctl.cmd_pps import load_specs, parse_history, pipeline_msg, state_names
from pachctl.pretty import TabWriter
from pachctl.refs import is_commit_set_id, parse_commit, parse_job
from proto.pps_v2 import pps_pb2 as pps


def job_msg(arg: str, project: str) -> pps.Job:
    ref = parse_job(arg, project)
    return pps.Job(pipeline=pipeline_msg(ref.pipeline, ref.project), id=ref.id)


def _job_set_hint(arg: str) -> None:
    if "@" not in arg and is_commit_set_id(arg):
        raise CliError(f'Use "list job {arg}" to see jobs with a given ID across different pipelines')


def print_jobs(infos, enc, full: bool, out=None) -> None:
    out = out or sys.stdout
    tw = None if enc else TabWriter(out, ppp.JOB_HEADER)
    for ji in infos:
        if enc:
            emit(enc, ji)
        else:
            tw.write(ppp.job_row(ji, full))
    if tw:
        tw.flush()


# ---- jobs ------------------------------------------------------------------------------------
@command("list", "job", arity=(0, 1), metavar="[<job-id>]",
         help="Return info about jobs: job sets (no argument), the jobs of one job set, or jobs "
              "(-x, or -p for one pipeline's).")
@click.option("-p", "--pipeline", default="", help="Limit to jobs made by pipeline.")
@click.option("-i", "--input", "inputs", multiple=True, metavar="REPO@REF",
              help="List jobs with a specific set of input commits (repeatable, or comma-separated).")
@click.option("-x", "--expand", is_flag=True, help="Show one line for each sub-job and include more columns")
@click.option("--history", default="none", metavar="N|all|none",
              help="Return jobs from historical versions of pipelines: a number, 'all' or 'none'.")
@click.option("--state", multiple=True, metavar="STATE",
              help="Return only jobs in this state (running, success, failure, ...; repeatable).")
@click.option("-A", "--all-projects", is_flag=True, help="Show jobs from all projects.")
@click.option("--no-pager", is_flag=True, help="Don't pipe output into a pager (i.e. less).")
@raw_options
@timestamp_option
@project_option
def list_job(args, pipeline, inputs, expand, history, state, all_projects, no_pager, raw, output,
             full_timestamps, project):
    enc = encoder(raw, output)
    app = get_app()
    proj = app.project(project)
    if not args and not pipeline and not expand:  # job sets
        if state:
            raise CliError("cannot specify '--state' when listing all jobs")
        if inputs:
            raise CliError("cannot specify '--input' when listing all jobs")
        if history != "none":
            raise CliError("cannot specify '--history' when listing all jobs")
        req = pps.ListJobSetRequest(projects=[] if all_projects else [pb.project(proj)])
        with paged(no_pager) as out:
            tw = None if enc else TabWriter(out, ppp.JOB_SET_HEADER)
            for jsi in app.client().pps.ListJobSet(req):
                if enc:
                    emit(enc, jsi)
                else:
                    tw.write(ppp.job_set_row(jsi, full_timestamps))
            if tw:
                tw.flush()
        return
    states = state_names(state, "JOB_", pps.JobState)
    hist = parse_history(history)
    if args:
        if pipeline:
            raise CliError("cannot specify '--pipeline' when listing sub-jobs")
        infos = app.client().pps.InspectJobSet(pps.InspectJobSetRequest(job_set=pps.JobSet(id=args[0])))
    else:
        req = pps.ListJobRequest(history=hist)
        if pipeline:
            req.pipeline.CopyFrom(pipeline_msg(pipeline, proj))
        elif not all_projects:
            req.projects.append(pb.project(proj))
        for item in inputs:
            for ref in filter(None, item.split(",")):
                req.input_commit.append(pb.commit(parse_commit(ref, proj)))
        infos = app.client().pps.ListJob(req)
    with paged(no_pager) as out:
        print_jobs((ji for ji in infos if not states or pps.JobState.Name(ji.state) in states),
                   enc, full_timestamps, out)


@command("inspect", "job", arity=(1, 1), metavar="<pipeline>@<job>", help="Return info about a job.")
@click.option("-w", "--wait", is_flag=True, help="Wait until the job is terminal (success, failure, killed, unrunnable).")
@raw_options
@timestamp_option
@project_option
def inspect_job(args, wait, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    _job_set_hint(args[0])
    app = get_app()
    ji = app.client().pps.InspectJob(pps.InspectJobRequest(job=job_msg(args[0], app.project(project)),
                                                           wait=wait, details=True),
                                     **({"timeout": None} if wait else {}))
    if enc:
        emit(enc, ji)
    else:
        sys.stdout.write(ppp.detailed_job(ji, full_timestamps))


@command("wait", "job", arity=(1, 1), metavar="<job>|<pipeline>@<job>",
         help="Wait for a job (or every job of a job set) to finish, then print it.")
@raw_options
@timestamp_option
@project_option
def wait_job(args, raw, output, full_timestamps, project):
    enc = encoder(raw, output)
    app = get_app()
    c = app.client()
    if "@" in args[0]:
        infos = [c.pps.InspectJob(pps.InspectJobRequest(job=job_msg(args[0], app.project(project)), wait=True),
                                  timeout=None)]
    else:
        infos = list(c.pps.InspectJobSet(pps.InspectJobSetRequest(job_set=pps.JobSet(id=args[0]), wait=True),
                                         timeout=None))
    print_jobs(infos, enc, full_timestamps)


@command("stop", "job", arity=(1, 1), metavar="<pipeline>@<job>|<job>",
         help="Stop a job (or every job of a job set): its output commit finishes with an error, "
              "the job is killed.")
@project_option
def stop_job(args, project):
    app = get_app()
    c = app.client()
    if "@" in args[0]:
        c.pps.StopJob(pps.StopJobRequest(job=job_msg(args[0], app.project(project))))
        return
    for ji in list(c.pps.InspectJobSet(pps.InspectJobSetRequest(job_set=pps.JobSet(id=args[0])))):
        c.pps.StopJob(pps.StopJobRequest(job=ji.job))


@command("delete", "job", arity=(1, 1), metavar="<pipeline>@<job>", help="Delete a job (stopping it first).")
@project_option
def delete_job(args, project):
    app = get_app()
    app.client().pps.DeleteJob(pps.DeleteJobRequest(job=job_msg(args[0], app.project(project))))


# ---- datums ----------------------------------------------------------------------------------
@command("list", "datum", arity=(0, 1), metavar="<pipeline>@<job>",
         help="Return the datums of a job, or (-f) the datums a pipeline spec's input would make now.")
@click.option("-f", "--file", default="", metavar="PATH|URL|-",
              help="The pipeline spec whose input to list datums for (the pipeline need not exist).")
@raw_options
@project_option
def list_datum(args, file, raw, output, project):
    enc = encoder(raw, output)
    if args and file:
        raise CliError("can't specify both a job and a pipeline spec")
    if not args and not file:
        raise CliError("must specify either a job or a pipeline spec")
    app = get_app()
    proj = app.project(project)
    if file:
        from google.protobuf import json_format

        specs = load_specs(file, "", ())
        inp = pps.Input()
        json_format.ParseDict(specs[0].get("input") or {}, inp)
        _fill_input_project(inp, proj)
        req = pps.ListDatumRequest(input=inp)
    else:
        req = pps.ListDatumRequest(job=job_msg(args[0], proj))
    tw = None if enc else TabWriter(sys.stdout, ppp.DATUM_HEADER)
    for di in app.client().pps.ListDatum(req):
        if enc:
            emit(enc, di)
        else:
            tw.write(ppp.datum_row(di))
    if tw:
        tw.flush()


def _fill_input_project(inp: pps.Input, project: str) -> None:
    if inp.HasField("pfs") and not inp.pfs.project:
        inp.pfs.project = project
    for field in ("cross", "union", "join", "group"):
        for child in getattr(inp, field):
            _fill_input_project(child, project)


@command("inspect", "datum", arity=(2, 2), metavar="<pipeline>@<job> <datum>", help="Display detailed info about a single datum.")
@raw_options
@project_option
def inspect_datum(args, raw, output, project):
    enc = encoder(raw, output)
    app = get_app()
    di = app.client().pps.InspectDatum(pps.InspectDatumRequest(
        datum=pps.Datum(job=job_msg(args[0], app.project(project)), id=args[1])))
    if enc:
        emit(enc, di)
    else:
        sys.stdout.write(ppp.detailed_datum(di))


@command("restart", "datum", arity=(2, 2), metavar="<pipeline>@<job> <datum-path1>,<datum-path2>,...",
         help="Restart the running datums of a job that hold these input paths (or file hashes): their "
              "current attempt is killed and retried.")
@project_option
def restart_datum(args, project):
    app = get_app()
    filters = [f for f in args[1].split(",") if f]
    app.client().pps.RestartDatum(pps.RestartDatumRequest(job=job_msg(args[0], app.project(project)),
                                                          data_filters=filters))
