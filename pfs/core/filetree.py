"""A commit's files and directories on top of the index tree.

Keys: a file is its absolute path (`/a/b.txt`); a directory is its path with a trailing
slash (`/a/`, the root is `/`). Sorted by code point, a directory's key comes right before
everything inside it and its subtree is one contiguous key range.

Invariants:
- Every directory that holds at least one file has an entry, carrying aggregates of its
  whole subtree: total size, number of files, and a hash that is the sum (mod 2^256) of
  H(path, file hash) over its files. Aggregates make directory sizes, commit sizes and
  directory hashes O(1) to read and O(changed files x depth) to maintain.
- Empty directories do not exist (as in Pachyderm): deleting the last file of a directory
  deletes its entry.
- No path is both a file and a directory ("file / directory path collision").
- `WriteSession` never changes a visible root: it produces a new root the caller publishes
  atomically, so a failed upload leaves nothing behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import blake3
import msgpack

from pfs.core.content import ChunkRef, FileContent
from pfs.core.index import IndexTree
from pfs.errors import FileNotFound, InvalidArgument

_MOD = 1 << 256
_FILE, _DIR = 0, 1


@dataclass(frozen=True)
class Entry:
    """A file (`refs` set) or a directory (`count` files below it)."""
    is_dir: bool
    size: int
    hash: bytes
    refs: tuple = ()
    datum: str = ""
    count: int = 1

    def content(self) -> FileContent:
        return FileContent(self.size, list(self.refs))


def encode_entry(e: Entry) -> bytes:
    if e.is_dir:
        return msgpack.packb([_DIR, e.size, e.count, e.hash], use_bin_type=True)
    return msgpack.packb([_FILE, e.size, e.hash, [list(r) for r in e.refs], e.datum], use_bin_type=True)


def decode_entry(raw: bytes) -> Entry:
    v = msgpack.unpackb(raw, raw=False)
    if v[0] == _DIR:
        return Entry(True, v[1], v[3], count=v[2])
    return Entry(False, v[1], v[2], tuple(ChunkRef(*r) for r in v[3]), v[4])


def decode_entry_listed(raw: bytes) -> Entry:
    """Like `decode_entry` but a file's `refs` are left empty: what a listing shows (size,
    hash, datum, count) without building a ChunkRef per chunk (a third of decoding, profiled).
    Never use its result to read content."""
    v = msgpack.unpackb(raw, raw=False)
    if v[0] == _DIR:
        return Entry(True, v[1], v[3], count=v[2])
    return Entry(False, v[1], v[2], (), v[4])


def entry_hash_size(raw: bytes) -> tuple[bytes, int]:
    """(hash, size) of an encoded entry without building the whole Entry (hot in datum listing)."""
    v = msgpack.unpackb(raw, raw=False)
    return (v[3], v[1]) if v[0] == _DIR else (v[2], v[1])


def file_entry(content: FileContent, datum: str = "") -> Entry:
    return Entry(False, content.size, content.hash, tuple(content.refs), datum)


def _digest(path: str, file_hash: bytes) -> int:
    return int.from_bytes(blake3.blake3(path.encode() + b"\x00" + file_hash).digest(), "big")


def parent_dirs(path: str) -> list[str]:
    """Directory keys above a file path: `/a/b/c` -> ['/', '/a/', '/a/b/']."""
    out = ["/"]
    i = path.find("/", 1)
    while i != -1:
        out.append(path[: i + 1])
        i = path.find("/", i + 1)
    return out


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class FileTree:
    """Read-only queries over one root."""

    def __init__(self, index: IndexTree, root: Optional[bytes]):
        self.index = index
        self.root = root

    def entry(self, key: str) -> Optional[Entry]:
        raw = self.index.get(self.root, key)
        return None if raw is None else decode_entry(raw)

    def lookup(self, path: str) -> Optional[tuple[str, Entry]]:
        """A cleaned path (`/a/b`, or `/` for the root) as a file or a directory."""
        if path == "/":
            e = self.entry("/")
            return ("/", e) if e else None
        e = self.entry(path)
        if e is not None:
            return path, e
        e = self.entry(path + "/")
        return (path + "/", e) if e is not None else None

    def total(self) -> Entry:
        return self.entry("/") or Entry(True, 0, (0).to_bytes(32, "big"), count=0)

    def list_dir(self, dir_key: str, start_after: Optional[str] = None,
                 reverse: bool = False, decode=decode_entry) -> Iterator[tuple[str, Entry]]:
        """Direct children of a directory key (`/` or `/a/`), in path order, each entry made by
        `decode` (`decode_entry_listed` where the content's chunks are not needed).

        One pass over the directory's key range; each subdirectory's subtree is skipped by
        seeking past it, so the cost is O(children x log N), not O(subtree)."""
        if reverse:
            children = list(self.list_dir(dir_key, start_after=None, decode=decode))
            for k, e in reversed(children):
                if start_after is None or k < start_after:
                    yield k, e
            return
        if start_after is None:
            lo = dir_key
        elif start_after.endswith("/"):  # after a directory: past its whole subtree
            lo = prefix_end(start_after)
        else:
            lo = start_after + "\x00"
        hi = prefix_end(dir_key)
        n = len(dir_key)
        while lo is not None:
            nxt_lo = None
            for k, raw in self.index.items(self.root, lo, hi):
                if k == dir_key:
                    continue
                slash = k.find("/", n)
                if slash == -1:  # a file directly inside
                    yield k, decode(raw)
                    continue
                sub = k[: slash + 1]
                if k == sub:  # a child directory: yield it, then skip its subtree
                    yield k, decode(raw)
                else:  # (defensive) a file below a child dir whose entry is missing
                    e = self.entry(sub)
                    if e is not None:
                        yield sub, e
                nxt_lo = prefix_end(sub)
                break
            lo = nxt_lo

    def walk(self, key: str) -> Iterator[tuple[str, Entry]]:
        """The entry itself and, for a directory, everything below it, in path order."""
        if not key.endswith("/"):
            e = self.entry(key)
            if e is not None:
                yield key, e
            return
        for k, raw in self.index.items(self.root, key, prefix_end(key)):
            yield k, decode_entry(raw)

    def files(self, key: str = "/") -> Iterator[tuple[str, Entry]]:
        for k, e in self.walk(key):
            if not e.is_dir:
                yield k, e

    def glob(self, pattern: str) -> Iterator[tuple[str, Entry]]:
        """Files and directories matching a Pachyderm glob, in path order."""
        for k, raw in self.glob_raw(pattern):
            yield k, decode_entry(raw)

    def glob_raw(self, pattern: str) -> Iterator[tuple[str, bytes]]:
        """Like `glob`, with entries still encoded (decode what you need)."""
        from pfs.glob import clean_glob, compile_glob
        g = compile_glob(clean_glob(pattern))
        if g.pattern == "/":
            raw = self.index.get(self.root, "/")
            if raw is not None:
                yield "/", raw
            return
        prefix = g.literal_prefix or "/"
        for k, raw in self.index.items(self.root, prefix, prefix_end(prefix)):
            if k != "/" and g.match_path(k):
                yield k, raw


def diff(index: IndexTree, new_root: Optional[bytes], old_root: Optional[bytes],
         key: str = "/") -> Iterator[tuple[Optional[tuple[str, Entry]], Optional[tuple[str, Entry]]]]:
    """(new, old) pairs for every key under `key` whose entry differs, in path order (shared
    subtrees of the two indexes are skipped, so the cost follows the size of the change)."""
    hi = prefix_end(key) if key.endswith("/") else key + "\x00"
    for k, x, y in index.diff(new_root, old_root, key, hi):
        ex = decode_entry(x) if x is not None else None
        ey = decode_entry(y) if y is not None else None
        if ex is not None and ey is not None and ex.hash == ey.hash and ex.size == ey.size \
                and ex.is_dir == ey.is_dir:
            continue  # same content (e.g. only the datum tag differs)
        yield ((k, ex) if ex is not None else None), ((k, ey) if ey is not None else None)


class WriteSession:
    """Ordered file operations against a base root, applied in bounded batches.

    Operations take effect in the order they are made (a delete followed by a put of the
    same path leaves the put). `root` holds the result so far; nothing is visible to anyone
    until the caller publishes it.
    """

    APPLY_EVERY = 20_000

    def __init__(self, index: IndexTree, base_root: Optional[bytes], lease=None):
        self.index = index
        self.root = base_root
        # protects the base root, the roots applied and every chunk the session refers to
        # (pfs.core.gc.leases); None: index writes take a short lease of their own
        self.lease = lease
        self._pending: dict[str, Optional[Entry]] = {}
        self._pending_dirs: dict[str, int] = {}  # dir key -> pending puts below it
        self.collisions: list[str] = []  # a path written by two different datums
        self._datum_of: dict[str, str] = {}  # path -> datum that wrote it since the last apply
        # the path the last operation, a `delete`, found nothing at: the put that follows it
        # (every put that is not an append) need not look it up again. Any other operation
        # forgets it.
        self._absent: Optional[str] = None

    # ---- reads through the session --------------------------------------------------------
    def current(self, path: str) -> Optional[Entry]:
        if path in self._pending:
            return self._pending[path]
        if path == self._absent:
            return None
        return FileTree(self.index, self.root).entry(path)

    # ---- operations ------------------------------------------------------------------------
    def put(self, path: str, entry: Entry, protect: bool = True) -> None:
        """`protect`: lease the packs of the entry's chunks (they may come from anywhere)."""
        self._absent = None
        if protect and self.lease is not None and entry.refs:
            self.lease.protect_refs(entry.refs)
        if entry.datum:
            prev = self._datum_of.get(path)
            if prev is not None and prev != entry.datum:
                self.collisions.append(f"duplicate path output by different datums "
                                       f"({path} from {prev} and {path} from {entry.datum})")
            self._datum_of[path] = entry.datum
        if self._pending.get(path) is None:
            for dk in parent_dirs(path):
                self._pending_dirs[dk] = self._pending_dirs.get(dk, 0) + 1
        self._pending[path] = entry
        self._maybe_apply()

    def append(self, path: str, content: FileContent, datum: str = "") -> None:
        if self.lease is not None and content.refs:
            self.lease.protect_refs(content.refs)
        old = self.current(path)  # its chunks are the session's or its (leased) base's
        if old is not None and not old.is_dir:
            merged = FileContent(old.size + content.size, list(old.refs) + list(content.refs))
            self.put(path, file_entry(merged, datum or old.datum), protect=False)
        else:
            self.put(path, file_entry(content, datum), protect=False)

    def delete(self, path: str) -> bool:
        """Delete a file, or a directory with everything below it. False if nothing there."""
        self._absent = None
        found = False
        absent = path == "/" or self.current(path) is None  # no file at `path`
        if not absent:
            self._pending[path] = None
            found = True
        dir_key = "/" if path == "/" else path + "/"
        if self._pending_dirs.get(dir_key) or FileTree(self.index, self.root).entry(dir_key) is not None:
            self.apply()
            for k, e in list(FileTree(self.index, self.root).files(dir_key)):
                self._pending[k] = None
                found = True
        self._maybe_apply()
        if absent and path != "/":
            self._absent = path
        return found

    def _maybe_apply(self) -> None:
        if len(self._pending) >= self.APPLY_EVERY:
            self.apply()

    # ---- applying --------------------------------------------------------------------------
    def apply(self) -> Optional[bytes]:
        """Fold pending operations into `root` (maintaining directory aggregates)."""
        self._absent = None
        if not self._pending:
            return self.root
        pending = self._pending
        self._pending = {}
        self._pending_dirs = {}
        self._datum_of = {}
        base = FileTree(self.index, self.root)
        deltas: dict[str, list] = {}
        edits: dict[str, Optional[bytes]] = {}
        new_files: list[str] = []
        for path, new in pending.items():
            old = base.entry(path)
            if old is None and new is None:
                continue
            if old is not None and new is not None and old == new:
                continue
            if old is not None and new is not None and old.datum and new.datum and old.datum != new.datum:
                self.collisions.append(f"duplicate path output by different datums "
                                       f"({path} from {old.datum} and {path} from {new.datum})")
            d_size = (new.size if new else 0) - (old.size if old else 0)
            d_count = (1 if new else 0) - (1 if old else 0)
            d_hash = (_digest(path, new.hash) if new else 0) - (_digest(path, old.hash) if old else 0)
            for dk in parent_dirs(path):
                acc = deltas.get(dk)
                if acc is None:
                    deltas[dk] = [d_size, d_count, d_hash]
                else:
                    acc[0] += d_size
                    acc[1] += d_count
                    acc[2] += d_hash
            edits[path] = encode_entry(new) if new is not None else None
            if new is not None and old is None:
                new_files.append(path)
        for dk, (ds, dc, dh) in deltas.items():
            old = base.entry(dk)
            size = (old.size if old else 0) + ds
            count = (old.count if old else 0) + dc
            h = ((int.from_bytes(old.hash, "big") if old else 0) + dh) % _MOD
            if count <= 0:
                if old is not None:
                    edits[dk] = None
            else:
                edits[dk] = encode_entry(Entry(True, size, h.to_bytes(32, "big"), count=count))
                if old is None and dk != "/":
                    self._check_no_file_at(dk[:-1], edits, base)
        for path in new_files:
            dk = path + "/"
            if dk in edits:
                raw = edits[dk]
                if raw is not None:
                    raise InvalidArgument(f"file / directory path collision ({path})")
            elif base.entry(dk) is not None:
                raise InvalidArgument(f"file / directory path collision ({path})")
        self.root = self.index.update(self.root, sorted(edits.items()), lease=self.lease)
        return self.root

    @staticmethod
    def _check_no_file_at(path: str, edits: dict, base: FileTree) -> None:
        if path in edits:
            if edits[path] is not None:
                raise InvalidArgument(f"file / directory path collision ({path})")
            return
        if base.entry(path) is not None:
            raise InvalidArgument(f"file / directory path collision ({path})")


def require(tree: FileTree, path: str, repo: str, commit_id: str) -> tuple[str, Entry]:
    """Look a path up or raise Pachyderm's not-found error."""
    found = tree.lookup(path)
    if found is None:
        raise FileNotFound(f"file {path} not found in repo {repo} at commit {commit_id}")
    return found
