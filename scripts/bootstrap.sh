#!/usr/bin/env bash
# Create ./.venv with everything the project, its tests and its examples need.
# Idempotent: a second run only checks that the install is current.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# Bytecode for our own packages, as a regular `pip install` would write it: every pachctl
# command and pachd start loads it instead of compiling ~60 modules (~25 ms a command).
"$VENV/bin/python" -m compileall -q pachctl pachd pfs pps proto >/dev/null
stamp="$VENV/.installed"
want=$(cat pyproject.toml examples/requirements.txt 2>/dev/null | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q -e '.[test]' -r examples/requirements.txt
# pachctl mount: pyfuse3 compiles against libfuse3; without its headers everything else works.
if ! "$VENV/bin/python" -m pip install -q -e '.[mount]' >/dev/null 2>&1; then
  echo "note: pachctl mount is not available: pyfuse3 did not build. Install gcc pkg-config" \
       "libfuse3-dev fuse3 (apt-get install ...), then: $VENV/bin/pip install -e '.[mount]'" >&2
fi
echo "$want" > "$stamp"
