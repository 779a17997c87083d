#!/usr/bin/env python3
"""Write the 'fft' sharpness metric of every image: <output>/<stem>.txt (see quality.py)."""
import sys

sys.dont_write_bytecode = True  # the scripts repo is mounted read-only

from quality import run_metric  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_metric("fft"))
