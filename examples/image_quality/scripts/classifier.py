#!/usr/bin/env python3
"""Classify images as sharp or blurry from their three metrics.

    classifier.py --laplacian DIR --sobel DIR --fft DIR --output DIR

Each DIR holds ``<stem>.txt`` metric files (in the pipeline, the join on the
stem puts exactly one image's three files in each datum). For every stem that
has all three metrics, ``<output>/<stem>.json`` is written with the metrics,
each metric's vote and the majority label. Stems missing a metric are reported
and skipped. Standard library only.

The thresholds are a simple rule calibrated on the example's sample data
(160x120 JPEGs); a value above its threshold votes "sharp".
"""
import argparse
import json
import os
import sys

THRESHOLDS = {
    "laplacian": 50.0,   # variance of the Laplacian
    "sobel": 1300.0,     # variance of the Sobel gradient magnitude
    "fft": 1.0,          # mean dB of the high-pass reconstruction
}


def read_metrics(root):
    """{stem: value} for every ``*.txt`` under root (missing root -> {})."""
    values = {}
    if not os.path.exists(root):
        print(f"Input directory does not exist: {root}")
        return values
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext != ".txt":
                continue
            with open(os.path.join(dirpath, name)) as f:
                text = f.read().strip()
            try:
                values[stem] = float(text)
            except ValueError:
                print(f"Skipping unreadable metric {os.path.join(dirpath, name)}: {text!r}")
    return values


def classify(metrics, thresholds=THRESHOLDS):
    votes = {k: ("sharp" if metrics[k] > thresholds[k] else "blurry") for k in thresholds}
    sharp = sum(v == "sharp" for v in votes.values())
    label = "sharp" if sharp * 2 > len(votes) else "blurry"
    return votes, label


def main(argv=None):
    parser = argparse.ArgumentParser(prog="classifier.py", description="Sharp/blurry classification")
    for metric in THRESHOLDS:
        parser.add_argument(f"--{metric}", required=True, help=f"directory of {metric} metric files")
    parser.add_argument("-o", "--output", required=True, help="output directory")
    args = parser.parse_args(argv)

    per_metric = {m: read_metrics(getattr(args, m)) for m in THRESHOLDS}
    stems = sorted(set().union(*per_metric.values()))
    os.makedirs(args.output, exist_ok=True)
    for stem in stems:
        missing = [m for m in THRESHOLDS if stem not in per_metric[m]]
        if missing:
            print(f"{stem}: missing {', '.join(missing)}; skipped")
            continue
        metrics = {m: per_metric[m][stem] for m in THRESHOLDS}
        votes, label = classify(metrics)
        result = {"image": stem, "label": label, "metrics": metrics, "votes": votes,
                  "thresholds": THRESHOLDS}
        out = os.path.join(args.output, stem + ".json")
        with open(out, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"{stem}: {label} {votes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
