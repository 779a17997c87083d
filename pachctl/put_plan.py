"""Planning a `put file`: which local file, directory or URL goes to which pfs path, and
whether a progress bar is shown.

Pure standard library (no gRPC, protobuf or click), so the lean `put file` path
(pachctl.lean_put) plans exactly as the full CLI does without loading them.

Invariants:
- `plan_put` applies pachctl 2.x's target-path rules (documented on `put file`) and fails
  before anything is sent: missing local sources, `-r` with stdin only, stdin without a path.
- Items come out in the order of the sources; a directory's files in sorted order.
- With `-r`, a local directory is one "dir" item: it is not walked while planning (a walk of
  100,000 files cost ~2 s before anything was sent, and pachd walks it again when it reads
  the files itself). `expand_dirs` turns it into its files, sorted, for the callers that need
  them one by one: the streamed put, and a progress bar's total.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Iterator, Optional, TextIO
from urllib.parse import urlsplit

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
PROGRESS_THRESHOLD = 1024 * 1024


class TransferError(ValueError):
    """A user-facing problem with put/get arguments or local files."""


@dataclass(frozen=True)
class Item:
    kind: str  # "stdin" | "file" | "url" | "tar" | "dir" (a local directory with -r, not yet walked)
    src: str
    dest: str
    size: int = 0
    recursive: bool = False
    tree: str = ""  # for files found by walking a local directory: that directory
    tree_dest: str = ""  # ...and the pfs directory it goes to


def is_url(source: str) -> bool:
    scheme = urlsplit(source).scheme
    return len(scheme) > 1 and "://" in source  # one letter would be a Windows drive


def _pfs_path(*parts: str) -> str:
    p = posixpath.join("/", *[x.replace(os.sep, "/") for x in parts if x])
    p = posixpath.normpath(p)
    return "/" if p in (".", "//") else p


def _name_of(source: str, full_path: bool) -> str:
    if is_url(source):
        path = urlsplit(source).path
        return path if full_path else posixpath.basename(path.rstrip("/"))
    return source if full_path else os.path.basename(os.path.normpath(source))


def plan_put(sources: list[str], path: str, *, recursive: bool = False, full_path: bool = False,
             untar: bool = False, stdin_name: str = "-") -> list[Item]:
    """Expand `-f` sources into (source -> pfs path) items, in order."""
    sources = sources or [stdin_name]
    if recursive and all(s == "-" for s in sources):
        raise TransferError("cannot set -r and read from stdin (must also set -f or -i)")
    single = len(sources) == 1
    items: list[Item] = []
    for source in sources:
        if source == "-":
            if not path:
                raise TransferError("must specify filename when reading data from stdin")
            items.append(Item("stdin", "-", _pfs_path(path)))
            continue
        if untar and source.endswith(TAR_SUFFIXES):
            items.append(Item("tar", source, _pfs_path(path or "/"), _local_size(source)))
            continue
        name = _name_of(source, full_path)
        into_dir = recursive and not full_path and not is_url(source) and os.path.isdir(source)
        if single and path and (not path.endswith("/") or into_dir):
            # one source and a path: the path names the file, or (-r) the directory the
            # source directory's contents go into, as Pachyderm's putFileHelper does
            target = _pfs_path(path)
        else:
            target = _pfs_path(path, name)
        if is_url(source):
            items.append(Item("url", source, target, recursive=recursive))
        elif os.path.isdir(source):
            if not recursive:
                raise TransferError(f"{source} is a directory; use -r to put it recursively")
            items.append(Item("dir", source, target, recursive=True, tree=source, tree_dest=target))
        else:
            items.append(Item("file", source, target, _local_size(source)))
    return items


def _local_size(source: str) -> int:
    try:
        st = os.stat(source)
    except OSError as e:
        raise TransferError(f"open {source}: {(e.strerror or str(e)).lower()}") from None
    return st.st_size


def expand_dirs(items: list[Item]) -> list[Item]:
    """`items` with each "dir" item replaced by the files below it (sorted), each sized."""
    out: list[Item] = []
    for it in items:
        if it.kind == "dir":
            out.extend(_walk(it.src, it.dest))
        else:
            out.append(it)
    return out


def _walk(root: str, target: str) -> Iterator[Item]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for fn in sorted(filenames):
            local = os.path.join(dirpath, fn)
            if os.path.isfile(local):
                rel = fn if rel_dir == "." else os.path.join(rel_dir, fn)
                yield Item("file", local, _pfs_path(target, rel), _local_size(local), tree=root, tree_dest=target)


def want_progress(flag: Optional[bool], stream: TextIO, total: Optional[int]) -> bool:
    """--progress / --no-progress, else: the stream is a TTY and the data is large (or unknown)."""
    if flag is not None:
        return flag
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and (total is None or total >= PROGRESS_THRESHOLD)
