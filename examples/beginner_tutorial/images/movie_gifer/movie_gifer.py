#!/usr/bin/env python3
"""Step 4 of the beginner tutorial: turn each directory of frames into a GIF.

For every sub-directory found under each ``--input`` directory that exists, its
``.jpg``/``.png`` files are sorted by name and written as an animated GIF
(100 ms per frame, looping) to
``<output>/<relative dir>/<dir name>_<suffix>.gif`` where ``suffix`` is
``edges`` when the input directory's name contains ``tracer`` (the ``image_tracer`` repo)
and ``original`` otherwise, e.g. ``/cat-sleeping/cat-sleeping_original.gif``
and ``/cat-sleeping/cat-sleeping_edges.gif``.
"""
import argparse
import os
import sys

from PIL import Image

FRAME_MS = 100


def make_gif(directory, input_root, output_root):
    names = sorted(f for f in os.listdir(directory)
                   if f.endswith((".jpg", ".png")) and os.path.isfile(os.path.join(directory, f)))
    if not names:
        print(f"No frames in {directory}; nothing to do")
        return None
    rel_dir = os.path.relpath(directory, input_root)
    out_dir = os.path.normpath(os.path.join(output_root, rel_dir))
    os.makedirs(out_dir, exist_ok=True)
    # the tutorial keys this on the input's name: /pfs/image_tracer -> edges
    suffix = "edges" if "tracer" in os.path.basename(os.path.normpath(input_root)) else "original"
    base = os.path.splitext(os.path.basename(os.path.normpath(directory)))[0]
    out_path = os.path.join(out_dir, f"{base}_{suffix}.gif")

    frames = []
    for name in names:
        with Image.open(os.path.join(directory, name)) as im:
            frames.append(im.convert("RGB"))
    frames[0].save(out_path, format="GIF", save_all=True, append_images=frames[1:],
                   duration=FRAME_MS, loop=0)
    print(f"Processed: {directory} -> {out_path} ({len(frames)} frames)")
    return out_path


def process_image_directories(input_root, output_root):
    for dirpath, dirs, _files in os.walk(input_root):
        dirs.sort()
        for i, d in enumerate(dirs, 1):
            print(f"Processing {d}, #{i} of {len(dirs)}")
            make_gif(os.path.join(dirpath, d), input_root, output_root)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="movie_gifer.py", description="Convert frame directories to GIFs")
    parser.add_argument("-i", "--input", nargs="+", required=True, help="input image directories")
    parser.add_argument("-o", "--output", required=True, help="output directory")
    args = parser.parse_args(argv)

    print(f"Input: {args.input}\nOutput: {args.output}\n======================")
    os.makedirs(args.output, exist_ok=True)
    for input_root in args.input:
        if not os.path.exists(input_root):
            print(f"Input directory does not exist: {input_root}")
            continue
        print(f"Processing images in: {input_root}")
        process_image_directories(input_root, args.output)
    print("Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
