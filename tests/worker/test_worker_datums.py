"""Real worker processes in real sandboxes (bwrap, else the user-namespace one), against a real
pachd and a test task master: /pfs layout, outputs and their datum tags, env, stdin, retries, err_cmd, timeouts, cancel,
restart, logs, local images and the no-bwrap fallback."""
from __future__ import annotations

import time

from proto.worker_v1 import tasks_pb2 as wpb
from tests.worker.conftest import by_id, user_lines


def test_pfs_layout_outputs_datum_tags_and_stats(env):
    c = env.repo("in", {"/a.txt": b"hello\n", "/dir/b.txt": b"bee\n", "/dir/c.txt": b"sea\n", "/z": b"z"})
    d1, d2 = env.datum(("in", "in", c, "/a.txt")), env.datum(("in", "in", c, "/dir/"))
    script = ["find /pfs -path /pfs/.scratch -prune -o -print | sort",
              "cat /pfs/in/a.txt 2>/dev/null || true",
              ("for f in $(cd /pfs/in && find . -type f); do mkdir -p /pfs/out/$(dirname $f); "
               "tr a-z A-Z < /pfs/in/$f > /pfs/out/$f; done")]
    done, files = env.run("upper", {"cmd": ["sh"], "stdin": script}, [d1, d2])
    r = by_id(done)
    assert r[d1.id].outcome == wpb.SUCCESS and r[d2.id].outcome == wpb.SUCCESS
    assert files == {"/a.txt": (b"HELLO\n", d1.id), "/dir/b.txt": (b"BEE\n", d2.id),
                     "/dir/c.txt": (b"SEA\n", d2.id)}
    assert list(r[d1.id].outputs) == ["/a.txt"] and sorted(r[d2.id].outputs) == ["/dir/b.txt", "/dir/c.txt"]
    assert r[d1.id].download_bytes == 6 and r[d2.id].download_bytes == 8
    assert r[d1.id].upload_bytes == 6 and r[d1.id].attempts == 1
    assert r[d1.id].process_time.ToNanoseconds() > 0 and r[d1.id].upload_time.ToNanoseconds() > 0
    listing = user_lines(env.master.logs(done.task_id), d1.id)
    assert listing[:5] == ["/pfs", "/pfs/.env", "/pfs/in", "/pfs/in/a.txt", "/pfs/out"]
    assert "hello" in listing
    assert user_lines(env.master.logs(done.task_id), d2.id)[:6] == ["/pfs", "/pfs/.env", "/pfs/in", "/pfs/in/dir",
                                                "/pfs/in/dir/b.txt", "/pfs/in/dir/c.txt"]


def test_env_vars_and_dotenv(env):
    c = env.repo("images", {"/x.png": b"x"})
    d = env.datum(("images", "images", c, "/x.png"))
    done, files = env.run("envs", {"cmd": ["sh", "-c", "env | sort > /pfs/out/env; cp /pfs/.env /pfs/out/dotenv"],
                                   "env": {"MY_VAR": "42"}}, [d])
    assert by_id(done)[d.id].outcome == wpb.SUCCESS
    got = dict(line.split("=", 1) for line in files["/env"][0].decode().splitlines())
    assert got["images"] == "/pfs/images/x.png" and got["images_COMMIT"] == c
    assert got["PACH_DATUM_ID"] == d.id and got["MY_VAR"] == "42"
    job = env.master.completed[done.task_id]
    assert got["PACH_JOB_ID"] == got["PACH_OUTPUT_COMMIT_ID"] != ""
    assert got["PPS_PIPELINE_NAME"] == "envs" and got["PPS_PROJECT_NAME"] == "default"
    assert got["PACH_IN_WORKER"] == "true" and got["PPS_POD_NAME"] == "default-envs-w0"
    assert "PACHD_AUTH_TOKEN" not in got and job.worker_id == "default-envs-w0"
    dotenv = dict(line.split("=", 1) for line in files["/dotenv"][0].decode().splitlines())
    assert dotenv["images"] == "/pfs/images/x.png" and dotenv["PACH_DATUM_ID"] == d.id


def test_stdin_working_dir_and_accept_return_code(env):
    c = env.repo("in", {"/a": b"A", "/b": b"B"})
    da, db = env.datum(("in", "in", c, "/a")), env.datum(("in", "in", c, "/b"))
    tr = {"cmd": ["bash"], "working_dir": "/pfs/in",
          "stdin": ["cat * > /pfs/out/$(ls)", "pwd > /pfs/out/pwd-$(ls)", "test -e a && exit 3", "exit 0"],
          "accept_return_code": [3]}
    done, files = env.run("stdin", tr, [da, db])
    assert all(r.outcome == wpb.SUCCESS for r in done.results)
    assert files["/a"] == (b"A", da.id) and files["/b"] == (b"B", db.id)
    assert files["/pwd-a"][0] == b"/pfs/in\n"


def test_retries_err_cmd_recovered_and_fresh_out(env):
    c = env.repo("in", {"/flaky": b"1", "/broken": b"2", "/hopeless": b"3"})
    ds = [env.datum(("in", "in", c, p)) for p in ("/flaky", "/broken", "/hopeless")]
    script = ["name=$(ls /pfs/in)", "n=$(cat /tmp/$name 2>/dev/null || echo 0); echo $((n+1)) > /tmp/$name",
              "echo attempt $((n+1)) > /pfs/out/$name-attempt$((n+1))",
              "[ $name = flaky ] && [ $n -ge 1 ] && exit 0", "exit 1"]
    tr = {"cmd": ["bash"], "stdin": script, "err_cmd": ["bash"],
          "err_stdin": ["echo err_cmd for $(ls /pfs/in)", "test -e /pfs/in/broken"]}
    done, files = env.run("retry", tr, ds, tries=3)
    r = by_id(done)
    assert (r[ds[0].id].outcome, r[ds[0].id].attempts) == (wpb.SUCCESS, 2)
    assert (r[ds[1].id].outcome, r[ds[1].id].attempts) == (wpb.RECOVERED, 3)
    assert (r[ds[2].id].outcome, r[ds[2].id].attempts) == (wpb.FAILED, 3)
    assert r[ds[2].id].reason == "exit status 1"
    assert files == {"/flaky-attempt2": (b"attempt 2\n", ds[0].id)}  # nothing from failed attempts
    assert not r[ds[1].id].outputs and not r[ds[2].id].outputs
    assert user_lines(env.master.logs(done.task_id), ds[1].id).count("err_cmd for broken") == 3


def test_datum_timeout_kills_the_process_group(env):
    c = env.repo("in", {"/slow": b"", "/check": b""})
    ds = [env.datum(("in", "in", c, "/slow")), env.datum(("in", "in", c, "/check"))]
    script = ["if [ -e /pfs/in/slow ]; then sleep 60 & echo $! > /tmp/child; wait; fi",
              "kill -0 $(cat /tmp/child) 2>/dev/null && echo alive > /pfs/out/child || echo dead > /pfs/out/child"]
    t0 = time.monotonic()
    done, files = env.run("timeout", {"cmd": ["bash"], "stdin": script}, ds, tries=1, timeout=0.5)
    assert time.monotonic() - t0 < 15
    r = by_id(done)
    assert r[ds[0].id].outcome == wpb.FAILED and "timed out after 0.5s" in r[ds[0].id].reason
    assert files == {"/child": (b"dead\n", ds[1].id)}


def test_cancel_via_heartbeat(env):
    c = env.repo("in", {"/a": b"", "/b": b""})
    ds = [env.datum(("in", "in", c, "/a")), env.datum(("in", "in", c, "/b"))]
    out = env.output_commit("cancel")
    env.start("cancel", {"cmd": ["sh", "-c", "echo started; sleep 60; touch /pfs/out/x"]})
    task = env.task("cancel", out, ds)
    env.master.cancel.add(task.task_id)
    t0 = time.monotonic()
    env.master.submit("cancel", task)
    done = env.master.wait(task.task_id, 20)
    assert time.monotonic() - t0 < 10
    assert [r.outcome for r in done.results] == [wpb.CANCELLED, wpb.CANCELLED]
    assert env.output_files("cancel", out) == {}


def test_restart_datum_kills_the_running_attempt(env):
    c = env.repo("in", {"/a": b"A"})
    d = env.datum(("in", "in", c, "/a"))
    out = env.output_commit("restart")
    script = ["if [ -e /tmp/once ]; then cp /pfs/in/a /pfs/out/; exit 0; fi", "touch /tmp/once", "sleep 60"]
    env.start("restart", {"cmd": ["bash"], "stdin": script})
    task = env.task("restart", out, [d])
    env.master.restart[task.task_id] = {d.id}
    env.master.submit("restart", task)
    done = env.master.wait(task.task_id, 20)
    r = by_id(done)[d.id]
    assert (r.outcome, r.attempts) == (wpb.SUCCESS, 2)
    assert env.output_files("restart", out) == {"/a": (b"A", d.id)}
    assert any("datum restarted" in ln.message for ln in env.master.logs(task.task_id))


def test_logs_stream_with_heartbeats(env):
    c = env.repo("in", {"/a": b""})
    d = env.datum(("in", "in", c, "/a"))
    out = env.output_commit("logs")
    code = "import sys,time; print('first'); print('to stderr', file=sys.stderr); time.sleep(2.5); print('last')"
    env.start("logs", {"cmd": ["python3", "-u", "-c", code]})
    tid = env.master.submit("logs", env.task("logs", out, [d]))
    env.master.wait_for(lambda: any(ln.message == "first" for ln in env.master.heartbeat_logs), 15)
    assert tid not in env.master.completed  # streamed while the datum still runs
    done = env.master.wait(tid, 20)
    assert user_lines(env.master.logs(tid), d.id) == ["first", "to stderr", "last"]
    hb = [h for h in env.master.heartbeats if h.task_id == tid]
    assert hb and any(h.datum_id == d.id for h in hb)
    assert all(ln.worker_id == "default-logs-w0" for ln in done.logs)


def test_local_image_overlay(env, tmp_path):
    img = tmp_path / "images" / "shouter"
    img.mkdir(parents=True)
    (img / "shout.py").write_text(
        "import os, sys, yaml\n"  # the venv's packages are importable by python3
        "src = sys.argv[1]\n"
        "for name in os.listdir(src):\n"
        "    data = open(os.path.join(src, name)).read()\n"
        "    open(os.path.join('/pfs/out', name), 'w').write(data.upper() + yaml.__name__)\n")
    c = env.repo("words", {"/w1": b"hi"})
    d = env.datum(("words", "words", c, "/w1"))
    done, files = env.run("shout", {"image": "example.com/me/shouter:2.0",
                                    "cmd": ["python3", "/shout.py", "/pfs/words"]},
                          [d], image_dirs=[tmp_path / "images"])
    assert by_id(done)[d.id].outcome == wpb.SUCCESS, done
    assert files == {"/w1": (b"HIyaml", d.id)}


def test_symlinks_nested_dirs_and_invalid_names(env):
    c = env.repo("in", {"/a": b"A", "/b": b"B"})
    da, db = env.datum(("in", "in", c, "/a")), env.datum(("in", "in", c, "/b"))
    script = ["if [ -e /pfs/in/a ]; then mkdir -p /pfs/out/d/e /pfs/out/empty; ln -s /pfs/in/a /pfs/out/link",
              "ln -s d /pfs/out/dlink; echo n > /pfs/out/d/e/f; mkfifo /pfs/out/fifo; ln -s /nowhere /pfs/out/broken",
              "else touch '/pfs/out/bad*name'; fi"]
    done, files = env.run("links", {"cmd": ["bash"], "stdin": script}, [da, db], tries=1)
    r = by_id(done)
    assert r[da.id].outcome == wpb.SUCCESS
    assert files == {"/link": (b"A", da.id), "/d/e/f": (b"n\n", da.id), "/dlink/e/f": (b"n\n", da.id)}
    assert r[db.id].outcome == wpb.FAILED and "invalid output file name" in r[db.id].reason


def test_cross_inputs_shared_paths_and_missing_input(env):
    ci = env.repo("images", {"/i1": b"1", "/i2": b"2"})
    cs = env.repo("scripts", {"/s.sh": b"echo hi", "/lib/x": b"x"})
    ds = [env.datum(("images", "images", ci, p), ("scripts", "scripts", cs, "/")) for p in ("/i1", "/i2")]
    missing = env.datum(("images", "images", ci, "/nope"))
    tr = {"cmd": ["bash", "-c", "cat /pfs/scripts/lib/x /pfs/images/* > /pfs/out/$(ls /pfs/images); ls /pfs/scripts"]}
    done, files = env.run("cross", tr, [*ds, missing], tries=1)
    r = by_id(done)
    assert files == {"/i1": (b"x1", ds[0].id), "/i2": (b"x2", ds[1].id)}
    assert user_lines(env.master.logs(done.task_id), ds[1].id) == ["lib", "s.sh"]
    assert r[missing.id].outcome == wpb.FAILED and "downloading images:/nope" in r[missing.id].reason


def test_empty_files_input(env):
    c = env.repo("in", {"/big": b"x" * 1000, "/d/e": b"yy"})
    d = env.datum(("in", "in", c, "/"))
    d.inputs[0].empty_files = True
    _, files = env.run("empty", {"cmd": ["sh", "-c", "cd /pfs/in && find . -type f -printf '%p %s\\n' | sort > /pfs/out/l"]}, [d])
    assert files["/l"][0] == b"./big 0\n./d/e 0\n"


def test_fallback_without_bwrap(env, tmp_path):
    img = tmp_path / "imgs" / "tool"
    img.mkdir(parents=True)
    # only cmd args, stdin, env values and working_dir are rewritten, not file contents
    (img / "tool.sh").write_text('cp "$1"/* "$2"/; echo $in; grep PACH_DATUM_ID "$3"\n')
    c = env.repo("in", {"/a": b"A"})
    d = env.datum(("in", "in", c, "/a"))
    done, files = env.run("fb", {"image": "tool", "cmd": ["sh", "/tool.sh", "/pfs/in", "/pfs/out", "/pfs/.env"]}, [d], sandbox="none",
                          image_dirs=[tmp_path / "imgs"])
    assert by_id(done)[d.id].outcome == wpb.SUCCESS, done
    assert files == {"/a": (b"A", d.id)}
    lines = user_lines(env.master.logs(done.task_id), d.id)
    assert lines[0].endswith("/pfs/in/a") and lines[0] != "/pfs/in/a"  # real scratch path
    assert lines[1] == f"PACH_DATUM_ID={d.id}"


def test_task_stop_exits_the_worker(env):
    """Task.stop makes the worker exit 0; the executor reports it as exited."""
    ex = env.start("stopper", {"cmd": ["true"]})
    env.master.wait_for(lambda: env.master.polls["default-stopper-w0"] > 0, 20)
    env.master.stop.add("stopper")
    with env.master.cond:
        env.master.cond.notify_all()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and ex.workers(("default", "stopper"))[0].state != "exited":
        time.sleep(0.1)
    st = ex.workers(("default", "stopper"))[0]
    assert (st.state, st.exit_code) == ("exited", 0)


def test_chatty_datum_logs_arrive_in_chunks(env):
    c = env.repo("in", {"/a": b""})
    d = env.datum(("in", "in", c, "/a"))
    code = "import sys\nfor i in range(60000): sys.stdout.write('x' * 80 + ' %d\\n' % i)"
    done, _ = env.run("chatty", {"cmd": ["python3", "-c", code]}, [d])
    lines = user_lines(env.master.logs(done.task_id), d.id)
    assert len(lines) == 60000 and lines[-1].endswith(" 59999")
    assert done.ByteSize() < 8 << 20
