#!/usr/bin/env bash
# Create ./.venv with everything the project, its tests and its examples need, after making
# sure the system packages they use are there (see system_packages below).
# Idempotent: a second run only checks that the install is current.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

# System packages (Debian names), each checked by the tool or file it brings:
#   bubblewrap    the worker sandbox (without it: pps/worker/userns.py, a user namespace)
#   graphviz      PNG/SVG pictures (without it: SVG drawn by pachctl.draw.svg)
#   fuse3, libfuse3-dev, pkg-config, gcc, python3-dev
#                 the FUSE mount, and building pyfuse3 (PyPI has it only as source)
#   python3-venv  `python3 -m venv` on Debian (checked only while ./.venv does not exist)
# Installed with apt-get when this runs as root or has sudo without a password, announced in
# one line; otherwise one line says what to run. The tests that need a missing one skip,
# naming it (tests/tools.py). PACH_NO_SYSTEM_PACKAGES=1: never install, only say so.
missing_packages() {
  local m=()
  command -v bwrap >/dev/null || m+=(bubblewrap)
  command -v dot >/dev/null || m+=(graphviz)
  command -v fusermount3 >/dev/null || m+=(fuse3)
  [ -e /usr/include/fuse3/fuse_lowlevel.h ] || m+=(libfuse3-dev)
  command -v pkg-config >/dev/null || m+=(pkg-config)
  command -v gcc >/dev/null || m+=(gcc)
  "$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    2>/dev/null || m+=(python3-dev)
  if [ ! -x "$VENV/bin/python" ] && ! "$PY" -c 'import ensurepip' 2>/dev/null; then m+=(python3-venv); fi
  echo "${m[*]}"
}

install_system_packages() {
  local missing sudo="" log
  missing=$(missing_packages)
  [ -n "$missing" ] || return 0
  if [ "${PACH_NO_SYSTEM_PACKAGES:-}" = 1 ] || ! command -v apt-get >/dev/null; then
    echo "bootstrap: missing system packages: $missing (Debian names; not installing them here); the tests that need them are skipped"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "bootstrap: missing system packages, run: sudo apt-get install $missing   (until then the tests that need them are skipped)"
      return 0
    fi
  fi
  echo "bootstrap: installing system packages: $missing (apt-get install${sudo:+ via sudo})"
  log=$(mktemp -t pachyderm-py-apt.XXXXXX)
  # shellcheck disable=SC2086  # $missing and $sudo are word lists
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing </dev/null >"$log" 2>&1; then
    # a fresh machine may have no package lists yet
    if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } </dev/null >>"$log" 2>&1; then
      echo "bootstrap: apt-get install $missing failed (log: $log); the tests that need them are skipped"
      return 0
    fi
  fi
  rm -f "$log"
}

install_system_packages
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV"; then
    echo "bootstrap: \`$PY -m venv\` failed; on Debian/Ubuntu run: sudo apt-get install python3-venv" >&2
    rm -rf "$VENV"
    exit 1
  fi
fi
# Bytecode for our own packages, as a regular `pip install` would write it: every pachctl
# command and pachd start loads it instead of compiling ~60 modules (~25 ms a command).
"$VENV/bin/python" -m compileall -q pachctl pachd pfs pps proto auth >/dev/null
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
