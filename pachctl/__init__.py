"""pachctl: a Python reimplementation of Pachyderm 2.x's command-line client.

Entry point `pachctl.main:main` (console script `pachctl`, also `python -m pachctl`).

Framework: `cli` (verb groups, argument counts, errors, shared flags), `client` (gRPC client
on the generated stubs), `daemon` (zero-setup local pachd: autostart and shutdown).
Commands, one module per noun area: `cmd_repo` (projects, repos, branches), `cmd_commit`,
`cmd_file`, `cmd_transfer` (put/get file), `cmd_config`, `cmd_misc` (version, shutdown,
daemon); `cmd_pps` is picked up automatically once it exists.
Helpers: `pretty` (sizes, times, colour, Go tabwriter), `encode` (--raw json/yaml),
`pfs_pretty` (pfs tables and detail blocks), `pb` (request messages), `refs` (argument
parsing), `config` (~/.pachyderm/config.json shared with pachyderm-sdk), `transfer`
(put/get mechanics), `history` (`list file --history`).
"""
