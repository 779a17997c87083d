#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12 machine (issue 19), in a container:
#   scripts/fresh-machine.sh [root|user|all]      (needs root, mmdebstrap and podman)
#
# 1. mmdebstrap makes a minimal Debian 12 (bookworm) with only python3, python3-venv, make,
#    git and ca-certificates: no bubblewrap, graphviz, fuse3, gcc (made once, then reused).
# 2. A fresh clone of this checkout's HEAD (from a git bundle), a fresh HOME, then exactly
#    `make tutorial` and `make test`, as
#      root - may install packages: scripts/bootstrap.sh installs them with apt-get;
#      user - a user without sudo: nothing can be installed; workers use the user-namespace
#             sandbox, the pictures are SVG drawn by pachctl, tests needing a tool skip.
#    (PYTEST_ADDOPTS=-rs only lists each skip's reason.) The container is --privileged so that, like a real machine, it has /dev/fuse, an
#    unmasked /proc and a root that may create namespaces.
# Logs: $OUT/<scenario>.log (default OUT=/var/tmp/fresh-machine); the tutorial's pictures are
# copied to $OUT/<scenario>-pictures/.
# A machine whose TLS is intercepted needs its CA: set CA_BUNDLE (default: the host's bundle,
# given to pip and Python inside as PIP_CERT / SSL_CERT_FILE; nothing is installed from it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/var/tmp/fresh-machine}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
IMAGE=localhost/pachyderm-py-fresh-debian12
mkdir -p "$OUT"

if ! podman image exists "$IMAGE"; then
  mmdebstrap --variant=minbase --include=python3,python3-venv,make,git,ca-certificates bookworm \
    "$OUT/rootfs.tar" "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb ${MIRROR%/debian}/debian-security bookworm-security main"
  podman import "$OUT/rootfs.tar" "$IMAGE"
fi
git bundle create "$OUT/checkout.bundle" HEAD

# What runs inside, as the scenario's user, from a fresh HOME ($1: the scenario's name).
cat > "$OUT/inside.sh" <<'INSIDE'
set -e
scenario=$1
git -c advice.detachedHead=false clone -q /in/checkout.bundle ~/pachyderm-py
cd ~/pachyderm-py
echo "== $(id -un): which bwrap dot fusermount3 gcc: $(which bwrap dot fusermount3 gcc | tr '\n' ' ')"
s=$(date +%s); rc=0; make tutorial || rc=$?
echo "== make tutorial: exit $rc in $(($(date +%s)-s)) s"; [ $rc = 0 ]
cp out/tutorial/*.svg out/tutorial/*.png out/tutorial/*.dot "/in/$scenario-pictures/" 2>/dev/null || true
ls -la out/tutorial out/tutorial/collage | sed 's/^/   /'
.venv/bin/pachctl shutdown
echo "== after: which bwrap dot fusermount3: $(which bwrap dot fusermount3 | tr '\n' ' ')"
s=$(date +%s); rc=0; PYTEST_ADDOPTS=-rs make test || rc=$?
echo "== make test: exit $rc in $(($(date +%s)-s)) s"; exit $rc
INSIDE

run() {  # scenario, user
  local scenario=$1 user=$2 cmd
  # /tmp from the host's disk: a container's own overlayfs lacks what a real machine's
  # file system has (read leases, RWF_NOWAIT), and the tests would skip for that.
  rm -rf "$OUT/tmp-$scenario" "$OUT/$scenario-pictures"
  mkdir -p "$OUT/tmp-$scenario" "$OUT/$scenario-pictures"
  chmod 1777 "$OUT/tmp-$scenario" "$OUT/$scenario-pictures"
  if [ "$user" = root ]; then
    cmd="bash /in/inside.sh $scenario"
  else
    cmd="useradd -m -s /bin/bash $user && su - $user -c 'PIP_CERT=$PIP_CERT SSL_CERT_FILE=$PIP_CERT bash /in/inside.sh $scenario'"
  fi
  podman run --rm --privileged --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
    -v "$OUT:/in" -v "$OUT/tmp-$scenario:/tmp" -v "$CA_BUNDLE:/etc/ssl/ci-ca.crt:ro" \
    -e PIP_CERT=/etc/ssl/ci-ca.crt -e SSL_CERT_FILE=/etc/ssl/ci-ca.crt "$IMAGE" \
    bash -c "$cmd" 2>&1 | tee "$OUT/$scenario.log"
}

PIP_CERT=/etc/ssl/ci-ca.crt
case "${1:-all}" in
  root) scenarios=(root) ;;
  user) scenarios=(user) ;;
  all) scenarios=(root user) ;;
  *) echo "usage: $0 [root|user|all]" >&2; exit 2 ;;
esac
failed=()
for s in "${scenarios[@]}"; do  # every scenario runs even when an earlier one failed
  if [ "$s" = root ]; then user=root; else user=pachuser; fi
  run "$s" "$user" || failed+=("$s")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fresh-machine: failed: ${failed[*]} (logs in $OUT)"
  exit 1
fi
echo "fresh-machine: passed: ${scenarios[*]} (logs in $OUT)"
