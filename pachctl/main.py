"""The `pachctl` console script: builds the command tree and runs it.

Each noun area lives in its own module and registers its commands on import:
`cmd_repo` (projects, repos, branches), `cmd_commit` (commits, commit sets, find commit),
`cmd_file` (inspect/list/glob/diff/delete/copy file), `cmd_transfer` (put/get file),
`cmd_config` (config ...), `cmd_misc` (version, shutdown, daemon) and `cmd_pps` (pipelines;
it imports `cmd_jobs` (jobs, datums), `cmd_logs` and `cmd_draw`). The hidden `next datum`
(datum batching, `cmd_worker`) is added to the root as well.

Invariants: `main()` never returns normally; it exits 0 on success and 1 (message on stderr)
on any error. `cli` is the click root, for tests (`CliRunner().invoke(cli, [...])`).
"""
from __future__ import annotations

import importlib
import importlib.util

from pachctl.cli import root as cli

for _mod in ("cmd_repo", "cmd_commit", "cmd_file", "cmd_transfer", "cmd_config", "cmd_misc", "cmd_pps"):
    if importlib.util.find_spec(f"pachctl.{_mod}") is not None:
        importlib.import_module(f"pachctl.{_mod}")

from pachctl.cmd_worker import next_group  # noqa: E402

cli.add_command(next_group)


def main(argv=None) -> None:
    cli.main(args=argv, prog_name="pachctl")


if __name__ == "__main__":
    main()
