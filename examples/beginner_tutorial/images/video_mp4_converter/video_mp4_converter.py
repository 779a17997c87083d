#!/usr/bin/env python3
"""Step 1 of the beginner tutorial: bring every video to MP4.

Walks ``--input``; for each file:
  * ``.mov`` / ``.avi`` (any case) -> re-encoded with OpenCV to ``<output>/<stem>.mp4``
  * ``.mp4``                        -> copied unchanged to ``<output>/<name>``
  * anything else                   -> skipped (and the walk goes on: the original
                                       tutorial code stopped at the first non-video file)

Exit status is non-zero when a video could not be decoded, so the datum fails
visibly instead of silently producing nothing.
"""
import argparse
import os
import shutil
import sys

VIDEO_EXTS = (".mp4", ".avi", ".mov")
DEFAULT_FPS = 10


def video_to_mp4(src, dst, fourcc="mp4v"):
    import cv2  # imported lazily: skipping images must stay cheap

    cap = cv2.VideoCapture(src)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            print(f"Error: cannot decode video: {src}")
            return False
        fps = cap.get(cv2.CAP_PROP_FPS) or 0
        fps = round(fps) if fps and fps > 0 else DEFAULT_FPS
        height, width = frame.shape[:2]
        writer = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if not writer.isOpened():
            print(f"Error: cannot open a {fourcc} writer for {dst}")
            return False
        count = 0
        try:
            while ok:
                writer.write(frame)
                count += 1
                ok, frame = cap.read()
        finally:
            writer.release()
    finally:
        cap.release()
    print(f"Converted {count} frames ({width}x{height} @ {fps} fps)")
    return True


def process_video_files(input_path, output_path):
    failures = 0
    for root, dirs, files in os.walk(input_path):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            lower = name.lower()
            if not lower.endswith(VIDEO_EXTS):
                print(f"Skipping: {path}")
                continue
            if lower.endswith((".mov", ".avi")):
                out = os.path.join(output_path, os.path.splitext(name)[0] + ".mp4")
                print(f"Converting video: {path}")
                if video_to_mp4(path, out):
                    print(f"Converted: {name} to {out}")
                else:
                    failures += 1
                    if os.path.exists(out):
                        os.remove(out)
            else:
                out = os.path.join(output_path, name)
                print(f"Copying: {name} to {out}")
                shutil.copyfile(path, out)
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="video_mp4_converter.py",
                                     description="Convert .mov/.avi videos to .mp4")
    parser.add_argument("-i", "--input", required=True, help="input directory")
    parser.add_argument("-o", "--output", required=True, help="output directory")
    args = parser.parse_args(argv)

    if not os.path.exists(args.input):
        print(f"Input directory does not exist: {args.input}")
        return 0
    os.makedirs(args.output, exist_ok=True)
    print(f"Input: {args.input}\nOutput: {args.output}\n======================")
    failures = process_video_files(args.input, args.output)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
