"""pachctl's command framework: verb groups, argument counts, errors, shared flags.

Pachyderm's syntax is verb-first (`pachctl list repo`), so the root holds one `VerbGroup` per
verb (create, list, ...) and each noun-area module (cmd_repo, cmd_commit, cmd_file,
cmd_config, cmd_misc, later cmd_pps) registers its commands into them with `command()`.

Invariants:
- Every failure ends as: the message alone on stderr, exit status 1. gRPC errors show their
  status message only (no `rpc error: code = ...`), never a traceback (`-v` adds one for
  unexpected errors). Wrong argument counts print Pachyderm's texts (`expected 1 arguments,
  got 0`), a blank line and the command's usage.
- Nouns accept plurals (`list repos`, `list branches`) and unknown commands are reported as
  `unknown command "x" for "pachctl list"`.
- One `App` per invocation holds the config, the project default and one lazily created
  client (autostarting pachd when that applies); it is closed when the command ends.
- `--raw`/`-o`, `--full-timestamps` and `--project` mean the same on every command.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shlex
import subprocess
import sys
import traceback
from typing import Callable, Iterator, Optional

import click
import grpc

from pachctl import pretty
from pachctl.config import Config
from pachctl.daemon import DaemonError
from pachctl.encode import Encoder, proto_to_dict, validate_output_flags


class CliError(Exception):
    """A user-facing error: printed as its message, exit status 1."""


class ArgCountError(click.UsageError):
    pass


# ---- the per-invocation application object ---------------------------------------------------
class App:
    def __init__(self, verbose: bool = False, rpc_timeout: Optional[float] = None):
        self.verbose = verbose
        self.rpc_timeout = rpc_timeout
        self.env = os.environ
        self._config: Optional[Config] = None
        self._client = None
        self.address = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = Config.load(env=self.env)
        return self._config

    def project(self, flag: Optional[str] = None) -> str:
        """`--project` if given, else the active context's project (`default` when unset)."""
        return flag if flag else self.config.project(self.env)

    def client(self):
        if self._client is None:
            from pachctl import daemon
            from pachctl.client import PachClient

            cfg = self.config
            self.address = cfg.pachd_address(self.env)
            daemon.ensure_pachd(cfg, self.env, sys.stderr)
            self._client = PachClient.from_config(cfg, self.env, timeout=self.rpc_timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            if self._client.queued_in_transaction:  # as pachctl's WithActiveTransaction says it
                sys.stderr.write(f"Added to transaction: {self._client.transaction}\n")
            self._client.close()
            self._client = None


_current: list[App] = []


def get_app() -> App:
    ctx = click.get_current_context()
    app = ctx.find_object(App)
    if app is None:  # a sub-command invoked on its own (tests)
        app = ctx.ensure_object(App)
    return app


# ---- commands and groups ---------------------------------------------------------------------
def _count_text(lo: int, hi: Optional[int], n: int) -> Optional[str]:
    if hi is None:
        return None if n >= lo else f"expected at least {lo} arguments, got {n}"
    if lo == hi:
        return None if n == lo else f"expected {lo} arguments, got {n}"
    return None if lo <= n <= hi else f"expected {lo} to {hi} arguments, got {n}"


class PCommand(click.Command):
    """A command whose positional arguments are counted like cobra's RunFixedArgs & co."""

    def __init__(self, *a, arity: tuple[int, Optional[int]] = (0, 0), **kw):
        self.arity = arity
        settings = kw.setdefault("context_settings", {})
        settings.setdefault("help_option_names", ["-h", "--help"])
        settings.setdefault("allow_extra_args", True)  # counted below, like cobra
        super().__init__(*a, **kw)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        n = len(ctx.params.get("args") or ()) + len(ctx.args)
        msg = _count_text(self.arity[0], self.arity[1], n)
        if msg:
            raise ArgCountError(msg, ctx)
        return rest


_PLURALS = {"branches": "branch", "commitsets": "commitset"}


class VerbGroup(click.Group):
    """A verb (`list`, `create`, ...) whose sub-commands are nouns; plurals are aliases."""

    def __init__(self, *a, **kw):
        kw.setdefault("context_settings", {}).setdefault("help_option_names", ["-h", "--help"])
        super().__init__(*a, **kw)

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None:
            single = _PLURALS.get(name) or (name[:-1] if name.endswith("s") else None)
            if single:
                cmd = super().get_command(ctx, single)
        return cmd

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        cmd = self.get_command(ctx, name)
        if cmd is None and not ctx.resilient_parsing:
            raise click.UsageError(f'unknown command "{name}" for "{ctx.command_path}"', ctx)
        return super().resolve_command(ctx, args)


VERB_HELP = {
    "check": "Check the integrity of stored data.",
    "create": "Create a new instance of a Pachyderm resource.",
    "update": "Change the properties of an existing Pachyderm resource.",
    "inspect": "Show detailed information about a Pachyderm resource.",
    "list": "Print a list of Pachyderm resources of a specific type.",
    "delete": "Delete an existing Pachyderm resource.",
    "start": "Start a Pachyderm resource.",
    "finish": "Finish a Pachyderm resource.",
    "wait": "Wait for the side-effects of a Pachyderm resource to propagate.",
    "subscribe": "Wait for notifications of changes to a Pachyderm resource.",
    "squash": "Squash an existing Pachyderm resource.",
    "find": "Find a file addition, modification, or deletion in a commit.",
    "put": "Insert data into Pachyderm.",
    "get": "Get the raw data represented by a Pachyderm resource.",
    "glob": "Print a list of Pachyderm resources matching a glob pattern.",
    "diff": "Show the differences between two Pachyderm resources.",
    "copy": "Copy a Pachyderm resource.",
    "stop": "Cancel an ongoing task.",
    "rerun": "Rerun a Pachyderm resource.",
    "run": "Manually run a Pachyderm resource.",
    "restart": "Cancel and restart an ongoing task.",
    "draw": "Draw an ASCII representation of an existing Pachyderm resource.",
}


def parse_duration(text: str) -> Optional[float]:
    """Go's time.ParseDuration (`30s`, `1m30s`, `250ms`), in seconds; `default` -> None."""
    if text in ("", "default"):
        return None
    if text == "0":
        return 0.0
    units = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    m = re.fullmatch(r"((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|ms|s|m|h))+", text)
    if not m:
        raise CliError(f'time: invalid duration "{text}"')
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)", text))


class RootGroup(VerbGroup):
    """`pachctl`: global flags, and the one place errors become messages and exit codes."""

    def main(self, args=None, prog_name=None, **extra):  # noqa: C901 - one error funnel
        args = list(sys.argv[1:] if args is None else args)
        verbose = any(a in ("-v", "--verbose") for a in args)
        code = 1
        try:
            rv = super().main(args=args, prog_name=prog_name or "pachctl", standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except ArgCountError as e:
            _err(f"{e.format_message()}\n\n{e.ctx.get_help() if e.ctx else ''}")
        except click.NoSuchOption as e:
            _err(f"unknown flag: {e.option_name}\nRun '{e.ctx.command_path} --help' for usage."
                 if e.ctx else f"unknown flag: {e.option_name}")
        except click.UsageError as e:
            hint = f"\nRun '{e.ctx.command_path} --help' for usage." if e.ctx else ""
            _err(e.format_message() + hint)
        except click.ClickException as e:
            _err(e.format_message())
        except click.exceptions.Abort:
            _err("Aborted!")
        except KeyboardInterrupt:
            code = 130
        except BrokenPipeError:
            _silence_stdout()
        except grpc.RpcError as e:
            from pachctl.client import describe_rpc_error
            app = _current[-1] if _current else None
            text = describe_rpc_error(e, app.address if app else None)
            if app is not None and text.startswith("could not connect to pachd"):
                from pachctl.daemon import not_started_hint
                try:
                    text += not_started_hint(app.config, app.env)
                except Exception:  # noqa: BLE001 - the hint must never hide the error
                    pass
            _err(text)
        except (CliError, DaemonError, ValueError) as e:
            _err(str(e))
        except OSError as e:
            _err(os_error_text(e))
        except Exception as e:  # noqa: BLE001 - never a traceback unless asked
            _err(f"unexpected error: {type(e).__name__}: {e}")
            if verbose:
                traceback.print_exc()
        finally:
            while _current:
                _current.pop().close()
        sys.exit(code)


def _err(msg: str) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    sys.stderr.write(msg.rstrip("\n") + "\n")
    sys.stderr.flush()


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def os_error_text(e: OSError) -> str:
    """Go-like `open <path>: no such file or directory`."""
    reason = (e.strerror or str(e)).lower() if e.strerror else str(e)
    return f"open {e.filename}: {reason}" if e.filename else reason


@click.group(cls=RootGroup, name="pachctl",
             help="Access the Pachyderm API.\n\nEnvironment variables:\n\n\b\n"
                  "  PACH_CONFIG=<path>, the path where pachctl will attempt to load your config.\n"
                  "  PACHD_ADDRESS=<host>:<port>, the pachd server to connect to (e.g. 127.0.0.1:30650).\n"
                  "  PACH_CONTEXT=<context>, the context to use (overrides the config file).\n"
                  "  PACHCTL_NO_AUTOSTART=1, never start a local pachd in the background.")
@click.option("-v", "--verbose", is_flag=True, help="Output verbose logs")
@click.option("--no-color", is_flag=True, help="Turn off colors.")
@click.option("--rpc-timeout", default="default", metavar="DURATION",
              help='Maximum time an RPC may take (Go duration, e.g. "30s"); "default" means no limit.')
@click.pass_context
def root(ctx: click.Context, verbose: bool, no_color: bool, rpc_timeout: str) -> None:
    pretty.set_color(False if no_color else None)
    app = App(verbose=verbose, rpc_timeout=parse_duration(rpc_timeout))
    _current.append(app)
    ctx.obj = app
    if verbose:  # RPC names and timings on stderr, for this invocation only
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log = logging.getLogger("pachctl")
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        ctx.call_on_close(lambda: (log.removeHandler(handler), log.setLevel(logging.NOTSET)))


def verb(name: str) -> VerbGroup:
    """The group for a verb, created on first use."""
    grp = root.commands.get(name)
    if grp is None:
        grp = VerbGroup(name, help=VERB_HELP.get(name, ""))
        root.add_command(grp)
    return grp


def command(verb_name: Optional[str], noun: str, *, arity: tuple[int, Optional[int]] = (0, 0),
            metavar: str = "", **kw) -> Callable:
    """Register `pachctl <verb> <noun>`; positional arguments arrive as the tuple `args`."""
    def deco(f):
        if arity != (0, 0):
            f = click.argument("args", nargs=-1, metavar=metavar)(f)
        cmd = click.command(noun, cls=PCommand, arity=arity, **kw)(f)
        (verb(verb_name) if verb_name else root).add_command(cmd)
        return cmd
    return deco


# ---- shared flags ----------------------------------------------------------------------------
def raw_options(f):
    f = click.option("-o", "--output", default="", metavar="FORMAT",
                     help='Output format when --raw is set: "json" or "yaml" (default "json")')(f)
    return click.option("--raw", is_flag=True,
                        help="Disable pretty printing; serialize data structures to an encoding "
                             "such as json or yaml")(f)


def timestamp_option(f):
    return click.option("--full-timestamps", is_flag=True,
                        help="Return absolute timestamps (as opposed to the default, relative timestamps).")(f)


def project_option(f):
    return click.option("--project", default=None, metavar="PROJECT",
                        help="Project in which the object lives (default: the context's project).")(f)


def encoder(raw: bool, output: str) -> Optional[Encoder]:
    """An Encoder on stdout for --raw, None for pretty output (errors on -o without --raw)."""
    fmt = validate_output_flags(raw, output)
    return Encoder(sys.stdout, fmt) if fmt else None


def emit(enc: Encoder, msg) -> None:
    enc.encode(proto_to_dict(msg))


@contextlib.contextmanager
def paged(no_pager: bool = False) -> Iterator:
    """Stdout, or a buffer piped through $PAGER (default `less -RFX`) when stdout is a TTY."""
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    if no_pager or not tty:
        yield sys.stdout
        return
    buf = io.StringIO()
    yield buf
    argv = shlex.split(os.environ.get("PAGER") or "less -RFX")
    try:
        subprocess.run(argv, input=buf.getvalue(), text=True, check=False)
    except OSError as e:
        sys.stderr.write(f"error running pager ({e}), printing output directly\n")
        sys.stdout.write(buf.getvalue())


def confirm() -> bool:
    """Pachyderm's InteractiveConfirm: `Are you sure you want to do this? (y/N): `."""
    sys.stderr.write("Are you sure you want to do this? (y/N): ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    return line.strip().lower() in ("y", "yes")
