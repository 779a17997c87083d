"""`pachctl logs`: the log lines of a pipeline, a job or a datum, and `--failed`.

Invariants:
- Pachyderm 2.x flags and texts: `-p` and `-j` are exclusive (`only one of pipeline or job
  should be specified`), `--master` needs a pipeline, any non-zero `--tail` is refused
  (`tail has been deprecated and removed from Pachyderm, use --since instead`), `--since` is
  sent only when given. Output is each message's text, one per line (the level word
  coloured on a TTY), or with `--raw` each LogMessage as one line of JSON.
- By default a pipeline's user-code and worker lines are shown; `--worker` keeps only the
  worker's own lines, `--master` only the master's (job starts/ends).
- `--failed` (our debugging aid) prints, for every FAILED datum of the job (`-j`) or of the
  pipeline's newest job (`-p`), a header `=== datum <id> (failed)` with one `  input:
  project/repo@commit:/path` line per input file, then that datum's log lines (all attempts).
  With no failed datum it says so on stderr and exits 0.
"""
from __future__ import annotations

import json
import sys

import click

from pachctl import pps_pretty as ppp
from pachctl.cli import CliError, command, get_app, parse_duration, project_option
from pachctl.cmd_jobs import job_msg
from pachctl.cmd_pps import pipeline_msg
from pachctl.encode import proto_to_dict
from proto.pps_v2 import pps_pb2 as pps

FAILED_HELP = ("Show only the logs of the failed datums of the job (-j) or of the pipeline's newest "
               "job (-p): each block starts with `=== datum <id> (failed)` and the datum's input "
               "files, then every log line of that datum (all attempts). Not with --datum, --master, "
               "--worker or --follow.")


def _write(msg, raw: bool) -> None:
    if raw:
        sys.stdout.write(json.dumps(proto_to_dict(msg), separators=(",", ":"), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(ppp.log_line(msg.message.rstrip("\n")) + "\n")
    sys.stdout.flush()


@command(None, "logs", help="Return logs from a job, pipeline or datum.\n\n"
                            "--failed prints only the failed datums' logs (see below).")
@click.option("-p", "--pipeline", default="", help="Filter the log for lines from this pipeline (accepts pipeline name)")
@click.option("-j", "--job", default="", metavar="<pipeline>@<job>", help="Filter for log lines from this job")
@click.option("--datum", default="", help="Filter for log lines for this datum (accepts datum ID)")
@click.option("--inputs", default="", help="Filter for log lines generated while processing these files "
                                            "(accepts PFS paths or file hashes, comma-separated)")
@click.option("--master", is_flag=True, help="Return log messages from the master process (pipeline must be set).")
@click.option("--worker", is_flag=True, help="Return only log messages from the worker process (not user code).")
@click.option("--raw", is_flag=True, help="Return log messages verbatim from server (one JSON object per line).")
@click.option("-f", "--follow", is_flag=True, help="Follow logs as more are created.")
@click.option("-t", "--tail", default=0, type=int, help="Lines of recent logs to display (deprecated: use --since).")
@click.option("--since", default="24h", help='Return log messages more recent than "since".')
@click.option("--failed", is_flag=True, help=FAILED_HELP)
@project_option
@click.pass_context
def logs(ctx, pipeline, job, datum, inputs, master, worker, raw, follow, tail, since, failed, project):
    if tail:
        raise CliError("tail has been deprecated and removed from Pachyderm, use --since instead")
    if pipeline and job:
        raise CliError("only one of pipeline or job should be specified")
    if master and not pipeline:
        raise CliError("--master requires --pipeline")
    if master and worker:
        raise CliError("only one of --master and --worker can be set")
    app = get_app()
    proj = app.project(project)
    req = pps.GetLogsRequest(master=master, follow=follow)
    if ctx.get_parameter_source("since") != click.core.ParameterSource.DEFAULT:
        secs = parse_duration(since) or 0.0
        req.since.FromNanoseconds(round(secs * 1e9))
    if pipeline:
        req.pipeline.CopyFrom(pipeline_msg(pipeline, proj))
    if job:
        req.job.CopyFrom(job_msg(job, proj))
    if inputs:
        req.data_filters.extend(f for f in inputs.split(",") if f)
    if failed:
        for flag, name in ((datum, "--datum"), (master, "--master"), (worker, "--worker"), (follow, "--follow")):
            if flag:
                raise CliError(f"--failed cannot be used with {name}")
        if not pipeline and not job:
            raise CliError("--failed needs --pipeline or --job")
        _failed_logs(app.client(), req, raw)
        return
    if not pipeline and not job:
        raise CliError("must specify --pipeline or --job")
    if datum:
        req.datum.CopyFrom(pps.Datum(id=datum, job=req.job if job else None))
    for msg in app.client().pps.GetLogs(req, timeout=None if follow else app.rpc_timeout):
        if worker and (msg.user or msg.master):
            continue
        _write(msg, raw)


def _failed_logs(c, req: pps.GetLogsRequest, raw: bool) -> None:
    if req.HasField("job"):
        job = req.job
    else:
        newest = list(c.pps.ListJob(pps.ListJobRequest(pipeline=req.pipeline, number=1, history=-1)))
        if not newest:
            p = req.pipeline
            raise CliError(f'pipeline "{p.project.name}/{p.name}" has no jobs')
        job = newest[0].job
    failed = list(c.pps.ListDatum(pps.ListDatumRequest(
        job=job, filter=pps.ListDatumRequest.Filter(state=[pps.FAILED]))))
    if not failed:
        sys.stderr.write(f"no failed datums in job {job.pipeline.project.name}/{job.pipeline.name}@{job.id}\n")
        return
    for di in failed:
        sys.stdout.write(f"=== datum {di.datum.id} (failed)\n")
        for fi in di.data:
            sys.stdout.write(f"  input: {ppp.compact_file(fi.file)}\n")
        dreq = pps.GetLogsRequest()
        dreq.CopyFrom(req)
        dreq.ClearField("pipeline")
        dreq.job.CopyFrom(job)
        dreq.datum.CopyFrom(pps.Datum(id=di.datum.id, job=job))
        for msg in c.pps.GetLogs(dreq):
            _write(msg, raw)
