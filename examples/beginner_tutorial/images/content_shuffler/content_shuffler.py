#!/usr/bin/env python3
"""Step 5 of the beginner tutorial: sort content into ``originals`` and ``edges``.

Every file found under each ``--input`` directory that exists is copied
(directories flattened) to

  * ``<output>/edges/<name>``      when the name contains ``edges``
  * ``<output>/originals/<name>``  otherwise

except video frames (names containing ``frame``), which the collage does not
show. (The original tutorial code meant exactly this but, through an operator
precedence slip, tested only for ``edges``.) Uses the standard library only.
"""
import argparse
import os
import shutil
import sys


def shuffle_content(input_root, output_root):
    copied = 0
    for dirpath, dirs, files in os.walk(input_root):
        dirs.sort()
        for name in sorted(files):
            if "frame" in name:
                print(f"Skipping frame: {name}")
                continue
            kind = "edges" if "edges" in name else "originals"
            dest_dir = os.path.join(output_root, kind)
            os.makedirs(dest_dir, exist_ok=True)
            dest = os.path.join(dest_dir, name)
            if os.path.exists(dest):
                print(f"Warning: {name} appears more than once; keeping the first copy")
                continue
            shutil.copyfile(os.path.join(dirpath, name), dest)
            print(f"{os.path.join(dirpath, name)} -> {kind}/{name}")
            copied += 1
    return copied


def main(argv=None):
    parser = argparse.ArgumentParser(prog="content_shuffler.py",
                                     description="Sort images and gifs into originals/ and edges/")
    parser.add_argument("-i", "--input", nargs="+", required=True, help="input directories")
    parser.add_argument("-o", "--output", required=True, help="output directory")
    args = parser.parse_args(argv)

    print(f"Input: {args.input}\nOutput: {args.output}\n")
    os.makedirs(args.output, exist_ok=True)
    for i, input_root in enumerate(args.input, 1):
        print(f"{input_root}; {i}/{len(args.input)}")
        if not os.path.exists(input_root):
            print(f"Input directory does not exist: {input_root}")
            continue
        shuffle_content(input_root, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
