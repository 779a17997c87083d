"""pachctl pps commands end to end: a real in-process pachd running real local workers.

Every test gets its own pachd (with pps and the local executor) and drives it through the
pachctl root command; pipelines run one worker (`parallelism_spec.constant: 1`).
"""
from __future__ import annotations

import http.server
import json
import re
import shutil
import textwrap
import threading
import time

import pytest

from pachd.server import Pachd
from tests.tools import needs_sandbox

AGO = r"(Less than a second|\d+ seconds?|About a minute) ago"
ID = r"[0-9a-f]{32}"
DID = r"[0-9a-f]{64}"


@pytest.fixture
def pachd(tmp_path):  # overrides conftest's: pps on, local workers
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1").start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


def spec(name, cmd, input=None, **extra):
    s = {"pipeline": {"name": name},
         "input": input or {"pfs": {"repo": "in", "glob": "/*"}},
         "parallelism_spec": {"constant": 1},
         "transform": {"cmd": ["sh", "-c", cmd]}}
    s.update(extra)
    return json.dumps(s)


CP = "cp -r /pfs/in/* /pfs/out/"


def first(raw: str) -> dict:
    return json.JSONDecoder().raw_decode(raw)[0] if raw.strip() else {}


def jobs(ok, pipeline, history="all") -> list[dict]:
    raw, out, dec, pos = ok("list", "job", "-p", pipeline, "--raw", "--history", history), [], json.JSONDecoder(), 0
    while pos < len(raw):
        obj, pos = dec.raw_decode(raw, pos)
        out.append(obj)
    return out


def new_job(ok, pipeline, seen=(), timeout=15.0) -> str:
    """The id of the newest job of `pipeline` not in `seen` (jobs are created asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for j in jobs(ok, pipeline):
            if j["job"]["id"] not in seen:
                return j["job"]["id"]
        time.sleep(0.05)
    raise AssertionError(f"no new job for {pipeline}")


def run_job(ok, pipeline, seen=()) -> tuple[str, str]:
    jid = new_job(ok, pipeline, seen)
    return jid, ok("inspect", "job", f"{pipeline}@{jid}", "--wait")


def setup_input(ok, files=(("a.txt", "hello"),)):
    ok("create", "repo", "in")
    for name, data in files:
        ok("put", "file", f"in@master:/{name}", input=data)


def rows(out: str) -> list[list[str]]:
    return [re.split(r"\s{1,}", line.strip()) for line in out.splitlines()[1:]]


def untimed(table: str) -> str:
    """A table with each relative time as `T` and runs of spaces as one: two listings taken
    a moment apart compare equal if only the clock moved."""
    return re.sub(r" +", " ", re.sub(AGO, "T", table))


# ---- one pipeline, all the views -------------------------------------------------------------
@needs_sandbox  # the logs show the /pfs paths user code sees
def test_pipeline_runs_and_every_view(ok, pachctl, tmp_path):
    setup_input(ok)
    f = tmp_path / "cp.yaml"
    f.write_text("pipeline:\n  name: cp\ndescription: copy it\ninput:\n  pfs: {repo: in, glob: \"/*\"}\n"
                 "parallelism_spec: {constant: 1}\ntransform:\n  cmd: [sh, -c, 'echo copying $in; cp $in /pfs/out/']\n")
    assert ok("create", "pipeline", "-f", f) == ""
    jid, insp = run_job(ok, "cp")
    assert ok("get", "file", "cp@master:/a.txt") == "hello"

    lines = ok("list", "pipeline").splitlines()
    # CREATED is as wide as its longest cell: "Less than a second ago", or "7 seconds ago" on a slow machine
    width = len(re.match(rf"default cp   1       default/in:/\* ({AGO})", lines[1]).group(1))
    assert lines[0] == f"PROJECT NAME VERSION INPUT         {'CREATED':<{width}} STATE / LAST JOB  ALERTS DESCRIPTION "
    assert re.fullmatch(rf"default cp   1       default/in:/\* {AGO} +running / success        copy it     ", lines[1]), lines

    assert re.fullmatch(
        rf"ID: {jid}\nPipeline: cp\nProject: default\nStarted: {AGO} \nDuration: [^\n]+ \nState: success\n"
        r"Reason: \nProcessed: 1\nFailed: 0\nSkipped: 0\nRecovered: 0\nTotal: 1\nData Downloaded: 5B\n"
        r"Data Uploaded: 5B\nDownload Time: .+\nProcess Time: .+\nUpload Time: .+\nDatum Timeout: <nil>\n"
        r"Job Timeout: <nil>\nWorker Status:\nWORKER +JOB +DATUM +STARTED +\nRestarts: 0\n"
        r"ParallelismSpec: constant:1\n\n\n\nInput:\n\{\n  \"pfs\": \{\n(.|\n)+\}\n\nTransform:\n\{\n"
        rf"  \"image\": \"ubuntu:20.04\",\n(.|\n)+\}} \nOutput Commit: {jid} \n", insp), insp

    out = ok("list", "job", "-p", "cp")
    # time columns are as wide as their cells ("Less than a second ago" or "7 seconds ago")
    assert re.fullmatch(r"PROJECT PIPELINE ID                               STARTED +"
                        r"DURATION +RESTART PROGRESS  DL UL STATE   ", out.splitlines()[0]), out
    assert re.fullmatch(rf"default cp       {jid} {AGO} [A-Za-z0-9 ]+ 0       1 \+ 0 / 1 5B 5B success ",
                        out.splitlines()[1]), out
    # the same table, up to the relative times (and the column widths they set)
    assert {untimed(ok("list", "job", "-x")), untimed(ok("list", "job", jid))} == {untimed(out)}
    sets = ok("list", "job").splitlines()
    assert re.fullmatch(rf"ID{' ' * 31}SUBJOBS PROGRESS CREATED +MODIFIED", sets[0]), sets
    assert re.fullmatch(rf"{jid} 1       \u2587{{8}} {AGO} +{AGO} +", sets[1]), sets

    in_commit = first(ok("inspect", "commit", "in@master", "--raw"))["commit"]["id"]
    datums = ok("list", "datum", f"cp@{jid}").splitlines()
    assert re.fullmatch(r"ID {63}FILES {46}STATUS  TIME {15}", datums[0]), datums
    m = re.fullmatch(rf"({DID}) default/in@{in_commit}:/a\.txt success Less than a second ", datums[1])
    assert m, datums
    did = m.group(1)
    detail = ok("inspect", "datum", f"cp@{jid}", did)
    assert detail.startswith(f"ID\t{did}\nJob ID\t{jid}\nImage ID\t\nState\tSUCCESS\nData Downloaded\t5B\n"
                             "Data Uploaded\t5B\nTotal Time\t")
    assert re.search(r"Process Time\t[0-9.]+(ms|µs|s)\n", detail)
    assert detail.endswith(f"Inputs:\n  REPO         COMMIT                             PATH      \n"
                           f"  default/in   {in_commit}   /a.txt    \n")

    assert ok("logs", "-p", "cp") == "copying /pfs/in/a.txt\n"
    assert ok("logs", "-j", f"cp@{jid}", "--datum", did) == "copying /pfs/in/a.txt\n"
    assert ok("logs", "-p", "cp", "--inputs", "/a.txt") == "copying /pfs/in/a.txt\n"
    assert ok("logs", "-p", "cp", "--inputs", "/zzz") == ""
    assert ok("logs", "-p", "cp", "--master") == f"job {jid} finished: JOB_SUCCESS\n"
    assert ok("logs", "-p", "cp", "--since", "1h") == "copying /pfs/in/a.txt\n"
    raw = json.loads(ok("logs", "-p", "cp", "--raw").splitlines()[0])
    assert raw["message"] == "copying /pfs/in/a.txt" and raw["datum_id"] == did and raw["user"] is True

    ip = ok("inspect", "pipeline", "cp")
    assert re.match(rf"Name: cp\nDescription: copy it\nCreated: {AGO} \nState: running\nReason: \n"
                    r"Workers Available: [01]/1\nStopped: false\nParallelism Spec: constant:1\n\n\n"
                    r"Datum Timeout: <nil>\nJob Timeout: <nil>\nInput:\n\{\n", ip), ip
    assert "\nOutput Branch: master\nTransform:\n{\n" in ip and "\nUser Spec:\n{\n" in ip
    assert json.loads(ip.split("Effective Spec:\n")[1])["salt"]
    assert first(ok("inspect", "pipeline", "cp", "--raw"))["pipeline"]["name"] == "cp"
    assert first(ok("list", "pipeline", "--spec"))["transform"]["cmd"][0] == "sh"
    assert "name: cp" in ok("list", "pipeline", "--spec", "-o", "yaml")
    assert untimed(ok("list", "pipeline", "cp")) == untimed(ok("list", "pipeline"))
    assert len(ok("list", "pipeline", "--state", "paused").splitlines()) == 1
    assert len(ok("list", "pipeline", "--state", "PIPELINE_RUNNING").splitlines()) == 2
    assert untimed(ok("list", "job", "-x", "-i", "in@master")) == untimed(out)
    assert ok("list", "job", "-x", "--state", "failure").count("\n") == 1


def test_create_variants_dry_run_and_errors(ok, pachctl, tmp_path):
    setup_input(ok)
    dry = ok("create", "pipeline", "--dry-run", input=spec("cp", CP))
    eff = json.loads(dry)
    assert eff["pipeline"] == {"project": {"name": "default"}, "name": "cp"} and eff["datum_tries"] == 3
    assert dry.startswith("{\n  ")
    assert "  name: cp\n" in ok("create", "pipeline", "--dry-run", "--raw", "-o", "yaml", input=spec("cp", CP))
    compact = ok("create", "pipeline", "--dry-run", "--raw", input=spec("cp", CP))
    assert compact.count("\n") == 1 and json.loads(compact) == eff
    assert ok("list", "pipeline").count("\n") == 1  # nothing was created

    two = tmp_path / "two.yaml"
    two.write_text("pipeline: {name: p1}\ninput: {pfs: {repo: in, glob: /}}\ntransform: {cmd: ['true']}\n"
                   "parallelism_spec: {constant: 1}\n---\n"
                   "pipeline: {name: p2}\ninput: {pfs: {repo: p1, glob: /}}\ntransform: {cmd: ['true']}\n"
                   "parallelism_spec: {constant: 1}\n")
    assert ok("create", "pipeline", "-f", two) == ""
    assert sorted(r[1] for r in rows(ok("list", "pipeline"))) == ["p1", "p2"]

    # http(s) URL
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "cp.json").write_text(spec("cp", CP))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "web"))  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.RequestHandlerClass.log_message = lambda *a: None
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        assert ok("create", "pipeline", "-f", f"http://127.0.0.1:{srv.server_address[1]}/cp.json") == ""
    finally:
        srv.shutdown()
        srv.server_close()
    assert "cp" in [r[1] for r in rows(ok("list", "pipeline"))]

    # project from the context / --project
    ok("create", "project", "p2")
    ok("create", "repo", "in", "--project", "p2")
    ok("create", "pipeline", "--project", "p2", input=spec("cp", CP))
    assert [r[:2] for r in rows(ok("list", "pipeline", "--project", "p2"))] == [["p2", "cp"]]
    assert sorted(r[0] for r in rows(ok("list", "pipeline", "-A"))) == ["default", "default", "default", "p2"]
    assert "p2/in:/*" in ok("list", "pipeline", "-A")

    cases = [
        (["create", "pipeline", "-f", tmp_path / "missing.json"],
         f"open {tmp_path / 'missing.json'}: no such file or directory"),
        (["create", "pipeline", "-f", "x", "--jsonnet", "y"],
         "cannot set both --file and --jsonnet; exactly one must be set"),
        (["create", "pipeline", "--arg", "a=b"], "--arg can only be used with --jsonnet"),
        (["inspect", "pipeline", "nope"], 'pipeline "default/nope" not found'),
        (["delete", "pipeline"], "either a pipeline name or the --all flag needs to be provided"),
        (["delete", "pipeline", "x", "--all"], "cannot use the --all flag with an argument"),
        (["list", "pipeline", "-o", "json"], "cannot set --output (-o) without --raw or --spec"),
        (["list", "pipeline", "--history", "x"],
         'invalid history value: x: strconv.Atoi: parsing "x": invalid syntax'),
        (["list", "pipeline", "--state", "bogus"], 'invalid pipeline state "bogus"'),
        (["inspect", "pipeline"], "expected 1 arguments, got 0"),
    ]
    for args, msg in cases:
        r = pachctl(*args)
        assert (r.exit_code, r.stderr.splitlines()[0]) == (1, msg), (args, r)
    r = pachctl("create", "pipeline", input=spec("cp", CP))
    assert r.exit_code == 1 and "already exists" in r.stderr
    r = pachctl("create", "pipeline", input='{"pipeline": {"name": "bad"}, "transfrom": {}}')
    assert r.exit_code == 1 and "transfrom" in r.stderr and "Traceback" not in r.stderr
    # --jsonnet: pachd renders the template (RenderTemplate) with the --arg top-level arguments
    (tmp_path / "p.jsonnet").write_text(textwrap.dedent("""\
        function(suffix, glob="/*") [
          {pipeline: {name: "tmpl-" + s}, input: {pfs: {repo: "in", glob: glob}},
           transform: {cmd: ["sh", "-c", "cp -r /pfs/in/* /pfs/out/"]}}
          for s in [suffix, suffix + "2"]
        ]
        """))
    assert ok("create", "pipeline", "--jsonnet", tmp_path / "p.jsonnet", "--arg", "suffix=a") == ""
    names = [r[1] for r in rows(ok("list", "pipeline"))]
    assert "tmpl-a" in names and "tmpl-a2" in names
    r = pachctl("create", "pipeline", "--jsonnet", tmp_path / "p.jsonnet")
    assert r.exit_code == 1 and "suffix" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = pachctl("create", "pipeline", "--jsonnet", tmp_path / "p.jsonnet", "--arg", "nonsense")
    assert (r.exit_code, r.stderr) == (1, 'could not parse --arg "nonsense": expected name=value\n')
    r = pachctl("create", "pipeline", input="")
    assert (r.exit_code, r.stderr) == (1, "no pipeline spec found in stdin\n")


# ---- failures, logs --failed, list datum status ------------------------------------------------
FAILING = "echo processing $in; if grep -q bad $in; then echo oops >&2; exit 1; fi; cp $in /pfs/out/"


@needs_sandbox  # the logs show the /pfs paths user code sees
def test_failed_datums_and_logs_failed(ok, pachctl):
    setup_input(ok, [("a.txt", "hello"), ("b.txt", "bad")])
    ok("create", "pipeline", input=spec("f", FAILING, datum_tries=2))
    jid, insp = run_job(ok, "f")
    assert "\nState: failure\nReason: datum " in insp and "\nFailed: 1\n" in insp
    row = ok("list", "job", "-p", "f").splitlines()[1]
    assert re.search(r" 1 \+ 0 / 2 +11B +5B +failure: datum [0-9a-f]{19}\.\.\. $", row), row
    statuses = {r[1].rsplit(":", 1)[1]: r[2] for r in rows(ok("list", "datum", f"f@{jid}"))}
    assert statuses == {"/a.txt": "success", "/b.txt": "failed"}

    failed = ok("logs", "-p", "f", "--failed")
    m = re.fullmatch(rf"=== datum ({DID}) \(failed\)\n  input: default/in@{ID}:/b\.txt\n(.*)", failed, re.DOTALL)
    assert m, failed
    body = m.group(2).splitlines()
    assert body == ["processing /pfs/in/b.txt", "oops", "datum failed (attempt 1): exit status 1",
                    "retrying datum (attempt 2 of 2)", "processing /pfs/in/b.txt", "oops",
                    "datum failed (attempt 2): exit status 1"]
    assert ok("logs", "-j", f"f@{jid}", "--failed") == failed
    assert "processing /pfs/in/a.txt" in ok("logs", "-p", "f")
    assert ok("logs", "-p", "f", "--worker").splitlines() == [body[2], body[3], body[6]]
    assert "--failed" in ok("logs", "--help") and "=== datum <id> (failed)" in ok("logs", "--help")

    # a job without failures: a note on stderr, nothing on stdout
    ok("create", "pipeline", input=spec("g", CP))
    gid, _ = run_job(ok, "g")
    r = pachctl("logs", "-p", "g", "--failed")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", f"no failed datums in job default/g@{gid}\n")

    for args, msg in [
        (["logs", "-p", "f", "-t", "5"], "tail has been deprecated and removed from Pachyderm, use --since instead"),
        (["logs", "-p", "f", "-j", f"f@{jid}"], "only one of pipeline or job should be specified"),
        (["logs", "--master"], "--master requires --pipeline"),
        (["logs", "--failed"], "--failed needs --pipeline or --job"),
        (["logs", "-p", "f", "--failed", "--master"], "--failed cannot be used with --master"),
        (["logs", "-j", "f"], 'invalid format "f": expected pipeline@job-id'),
        (["logs", "-p", "nope"], 'pipeline "default/nope" not found'),
    ]:
        r = pachctl(*args)
        assert (r.exit_code, r.stderr.splitlines()[0]) == (1, msg), (args, r)


def test_restart_datum_on_a_sleeping_datum(ok):
    setup_input(ok)
    cmd = ("if [ -e /tmp/seen-$PACH_DATUM_ID ]; then cp $in /pfs/out/; "
           "else touch /tmp/seen-$PACH_DATUM_ID; echo sleeping; exec sleep 60; fi")
    ok("create", "pipeline", input=spec("r", cmd))
    jid = new_job(ok, "r")
    deadline = time.monotonic() + 20
    while "sleeping" not in ok("logs", "-p", "r"):
        assert time.monotonic() < deadline, "the datum never started"
        time.sleep(0.1)
    assert "running" in ok("list", "job", "-p", "r")
    t0 = time.monotonic()
    assert ok("restart", "datum", f"r@{jid}", "/a.txt,") == ""
    insp = ok("inspect", "job", f"r@{jid}", "--wait")
    assert time.monotonic() - t0 < 30
    assert "\nState: success\n" in insp and "\nProcessed: 1\n" in insp
    logs = ok("logs", "-p", "r", "--worker")
    assert "datum failed (attempt 1): datum restarted" in logs and "retrying datum (attempt 2 of 3)" in logs
    assert ok("get", "file", "r@master:/a.txt") == "hello"


def test_stop_start_pipeline_and_stop_delete_job(ok):
    setup_input(ok)
    ok("create", "pipeline", input=spec("cp", CP))
    j1, _ = run_job(ok, "cp")
    assert ok("stop", "pipeline", "cp") == ""
    insp = ok("inspect", "pipeline", "cp")
    assert "\nState: paused\n" in insp and "\nStopped: true\n" in insp
    assert "paused / success" in ok("list", "pipeline")
    ok("put", "file", "in@master:/b.txt", input="more")
    j2 = new_job(ok, "cp", {j1})
    time.sleep(1.0)
    assert not ok("list", "job", "-p", "cp").splitlines()[1].endswith("success ")
    assert ok("start", "pipeline", "cp") == ""
    assert "\nState: success\n" in ok("inspect", "job", f"cp@{j2}", "--wait")
    assert ok("get", "file", "cp@master:/b.txt") == "more"

    ok("create", "pipeline", input=spec("s", "exec sleep 60"))
    sj = new_job(ok, "s")
    assert ok("stop", "job", f"s@{sj}") == ""
    insp = ok("inspect", "job", f"s@{sj}", "--wait")
    assert "\nState: killed\nReason: job stopped\n" in insp
    assert ok("list", "job", "-p", "s").splitlines()[1].endswith(" killed: job stopped ")
    assert first(ok("inspect", "commit", f"s@{sj}", "--raw"))["error"] == "job stopped"
    assert ok("delete", "job", f"s@{sj}") == ""
    assert ok("list", "job", "-p", "s").count("\n") == 1


def test_update_with_and_without_reprocess(ok, pachctl):
    setup_input(ok)
    ok("create", "pipeline", input=spec("cp", CP))
    j1, _ = run_job(ok, "cp")
    ok("update", "pipeline", input=spec("cp", "echo v2; " + CP))
    j2, insp = run_job(ok, "cp", {j1})
    assert "\nProcessed: 0\nFailed: 0\nSkipped: 1\nRecovered: 0\nTotal: 1\n" in insp
    table = ok("list", "job", "-p", "cp").splitlines()
    assert len(table) == 2 and j2 in table[1]  # --history none: the current version's jobs only
    assert table[1].endswith(" 0 + 1 / 1 0B 0B success: there were no datums to process ")
    assert len(ok("list", "job", "-p", "cp", "--history", "all").splitlines()) == 3
    assert len(ok("list", "job", "-p", "cp", "--history", "1").splitlines()) == 3
    assert rows(ok("list", "pipeline"))[0][2] == "2"
    assert len(ok("list", "pipeline", "--history", "all").splitlines()) == 3
    ok("update", "pipeline", "--reprocess", input=spec("cp", "echo v3; " + CP))
    j3, insp = run_job(ok, "cp", {j1, j2})
    assert "\nProcessed: 1\nFailed: 0\nSkipped: 0\n" in insp
    assert ok("logs", "-j", f"cp@{j3}") == "v3\n"
    ok("rerun", "pipeline", "cp")
    j4, insp = run_job(ok, "cp", {j1, j2, j3})
    assert "\nSkipped: 1\n" in insp
    ok("rerun", "pipeline", "cp", "--reprocess")
    _, insp = run_job(ok, "cp", {j1, j2, j3, j4})
    assert "\nProcessed: 1\n" in insp


def test_delete_pipeline(ok, pachctl):
    setup_input(ok)
    for name in ("a", "b", "c"):
        ok("create", "pipeline", input=spec(name, CP))
    repos = lambda: sorted(r[1] for r in rows(ok("list", "repo")))  # noqa: E731
    assert repos() == ["a", "b", "c", "in"]
    assert ok("delete", "pipeline", "a") == ""
    assert repos() == ["b", "c", "in"]
    assert ok("delete", "pipeline", "b", "--keep-repo") == ""
    assert repos() == ["b", "c", "in"] and sorted(r[1] for r in rows(ok("list", "pipeline"))) == ["c"]
    r = pachctl("delete", "pipeline", "a")
    assert (r.exit_code, r.stderr) == (1, 'pipeline "default/a" not found\n')
    assert ok("delete", "pipeline", "--all") == ""
    assert ok("list", "pipeline").count("\n") == 1 and repos() == ["b", "in"]


def test_wait_commit_on_an_output_commit_waits_for_its_job(ok):
    setup_input(ok)
    ok("create", "pipeline", input=spec("sl", "case $in in *new.txt) sleep 2;; esac; cp $in /pfs/out/"))
    j1, _ = run_job(ok, "sl")
    cid = ok("start", "commit", "in@master").strip()
    ok("put", "file", f"in@{cid}:/new.txt", input="fresh")
    ok("finish", "commit", f"in@{cid}")
    t0 = time.monotonic()
    out = ok("wait", "commit", f"sl@{cid}")
    assert time.monotonic() - t0 >= 1.5
    assert re.fullmatch(rf"Commit: sl@{cid}\nDescription: \nParent: {j1}\nStarted: {AGO}\nFinished: {AGO}\n"
                        r"(Size: .+\n)?", out), out
    assert ok("get", "file", f"sl@{cid}:/new.txt") == "fresh"
    assert "\nState: success\n" in ok("inspect", "job", f"sl@{cid}", "--wait")
    assert re.fullmatch(rf"PROJECT +PIPELINE +ID +STARTED +DURATION +RESTART +PROGRESS +DL +UL +STATE +\n"
                        rf"default +sl +{cid} .+ 1 \+ 1 / 2 .+ success \n", ok("wait", "job", f"sl@{cid}"))
    assert re.search(rf"^default +sl +{cid} ", ok("wait", "job", cid), re.MULTILINE)


def test_run_cron(ok):
    ok("create", "pipeline", input=spec("cr", "ls /pfs/tick > /pfs/out/ticks",
                                        input={"cron": {"name": "tick", "spec": "@never"}}))
    seen = set()
    deadline = time.monotonic() + 10
    while not jobs(ok, "cr") and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = {j["job"]["id"] for j in jobs(ok, "cr")}
    assert ok("run", "cron", "cr") == ""
    _, insp = run_job(ok, "cr", seen)
    assert "\nState: success\n" in insp and "\nTotal: 1\n" in insp
    assert len(ok("list", "file", "cr_tick@master").splitlines()) == 2


def test_job_flag_errors_and_next_datum(pachctl, ok):
    uuid = "0" * 12 + "4" + "0" * 19
    for args, msg in [
        (["list", "job", "--state", "running"], "cannot specify '--state' when listing all jobs"),
        (["list", "job", "--input", "in@master"], "cannot specify '--input' when listing all jobs"),
        (["list", "job", "--history", "all"], "cannot specify '--history' when listing all jobs"),
        (["list", "job", uuid, "-p", "x"], "cannot specify '--pipeline' when listing sub-jobs"),
        (["list", "job", "-x", "--state", "nah"], 'invalid job state "nah"'),
        (["inspect", "job", uuid], f'Use "list job {uuid}" to see jobs with a given ID across different pipelines'),
        (["inspect", "job", "foo"], 'invalid format "foo": expected pipeline@job-id'),
        (["inspect", "job", "@x"], 'invalid format "@x": pipeline must be specified'),
        (["list", "job", uuid], f"no jobs found for job set {uuid}"),
        (["list", "datum"], "must specify either a job or a pipeline spec"),
        (["list", "datum", "a@b", "-f", "x"], "can't specify both a job and a pipeline spec"),
        (["inspect", "datum", "a@b"], "expected 2 arguments, got 1"),
        (["draw", "lineage", "in@master", "-n", "0"], "depth should be natural number"),
        (["draw", "pipeline", "-o", "gif"], 'unrecognized output format "gif" (must be "dot", "png" or "svg")'),
    ]:
        r = pachctl(*args)
        assert (r.exit_code, r.stderr.splitlines()[0]) == (1, msg), (args, r)
    r = pachctl("next", "datum")
    assert r.exit_code == 1 and "PPS_WORKER_GRPC_PORT" in r.stderr


def test_list_datum_for_a_spec_file(ok, tmp_path):
    setup_input(ok, [("a.txt", "1"), ("b.txt", "2")])
    f = tmp_path / "s.json"
    f.write_text(spec("nope", CP))
    out = ok("list", "datum", "-f", f)
    assert [(r[1].rsplit(":", 1)[1], r[2], r[3]) for r in rows(out)] == [("/a.txt", "-", "Less"), ("/b.txt", "-", "Less")]


# ---- drawing ---------------------------------------------------------------------------------
def dot_nodes(dot: str) -> set[str]:
    return set(re.findall(r'^\t"([^"]+)"\[', dot, re.MULTILINE))


def dot_edges(dot: str) -> set[tuple[str, str]]:
    return set(re.findall(r'^\t"([^"]+)" -> "([^"]+)"', dot, re.MULTILINE))


def test_draw_pipeline(ok, pachctl, tmp_path):
    setup_input(ok)
    ok("create", "pipeline", input=spec("cp", CP))
    art = ok("draw", "pipeline")
    box = "       +-----------+"
    blank = " " * 26
    edge = " " * 13 + "|" + " " * 12
    assert art == "\n".join([box, "       |    in     |", box] + [edge] * 5 +
                             [box, "       |    cp     |", box] + [blank] * 5) + "\n"
    assert "\x1b[" not in art
    small = ok("draw", "pipeline", "--box-width", "5", "--edge-height", "1").splitlines()
    assert small[:4] == ["    +-----+", "    | in  |", "    +-----+", " " * 7 + "|" + " " * 6]

    ok("create", "pipeline", input=spec("b", CP, input={"pfs": {"repo": "cp", "glob": "/"}}))
    ok("create", "pipeline", input=spec("c", "true", input={"cross": [{"pfs": {"repo": "in", "glob": "/*"}},
                                                                        {"pfs": {"repo": "b", "glob": "/"}}]}))
    dot = ok("draw", "pipeline", "-o", "dot")
    assert dot.startswith("digraph G {")
    assert dot_nodes(dot) == {"in", "cp", "b", "c"}
    assert dot_edges(dot) == {("in", "cp"), ("cp", "b"), ("in", "c"), ("b", "c")}
    art = ok("draw", "pipeline")
    assert [m for line in art.splitlines() for m in re.findall(r"\|\s*(\w+)\s*\|", line)] == ["in", "cp", "b", "c"]
    ok("draw", "pipeline", "--output-file", tmp_path / "dag.dot")
    assert (tmp_path / "dag.dot").read_text() == dot
    ok("draw", "pipeline", "-o", "svg", "--output-file", tmp_path / "dag.svg")  # with or without graphviz
    assert "<svg" in (tmp_path / "dag.svg").read_text()
    if shutil.which("dot"):
        ok("draw", "pipeline", "--output-file", tmp_path / "dag.png")
        assert (tmp_path / "dag.png").read_bytes()[:4] == b"\x89PNG"
    else:
        r = pachctl("draw", "pipeline", "--output-file", tmp_path / "dag.png")
        assert r.exit_code != 0 and "sudo apt-get install graphviz" in r.stderr


def test_draw_lineage(ok, tmp_path):
    setup_input(ok)
    ok("create", "pipeline", input=spec("a", CP))
    ok("create", "pipeline", input=spec("b", "cp -r /pfs/a/* /pfs/out/", input={"pfs": {"repo": "a", "glob": "/"}}))
    run_job(ok, "a")
    run_job(ok, "b")
    cid = ok("start", "commit", "in@master").strip()
    ok("put", "file", f"in@{cid}:/z.txt", input="z")
    ok("finish", "commit", f"in@{cid}")
    ok("wait", "commit", f"b@{cid}")
    ok("inspect", "job", f"b@{cid}", "--wait")

    def key(kind, repo):
        return f"{kind}:default/{repo}@{cid}"

    dot = ok("draw", "lineage", "b@master")
    assert dot_nodes(dot) == {key("data", "b"), key("run", "b"), key("data", "a"), key("run", "a"), key("data", "in")}
    assert dot_edges(dot) == {(key("run", "b"), key("data", "b")), (key("data", "a"), key("run", "b")),
                              (key("run", "a"), key("data", "a")), (key("data", "in"), key("run", "a"))}
    assert '"/pfs/a"' in dot and '"/pfs/out"' in dot
    assert dot_nodes(ok("draw", "lineage", "b@master", "-n", "1")) == {key("data", "b"), key("run", "b"), key("data", "a")}
    down = ok("draw", "lineage", "in@master", "--downstream")
    assert dot_nodes(down) == dot_nodes(dot)
    assert dot_nodes(ok("draw", "lineage", "in@master")) == {key("data", "in")}
    ok("draw", "lineage", "b@master", "-o", "svg", "--output-file", tmp_path / "l.svg")
    assert "<svg" in (tmp_path / "l.svg").read_text() and key("run", "b") in (tmp_path / "l.svg").read_text()
