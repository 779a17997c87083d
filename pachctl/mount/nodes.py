"""Inodes: what each inode number the kernel knows stands for.

Invariants:
- Inode numbers are stable: derived from a key (blake2b, 63 bits), never from a counter, so
  the same thing gets the same number whenever it is looked up again, in this mount or the
  next one. Keys:
    * read-only views: (view, path, content hash) for files, (view, path) for directories:
      an inode's content never changes, which is what lets the page cache keep it;
    * writable views: (view, path, kind): one inode per path and kind, whose state is
      looked up in the overlay on every call (its content may change);
  so a path whose kind changes (file -> directory) always gets a new inode, as the kernel
  requires.
- A node stays in the table while the kernel holds a lookup on it (`nlookup`) or a handle is
  open on it (`nopen`); `forget` and `release` drop it when both reach zero.
"""
from __future__ import annotations

import hashlib
import stat
from typing import Optional

import pyfuse3

ROOT = pyfuse3.ROOT_INODE

# node kinds
K_ROOT, K_VIEW, K_DIR, K_FILE, K_LINK = "root", "view", "dir", "file", "link"


def inode_number(*parts) -> int:
    # one blake2b over "part\0part\0...": the same digest as feeding the parts one by one
    # (numbers stay those of earlier versions), in one call (hot: once per listed entry)
    key = b"\x00".join(p if isinstance(p, bytes) else str(p).encode("utf-8", "surrogateescape")
                       for p in parts) + b"\x00"
    return key_inode(key)


def key_inode(key: bytes) -> int:
    """The inode number of an already joined key ("part\0part\0...\0"): `inode_number`'s
    last step, for callers that build keys in bulk (a directory listing)."""
    n = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") & ((1 << 63) - 1)
    return n if n > ROOT else n + 2


class Node:
    """One inode. For remote entries of read-only views, `commit`/`src`/`size`/`hash`/
    `mtime_ns` say exactly what it is; nodes of writable views are resolved per call."""
    __slots__ = ("ino", "kind", "view", "path", "commit", "src", "size", "hash", "mtime_ns",
                 "nlookup", "nopen", "attr")

    def __init__(self, ino: int, kind: str, view=None, path: str = "/", commit: Optional[str] = None,
                 src: str = "", size: int = 0, hash: bytes = b"", mtime_ns: int = 0):
        self.ino, self.kind, self.view, self.path = ino, kind, view, path
        self.commit, self.src, self.size, self.hash, self.mtime_ns = commit, src, size, hash, mtime_ns
        self.nlookup = 0
        self.nopen = 0
        self.attr = None  # cached EntryAttributes of an immutable node

    @property
    def is_dir(self) -> bool:
        return self.kind in (K_ROOT, K_VIEW, K_DIR)

    @property
    def writable_view(self) -> bool:
        return self.view is not None and self.view.writable


def make_attr(ino: int, kind: str, size: int, mtime_ns: int, writable: bool, timeout: float,
              uid: int, gid: int) -> pyfuse3.EntryAttributes:
    a = pyfuse3.EntryAttributes()
    a.st_ino = ino
    a.generation = 0
    a.entry_timeout = timeout
    a.attr_timeout = timeout
    if kind == K_LINK:
        a.st_mode = stat.S_IFLNK | 0o777
    elif kind in (K_ROOT, K_VIEW, K_DIR):
        a.st_mode = stat.S_IFDIR | (0o755 if writable else 0o555)
    else:
        a.st_mode = stat.S_IFREG | (0o644 if writable else 0o444)
    # Directories report one link: tools must not assume (nlink - 2) subdirectories.
    a.st_nlink = 1
    a.st_uid = uid
    a.st_gid = gid
    a.st_rdev = 0
    a.st_size = size
    a.st_blksize = 128 * 1024
    a.st_blocks = (size + 511) // 512 if kind == K_FILE else 0
    a.st_atime_ns = a.st_ctime_ns = a.st_mtime_ns = mtime_ns
    return a


class NodeTable:
    def __init__(self):
        self.nodes: dict[int, Node] = {}

    def get(self, ino: int) -> Optional[Node]:
        return self.nodes.get(ino)

    def add(self, node: Node) -> Node:
        """The node already known under this number (refreshed), or this one."""
        old = self.nodes.get(node.ino)
        if old is None:
            self.nodes[node.ino] = node
            return node
        if old.kind == node.kind:
            # same key: same thing; refresh what a newer commit may say about it
            old.view, old.path, old.commit, old.src = node.view, node.path, node.commit, node.src
            if node.view is not None and node.view.writable:
                old.size, old.mtime_ns, old.attr = node.size, node.mtime_ns, None
            return old
        self.nodes[node.ino] = node  # a hash collision of different kinds: take the new one
        return node

    def forget(self, ino: int, n: int) -> None:
        node = self.nodes.get(ino)
        if node is None or node.kind == K_ROOT:
            return
        node.nlookup = max(0, node.nlookup - n)
        self._maybe_drop(node)

    def released(self, node: Node) -> None:
        node.nopen = max(0, node.nopen - 1)
        self._maybe_drop(node)

    def _maybe_drop(self, node: Node) -> None:
        if node.nlookup == 0 and node.nopen == 0 and node.kind != K_ROOT:
            if self.nodes.get(node.ino) is node:
                del self.nodes[node.ino]

    def __len__(self) -> int:
        return len(self.nodes)
