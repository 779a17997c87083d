"""The write-ahead journal of a writable view's changes, so that staged files outlive their
mount process (killed, crashed, or a commit that failed) and can still be committed
(`pachctl mount --recover`, pachctl.mount.recover).

One file per view mounted: `<session staging dir>/<view>/journal-<id>.jsonl`, next to the
view's staged files (the mount server may mount a name again, elsewhere: a new journal). The first line says where the changes go (project, repo, branch, the mountpoint);
each further line is one event, appended (unbuffered, one write each) as the overlay
changes:
    ["set", path, change]      the overlay's change at path (staged files by their name
                               relative to the session directory)
    ["rm", path]               path no longer has a change
    ["clean", path, size, mtime_ns]  after a commit: this staged file is committed as it is now
    ["failed", staged, errno] / ["whole", staged]   a write to a staged file failed / it
                               was truncated to zero (whole again)
    ["begin", head]            a commit of the overlay's plan on top of `head` starts
    ["done", commit]           that commit succeeded and the overlay was updated

Invariants:
- Replaying the events in order rebuilds the overlay as the process last had it. The file
  system serves each request from one thread, so events are never interleaved.
- Events are written with write(2) before the request returns: a killed process (kill -9)
  loses none of them; only a crash of the machine itself can (they are not fsynced).
- No file content is ever in the journal, only paths and staged file names.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Optional

from pachctl.mount.overlay import COPY, DIR, FILE, LINK, Change, Overlay

PATTERN = "*/journal-*.jsonl"


class Journal:
    """Appends the events of one view (see the module docstring)."""

    def __init__(self, session_root: str, view, mountpoint: str):
        self.session_root = session_root
        d = os.path.join(session_root, view.name)
        os.makedirs(d, mode=0o700, exist_ok=True)
        self.path = os.path.join(d, f"journal-{uuid.uuid4().hex[:12]}.jsonl")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._write({"view": view.name, "project": view.project, "repo": view.repo,
                     "repo_type": view.repo_type or "user", "branch": view.branch,
                     "mountpoint": mountpoint})

    @classmethod
    def reopen(cls, path: str, session_root: str) -> "Journal":
        """Append to an existing journal (a recovery's events)."""
        j = cls.__new__(cls)
        j.session_root, j.path = session_root, path
        j.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        return j

    def _write(self, obj) -> None:
        if self.fd < 0:
            return
        os.write(self.fd, (json.dumps(obj, separators=(",", ":")) + "\n").encode())

    def _rel(self, staged) -> str:
        return os.path.relpath(staged.path, self.session_root)

    def set(self, path: str, c: Change) -> None:
        d = {"kind": c.kind}
        if c.kind == FILE:
            d["staged"] = self._rel(c.staged)
        elif c.kind == DIR:
            d["opaque"] = c.opaque
        elif c.kind == LINK:
            d["target"] = c.target
        elif c.kind == COPY:
            d.update(commit=c.commit, src=c.src, is_dir=c.is_dir)
        self._write(["set", path, d])

    def remove(self, path: str) -> None:
        self._write(["rm", path])

    def clean(self, path: str, staged) -> None:
        self._write(["clean", path, staged.size(), staged.mtime_ns()])

    def failed(self, staged, err: int) -> None:
        self._write(["failed", self._rel(staged), err])

    def whole(self, staged) -> None:
        self._write(["whole", self._rel(staged)])

    def begin(self, head: Optional[str], sync: bool = False) -> None:
        self._write(["begin", head or ""])
        if sync:
            os.fsync(self.fd)

    def done(self, commit: str, sync: bool = False) -> None:
        self._write(["done", commit])
        if sync:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class Replayed:
    header: dict
    overlay: Overlay
    begun: Optional[str] = None          # head a commit started on, with no "done" after it
    clean: dict = field(default_factory=dict)   # path -> (size, mtime_ns) when last committed


class _Staged:
    """A staged file as a replayed overlay holds it (cf. staging.StagedFile)."""
    __slots__ = ("path", "dirty", "failed", "nopen", "mode")

    def __init__(self, path: str):
        self.path, self.dirty, self.failed, self.nopen, self.mode = path, True, 0, 0, 0o644

    def size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def mtime_ns(self) -> int:
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return 0


def replay(path: str, session_root: str) -> Replayed:
    """The overlay a journal describes. A torn last line (the process killed mid-write) is
    ignored: its request never returned."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    header = json.loads(lines[0])
    ov = Overlay()
    r = Replayed(header, ov)
    staged: dict[str, _Staged] = {}
    for line in lines[1:]:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        kind = ev[0]
        if kind == "set":
            d = ev[2]
            c = Change(d["kind"])
            if c.kind == FILE:
                c.staged = staged.setdefault(d["staged"], _Staged(os.path.join(session_root, d["staged"])))
            elif c.kind == DIR:
                c.opaque = d.get("opaque", False)
            elif c.kind == LINK:
                c.target = d.get("target", "")
            elif c.kind == COPY:
                c.commit, c.src, c.is_dir = d.get("commit", ""), d.get("src", ""), d.get("is_dir", False)
            ov._set(ev[1], c)
            r.clean.pop(ev[1], None)
        elif kind == "rm":
            ov._remove(ev[1])
            r.clean.pop(ev[1], None)
        elif kind == "clean":
            r.clean[ev[1]] = (ev[2], ev[3])
        elif kind in ("failed", "whole"):
            sf = staged.setdefault(ev[1], _Staged(os.path.join(session_root, ev[1])))
            sf.failed = ev[2] if kind == "failed" else 0
        elif kind == "begin":
            r.begun = ev[1]
        elif kind == "done":
            r.begun = None
    # a file committed and not written since is clean; one written since is dirty again
    for p, (size, mtime) in r.clean.items():
        c = ov.changes.get(p)
        if c is not None and c.kind == FILE and (c.staged.size(), c.staged.mtime_ns()) == (size, mtime):
            c.staged.dirty = False
    return r
