#!/usr/bin/env python3
"""Step 3 of the beginner tutorial: Canny edge tracing.

For every file under each ``--input`` directory that exists, the image is read
with OpenCV (files OpenCV cannot decode are reported and skipped), traced with
``Canny(100, 200)`` and written as a grayscale PNG
``<output>/<same relative directory>/<stem>_edges.png``.

Inputs that do not exist are reported and ignored: with a union input only one
of them is present in each datum.
"""
import argparse
import os
import sys

import cv2


def make_edges(image_path, input_root, output_root):
    img = cv2.imread(image_path)
    if img is None:
        print(f"Error reading image: {image_path}")
        return False
    rel_dir = os.path.relpath(os.path.dirname(image_path), input_root)
    out_dir = os.path.normpath(os.path.join(output_root, rel_dir))
    os.makedirs(out_dir, exist_ok=True)
    edges = cv2.Canny(img, 100, 200)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    out_path = os.path.join(out_dir, stem + "_edges.png")
    if not cv2.imwrite(out_path, edges):
        raise OSError(f"cannot write {out_path}")
    print(f"Processed: {image_path} -> {out_path}")
    return True


def process_image_files(input_root, output_root):
    for dirpath, dirs, files in os.walk(input_root):
        dirs.sort()
        files = sorted(files)
        for i, name in enumerate(files, 1):
            print(f"Processing {name}, #{i} of {len(files)}")
            make_edges(os.path.join(dirpath, name), input_root, output_root)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="image_tracer.py", description="Trace images")
    parser.add_argument("-i", "--input", nargs="+", required=True, help="input image directories")
    parser.add_argument("-o", "--output", required=True, help="output image directory")
    args = parser.parse_args(argv)

    print(f"Input: {args.input}\nOutput: {args.output}\n======================")
    os.makedirs(args.output, exist_ok=True)
    for input_root in args.input:
        if not os.path.exists(input_root):
            print(f"Input directory does not exist: {input_root}")
            continue
        print(f"Processing images in: {input_root}")
        process_image_files(input_root, args.output)
    print("Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
