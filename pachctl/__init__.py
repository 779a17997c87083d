"""pachctl: a Python reimplementation of Pachyderm 2.x's command-line client.

Helper modules: `pretty` (table/size/time/colour/encoder primitives matching Go's output),
`refs` (argument parsing for `repo@ref:path`, `pipeline@job`), `config` (the
`~/.pachyderm/config.json` file shared with pachyderm-sdk).
"""
