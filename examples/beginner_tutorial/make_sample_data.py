#!/usr/bin/env python3
"""Write small stand-ins for the beginner tutorial's four input files.

    python make_sample_data.py OUTDIR [--seed N] [--extra NAME ...] [--extra-only]

writes ``liberty.png`` and ``robot.png`` (160x120 pictures made of shapes and
text, so Canny finds edges) and ``cat-sleeping.MOV`` and ``highway.MOV``
(12 frames of 96x72 at 10 fps, MPEG-4 part 2 in a QuickTime container, which
OpenCV's bundled FFmpeg reads and writes). Everything is a pure function of the
seed (and the file name), so re-running gives byte-identical files.

``--extra NAME`` writes one more image named NAME (e.g. ``statue.png``; ``.jpg``
names get JPEG data), used to show incremental processing; with
``--extra-only`` only the extra images are written.
"""
import argparse
import hashlib
import os
import sys

import cv2
import numpy as np

IMAGE_SIZE = (160, 120)  # width, height
VIDEO_SIZE = (96, 72)
VIDEO_FRAMES = 12
VIDEO_FPS = 10


def _rng(seed, name):
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _color(rng):
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def make_image(seed, name, size=IMAGE_SIZE, label=None):
    """A BGR picture: gradient background, a few filled shapes and a label."""
    w, h = size
    rng = _rng(seed, name)
    y, x = np.mgrid[0:h, 0:w]
    base = np.array(_color(rng), dtype=np.float32)
    img = (base * (0.55 + 0.45 * (x / w))[..., None]).astype(np.uint8)
    img = np.ascontiguousarray(img)
    for _ in range(int(rng.integers(3, 6))):
        kind = int(rng.integers(0, 3))
        c = _color(rng)
        if kind == 0:
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(15, 60)), y0 + int(rng.integers(15, 50))), c, -1)
        elif kind == 1:
            cv2.circle(img, (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10))),
                       int(rng.integers(8, 30)), c, -1)
        else:
            pts = rng.integers(0, [w, h], size=(3, 2)).astype(np.int32)
            cv2.fillPoly(img, [pts], c)
    text = label if label is not None else os.path.splitext(name)[0][:10]
    cv2.putText(img, text, (6, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def write_image(path, img):
    ext = os.path.splitext(path)[1].lower()
    if ext in (".jpg", ".jpeg"):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    else:  # .png, or any other name: PNG data
        ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def make_video(seed, name, path, frames=VIDEO_FRAMES, size=VIDEO_SIZE, fps=VIDEO_FPS):
    """A short clip of a ball moving over a static background."""
    w, h = size
    rng = _rng(seed, name)
    background = make_image(seed, name + "#bg", size, label="")
    ball = _color(rng)
    x0, y0 = int(rng.integers(10, w // 3)), int(rng.integers(10, h - 10))
    dx, dy = int(rng.integers(3, 6)), int(rng.choice([-2, -1, 1, 2]))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (no FFmpeg mp4v support?)")
    try:
        for i in range(frames):
            frame = background.copy()
            cx = (x0 + dx * i) % w
            cy = min(max(y0 + dy * i, 8), h - 8)
            cv2.circle(frame, (cx, cy), 8, ball, -1)
            cv2.rectangle(frame, (2, 2), (w - 3, h - 3), (255, 255, 255), 1)
            writer.write(frame)
    finally:
        writer.release()
    cap = cv2.VideoCapture(path)
    ok, _ = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"wrote {path} but OpenCV cannot read it back")


def generate(outdir, seed=0, extra=(), extra_only=False):
    """Write the sample files; returns the list of file names written."""
    os.makedirs(outdir, exist_ok=True)
    written = []
    if not extra_only:
        for name in ("liberty.png", "robot.png"):
            write_image(os.path.join(outdir, name), make_image(seed, name))
            written.append(name)
        for name in ("cat-sleeping.MOV", "highway.MOV"):
            make_video(seed, name, os.path.join(outdir, name))
            written.append(name)
    for name in extra:
        if os.path.basename(name) != name or not name:
            raise ValueError(f"--extra takes a plain file name, got {name!r}")
        write_image(os.path.join(outdir, name), make_image(seed, name))
        written.append(name)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="directory to write into (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", action="append", default=[], metavar="NAME",
                        help="also write one more image with this file name (repeatable)")
    parser.add_argument("--extra-only", action="store_true", help="write only the --extra images")
    args = parser.parse_args(argv)
    for name in generate(args.outdir, args.seed, args.extra, args.extra_only):
        print(os.path.join(args.outdir, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
