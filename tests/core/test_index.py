"""The file index behaves like a sorted dict under any sequence of edits, shares structure,
and has a canonical shape."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from pfs.core.index import IndexTree


class DictNodes:
    def __init__(self):
        self.nodes: dict[bytes, bytes] = {}
        self.writes = 0
        self.bytes_written = 0

    def get_node(self, h):
        return self.nodes[h]

    def put_node(self, h, data):
        if h not in self.nodes:
            self.writes += 1
            self.bytes_written += len(data)
        self.nodes[h] = data


def apply(model: dict, edits):
    for k, v in edits:
        if v is None:
            model.pop(k, None)
        else:
            model[k] = v


keys = st.text(alphabet="abcdefgh/.-_0123", min_size=1, max_size=6)
edit_batches = st.lists(
    st.dictionaries(keys, st.one_of(st.none(), st.binary(max_size=4)), max_size=60),
    min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(edit_batches)
def test_behaves_like_a_dict(batches):
    store = DictNodes()
    t = IndexTree(store, cache_nodes=16)
    root = None
    model: dict = {}
    for batch in batches:
        edits = sorted(batch.items())
        root = t.update(root, edits)
        apply(model, edits)
        assert list(t.items(root)) == sorted(model.items())
        assert t.count(root) == len(model)
        for k in list(batch)[:10]:
            assert t.get(root, k) == model.get(k)
        # canonical: same content built from scratch gives the same root
        assert root == t.build(sorted(model.items()))


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(keys, st.binary(max_size=3), max_size=200), keys, keys)
def test_ranges_and_reverse(content, a, b):
    t = IndexTree(DictNodes())
    root = t.build(sorted(content.items()))
    lo, hi = min(a, b), max(a, b)
    want = [(k, v) for k, v in sorted(content.items()) if lo <= k < hi]
    assert list(t.items(root, lo, hi)) == want
    assert list(t.reversed_items(root, lo, hi)) == want[::-1]
    assert list(t.reversed_items(root)) == sorted(content.items(), reverse=True)


def test_large_tree_shares_structure():
    store = DictNodes()
    t = IndexTree(store)
    n = 200_000
    items = [(f"/dir{i % 97:02d}/file-{i:07d}", b"x" * 40) for i in range(n)]
    items.sort()
    root = t.build(items)
    assert t.count(root) == n
    before_writes, before_bytes = store.writes, store.bytes_written
    # change k=10 files spread over the tree
    rng = random.Random(1)
    picks = sorted(rng.sample(range(n), 10))
    edits = sorted((items[i][0], b"y" * 40) for i in picks)
    root2 = t.update(root, edits)
    new_nodes = store.writes - before_writes
    height = 0
    node = t.node(root2)
    while True:
        height += 1
        if node.level == 0:
            break
        node = t.node(node.vals[0][0])
    assert new_nodes <= 10 * height + 2 * height, (new_nodes, height)
    assert store.bytes_written - before_bytes < 1 << 20
    for i in picks:
        assert t.get(root2, items[i][0]) == b"y" * 40
        assert t.get(root, items[i][0]) == b"x" * 40  # old version untouched
    # one insert in a big tree: a handful of nodes
    w = store.writes
    root3 = t.update(root2, [("/dir05/zzz", b"z")])
    assert store.writes - w <= height + 2
    assert t.get(root3, "/dir05/zzz") == b"z"
    assert t.count(root3) == n + 1


def test_deep_trees_random_stress(monkeypatch):
    """Tiny nodes (about 4 items) make deep trees, exercising every re-chunking path."""
    import pfs.core.index as index
    monkeypatch.setattr(index, "_BOUNDARY_MASK", 0b11)
    monkeypatch.setattr(index, "MAX_ITEMS", 7)
    rng = random.Random(7)
    t = IndexTree(DictNodes(), cache_nodes=32)
    root, model = None, {}
    universe = [f"k{i:04d}" for i in range(600)]
    for step in range(120):
        batch = {}
        mode = rng.random()
        if mode < 0.3:  # clustered run
            s = rng.randrange(len(universe))
            for k in universe[s:s + rng.randrange(1, 80)]:
                batch[k] = None if rng.random() < 0.4 else bytes([step % 256])
        elif mode < 0.4:  # delete almost everything
            for k in list(model):
                if rng.random() < 0.9:
                    batch[k] = None
        else:
            for _ in range(rng.randrange(1, 40)):
                k = rng.choice(universe)
                batch[k] = None if rng.random() < 0.3 else bytes([step % 256, 1])
        edits = sorted(batch.items())
        root = t.update(root, edits)
        apply(model, edits)
        assert list(t.items(root)) == sorted(model.items()), step
        assert root == t.build(sorted(model.items())), step


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, st.binary(max_size=3), max_size=150),
       st.dictionaries(keys, st.one_of(st.none(), st.binary(max_size=3)), max_size=40), keys, keys)
def test_structural_diff_matches_a_full_comparison(content, edits, a, b):
    store = DictNodes()
    t = IndexTree(store, cache_nodes=8)
    old = t.build(sorted(content.items()))
    new = t.update(old, sorted(edits.items()))
    model = dict(content)
    apply(model, sorted(edits.items()))
    lo, hi = min(a, b), max(a, b)
    want = [(k, model.get(k), content.get(k)) for k in sorted(set(model) | set(content))
            if lo <= k < hi and model.get(k) != content.get(k)]
    assert list(t.diff(new, old, lo, hi)) == want
    assert list(t.diff(old, new)) == [(k, y, x) for k, x, y in
                                      [(k, model.get(k), content.get(k)) for k in sorted(set(model) | set(content))
                                       if model.get(k) != content.get(k)]]


def test_structural_diff_reads_few_nodes_on_a_large_tree():
    class Counting(DictNodes):
        reads = 0

        def get_node(self, h):
            Counting.reads += 1
            return super().get_node(h)

    store = Counting()
    t = IndexTree(store, cache_nodes=1)  # every node access goes to the store
    items = sorted((f"/f{i:07d}", b"v") for i in range(100_000))
    root = t.build(items)
    root2 = t.update(root, [("/f0050000", b"w"), ("/f0090001", None)])
    Counting.reads = 0
    assert list(t.diff(root2, root)) == [("/f0050000", b"w", b"v"), ("/f0090001", None, b"v")]
    assert Counting.reads < 60, Counting.reads
