"""Stands in for `python -m pps.worker` in executor tests (run by the test kubelet).

Appends one JSON line {argv, env, t} to `$FAKE_OUT/<worker id>.starts`, then exits with
$FAKE_EXIT after $FAKE_AFTER seconds if that is set, else waits for SIGTERM and exits 0.
"""
import json
import os
import signal
import sys
import time

args = sys.argv[1:]
wid = args[args.index("--worker-id") + 1]
with open(os.path.join(os.environ["FAKE_OUT"], f"{wid}.starts"), "a") as f:
    f.write(json.dumps({"argv": args, "env": dict(os.environ), "t": time.time()}) + "\n")
if os.environ.get("FAKE_EXIT"):
    time.sleep(float(os.environ.get("FAKE_AFTER", "0.1")))
    sys.exit(int(os.environ["FAKE_EXIT"]))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
