"""Tables and detail blocks for pps objects (pps_v2 messages), as pachctl 2.x prints them.

Invariants:
- Headers are Pachyderm 2.9+'s: `PROJECT NAME VERSION INPUT CREATED STATE / LAST JOB ALERTS
  DESCRIPTION` (pipelines), `PROJECT PIPELINE ID STARTED DURATION RESTART PROGRESS DL UL STATE`
  (jobs), `ID SUBJOBS PROGRESS CREATED MODIFIED` (job sets), `ID FILES STATUS TIME` (datums).
  Rows go through `pretty.TabWriter`; a row ends in `\\t\\n` exactly where Pachyderm's does.
- State words are Pachyderm's (`running`, `success`, `failure`, ... else `-`), coloured only
  when colour is on (`pretty.colorize`). A job with a reason shows `<state>: <reason cut to 25
  chars>...`; a successful job that processed nothing shows `success: there were no datums to
  process`.
- Detail blocks (inspect pipeline/job/datum) follow Pachyderm's templates line by line,
  including their trailing spaces and the blank lines of unset optional sections. JSON in them
  is Go's encoding/json of the message (proto field names, declaration order, empty fields
  omitted, 2-space indent). Go's `%v` of a message is its compact text form (`constant:2`),
  `<nil>` when unset.
Nothing here talks to a server.
"""
from __future__ import annotations

import json
from datetime import datetime

from pachctl import pretty
from pachctl.pfs_pretty import commit_repo, dt, repo_string

PIPELINE_HEADER = "PROJECT\tNAME\tVERSION\tINPUT\tCREATED\tSTATE / LAST JOB\tALERTS\tDESCRIPTION\t\n"
JOB_HEADER = "PROJECT\tPIPELINE\tID\tSTARTED\tDURATION\tRESTART\tPROGRESS\tDL\tUL\tSTATE\t\n"
JOB_SET_HEADER = "ID\tSUBJOBS\tPROGRESS\tCREATED\tMODIFIED\n"
DATUM_HEADER = "ID\tFILES\tSTATUS\tTIME\t\n"
WORKER_HEADER = "WORKER\tJOB\tDATUM\tSTARTED\t\n"
FILE_HEADER = "  REPO\tCOMMIT\tPATH\t\n"
JOB_REASON_LEN = 25
NO_DATUMS = "there were no datums to process"
ERROR_STATES = ("PIPELINE_FAILURE", "PIPELINE_CRASHING", "PIPELINE_RESTARTING")
PIPELINE_ERRORS_NOTE = "One or more pipelines have encountered errors, use inspect pipeline to get more info."

_JOB_WORDS = {"JOB_STARTING": ("starting", "yellow"), "JOB_RUNNING": ("running", "yellow"),
              "JOB_FAILURE": ("failure", "red"), "JOB_SUCCESS": ("success", "green"),
              "JOB_KILLED": ("killed", "red"), "JOB_EGRESSING": ("egressing", "yellow"),
              "JOB_FINISHING": ("finishing", "yellow"), "JOB_UNRUNNABLE": ("unrunnable", "red")}
_PIPELINE_WORDS = {"PIPELINE_STARTING": ("starting", "yellow"), "PIPELINE_RUNNING": ("running", "green"),
                   "PIPELINE_RESTARTING": ("restarting", "yellow"), "PIPELINE_FAILURE": ("failure", "red"),
                   "PIPELINE_PAUSED": ("paused", "yellow"), "PIPELINE_STANDBY": ("standby", "yellow"),
                   "PIPELINE_CRASHING": ("crashing", "red")}
_DATUM_WORDS = {"SKIPPED": ("skipped", "yellow"), "FAILED": ("failed", "red"),
                "RECOVERED": ("recovered", "yellow"), "SUCCESS": ("success", "green")}


def _enum_name(msg, field: str) -> str:
    fd = msg.DESCRIPTOR.fields_by_name[field]
    v = fd.enum_type.values_by_number.get(getattr(msg, field))
    return v.name if v else ""


def _word(table: dict, name: str) -> str:
    word = table.get(name)
    return pretty.colorize(*word) if word else "-"


def job_state(name: str) -> str:
    """`JOB_SUCCESS` -> `success` (coloured); unknown/created -> `-`."""
    return _word(_JOB_WORDS, name)


def pipeline_state(name: str) -> str:
    return _word(_PIPELINE_WORDS, name)


def datum_state(name: str) -> str:
    return _word(_DATUM_WORDS, name)


def safe_trim(s: str, n: int = JOB_REASON_LEN) -> str:
    return s if len(s) < n else s[:n].strip() + "..."


def seconds(duration) -> float:
    return duration.seconds + duration.nanos / 1e9


# ---- Go renderings ---------------------------------------------------------------------------
def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): `0s`, `1.5s`, `2.001ms`, `150µs`, `1m30s`, `1h0m5s`."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(int(ns))

    def frac(whole: int, rest: int, digits: int) -> str:
        return str(whole) + ("." + f"{rest:0{digits}d}".rstrip("0") if rest else "")

    if u < 1000:
        return f"{sign}{u}ns"
    if u < 10**6:
        return sign + frac(u // 1000, u % 1000, 3) + "\u00b5s"
    if u < 10**9:
        return sign + frac(u // 10**6, u % 10**6, 6) + "ms"
    secs, rest = divmod(u, 10**9)
    h, m, s = secs // 3600, (secs // 60) % 60, secs % 60
    out = frac(s, rest, 9) + "s"
    if h:
        out = f"{h}h{m}m" + out
    elif m:
        out = f"{m}m" + out
    return sign + out


def _text_value(fd, v) -> str:
    if fd.message_type is not None:
        return "{" + proto_text(v) + "}"
    if fd.type == fd.TYPE_STRING:
        return json.dumps(v, ensure_ascii=False)
    if fd.type == fd.TYPE_BYTES:
        return json.dumps(v.decode("latin-1"))
    if fd.type == fd.TYPE_BOOL:
        return "true" if v else "false"
    if fd.enum_type is not None:
        ev = fd.enum_type.values_by_number.get(v)
        return ev.name if ev else str(v)
    if isinstance(v, float):
        return repr(v).removesuffix(".0")
    return str(v)


def proto_text(msg) -> str:
    """Go protobuf's compact text form (`constant:2`, `gpu:{type:"x" number:1}`)."""
    parts = []
    for fd, v in msg.ListFields():
        values = v if fd.is_repeated else [v]
        parts.extend(f"{fd.name}:{_text_value(fd, x)}" for x in values)
    return " ".join(parts)


def go_value(msg, field: str) -> str:
    """Go template `{{.X}}` of an optional message field: its text form, `<nil>` if unset."""
    return proto_text(getattr(msg, field)) if msg.HasField(field) else "<nil>"


def go_json_obj(msg) -> dict:
    """A message as Go's encoding/json sees the generated struct (omitempty everywhere)."""
    out: dict = {}
    for fd in msg.DESCRIPTOR.fields:
        v = getattr(msg, fd.name)
        if fd.is_repeated:
            if not len(v):
                continue
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                vf = fd.message_type.fields_by_name["value"]
                out[fd.name] = {str(k): (go_json_obj(x) if vf.message_type else x) for k, x in sorted(v.items())}
            else:
                out[fd.name] = [go_json_obj(x) if fd.message_type else x for x in v]
        elif fd.message_type is not None:
            if msg.HasField(fd.name):
                out[fd.name] = go_json_obj(v)
        elif v:
            out[fd.name] = v.decode("latin-1") if isinstance(v, bytes) else v
    return out


def go_json(msg, unescape_html: bool = False) -> str:
    """json.MarshalIndent(msg, "", "  "); `<>&` escaped as Go does unless unescape_html."""
    text = json.dumps(go_json_obj(msg), indent=2, ensure_ascii=False)
    if not unescape_html:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def pretty_spec_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return text


# ---- inputs ----------------------------------------------------------------------------------
def shorthand_input(inp, project: str = "default") -> str:
    """INPUT cell: `project/repo:glob`, `name:spec`, `(a ⨯ b)`, `(a ⋈ b)`, `(a ∪ b)`,
    `(Group: a, b)`, `none`."""
    if inp is None:
        return "none"
    if inp.HasField("pfs"):
        return f"{inp.pfs.project or project}/{inp.pfs.repo}:{inp.pfs.glob}"
    if inp.HasField("cron"):
        return f"{inp.cron.name}:{inp.cron.spec}"
    for field, sep in (("cross", " \u2a2f "), ("join", " \u22c8 "), ("group", ", "), ("union", " \u222a ")):
        children = getattr(inp, field)
        if len(children):
            inner = sep.join(shorthand_input(c, project) for c in children)
            return f"(Group: {inner})" if field == "group" else f"({inner})"
    return ""


# ---- pipelines -------------------------------------------------------------------------------
def pipeline_row(pi, full: bool) -> str:
    project = pi.pipeline.project.name or "default"
    state = f"{pipeline_state(_enum_name(pi, 'state'))} / {job_state(_enum_name(pi, 'last_job_state'))}"
    if not pi.HasField("details"):
        cells = [project, pi.pipeline.name, "-", "-", "-", state, "", "pipeline details unavailable"]
    else:
        d = pi.details
        cells = [project, pi.pipeline.name, str(pi.version),
                 shorthand_input(d.input if d.HasField("input") else None, project),
                 pretty.when(dt(d, "created_at"), full), state, "", d.description]
    return "\t".join(cells) + "\t\n"


def _resources(title: str, r, gpu: bool, gpu_pad: str = "") -> str:
    out = f"{title}:\n  CPU: {_go_float(r.cpu)}\n  Memory: {r.memory}"
    if not gpu:
        return out + " "
    out += "\n  "
    if r.HasField("gpu"):
        out += f"GPU:\n    Type: {r.gpu.type}{gpu_pad}\n    Number: {r.gpu.number} "
    return out + " "


def _go_float(x: float) -> str:
    return repr(float(x)).removesuffix(".0") if x else "0"


def detailed_pipeline(pi, full: bool) -> str:
    """`inspect pipeline`: Pachyderm's PrintDetailedPipelineInfo template, then the specs."""
    d = pi.details
    out = f"Name: {pi.pipeline.name}"
    if d.description:
        out += f"\nDescription: {d.description}"
    created = dt(d, "created_at")
    out += f"\nCreated: {pretty.timestamp(created)}" if full else f"\nCreated: {pretty.ago(created)} "
    out += (f"\nState: {pipeline_state(_enum_name(pi, 'state'))}\nReason: {pi.reason}"
            f"\nWorkers Available: {d.workers_available}/{d.workers_requested}"
            f"\nStopped: {'true' if pi.stopped else 'false'}"
            f"\nParallelism Spec: {go_value(d, 'parallelism_spec')}\n")
    if d.HasField("resource_requests"):
        out += _resources("ResourceRequests", d.resource_requests, False)
    out += "\n"
    if d.HasField("resource_limits"):
        out += _resources("ResourceLimits", d.resource_limits, True, " ")
    out += (f"\nDatum Timeout: {go_value(d, 'datum_timeout')}\nJob Timeout: {go_value(d, 'job_timeout')}"
            "\nInput:\n" + (go_json(d.input) + "\n" if d.HasField("input") else "")
            + f"\nOutput Branch: {d.output_branch}\nTransform:\n{go_json(d.transform, True)}\n")
    if d.HasField("egress"):
        out += f"Egress: {egress_text(d.egress)} "
    out += "\n"
    if d.recent_error:
        out += f" Recent Error: {d.recent_error} "
    out += "\n"
    if pi.user_spec_json:
        out += f"User Spec:\n{pretty_spec_json(pi.user_spec_json)}\n"
    if pi.effective_spec_json:
        out += f"Effective Spec:\n{pretty_spec_json(pi.effective_spec_json)}\n"
    return out


def egress_text(e) -> str:
    kind = e.WhichOneof("target")
    if kind is None:
        return e.URL
    return go_json(getattr(e, kind))


# ---- jobs ------------------------------------------------------------------------------------
def progress(ji) -> str:
    if ji.data_recovered:
        return f"{ji.data_processed} + {ji.data_skipped} + {ji.data_recovered} / {ji.data_total}"
    return f"{ji.data_processed} + {ji.data_skipped} / {ji.data_total}"


def job_state_cell(ji) -> str:
    name = _enum_name(ji, "state")
    if ji.reason:
        return f"{job_state(name)}: {safe_trim(ji.reason)}"
    if name == "JOB_SUCCESS" and ji.data_processed == 0 and ji.data_skipped == ji.data_total:
        return f"{job_state(name)}: {NO_DATUMS}"
    return job_state(name)


def job_row(ji, full: bool) -> str:
    started, finished = dt(ji, "started"), dt(ji, "finished")
    cells = [ji.job.pipeline.project.name or "default", ji.job.pipeline.name, ji.job.id,
             pretty.when(started, full) if started is not None else "-",
             pretty.time_difference(started or finished, finished) if finished is not None else "-",
             str(ji.restart), progress(ji), pretty.size(ji.stats.download_bytes),
             pretty.size(ji.stats.upload_bytes), job_state_cell(ji)]
    return "\t".join(cells) + "\t\n"


def job_set_row(jsi, full: bool) -> str:
    success = failure = 0
    created: datetime | None = None
    modified: datetime | None = None
    for ji in jsi.jobs:
        name = _enum_name(ji, "state")
        if name == "JOB_SUCCESS":
            success += 1
        elif name in ("JOB_FAILURE", "JOB_KILLED", "JOB_UNRUNNABLE"):
            failure += 1
        c = dt(ji, "created")
        if c is not None:
            created = c if created is None or c < created else created
            modified = c if modified is None or c > modified else modified
    n = len(jsi.jobs)
    cells = [jsi.job_set.id, str(n), pretty.progress_bar(success, failure, n),
             pretty.when(created, full) if created is not None else "-",
             pretty.when(modified, full) if modified is not None else "-"]
    return "\t".join(cells) + "\t\n"


def worker_table(details, full: bool) -> str:
    import io

    buf = io.StringIO()
    tw = pretty.GoTabWriter(buf, minwidth=20, padding=3)
    tw.write(WORKER_HEADER)
    for ws in details.worker_status:
        line = f"{ws.worker_id}\t{ws.job_id}\t"
        if ws.HasField("datum_status"):
            st = ws.datum_status
            line += "".join(d.path for d in st.data) + "\t"
            started = dt(st, "started")
            line += (pretty.timestamp(started) if full else pretty.ago(started)) + "\t"
        tw.write(line + "\n")
    tw.flush()
    return buf.getvalue()


def detailed_job(ji, full: bool) -> str:
    """`inspect job`: Pachyderm's PrintDetailedJobInfo template (with the Project line)."""
    d, st = ji.details, ji.stats
    started, finished = dt(ji, "started"), dt(ji, "finished")
    out = f"ID: {ji.job.id}\nPipeline: {ji.job.pipeline.name}\nProject: {ji.job.pipeline.project.name or 'default'}"
    out += f"\nStarted: {pretty.timestamp(started)}" if full else f"\nStarted: {pretty.ago(started)} "
    if finished is not None:
        out += f"\nDuration: {pretty.time_difference(started or finished, finished)} "
    out += (f"\nState: {job_state(_enum_name(ji, 'state'))}\nReason: {ji.reason}"
            f"\nProcessed: {ji.data_processed}\nFailed: {ji.data_failed}\nSkipped: {ji.data_skipped}"
            f"\nRecovered: {ji.data_recovered}\nTotal: {ji.data_total}"
            f"\nData Downloaded: {pretty.size(st.download_bytes)}\nData Uploaded: {pretty.size(st.upload_bytes)}"
            f"\nDownload Time: {pretty.human_duration(seconds(st.download_time))}"
            f"\nProcess Time: {pretty.human_duration(seconds(st.process_time))}"
            f"\nUpload Time: {pretty.human_duration(seconds(st.upload_time))}"
            f"\nDatum Timeout: {go_value(d, 'datum_timeout')}\nJob Timeout: {go_value(d, 'job_timeout')}"
            f"\nWorker Status:\n{worker_table(d, full)}Restarts: {ji.restart}"
            f"\nParallelismSpec: {go_value(d, 'parallelism_spec')}\n")
    if d.HasField("resource_requests"):
        out += _resources("ResourceRequests", d.resource_requests, False)
    out += "\n"
    if d.HasField("resource_limits"):
        out += _resources("ResourceLimits", d.resource_limits, True)
    out += "\n"
    if d.HasField("sidecar_resource_limits"):
        out += _resources("SidecarResourceLimits", d.sidecar_resource_limits, False)
    out += "\n"
    if d.HasField("service"):
        s = d.service
        out += ("Service:\n\t" + (f"InternalPort: {s.internal_port} " if s.internal_port else "")
                + "\n\t" + (f"ExternalPort: {s.external_port} " if s.external_port else "") + " ")
    out += "Input:\n" + (go_json(d.input) + "\n" if d.HasField("input") else "")
    out += f"\nTransform:\n{go_json(d.transform, True)} "
    if ji.HasField("output_commit"):
        out += f"\nOutput Commit: {ji.output_commit.id} "
    if d.HasField("egress"):
        out += f"\nEgress: {egress_text(d.egress)} "
    return out + "\n"


# ---- datums ----------------------------------------------------------------------------------
def compact_file(f) -> str:
    """`project/repo@commit:/path` (pfs CompactPrintFile)."""
    return f"{repo_string(commit_repo(f.commit))}@{f.commit.id}:{f.path}"


def datum_total_seconds(st) -> float:
    return seconds(st.download_time) + seconds(st.process_time) + seconds(st.upload_time)


def datum_row(di) -> str:
    total = pretty.human_duration(datum_total_seconds(di.stats)) if di.HasField("stats") else "-"
    files = ", ".join(compact_file(fi.file) for fi in di.data)
    return f"{di.datum.id or '-'}\t{files}\t{datum_state(_enum_name(di, 'state'))}\t{total}\t\n"


def _ns(duration) -> int:
    return duration.seconds * 10**9 + duration.nanos


def detailed_datum(di) -> str:
    """`inspect datum`: literal `Key\\tValue` lines, then the PFS State and Inputs tables."""
    import io

    st = di.stats
    total = _ns(st.download_time) + _ns(st.process_time) + _ns(st.upload_time)
    out = (f"ID\t{di.datum.id}\nJob ID\t{di.datum.job.id}\nImage ID\t{di.image_id}\n"
           f"State\t{_enum_name(di, 'state')}\nData Downloaded\t{pretty.size(st.download_bytes)}\n"
           f"Data Uploaded\t{pretty.size(st.upload_bytes)}\nTotal Time\t{go_duration(total)}\n"
           f"Download Time\t{go_duration(_ns(st.download_time))}\n"
           f"Process Time\t{go_duration(_ns(st.process_time))}\n"
           f"Upload Time\t{go_duration(_ns(st.upload_time))}\n")
    buf = io.StringIO()
    buf.write("PFS State:\n")
    tw = pretty.GoTabWriter(buf, minwidth=10, padding=3)
    tw.write(FILE_HEADER)
    if di.HasField("pfs_state"):
        tw.write(_file_line(di.pfs_state))
    tw.flush()
    buf.write("Inputs:\n")
    tw = pretty.GoTabWriter(buf, minwidth=10, padding=3)
    tw.write(FILE_HEADER)
    for fi in di.data:
        tw.write(_file_line(fi.file))
    tw.flush()
    return out + buf.getvalue()


def _file_line(f) -> str:
    return f"  {repo_string(commit_repo(f.commit))}\t{f.commit.id}\t{f.path}\t\n"


# ---- logs ------------------------------------------------------------------------------------
_LEVEL_COLORS = {"info": "blue", "warning": "yellow", "error": "red"}


def log_line(message: str) -> str:
    """A log message; the level word (2nd token: info/warning/error) is coloured."""
    parts = message.split(" ")
    if len(parts) > 1 and parts[1] in _LEVEL_COLORS:
        parts[1] = pretty.colorize(parts[1], _LEVEL_COLORS[parts[1]])
        message = " ".join(parts)
    return message
