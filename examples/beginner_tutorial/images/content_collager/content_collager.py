#!/usr/bin/env python3
"""Step 6 of the beginner tutorial: a static HTML page comparing originals and edges.

Every file under the ``--input`` directories (sorted, directories flattened) is
copied to ``<output>/collage/static/<name>`` and shown in
``<output>/collage/index.html``: in the "Edges" column when its path contains
``edges``, otherwise in the "Original" column. Uses the standard library only.
"""
import argparse
import html
import os
import shutil
import sys
from urllib.parse import quote

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Content Collage</title>
<style>
  body {{ font-family: sans-serif; }}
  #collage-container {{ display: flex; }}
  #originals, #edges {{
    flex: 1;
    display: flex;
    flex-direction: column;
    align-items: center;
    gap: 12px;
    padding: 16px;
    border: 1px solid #bbb;
  }}
</style>
</head>
<body>
<h1>Content collage</h1>
<div id="collage-container">
<div id="originals">
<h2>Original</h2>
{originals}
</div>
<div id="edges">
<h2>Edges</h2>
{edges}
</div>
</div>
</body>
</html>
"""


def img_tag(name):
    src = html.escape("./static/" + quote(name), quote=True)
    alt = html.escape(name, quote=True)
    return f'<img src="{src}" alt="{alt}" width="300" style="display: block;">'


def collect(inputs):
    """(source path, path relative to its input) pairs, sorted per directory."""
    items = []
    for root in inputs:
        if not os.path.exists(root):
            print(f"Input directory does not exist: {root}")
            continue
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                src = os.path.join(dirpath, name)
                items.append((src, os.path.relpath(src, root)))
    return items


def build_collage(inputs, output_root):
    collage = os.path.join(output_root, "collage")
    static = os.path.join(collage, "static")
    os.makedirs(static, exist_ok=True)
    originals, edges = [], []
    for src, rel in collect(inputs):
        name = os.path.basename(rel)
        dest = os.path.join(static, name)
        if os.path.exists(dest):
            print(f"Warning: {name} appears more than once; keeping the first copy")
            continue
        print(f"Copying {name} to {static}")
        shutil.copyfile(src, dest)
        (edges if "edges" in rel else originals).append(img_tag(name))
    page = PAGE.format(originals="\n".join(originals), edges="\n".join(edges))
    with open(os.path.join(collage, "index.html"), "w", encoding="utf-8") as f:
        f.write(page)
    print(f"Wrote {os.path.join(collage, 'index.html')}: "
          f"{len(originals)} originals, {len(edges)} edges")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="content_collager.py",
                                     description="Build an HTML collage of images and gifs")
    parser.add_argument("-i", "--input", nargs="+", required=True, help="input directories")
    parser.add_argument("-o", "--output", required=True, help="output directory")
    args = parser.parse_args(argv)
    print(f"Input: {args.input}\nOutput: {args.output}\n")
    build_collage(args.input, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
