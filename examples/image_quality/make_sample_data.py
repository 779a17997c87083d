#!/usr/bin/env python3
"""Write a handful of sharp and blurry JPEGs for the image-quality example.

    python make_sample_data.py OUTDIR [--seed N] [--count K] [--extra NAME ...] [--extra-only]

For each of K subjects (default 4) writes ``<subject>.jpg`` (a sharp 160x120
scene of shapes, stripes and text) and ``<subject>-blurred.jpg`` (the same kind
of scene, Gaussian-blurred). ``--extra NAME`` writes one more image with that
name; it is blurred when the name contains ``blur``. Output depends only on
the seed and the names, so re-running gives byte-identical files.
"""
import argparse
import hashlib
import os
import sys

import cv2
import numpy as np

SIZE = (160, 120)
SUBJECTS = ["harbor", "meadow", "street", "market", "garden", "bridge", "forest", "castle"]
BLUR_SIGMA = 5.0


def _rng(seed, name):
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _color(rng):
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def scene(seed, name, size=SIZE):
    w, h = size
    rng = _rng(seed, name)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = _color(rng)
    # stripes give plenty of high-frequency detail to a sharp picture
    period = int(rng.integers(6, 14))
    c = _color(rng)
    for x in range(0, w, period):
        cv2.line(img, (x, 0), (x + int(rng.integers(-20, 20)), h // 3), c, 1)
    for _ in range(6):
        c = _color(rng)
        if rng.random() < 0.5:
            x0, y0 = int(rng.integers(0, w - 30)), int(rng.integers(h // 3, h - 20))
            cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(15, 50)), y0 + int(rng.integers(10, 40))), c, -1)
        else:
            cv2.circle(img, (int(rng.integers(10, w - 10)), int(rng.integers(h // 3, h - 10))),
                       int(rng.integers(6, 25)), c, -1)
    cv2.putText(img, os.path.splitext(name)[0][:12], (5, h - 8), cv2.FONT_HERSHEY_SIMPLEX,
                0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def write_jpeg(path, img):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def make(seed, name, blurred):
    img = scene(seed, name)
    if blurred:
        img = cv2.GaussianBlur(img, (0, 0), BLUR_SIGMA)
    return img


def expected_label(name):
    """The label the sample generator intends for a file name."""
    return "blurry" if "blur" in name else "sharp"


def generate(outdir, seed=0, count=4, extra=(), extra_only=False):
    os.makedirs(outdir, exist_ok=True)
    names = []
    if not extra_only:
        if not 1 <= count <= len(SUBJECTS):
            raise ValueError(f"--count must be 1..{len(SUBJECTS)}")
        for subject in SUBJECTS[:count]:
            names += [f"{subject}.jpg", f"{subject}-blurred.jpg"]
    for name in extra:
        if not name or os.path.basename(name) != name:
            raise ValueError(f"--extra takes a plain file name, got {name!r}")
        names.append(name)
    for name in names:
        write_jpeg(os.path.join(outdir, name), make(seed, name, expected_label(name) == "blurry"))
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=4, help="number of subjects (2 images each)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME")
    parser.add_argument("--extra-only", action="store_true")
    args = parser.parse_args(argv)
    for name in generate(args.outdir, args.seed, args.count, args.extra, args.extra_only):
        print(os.path.join(args.outdir, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
