"""Property test: a repo's file tree behaves like a dict path -> content.

Random sequences of put / append / delete (files and whole directories) grouped into write
sessions and commits (one-off commits and open commits written by several sessions) are
applied to a real `Pfs` and to a plain dict. After every commit the tree, directory
listings, walks and aggregated sizes must match the model, and every earlier commit must
still show exactly its own state.
"""
from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pfs.core.index as index_mod
from pfs.core import Pfs
from pfs.core.filetree import WriteSession
from pfs.model import Branch, Repo
from pfs.storage.local import LocalChunkStore
from pfs.storage.metadata import MemoryMetadataStore

REPO = Repo("default", "model")
DIRS = ["d1", "d2", "d3"]
FILES = ["f1", "f2", "f3", "f4"]

dir_paths = st.lists(st.sampled_from(DIRS), min_size=0, max_size=2).map(
    lambda parts: "/" + "/".join(parts) if parts else "/")
file_paths = st.tuples(st.lists(st.sampled_from(DIRS), max_size=3), st.sampled_from(FILES)).map(
    lambda t: "/" + "/".join(t[0] + [t[1]]))
data = st.binary(max_size=12)
op = st.one_of(
    st.tuples(st.just("put"), file_paths, data),
    st.tuples(st.just("append"), file_paths, data),
    st.tuples(st.just("delete"), file_paths, st.just(b"")),
    st.tuples(st.just("rmdir"), dir_paths, st.just(b"")),
)
session = st.lists(op, min_size=1, max_size=8)
# a commit is one session (one-off commit) or several sessions into an open commit
commit = st.tuples(st.booleans(), st.lists(session, min_size=1, max_size=3))
history = st.lists(commit, min_size=1, max_size=6)


def apply_model(model: dict, ops) -> None:
    for kind, path, payload in ops:
        if kind == "put":
            model[path] = payload
        elif kind == "append":
            model[path] = model.get(path, b"") + payload
        elif kind == "delete":
            model.pop(path, None)
            for k in [k for k in model if k.startswith(path + "/")]:
                del model[k]
        else:  # rmdir
            prefix = "/" if path == "/" else path + "/"
            for k in [k for k in model if k.startswith(prefix)]:
                del model[k]


def apply_pfs(w, ops) -> None:
    for kind, path, payload in ops:
        if kind == "put":
            w.put(path, [payload])
        elif kind == "append":
            w.put(path, [payload[:3], payload[3:]], append=True)
        else:
            w.delete(path)


def expected_dirs(model: dict) -> dict:
    """dir key -> (size, count) for every directory holding at least one file."""
    out: dict = {}
    for path, content in model.items():
        parts = path.split("/")[1:-1]
        keys = ["/"] + ["/" + "/".join(parts[:i + 1]) + "/" for i in range(len(parts))]
        for k in keys:
            s, c = out.get(k, (0, 0))
            out[k] = (s + len(content), c + 1)
    return out


def check(p: Pfs, ref: str, model: dict) -> None:
    ci = p.commit_for_read(REPO, ref)
    dirs = expected_dirs(model)
    # walk: every file and directory, in path order, with right sizes
    walked = [(f.path, f.is_dir, f.size) for f in p.walk_file(ci, "/")]
    want = sorted([(k, False, len(v)) for k, v in model.items()] +
                  [(k, True, s) for k, (s, _) in dirs.items()])
    assert walked == want
    for path, content in model.items():
        _, it = p.read_file(ci, path)
        assert b"".join(it) == content, path
    # list: direct children only
    for d, (size, count) in dirs.items():
        listed = [(f.path, f.size) for f in p.list_file(ci, d)]
        children = sorted({_child(d, k): None for k in model if k.startswith(d)})
        assert [x for x, _ in listed] == children
        for path, s in listed:
            if path.endswith("/"):
                assert s == dirs[path][0]
            else:
                assert s == len(model[path])
        info = p.inspect_file(ci, d)
        assert (info.size, info.file_count) == (size, count)
    assert ci.size == sum(len(v) for v in model.values())
    if not model:
        assert list(p.list_file(ci, "/")) == []


def _child(d: str, path: str) -> str:
    rest = path[len(d):]
    i = rest.find("/")
    return path if i == -1 else d + rest[: i + 1]


def run_history(p: Pfs, hist) -> None:
    p.create_repo(REPO)
    model: dict = {}
    snapshots: list = []
    for open_commit, sessions in hist:
        if open_commit:
            ci = p.start_commit(Branch(REPO, "master"))
            for ops in sessions:
                with p.open_writer(REPO, ci.commit.id) as w:
                    apply_pfs(w, ops)
                apply_model(model, ops)
            p.finish_commit(REPO, ci.commit.id)
            cid = ci.commit.id
        else:
            for ops in sessions:
                with p.open_writer(REPO, "master") as w:
                    apply_pfs(w, ops)
                apply_model(model, ops)
            cid = w.result.commit.id
        check(p, "master", model)
        snapshots.append((cid, dict(model)))
    for cid, snap in snapshots:
        check(p, cid, snap)


def _fresh(tmp: str) -> tuple:
    meta = MemoryMetadataStore()
    chunks = LocalChunkStore(tmp, durable=False)
    return Pfs(meta, chunks), meta, chunks


def _check_property(max_examples: int) -> None:
    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(history)
    def prop(hist):
        with tempfile.TemporaryDirectory() as tmp:
            p, meta, chunks = _fresh(tmp)
            try:
                run_history(p, hist)
            finally:
                p.close()
                meta.close()
                chunks.close()

    prop()


def _variant(name: str, monkeypatch) -> None:
    if name == "tiny-batches":
        # apply pending operations to the index every 2 ops: exercises mid-session folds
        monkeypatch.setattr(WriteSession, "APPLY_EVERY", 2)
    elif name == "deep-index":
        # nodes of ~2 items: deep trees, every re-chunking path of the index
        monkeypatch.setattr(index_mod, "_BOUNDARY_MASK", 0b1)
        monkeypatch.setattr(index_mod, "MAX_ITEMS", 3)


@pytest.mark.parametrize("variant", ["plain", "tiny-batches", "deep-index"])
def test_tree_behaves_like_a_dict(variant, monkeypatch):
    _variant(variant, monkeypatch)
    _check_property(60)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "tiny-batches", "deep-index"])
def test_tree_behaves_like_a_dict_long(variant, monkeypatch):
    _variant(variant, monkeypatch)
    _check_property(400)


def test_model_on_rocks(make_pfs):
    """One fixed long history on each backend (the fixture also runs RocksDB)."""
    import random
    rng = random.Random(11)
    p = make_pfs()
    hist = []
    for _ in range(12):
        sessions = []
        for _ in range(rng.randint(1, 3)):
            ops = []
            for _ in range(rng.randint(1, 10)):
                kind = rng.choice(["put", "put", "append", "delete", "rmdir"])
                if kind == "rmdir":
                    parts = rng.sample(DIRS, rng.randint(0, 2))
                    path = "/" + "/".join(parts) if parts else "/"
                    if path == "/" and rng.random() < 0.7:
                        path = "/d1"
                else:
                    parts = [rng.choice(DIRS) for _ in range(rng.randint(0, 3))] + [rng.choice(FILES)]
                    path = "/" + "/".join(parts)
                ops.append((kind, path, rng.randbytes(rng.randint(0, 10))))
            sessions.append(ops)
        hist.append((rng.random() < 0.5, sessions))
    run_history(p, hist)
