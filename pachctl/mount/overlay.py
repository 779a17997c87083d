"""A writable view's changes over its branch head, and the plan that commits them.

The overlay is a map from repo paths to changes:
    deleted          nothing here (whatever the head or a copy has is hidden)
    file(staged)     a staged local file (`staging.StagedFile`) is the content
    dir(opaque)      a directory made here; opaque: what the head had is hidden (it was
                     deleted before), transparent: the head's directory shows through
    link(target)     a symbolic link, stored at commit as the content of what it points to
    copy(commit,src) the file or directory `src` of commit `commit` (a rename of something
                     not staged: pachd copies it at commit, no bytes move)
A path's state is the change at the path itself, else the nearest ancestor's change decides
(below a copy: the copied directory's entry; below deleted/opaque/file: nothing), else the
head's entry at that path.

Invariants:
- Pure bookkeeping: no I/O, no gRPC; the file system calls it from one thread. Every change
  is also told to `journal` when one is attached (pachctl.mount.journal writes it down, so
  the changes outlive the process).
- `plan()` lists operations ancestors first, so applying them in order to the head gives
  exactly the overlay's view: a directory's delete or copy comes before what is changed
  inside it. An empty plan means nothing changed (no commit is made).
- Deleting something the head does not have leaves no trace (creating and removing a file
  is no change); `kids` always indexes, for each directory, the names below it that have
  changes, so listings merge without scanning every change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

DELETED, FILE, DIR, LINK, COPY = "deleted", "file", "dir", "link", "copy"


@dataclass
class Change:
    kind: str
    staged: object = None      # FILE: staging.StagedFile
    opaque: bool = False       # DIR
    target: str = ""           # LINK
    commit: str = ""           # COPY
    src: str = ""              # COPY
    is_dir: bool = False       # COPY


@dataclass(frozen=True)
class Resolved:
    """What a path is. kind "remote": look at (commit, src) in pachd (commit None = the head);
    it may not exist there. kind "dir" with src None: a directory with nothing showing through."""
    kind: str
    commit: Optional[str] = None
    src: Optional[str] = None
    change: Optional[Change] = None


def parent_of(path: str) -> str:
    i = path.rfind("/")
    return "/" if i <= 0 else path[:i]


def join(base: str, rest: str) -> str:
    """`base` + a relative-to-it part that starts with "/" (or is empty)."""
    if not rest:
        return base
    return rest if base == "/" else base + rest


def ancestors(path: str):
    """Proper ancestors, nearest first, ending with "/"."""
    p = path
    while p != "/":
        p = parent_of(p)
        yield p


def _sort_key(path: str) -> tuple:
    return tuple(path.split("/"))


class Overlay:
    def __init__(self):
        self.changes: dict[str, Change] = {}
        self.kids: dict[str, dict[str, int]] = {}
        self.journal = None   # journal.Journal, when the changes are written down

    def __bool__(self) -> bool:
        return bool(self.changes)

    # ---- index maintenance ------------------------------------------------------------------
    def _index(self, path: str, delta: int) -> None:
        child = path
        for a in ancestors(path):
            name = child[len(a):].lstrip("/")
            names = self.kids.setdefault(a, {})
            n = names.get(name, 0) + delta
            if n > 0:
                names[name] = n
            else:
                names.pop(name, None)
                if not names:
                    self.kids.pop(a, None)
            child = a

    def _set(self, path: str, change: Change) -> None:
        if path not in self.changes:
            self._index(path, 1)
        self.changes[path] = change
        if self.journal is not None:
            self.journal.set(path, change)

    def _remove(self, path: str) -> Optional[Change]:
        c = self.changes.pop(path, None)
        if c is not None:
            self._index(path, -1)
            if self.journal is not None:
                self.journal.remove(path)
        return c

    def below(self, path: str) -> list[str]:
        """Changed paths strictly below `path`."""
        prefix = "/" if path == "/" else path + "/"
        return [k for k in self.changes if k.startswith(prefix) and k != path]

    def names_below(self, path: str) -> list[str]:
        """Names of `path`'s children that have changes at or below them."""
        return list(self.kids.get(path, ()))

    def has_changes_below(self, path: str) -> bool:
        return bool(self.kids.get(path))

    # ---- resolution -------------------------------------------------------------------------
    def resolve(self, path: str) -> Optional[Resolved]:
        c = self.changes.get(path)
        if c is None:
            return self.underlying(path)
        if c.kind == DELETED:
            return None
        if c.kind in (FILE, LINK):
            return Resolved(c.kind, change=c)
        if c.kind == COPY:
            return Resolved("remote", c.commit, c.src, c)
        if c.opaque:
            return Resolved(DIR, None, None, c)
        base = self.underlying(path)
        if base is not None and base.kind == "remote":
            return Resolved(DIR, base.commit, base.src, c)
        return Resolved(DIR, None, None, c)

    def underlying(self, path: str) -> Optional[Resolved]:
        """What `path` would be without a change at exactly `path`."""
        for a in ancestors(path):
            c = self.changes.get(a)
            if c is None:
                continue
            if c.kind in (DELETED, FILE, LINK):
                return None
            if c.kind == COPY:
                if not c.is_dir:
                    return None
                return Resolved("remote", c.commit, join(c.src, path[len(a):] if a != "/" else path))
            if c.opaque:
                return None
        return Resolved("remote", None, path)

    # ---- changes ----------------------------------------------------------------------------
    def put_file(self, path: str, staged) -> None:
        self._set(path, Change(FILE, staged=staged))

    def mkdir(self, path: str, hides_something: bool) -> None:
        self._set(path, Change(DIR, opaque=hides_something))

    def symlink(self, path: str, target: str) -> None:
        self._set(path, Change(LINK, target=target))

    def delete(self, path: str, underlying_exists: bool) -> list:
        """Remove `path` (and all below it); returns the staged files no longer referenced."""
        dropped = [self._remove(k) for k in self.below(path)]
        old = self._remove(path)
        if old is not None:
            dropped.append(old)
        if underlying_exists:
            self._set(path, Change(DELETED))
        return [c.staged for c in dropped if c is not None and c.kind == FILE]

    def rename(self, src: str, dst: str, moved: Change, src_underlying_exists: bool) -> list:
        """Move `src` (and everything below it) to `dst`; `moved` is what `dst` becomes.
        Returns the staged files of what `dst` replaced."""
        carried = [(k, self.changes[k]) for k in self.below(src)]
        replaced = [self._remove(k) for k in self.below(dst)]
        old_dst = self._remove(dst)
        if old_dst is not None:
            replaced.append(old_dst)
        self.delete(src, src_underlying_exists)  # carried changes are re-added below
        self._set(dst, moved)
        for k, c in carried:
            self._set(dst + k[len(src):], c)
        keep = {id(c.staged) for c in self.changes.values() if c.kind == FILE}
        return [c.staged for c in replaced if c is not None and c.kind == FILE and id(c.staged) not in keep]

    # ---- committing -------------------------------------------------------------------------
    def plan(self) -> list[tuple]:
        """Operations, ancestors first: ("delete", path), ("put", path, staged),
        ("copy", path, commit, src), ("link", path, target). Files whose writes failed and
        files unchanged since the last commit are left out."""
        ops: list[tuple] = []
        for path in sorted(self.changes, key=_sort_key):
            c = self.changes[path]
            if c.kind == DELETED:
                ops.append(("delete", path))
            elif c.kind == FILE:
                if c.staged.failed or not c.staged.dirty:
                    continue
                ops.append(("delete", path))
                ops.append(("put", path, c.staged))
            elif c.kind == DIR:
                if c.opaque:
                    ops.append(("delete", path))
            elif c.kind == LINK:
                ops.append(("delete", path))
                ops.append(("link", path, c.target))
            elif c.kind == COPY:
                ops.append(("delete", path))
                ops.append(("copy", path, c.commit, c.src))
        return ops

    def failed_files(self) -> list[tuple[str, object]]:
        return sorted((p, c.staged) for p, c in self.changes.items() if c.kind == FILE and c.staged.failed)

    def committed(self) -> list:
        """After a successful commit of `plan()`: the head now has everything. Keep what the
        head cannot hold (directories, empty ones included) and staged files still open
        (clean; a new write makes them dirty again); returns the staged files to drop."""
        dropped = []
        for path, c in list(self.changes.items()):
            if c.kind == DIR:
                if c.opaque:
                    c.opaque = False
                    if self.journal is not None:
                        self.journal.set(path, c)
            elif c.kind == FILE and c.staged.failed:
                continue  # not committed: stays staged (and failed) until rewritten or removed
            elif c.kind == FILE and c.staged.nopen > 0:
                c.staged.dirty = False
                if self.journal is not None:
                    self.journal.clean(path, c.staged)
            else:
                self._remove(path)
                if c.kind == FILE:
                    dropped.append(c.staged)
        return dropped
