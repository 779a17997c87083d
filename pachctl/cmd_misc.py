"""`version`, and the background pachd: `shutdown`, `daemon start|stop|status`.

Invariants:
- `version` prints pachctl's row before contacting pachd (so it is visible even when pachd is
  down) in the table `pachctl version` uses (minwidth 20, padding 3); `--client-only` never
  contacts pachd.
- `shutdown` and `daemon stop` are the same command: SIGTERM to the pachd recorded in
  `~/.pachyderm/pachd.pid` (only ever one that pachctl started), then wait for it to exit.
"""
from __future__ import annotations

import sys

import click
import grpc
from google.protobuf import empty_pb2

from pachctl import daemon
from pachctl.cli import CliError, PCommand, command, emit, encoder, get_app, parse_duration, raw_options, root
from pachctl.pretty import GoTabWriter


def _pretty_version(v) -> str:
    return f"{v.major}.{v.minor}.{v.micro}{v.additional}"


def client_version():
    from pachd.misc_api import version_message
    return version_message()


@command(None, "version", help="Print pachctl's and pachd's versions.")
@click.option("--client-only", is_flag=True,
              help="If set, only print pachctl's version, but don't make any RPCs to pachd. "
                   "Useful if pachd is unavailable")
@click.option("--timeout", default="default",
              help="If set, pachctl version will timeout after the given duration (formatted as a "
                   "golang time duration--a number followed by ns, us, ms, s, m, or h). If "
                   "--client-only is set, this flag is ignored.")
@raw_options
def version(client_only, timeout, raw, output):
    enc = encoder(raw, output)
    mine = client_version()
    if client_only:
        if enc:
            emit(enc, mine)
        else:
            sys.stdout.write(_pretty_version(mine) + "\n")
        return
    w = GoTabWriter(sys.stdout, minwidth=20, padding=3)
    if enc:
        emit(enc, mine)
    else:
        w.write("COMPONENT\tVERSION\t\n")
        w.write(f"pachctl\t{_pretty_version(mine)}\t\n")
        w.flush()
        sys.stdout.flush()
    app = get_app()
    t = parse_duration(timeout)
    try:
        theirs = app.client().version.GetVersion(empty_pb2.Empty(), timeout=t if t else 10.0)
    except grpc.RpcError as e:
        import io
        buf = io.StringIO()
        ew = GoTabWriter(buf, minwidth=20, padding=3)
        ew.write(f"pachd\t(version unknown) : error connecting to pachd server at address "
                 f"({app.address.qualified if app.address else ''}): {e.details()}\n\n"
                 "please make sure pachd is up (run `pachd`, or unset PACHCTL_NO_AUTOSTART so "
                 "pachctl starts one) and that the context's pachd_address is right\n")
        ew.flush()
        raise CliError(buf.getvalue()) from None
    if enc:
        emit(enc, theirs)
    else:
        w.write(f"pachd\t{_pretty_version(theirs)}\t\n")
        w.flush()


# ---- the background pachd --------------------------------------------------------------------
def _stop() -> None:
    pid = daemon.stop(get_app().env)
    sys.stderr.write(f"pachd (pid {pid}) stopped\n")


@command(None, "shutdown",
         help="Stop the pachd that pachctl started in the background (same as `pachctl daemon stop`). "
              "Its data stays in ~/.pachyderm/data.")
def shutdown():
    _stop()


@root.group("daemon", help="Manage the local pachd that pachctl starts in the background when the default "
                           "context finds nothing listening (data in ~/.pachyderm/data, log in "
                           "~/.pachyderm/pachd.log; PACHCTL_NO_AUTOSTART=1 turns autostart off). An address "
                           "named explicitly (PACHD_ADDRESS or another context) is never autostarted, so "
                           "a fresh pachd cannot answer in place of a crashed one of yours; "
                           "PACHCTL_AUTOSTART=1 asks for it there too.")
def daemon_group():
    pass


@daemon_group.command("start", cls=PCommand, help="Start the local pachd in the background now.")
def daemon_start():
    app = get_app()
    addr = app.config.pachd_address(app.env)
    if addr.secured or addr.unix_socket or addr.host not in daemon.LOOPBACK:
        raise CliError(f"the active context's pachd ({addr.qualified}) is not on this machine; "
                       "only a local pachd can be started")
    if daemon.answers(addr):
        sys.stderr.write(f"pachd already answers at {addr.target}\n")
        return
    daemon.start(addr, app.env, sys.stderr)


@daemon_group.command("stop", cls=PCommand, help="Stop the local pachd (same as `pachctl shutdown`).")
def daemon_stop():
    _stop()


@daemon_group.command("status", cls=PCommand, help="Say whether the local pachd is running (exit 1 if not).")
def daemon_status():
    app = get_app()
    info = daemon.running(app.env)
    if info is None:
        raise CliError("no pachd started by pachctl is running")
    sys.stdout.write(f"pachd is running (pid {info['pid']}, port {info.get('port')}, data in "
                     f"{info.get('data')}, log in {info.get('log')})\n")
