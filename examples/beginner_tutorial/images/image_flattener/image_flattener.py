#!/usr/bin/env python3
"""Step 2 of the beginner tutorial: split every MP4 into JPEG frames.

``<input>/.../<base>.mp4`` -> ``<output>/<base>/<base>-frame-<10-digit index>.jpg``
(index from 0). Other files are skipped. Exit status is non-zero when an MP4
cannot be decoded at all.
"""
import argparse
import os
import sys


def flatten_video(video_path, out_dir, base):
    import cv2

    cap = cv2.VideoCapture(video_path)
    count = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if count == 0:
                os.makedirs(out_dir, exist_ok=True)
            name = os.path.join(out_dir, f"{base}-frame-{count:010d}.jpg")
            if not cv2.imwrite(name, frame):
                raise OSError(f"cannot write {name}")
            count += 1
    finally:
        cap.release()
    return count


def process_video_files(input_path, output_path):
    failures = 0
    for root, dirs, files in os.walk(input_path):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.splitext(name)[1].lower() != ".mp4":
                print(f"Skipping: {path}")
                continue
            base = os.path.splitext(name)[0]
            print(f"Converting: {name}")
            n = flatten_video(path, os.path.join(output_path, base), base)
            if n == 0:
                print(f"Error: no frames could be read from {path}")
                failures += 1
            else:
                print(f"Wrote {n} frames to {os.path.join(output_path, base)}")
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="image_flattener.py",
                                     description="Flatten videos into frame images")
    parser.add_argument("-i", "--input", required=True, help="input video directory")
    parser.add_argument("-o", "--output", required=True, help="output image directory")
    args = parser.parse_args(argv)

    if not os.path.exists(args.input):
        print(f"Input directory does not exist: {args.input}")
        return 0
    os.makedirs(args.output, exist_ok=True)
    print(f"Input: {args.input}\nOutput: {args.output}\n======================")
    return 1 if process_video_files(args.input, args.output) else 0


if __name__ == "__main__":
    sys.exit(main())
