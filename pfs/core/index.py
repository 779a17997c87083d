"""The per-commit file index: an immutable, sorted, content-addressed tree (a prolly tree).

A commit's files are a sorted map ``key -> value`` (``str -> bytes``). The map is stored as a
tree of nodes; every node is named by the hash of its encoding and is never modified, so a
commit's index is one node hash (its *root*) and two commits share every node whose content
they have in common.

Invariants:
- Canonical shape. Node boundaries are content-defined: a node ends after an item whose
  key hashes to a boundary (probability 1/FANOUT per item), or after MAX_ITEMS items. The
  same map therefore always gives the same tree, whatever edits produced it, and the root
  hash identifies the content.
- Structural sharing. `update` re-chunks only the nodes that contain an edited key (plus, at
  most, the run of following nodes until the chunking re-aligns with the old boundaries), at
  every level. A commit that changes k of N keys writes O(k + log N) new nodes when the edits
  are clustered and O(k log N) at worst; unchanged nodes are reused by hash.
- A root with a single child is never stored: the tree is collapsed to its first level with
  more than one item (or a leaf), which keeps the shape canonical.
- Nodes are written before any root that refers to them is returned, so a root that a caller
  persists always points at complete data.

Leaf items hold the caller's values; internal items hold ``(child_hash, entry_count)`` keyed
by the child's last key. The tree knows nothing about files: `pfs.core.filetree` gives the
keys and values their meaning.
"""
from __future__ import annotations

import bisect
import collections
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Protocol, Sequence

import blake3
import msgpack

FANOUT_BITS = 6  # 1/64 chance of a boundary per item: ~64 items per node on average
MAX_ITEMS = 1024  # hard cap so a run of unlucky keys cannot make a huge node
_BOUNDARY_MASK = (1 << FANOUT_BITS) - 1


class NodeStore(Protocol):
    """Where nodes live. Keys are node hashes; values are encoded nodes."""

    def get_node(self, node_hash: bytes) -> bytes: ...

    def put_node(self, node_hash: bytes, data: bytes) -> None: ...

    def put_nodes(self, nodes: list, root: Optional[bytes] = None, lease=None) -> None:
        """Write many (hash, data) pairs at once (one durable batch where the store can),
        with `root` -- the root these nodes belong to -- protected by `lease` in that batch
        (see pfs.core.gc.leases)."""
        ...


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def is_boundary(key: str, level: int) -> bool:
    """Deterministic across processes (never Python's randomized `hash`)."""
    return (_fmix32(zlib.crc32(key.encode("utf-8", "surrogatepass")) ^ (level * 0x9E3779B9 & 0xFFFFFFFF)) & _BOUNDARY_MASK) == 0


@dataclass(frozen=True)
class Node:
    level: int
    keys: list  # list[str], sorted, unique
    vals: list  # leaf: list[bytes]; internal: list[(child_hash: bytes, count: int)]

    @property
    def count(self) -> int:
        if self.level == 0:
            return len(self.keys)
        return sum(v[1] for v in self.vals)


def encode_node(node: Node) -> bytes:
    if node.level == 0:
        vals = node.vals
    else:
        vals = [[h, c] for h, c in node.vals]
    return msgpack.packb([node.level, node.keys, vals], use_bin_type=True)


def decode_node(data: bytes) -> Node:
    level, keys, vals = msgpack.unpackb(data, raw=False, use_list=True)
    if level:
        vals = [(h, c) for h, c in vals]
    return Node(level, keys, vals)


def node_hash(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


class IndexTree:
    """Reads and edits trees stored in a NodeStore. Thread-safe; nodes are cached decoded."""

    def __init__(self, store: NodeStore, cache_nodes: int = 2048):
        self._store = store
        self._cache: OrderedDict[bytes, Node] = OrderedDict()
        self._cache_max = cache_nodes
        self._lock = threading.Lock()
        self._local = threading.local()  # nodes written by the update running in this thread

    # ---- node I/O -------------------------------------------------------------------
    def node(self, h: bytes) -> Node:
        with self._lock:
            n = self._cache.get(h)
            if n is not None:
                self._cache.move_to_end(h)
                return n
        pending = getattr(self._local, "pending", None)
        if pending and h in pending:
            return decode_node(pending[h])
        n = decode_node(self._store.get_node(h))
        self._remember(h, n)
        return n

    def _remember(self, h: bytes, n: Node) -> None:
        with self._lock:
            self._cache[h] = n
            if len(self._cache) > self._cache_max:
                self._cache.popitem(last=False)

    def _write(self, node: Node) -> bytes:
        data = encode_node(node)
        h = node_hash(data)
        pending = getattr(self._local, "pending", None)
        if pending is None:
            self._store.put_node(h, data)
        else:
            pending[h] = data
        self._remember(h, node)
        return h

    # ---- reads ----------------------------------------------------------------------
    def get(self, root: Optional[bytes], key: str) -> Optional[bytes]:
        if root is None:
            return None
        n = self.node(root)
        while n.level > 0:
            i = bisect.bisect_left(n.keys, key)
            if i == len(n.keys):
                return None
            n = self.node(n.vals[i][0])
        i = bisect.bisect_left(n.keys, key)
        if i < len(n.keys) and n.keys[i] == key:
            return n.vals[i]
        return None

    def count(self, root: Optional[bytes]) -> int:
        return 0 if root is None else self.node(root).count

    def items(self, root: Optional[bytes], start: Optional[str] = None,
              end: Optional[str] = None) -> Iterator[tuple[str, bytes]]:
        """Items with start <= key < end, in key order (lazy: reads nodes as it goes)."""
        if root is None:
            return
        stack: list[list] = []  # [node, index]
        n = self.node(root)
        while True:
            i = 0 if start is None else bisect.bisect_left(n.keys, start)
            stack.append([n, i])
            if n.level == 0 or i >= len(n.keys):
                break
            n = self.node(n.vals[i][0])
        while stack:
            top = stack[-1]
            n, i = top
            if i >= len(n.keys):
                stack.pop()
                if stack:
                    stack[-1][1] += 1
                continue
            if n.level == 0:
                k = n.keys[i]
                if end is not None and k >= end:
                    return
                yield k, n.vals[i]
                top[1] = i + 1
            else:
                child = self.node(n.vals[i][0])
                stack.append([child, 0])

    def reversed_items(self, root: Optional[bytes], start: Optional[str] = None,
                       end: Optional[str] = None) -> Iterator[tuple[str, bytes]]:
        """Items with start <= key < end, in descending key order."""
        if root is None:
            return
        def walk(h: bytes) -> Iterator[tuple[str, bytes]]:
            n = self.node(h)
            if n.level == 0:
                for k, v in zip(reversed(n.keys), reversed(n.vals)):
                    if end is not None and k >= end:
                        continue
                    if start is not None and k < start:
                        return
                    yield k, v
                return
            hi = len(n.keys) if end is None else min(len(n.keys), bisect.bisect_left(n.keys, end) + 1)
            for j in range(hi - 1, -1, -1):
                if start is not None and j > 0 and n.keys[j - 1] < start and n.keys[j] < start:
                    return
                yield from walk(n.vals[j][0])
                if start is not None and j > 0 and n.keys[j - 1] < start:
                    return
        yield from walk(root)

    def diff(self, a_root: Optional[bytes], b_root: Optional[bytes], start: Optional[str] = None,
             end: Optional[str] = None) -> Iterator[tuple[str, Optional[bytes], Optional[bytes]]]:
        """(key, value in a, value in b) for every key in [start, end) whose value differs.

        Walks both trees together and skips every subtree the two share (equal node hashes),
        so two versions that differ in k keys cost O(k log N) node reads, not O(N)."""
        a = collections.deque([("n", a_root)] if a_root is not None else [])
        b = collections.deque([("n", b_root)] if b_root is not None else [])

        def level(item) -> int:
            return self.node(item[1]).level if item[0] == "n" else -1

        def expand(q: collections.deque) -> None:
            _, h = q.popleft()
            n = self.node(h)
            if n.level == 0:
                items = [("e", k, v) for k, v in zip(n.keys, n.vals)
                         if (start is None or k >= start) and (end is None or k < end)]
            else:
                items = []
                for i, (k, (child, _)) in enumerate(zip(n.keys, n.vals)):
                    if start is not None and k < start:
                        continue  # the child's keys all sort before start
                    items.append(("n", child))
                    if end is not None and k >= end:
                        break  # later children start at or after end
            q.extendleft(reversed(items))

        while a or b:
            if a and b and a[0][0] == "n" and b[0][0] == "n" and a[0][1] == b[0][1]:
                a.popleft()
                b.popleft()
                continue
            la = level(a[0]) if a else -2
            lb = level(b[0]) if b else -2
            if la >= 0 and la >= lb:
                expand(a)
                continue
            if lb >= 0:
                expand(b)
                continue
            if b and (not a or b[0][1] < a[0][1]):
                _, k, v = b.popleft()
                yield k, None, v
            elif a and (not b or a[0][1] < b[0][1]):
                _, k, v = a.popleft()
                yield k, v, None
            else:
                _, k, va = a.popleft()
                _, _, vb = b.popleft()
                if va != vb:
                    yield k, va, vb

    def hashes(self, root: Optional[bytes]) -> Iterator[bytes]:
        """Every node hash reachable from root (for garbage collection and accounting)."""
        if root is None:
            return
        todo = [root]
        while todo:
            h = todo.pop()
            yield h
            n = self.node(h)
            if n.level:
                todo.extend(v[0] for v in n.vals)

    # ---- writes ---------------------------------------------------------------------
    def build(self, items: Iterable[tuple[str, bytes]]) -> Optional[bytes]:
        """A new tree from sorted, unique items."""
        return self.update(None, items)

    def update(self, root: Optional[bytes], edits: Iterable[tuple[str, Optional[bytes]]],
               lease=None) -> Optional[bytes]:
        """Apply sorted, unique-key edits (value None = delete) and return the new root.

        New nodes are written in one batch before the root is returned, together with
        `lease`'s protection of the new root (the store's own short lease if None)."""
        self._local.pending = {}
        try:
            new_root = self._update(root, edits)
            pending = self._local.pending
            if pending:
                if hasattr(self._store, "put_nodes"):
                    self._store.put_nodes(list(pending.items()), root=new_root, lease=lease)
                else:
                    for h, data in pending.items():
                        self._store.put_node(h, data)
            return new_root
        finally:
            self._local.pending = None

    def _update(self, root, edits):
        edit_list = list(edits) if not isinstance(edits, list) else edits
        if not edit_list:
            return root
        old_top = self.node(root).level if root is not None else -1
        level = 0
        while True:
            out = self._rechunk_level(root, level, edit_list)
            if level >= old_top:
                break
            edit_list = sorted(out.items())
            level += 1
        items = sorted((k, v) for k, v in out.items() if v is not None)
        if root is not None:
            # The old root is the one node of its level. If the re-chunking never entered
            # it (every edit landed before its first key and re-aligned at its start), it
            # is unchanged and still part of the tree: keep it next to the new nodes.
            rn = self.node(root)
            if rn.keys[-1] not in out:
                items = sorted(items + [(rn.keys[-1], (root, rn.count))])
        level += 1
        while len(items) > 1:
            items = self._chunk_fresh(items, level)
            level += 1
        if not items:
            return None
        new_root = items[0][1][0]
        n = self.node(new_root)
        while n.level > 0 and len(n.keys) == 1:
            new_root = n.vals[0][0]
            n = self.node(new_root)
        return new_root

    def _emit(self, level: int, buf: list, out: dict) -> None:
        node = Node(level, [k for k, _ in buf], [v for _, v in buf])
        out[buf[-1][0]] = (self._write(node), node.count)

    def _chunk_fresh(self, items: Sequence, level: int) -> list:
        """Chunk a full level's items (each (key, (hash, count))) into nodes one level up."""
        out: dict = {}
        buf: list = []
        for item in items:
            buf.append(item)
            if is_boundary(item[0], level) or len(buf) >= MAX_ITEMS:
                self._emit(level, buf, out)
                buf = []
        if buf:
            self._emit(level, buf, out)
        return sorted(out.items())

    def _rechunk_level(self, root: Optional[bytes], level: int, edits: list) -> dict:
        """Merge `edits` into the old items of `level` and re-chunk around them.

        Returns the edits for the level above: old node last-key -> None for every old
        node consumed, new node last-key -> (hash, count) for every node written.
        """
        out: dict = {}
        cur = _LevelCursor(self, root, level, out)
        buf: list = []
        i, n_edits = 0, len(edits)
        while i < n_edits:
            cur.seek_node_start(edits[i][0])
            while True:
                ck = cur.peek_key()
                if i < n_edits and (ck is None or edits[i][0] <= ck):
                    k, v = edits[i]
                    i += 1
                    if ck == k:
                        cur.advance()
                    if v is None:
                        continue
                    item = (k, v)
                elif ck is not None:
                    item = cur.take()
                else:
                    break
                buf.append(item)
                if is_boundary(item[0], level) or len(buf) >= MAX_ITEMS:
                    self._emit(level, buf, out)
                    buf = []
                    if cur.at_node_start() and (i >= n_edits or edits[i][0] > cur.node_last_key()):
                        break  # re-aligned with an old boundary: the rest of this run is unchanged
        if buf:
            self._emit(level, buf, out)
        return out


class _LevelCursor:
    """Walks the items of one level of an old tree, node by node.

    Every old node the cursor enters is recorded in `consumed` as deleted (its parent item
    will be replaced by whatever the re-chunking writes).
    """

    def __init__(self, tree: IndexTree, root: Optional[bytes], level: int, consumed: dict):
        self.tree = tree
        self.root = root
        self.level = level
        self.consumed = consumed
        self.stack: list[list] = []  # [node, index, last_key_of_node]
        self.exhausted = root is None

    def seek_node_start(self, key: str) -> None:
        if self.root is None:
            self.exhausted = True
            return
        n = self.tree.node(self.root)
        stack: list[list] = []
        last_key = n.keys[-1]
        while n.level > self.level:
            i = bisect.bisect_left(n.keys, key)
            if i == len(n.keys):
                i -= 1
            stack.append([n, i, last_key])
            last_key = n.keys[i]
            n = self.tree.node(n.vals[i][0])
        stack.append([n, 0, last_key])
        self.stack = stack
        self.exhausted = False

    def _enter(self, last_key: str) -> None:
        if last_key not in self.consumed:
            self.consumed[last_key] = None

    def peek_key(self) -> Optional[str]:
        if self.exhausted:
            return None
        n, i, _ = self.stack[-1]
        return n.keys[i]

    def take(self) -> tuple:
        n, i, _ = self.stack[-1]
        item = (n.keys[i], n.vals[i])
        self.advance()
        return item

    def advance(self) -> None:
        top = self.stack[-1]
        self._enter(top[2])  # consuming from this node: its parent item will be replaced
        top[1] += 1
        if top[1] < len(top[0].keys):
            return
        # move to the next node at this level
        depth = len(self.stack) - 1
        d = depth - 1
        while d >= 0:
            self.stack[d][1] += 1
            if self.stack[d][1] < len(self.stack[d][0].keys):
                break
            d -= 1
        if d < 0:
            self.exhausted = True
            self.stack = []
            return
        while d < depth:
            parent, pi, _ = self.stack[d]
            child = self.tree.node(parent.vals[pi][0])
            entry = [child, 0, parent.keys[pi]]
            if d + 1 < len(self.stack):
                self.stack[d + 1] = entry
            else:
                self.stack.append(entry)
            d += 1

    def at_node_start(self) -> bool:
        return not self.exhausted and self.stack[-1][1] == 0

    def node_last_key(self) -> str:
        return self.stack[-1][2]
