"""pachctl version, global flags, aliases, error reporting, autostart decisions."""
import json

import pytest

from pachctl import daemon
from pachctl.config import Config
from pachd.misc_api import version_string

V = version_string()


def test_version(ok, pachctl):
    pad = " " * (20 - len(V))
    assert ok("version") == (f"COMPONENT           VERSION             \n"
                             f"pachctl             {V}{pad}\npachd               {V}{pad}\n")
    assert ok("version", "--client-only") == V + "\n"
    raw = ok("version", "--client-only", "--raw")
    assert json.loads(raw)["major"] == int(V.split(".")[0])
    two = ok("version", "--raw")
    assert two.count("{") == 2 and "}{" in two


def test_unreachable_pachd_is_one_clean_error(pachctl):
    dead = {"PACHD_ADDRESS": "localhost:1"}
    r = pachctl("list", "repo", extra_env=dead)
    assert r.exit_code == 1
    assert r.stderr.startswith("could not connect to pachd at grpc://localhost:1: ")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = pachctl("version", extra_env=dead)
    assert r.exit_code == 1
    assert r.stdout.startswith("COMPONENT")
    assert r.stderr.startswith("pachd               (version unknown) : error connecting to pachd server "
                               "at address (grpc://localhost:1): ")


def test_aliases_unknown_commands_and_flags(ok, pachctl):
    ok("create", "repo", "r")
    assert ok("list", "repos") == ok("list", "repo")
    assert ok("list", "branches", "r") == ok("list", "branch", "r")
    r = pachctl("list", "repox")
    assert (r.exit_code, r.stderr.splitlines()[0]) == (1, 'unknown command "repox" for "pachctl list"')
    r = pachctl("lst", "repo")
    assert r.stderr.splitlines()[0] == 'unknown command "lst" for "pachctl"'
    r = pachctl("list", "repo", "--bogus")
    assert (r.exit_code, r.stderr.splitlines()[0]) == (1, "unknown flag: --bogus")
    r = pachctl("--rpc-timeout", "5x", "list", "repo")
    assert (r.exit_code, r.stderr) == (1, 'time: invalid duration "5x"\n')
    assert ok("--rpc-timeout", "30s", "--no-color", "-v", "list", "repo").startswith("PROJECT")
    assert "Usage:" in ok("--help") and "Usage:" in ok("list", "repo", "-h")


def test_wrong_argument_counts(pachctl):
    for args, msg in [
        (["inspect", "commit"], "expected 1 arguments, got 0"),
        (["list", "branch"], "expected 1 arguments, got 0"),
        (["diff", "file"], "expected 1 to 2 arguments, got 0"),
        (["list", "project", "extra"], "expected 0 arguments, got 1"),
        (["config", "set", "active-context"], "expected 1 arguments, got 0"),
    ]:
        r = pachctl(*args)
        assert r.exit_code == 1, args
        lines = r.stderr.splitlines()
        assert lines[0] == msg and lines[1] == "" and "Usage:" in lines[2], (args, r.stderr)


def test_rpc_timeout_applies(ok, pachctl):
    ok("create", "repo", "r")
    ok("start", "commit", "r@master")
    r = pachctl("--rpc-timeout", "300ms", "wait", "commit", "r@master")  # never finishes
    assert (r.exit_code, r.stderr) == (1, "Deadline Exceeded\n")


# ---- autostart decisions (no processes) ------------------------------------------------------
@pytest.mark.parametrize("ctx_name,ctx_addr,env_addr,expect", [
    ("c", "", "", "localhost:30650"),                            # no address anywhere: the default
    ("default", "grpc://localhost:30650", "", "localhost:30650"),  # pachctl's own default context
    # an address named explicitly is somebody's own pachd: never answered by a fresh one
    ("c", "grpc://localhost:30650", "", None),
    ("c", "grpc://127.0.0.1:30650", "", None),
    ("default", "grpc://localhost:31000", "", None),
    ("c", "grpc://pach.example.com:30650", "", None),
    ("c", "grpc://localhost:31000", "", None),  # a port-forward to a real cluster
    ("c", "grpcs://localhost:30650", "", None),
    ("c", "grpc://pach.example.com:30650", "localhost:40000", None),
    ("default", "grpc://localhost:30650", "localhost:30650", None),
    ("c", "", "pach.example.com:30650", None),
])
def test_autostart_only_for_the_implicit_default(tmp_path, ctx_name, ctx_addr, env_addr, expect):
    ctx = {"pachd_address": ctx_addr} if ctx_addr else {}
    cfg = Config({"user_id": "u", "v2": {"active_context": ctx_name, "contexts": {ctx_name: ctx}}},
                 tmp_path / "c.json")
    env = {"HOME": str(tmp_path)}
    if env_addr:
        env["PACHD_ADDRESS"] = env_addr
    got = daemon.autostart_address(cfg, env)
    assert (got.target if got else None) == expect
    assert daemon.autostart_address(cfg, {**env, "PACHCTL_NO_AUTOSTART": "1"}) is None
    # PACHCTL_AUTOSTART=1 asks for it at any loopback address
    forced = daemon.autostart_address(cfg, {**env, "PACHCTL_AUTOSTART": "1"})
    loopback = cfg.pachd_address(env).host in ("localhost", "127.0.0.1") and not cfg.pachd_address(env).secured
    assert (forced is not None) == loopback


def test_shutdown_without_daemon(pachctl):
    r = pachctl("shutdown")
    assert r.exit_code == 1 and r.stderr.startswith("no pachd started by pachctl is running")
    r = pachctl("daemon", "status")
    assert (r.exit_code, r.stderr) == (1, "no pachd started by pachctl is running\n")


def test_verbose_logs_rpcs_to_stderr(pachctl):
    r = pachctl("-v", "list", "repo")
    assert r.exit_code == 0 and r.stdout.startswith("PROJECT")
    assert "DEBUG pachctl.client: rpc ListRepo" in r.stderr
    assert pachctl("list", "repo").stderr == ""  # the handler does not outlive the invocation
