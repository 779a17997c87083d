"""The `pachctl` console script: builds the command tree and runs it.

Each noun area lives in its own module and registers its commands on import:
`cmd_repo` (projects, repos, branches), `cmd_commit` (commits, commit sets, find commit),
`cmd_file` (inspect/list/glob/diff/delete/copy file), `cmd_transfer` (put/get file),
`cmd_config` (config ...), `cmd_auth` (auth ...), `cmd_misc` (version, shutdown, daemon),
`cmd_transaction` (transactions), `cmd_secret` (secrets), `cmd_defaults` (pipeline defaults),
`cmd_storage` (fsck, check storage, garbage-collect, extract), `cmd_mount` (mount, unmount,
mount-server) and `cmd_pps` (pipelines;
it imports `cmd_jobs` (jobs, datums), `cmd_logs` and `cmd_draw`). The hidden `next datum`
(datum batching, `cmd_worker`) is added to the root as well.

Invariants:
- `main()` never returns normally; it exits 0 on success and 1 (message on stderr) on any
  error. `cli` is the click root with every command registered, for tests
  (`CliRunner().invoke(cli, [...])`).
- A run of one command (`pachctl put file ...`) imports only the module that registers it
  (`COMMAND_MODULES`, `VERB_MODULES`), so it starts sooner; anything else (help, an unknown
  or partial command) imports them all first. A test keeps the tables equal to what the
  modules register, and runs every command with only its module loaded.
- `put file` of one local file to a pachd on this machine goes through pachctl.lean_put
  first, which loads neither click nor grpc (most of a mid-sized put was the CLI starting);
  whatever it does not cover runs here as usual, with the same output. So this module
  imports the command framework (click, grpc) only when it is needed. `unmount MOUNTPOINT`
  likewise runs through pachctl.mount.unmount.run (standard library only).
- Run as a program (`argv` None), it ends the process itself once the command is done:
  stdout and stderr flushed, `atexit` handlers run, then `os._exit`. Skipping the
  interpreter's teardown of gRPC and its modules saves about 30 ms a command. Every file a
  command writes is closed by then (`with` blocks); called with `argv` (tests), it raises
  `SystemExit` as usual.
"""
from __future__ import annotations

import importlib
import sys

ALL_MODULES = ("cmd_repo", "cmd_commit", "cmd_file", "cmd_transfer", "cmd_config", "cmd_misc", "cmd_pps",
               "cmd_worker", "cmd_auth", "cmd_transaction", "cmd_secret", "cmd_storage", "cmd_mount",
               "cmd_defaults")
# `<verb> <noun>` -> the module that registers it
COMMAND_MODULES = {
    "cmd_file": ("copy file", "delete file", "diff file", "glob file", "inspect file", "list file"),
    "cmd_repo": ("create branch", "create project", "create repo", "delete branch", "delete project",
                 "delete repo", "inspect branch", "inspect project", "inspect repo", "list branch",
                 "list project", "list repo", "update project", "update repo"),
    "cmd_pps": ("create pipeline", "delete pipeline", "inspect pipeline", "list pipeline", "rerun pipeline",
                "run cron", "start pipeline", "stop pipeline", "update pipeline"),
    "cmd_misc": ("daemon start", "daemon status", "daemon stop"),
    "cmd_commit": ("delete commit", "find commit", "finish commit", "inspect commit", "list commit",
                   "squash commit", "start commit", "subscribe commit", "wait commit"),
    "cmd_jobs": ("delete job", "inspect datum", "inspect job", "list datum", "list job", "restart datum",
                 "stop job", "wait job"),
    "cmd_draw": ("draw lineage", "draw pipeline"),
    "cmd_transfer": ("get file", "put file"),
    "cmd_secret": ("create secret", "delete secret", "inspect secret", "list secret"),
    "cmd_defaults": ("create defaults", "delete defaults", "inspect defaults", "update defaults"),
    "cmd_transaction": ("delete transaction", "finish transaction", "inspect transaction", "list transaction",
                        "resume transaction", "start transaction", "stop transaction"),
}
# verbs that are one module's entirely
VERB_MODULES = {"config": "cmd_config", "version": "cmd_misc", "shutdown": "cmd_misc", "logs": "cmd_logs",
                "next": "cmd_worker", "auth": "cmd_auth", "fsck": "cmd_storage", "check": "cmd_storage",
                "garbage-collect": "cmd_storage", "extract": "cmd_storage", "mount": "cmd_mount",
                "unmount": "cmd_mount", "mount-server": "cmd_mount"}
_FLAGS = ("-v", "--verbose", "--no-color")  # the root's own options, which may come first
# modules imported through another one (they import each other; cmd_pps is the way in)
_VIA = {"cmd_jobs": "cmd_pps", "cmd_logs": "cmd_pps", "cmd_draw": "cmd_pps"}


def _module_for(args: list[str]):
    """The one module that registers the command `args` names, or None if not sure."""
    from pachctl.cli import _PLURALS
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] == "--rpc-timeout":
            i += 2
        elif args[i] in _FLAGS or args[i].startswith("--rpc-timeout="):
            i += 1
        else:
            return None
    words = args[i:i + 2]
    if not words:
        return None
    if words[0] in VERB_MODULES:
        return VERB_MODULES[words[0]]
    if len(words) < 2:
        return None
    noun = words[1]
    for name in (noun, _PLURALS.get(noun) or (noun[:-1] if noun.endswith("s") else None)):
        for module, commands in COMMAND_MODULES.items():
            if f"{words[0]} {name}" in commands:
                return module
    return None


def load_commands(modules=ALL_MODULES):
    from pachctl.cli import root as _root
    for name in modules:
        module = importlib.import_module(f"pachctl.{_VIA.get(name, name)}")
        if name == "cmd_worker" and "next" not in _root.commands:
            _root.add_command(module.next_group)
    return _root


def __getattr__(name: str):
    if name == "cli":  # the whole tree, for tests and other importers
        return load_commands()
    raise AttributeError(name)


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["put"] or args[1:2] == ["put"]:
        from pachctl import lean_put
        try:
            code = lean_put.run(args)
        except KeyboardInterrupt:  # as the full CLI: no message, status 130 (a sent put is cancelled)
            code = 130
        if code is not None:
            if argv is not None:
                raise SystemExit(code)
            _end_process(code)
    if args[:1] == ["unmount"]:
        from pachctl.mount import unmount as um
        code = um.run(args)
        if code is not None:
            if argv is not None:
                raise SystemExit(code)
            _end_process(code)
    one = _module_for(args)
    try:
        load_commands((one,) if one else ALL_MODULES).main(args=args, prog_name="pachctl")
    except SystemExit as e:
        if argv is not None:
            raise
        _end_process(e.code)


def _end_process(code) -> None:
    """Exit now with `code` (as `sys.exit` would take it), without the interpreter's teardown."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    import atexit
    import os
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach the reader
            pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    main()
