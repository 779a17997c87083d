"""`python -m pps.worker --pachd ADDR --project P --pipeline NAME --worker-id ID [options]`

Runs one pipeline worker until the master says stop (exit 0), pachd stays unreachable for
`--unreachable-timeout` seconds (exit 2), or SIGTERM (exit 0). The spec comes from
`--spec-file`, else $PPS_SPEC_JSON, else pps_v2 InspectPipeline. The auth token, if pachd
needs one, comes from $PACHD_AUTH_TOKEN (never passed on to user code).
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import sys

from pps.worker.runner import Config, Worker, install_signal_handlers


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pps.worker", description="Run a pipeline worker.")
    ap.add_argument("--pachd", required=True, help="pachd gRPC address, e.g. localhost:30650")
    ap.add_argument("--project", default="default")
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--worker-id", required=True)
    ap.add_argument("--spec-file", default=None, help="the pipeline spec (JSON)")
    ap.add_argument("--pfs-root", default="/pfs",
                    help="where /pfs is (fallback mode without a sandbox: a scratch dir)")
    ap.add_argument("--image-dir", default=None,
                    help="fallback mode: a local image dir whose /<entry> paths are rewritten")
    ap.add_argument("--secret-mount", action="append", default=[], metavar="PATH=DIR",
                    help="fallback mode: a secret mounted at PATH is the directory DIR (rewritten like /pfs)")
    ap.add_argument("--max-datums", type=int, default=200)
    ap.add_argument("--wait-seconds", type=float, default=10.0)
    ap.add_argument("--unreachable-timeout", type=float, default=60.0)
    ap.add_argument("--log-level", default=os.environ.get("PPS_WORKER_LOG_LEVEL", "INFO"))
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s worker {a.worker_id}: %(message)s")
    cfg = Config(pachd=a.pachd, project=a.project, pipeline=a.pipeline, worker_id=a.worker_id,
                 pfs_root=a.pfs_root, image_dir=a.image_dir, spec_file=a.spec_file,
                 secret_mounts=dict(m.split("=", 1) for m in a.secret_mount),
                 max_datums=a.max_datums, wait_seconds=a.wait_seconds,
                 unreachable_timeout=a.unreachable_timeout,
                 auth_token=os.environ.get("PACHD_AUTH_TOKEN", ""))
    worker = Worker(cfg)
    install_signal_handlers(worker)
    logging.getLogger("pps.worker").info("worker started (pid %d, /pfs at %s)", os.getpid(), cfg.pfs_root)
    profile = os.environ.get("PPS_WORKER_PROFILE")  # benchmarks: cProfile of the main thread
    try:
        if not profile:
            return worker.run()
        import cProfile
        prof = cProfile.Profile()
        try:
            return prof.runcall(worker.run)
        finally:
            prof.dump_stats(profile)
    finally:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        logging.getLogger("pps.worker").info(
            "exiting; cpu seconds: worker user %.2f sys %.2f; user code user %.2f sys %.2f",
            me.ru_utime, me.ru_stime, kids.ru_utime, kids.ru_stime)


if __name__ == "__main__":
    sys.exit(main())
