"""Crash safety and atomicity: failed or aborted writes publish nothing, a failure at any
metadata write leaves the old state or the new one, a reopened RocksDB-backed Pfs sees
exactly the committed state (also after a SIGKILL), and concurrent writers serialize."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from contextlib import closing
import threading
import time
from pathlib import Path

import pytest

from pfs.core import Pfs
from pfs.errors import CommitNotFound, Conflict, RepoNotFound, StorageError
from pfs.model import Branch
from pfs.storage.local import LocalChunkStore
from pfs.storage.metadata import MemoryMetadataStore, WriteBatch
from pfs.storage.rocks import RocksMetadataStore
from tests.core.helpers import B, R, put_files, tree_of

ROOT = Path(__file__).resolve().parents[2]


class Boom(RuntimeError):
    pass


def test_session_that_raises_publishes_nothing(pfs):
    pfs.create_repo(R("a"))
    c = put_files(pfs, R("a"), "master", {"/keep": b"k"})
    with pytest.raises(Boom):
        with pfs.open_writer(R("a"), "master") as w:
            w.put("/new", [b"x" * 100_000])
            w.delete("/keep")
            raise Boom()
    assert pfs.inspect_branch(B("a")).head == c.commit.id
    assert len(pfs.list_commits(R("a"))) == 1
    assert tree_of(pfs, R("a"), "master") == {"/keep": b"k"}
    # the branch lock was released: the next session works
    put_files(pfs, R("a"), "master", {"/after": b"1"})
    assert tree_of(pfs, R("a"), "master") == {"/keep": b"k", "/after": b"1"}


def test_session_that_raises_on_new_branch_creates_nothing(pfs):
    pfs.create_repo(R("a"))
    with pytest.raises(Boom):
        with pfs.open_writer(R("a"), "fresh") as w:
            w.put("/x", [b"x"])
            raise Boom()
    assert pfs.list_branches(R("a")) == []
    assert pfs.list_commits(R("a")) == []


def test_aborted_writer_leaves_open_commit_unchanged(pfs):
    pfs.create_repo(R("a"))
    put_files(pfs, R("a"), "master", {"/base": b"b"})
    ci = pfs.start_commit(B("a"))
    put_files(pfs, R("a"), ci.commit.id, {"/first": b"1"})
    before = pfs.inspect_commit(R("a"), ci.commit.id)
    w = pfs.open_writer(R("a"), ci.commit.id)
    w.put("/second", [b"2"])
    w.delete("/base")
    w.abort()
    w.abort()  # idempotent
    after = pfs.inspect_commit(R("a"), ci.commit.id)
    assert after.root == before.root and after.size == before.size
    assert tree_of(pfs, R("a"), ci.commit.id) == {"/base": b"b", "/first": b"1"}
    # the commit's write lock was released: finishing does not hang
    pfs.finish_commit(R("a"), ci.commit.id)
    assert tree_of(pfs, R("a"), "master") == {"/base": b"b", "/first": b"1"}


def test_chunk_store_failure_publishes_nothing(pfs, monkeypatch):
    pfs.create_repo(R("a"))
    c = put_files(pfs, R("a"), "master", {"/keep": b"k"})

    def broken_put(key, data, **_):
        raise StorageError("disk on fire")

    monkeypatch.setattr(pfs.chunks, "put", broken_put)
    if hasattr(pfs.chunks, "put_parts"):  # the local store writes packs through it
        monkeypatch.setattr(pfs.chunks, "put_parts", broken_put)
    with pytest.raises(StorageError, match="disk on fire"):
        put_files(pfs, R("a"), "master", {"/new": os.urandom(50_000)})
    monkeypatch.undo()
    assert pfs.inspect_branch(B("a")).head == c.commit.id
    assert tree_of(pfs, R("a"), "master") == {"/keep": b"k"}
    # no chunk-index entry points at a pack that was never written
    assert sum(1 for _ in pfs.meta.scan(prefix=b"K\x00")) == 1
    put_files(pfs, R("a"), "master", {"/new": b"fine now"})
    assert tree_of(pfs, R("a"), "master") == {"/keep": b"k", "/new": b"fine now"}


def test_publish_conflict_writes_nothing(pfs):
    """A session whose base moved under it (outside this process's lock) is refused."""
    pfs.create_repo(R("a"))
    ci = pfs.start_commit(B("a"))
    w = pfs.open_writer(R("a"), ci.commit.id)
    w.put("/x", [b"1"])
    # another writer (e.g. pps setting an output's base) replaces the root meanwhile
    w.target.root = b"\x01" * 32  # what the session believes it started from
    with pytest.raises(Conflict, match="changed during the upload"):
        w.close()
    assert tree_of(pfs, R("a"), ci.commit.id) == {}


@pytest.mark.parametrize("recreate", [False, True])
@pytest.mark.parametrize("target", ["new-branch", "existing-branch", "open-commit"])
def test_upload_racing_repo_deletion_writes_nothing(pfs, target, recreate):
    pfs.create_repo(R("a"))
    if target == "existing-branch":
        put_files(pfs, R("a"), "master", {"/old": b"o"})
        w = pfs.open_writer(R("a"), "master")
    elif target == "open-commit":
        ci = pfs.start_commit(B("a"))
        w = pfs.open_writer(R("a"), ci.commit.id)
    else:
        w = pfs.open_writer(R("a"), "fresh")
    w.put("/x", [b"written during the delete"])
    pfs.delete_repo(R("a"))
    if recreate:
        pfs.create_repo(R("a"))
    with pytest.raises(RepoNotFound):
        w.close()
    if recreate:
        assert pfs.list_branches(R("a")) == [] and pfs.list_commits(R("a")) == []
    else:
        with pytest.raises(RepoNotFound):
            pfs.inspect_repo(R("a"))
        pfs.create_repo(R("a"))
        assert pfs.list_branches(R("a")) == [] and pfs.list_commits(R("a")) == []


def test_upload_into_commit_dropped_meanwhile(pfs):
    pfs.create_repo(R("a"))
    c = put_files(pfs, R("a"), "master", {"/keep": b"k"})
    ci = pfs.start_commit(B("a"))
    w = pfs.open_writer(R("a"), ci.commit.id)
    w.put("/x", [b"1"])
    # drop waits for nothing: it does not take the write lock
    pfs.drop_commit(R("a"), ci.commit.id)
    with pytest.raises(CommitNotFound, match="dropped during the upload"):
        w.close()
    assert pfs.inspect_branch(B("a")).head == c.commit.id
    assert tree_of(pfs, R("a"), "master") == {"/keep": b"k"}


# ---- a failure at any metadata write ----------------------------------------------------------
class FaultyMeta(MemoryMetadataStore):
    """Fails the n-th write (single put or batch) with StorageError, writing nothing."""

    def __init__(self):
        super().__init__()
        self.fail_at = None
        self.writes = 0

    def _tick(self):
        self.writes += 1
        if self.fail_at is not None and self.writes == self.fail_at:
            raise StorageError(f"injected failure at write {self.writes}")

    def put(self, key, value):
        self._tick()
        super().put(key, value)

    def _apply(self, writes, expects):
        self._tick()
        super()._apply(writes, expects)

    def batch(self, *, durable: bool = True):
        self._alive()
        return WriteBatch(self._apply)


def _operations():
    """Single core calls (each one must be atomic), run on the state _prepare makes."""
    def one_off(p):
        put_files(p, R("a"), "master", {"/new": b"n" * 1000, "/d/x": None, "/d/y": b"y2"})

    def start_commit(p):
        p.start_commit(B("a"))

    def write_to_open_commit(p):
        put_files(p, R("a"), "dev", {"/z": b"z", "/d": None})

    def finish_commit(p):
        p.finish_commit(R("a"), branch="dev")

    def branch_with_provenance(p):
        p.create_branch(B("b"), provenance=(B("a"),))

    def drop(p):
        p.drop_commit(R("a"), "master")

    def squash(p):
        p.squash_commit(R("a"), "master^")

    def delete_repo(p):
        p.delete_repo(R("a"), force=True)

    return [one_off, start_commit, write_to_open_commit, finish_commit, branch_with_provenance,
            drop, squash, delete_repo]


def _prepare(p):
    p.create_repo(R("a"))
    p.create_repo(R("b"))
    put_files(p, R("a"), "master", {"/d/x": b"x", "/d/y": b"y"})
    put_files(p, R("a"), "master", {"/e": b"e"})
    ci = p.start_commit(B("a", "dev"))
    put_files(p, R("a"), ci.commit.id, {"/in-dev": b"1"})


def _snapshot(p):
    out = {}
    for r in p.list_repos():
        out[r.repo] = {
            "branches": {b.branch.name: (b.head, b.provenance, b.subvenance) for b in p.list_branches(r.repo)},
            "commits": {c.commit.id: (c.parent, c.finished is not None, c.root, c.children)
                        for c in p.list_commits(r.repo)},
        }
        for name in out[r.repo]["branches"]:
            out[r.repo][name] = tree_of(p, r.repo, name)
    return out


@pytest.mark.parametrize("op", _operations(), ids=lambda f: f.__name__)
def test_failure_at_any_write_leaves_old_or_new_state(tmp_path, op):
    # a clean run: how many writes the operation makes, and the state after it
    meta = FaultyMeta()
    with closing(LocalChunkStore(tmp_path / "clean", durable=False)) as chunks:
        p = Pfs(meta, chunks)
        _prepare(p)
        old = _snapshot(p)
        start = meta.writes
        op(p)
        n_writes = meta.writes - start
        new = _snapshot(p)
        p.close()
    assert n_writes >= 1
    for k in range(1, n_writes + 1):
        meta = FaultyMeta()
        with closing(LocalChunkStore(tmp_path / f"run{k}", durable=False)) as chunks:
            p = Pfs(meta, chunks)
            _prepare(p)
            meta.fail_at = meta.writes + k
            try:
                op(p)
                failed = False
            except StorageError:
                failed = True
            meta.fail_at = None
            state = _snapshot(p)
            p.close()
        assert failed
        # ids are random per run: compare shapes, not ids
        assert _shape(state) in (_shape(old), _shape(new)), f"half-made state after failing write {k}"


def _shape(snap):
    """The snapshot with commit ids replaced by their position in creation order."""
    out = {}
    for repo, info in snap.items():
        commits = info["commits"]
        order = {cid: i for i, cid in enumerate(sorted(commits, key=lambda c: list(commits).index(c)))}
        out[repo.name] = (
            sorted((name, order.get(h, "?"), tuple(pv), tuple(sv)) for name, (h, pv, sv) in info["branches"].items()),
            sorted((order[c], order.get(par, par), fin, tuple(sorted(order.get(x, "?") for x in ch)))
                   for c, (par, fin, _root, ch) in commits.items()),
            sorted((k, tuple(sorted(v.items()))) for k, v in info.items() if k not in ("branches", "commits")),
        )
    return out


# ---- reopening ------------------------------------------------------------------------------
def test_reopen_rocks_sees_committed_state(tmp_path):
    def open_pfs():
        meta = RocksMetadataStore(tmp_path / "meta")
        chunks = LocalChunkStore(tmp_path / "chunks")
        return Pfs(meta, chunks), meta, chunks

    p, meta, chunks = open_pfs()
    p.create_project("proj")
    p.create_repo(R("a"), description="d")
    p.create_repo(R("b", "proj"))
    c1 = put_files(p, R("a"), "master", {"/x": b"1", "/d/y": b"2" * 1000})
    p.create_branch(B(R("b", "proj")), provenance=(B("a"),))
    c2 = put_files(p, R("a"), "master", {"/x": b"changed"})
    open_ci = p.start_commit(B("a", "dev"))
    put_files(p, R("a"), open_ci.commit.id, {"/in-open": b"o"})
    # a session that never closed (the process "died" mid-upload)
    w = p.open_writer(R("a"), "master")
    w.put("/never", [b"lost"])
    before = _snapshot(p)
    sets_before = [s for s, _ in p.list_commit_sets()]
    w.abort()
    p.close()
    meta.close()
    chunks.close()

    p, meta, chunks = open_pfs()
    try:
        assert _snapshot(p) == before
        assert [s for s, _ in p.list_commit_sets()] == sets_before
        assert sorted(x.name for x in p.list_projects()) == ["default", "proj"]
        assert p.inspect_repo(R("a")).description == "d"
        assert tree_of(p, R("a"), "master") == {"/x": b"changed", "/d/y": b"2" * 1000}
        assert tree_of(p, R("a"), c1.commit.id) == {"/x": b"1", "/d/y": b"2" * 1000}
        assert p.inspect_commit(R("b", "proj"), c2.commit.id).commit.id == c2.commit.id
        assert p.inspect_commit(R("a"), open_ci.commit.id).finished is None
        # the open commit is still writable, and creation order continues after restart
        put_files(p, R("a"), open_ci.commit.id, {"/more": b"m"})
        p.finish_commit(R("a"), open_ci.commit.id)
        c3 = put_files(p, R("a"), "master", {"/new": b"n"})
        assert p.list_commits(R("a"))[0].commit.id == c3.commit.id
        assert p.list_commit_sets()[0][0] == c3.commit.id
    finally:
        p.close()
        meta.close()
        chunks.close()


def test_reopen_on_either_backend(make_pfs):
    """A new Pfs over the same stores (RocksDB: closed and reopened) sees the same state,
    and the sequence of commit creation carries on."""
    p = make_pfs()
    p.create_repo(R("a"))
    p.create_repo(R("b"))
    p.create_branch(B("b"), provenance=(B("a"),))
    for i in range(3):
        put_files(p, R("a"), "master", {f"/f{i}": b"%d" % i})
    before = _snapshot(p)
    p = make_pfs.reopen(p)
    assert _snapshot(p) == before
    c = put_files(p, R("a"), "master", {"/after": b"x"})
    assert p.list_commits(R("a"))[0].commit.id == c.commit.id
    assert p.inspect_commit(R("b"), "master").commit.id == c.commit.id


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from pfs.core import Pfs
    from pfs.model import Repo
    from pfs.storage.local import LocalChunkStore
    from pfs.storage.rocks import RocksMetadataStore
    meta = RocksMetadataStore({meta!r})
    chunks = LocalChunkStore({chunks!r})
    p = Pfs(meta, chunks)
    repo = Repo("default", "crash")
    p.create_repo(repo)
    i = 0
    while True:
        with p.open_writer(repo, "master") as w:
            w.put("/counter", [str(i).encode()])
            w.put("/files/f%05d" % i, [bytes([i % 256]) * (1000 + i)])
            if i % 3 == 0:
                w.delete("/files/f%05d" % (i // 2))
        if i == 5:
            print("ready", flush=True)
        i += 1
""")


def _expected_after(n: int) -> dict:
    files = {}
    for i in range(n + 1):
        files["/files/f%05d" % i] = bytes([i % 256]) * (1000 + i)
        if i % 3 == 0:
            files.pop("/files/f%05d" % (i // 2), None)
    files["/counter"] = str(n).encode()
    return files


def test_sigkill_mid_write_leaves_a_consistent_history(tmp_path):
    meta_dir, chunk_dir = tmp_path / "meta", tmp_path / "chunks"
    src = _WRITER.format(root=str(ROOT), meta=str(meta_dir), chunks=str(chunk_dir))
    proc = subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    meta = RocksMetadataStore(meta_dir)
    chunks = LocalChunkStore(chunk_dir)
    p = Pfs(meta, chunks)
    try:
        repo = R("crash")
        head = tree_of(p, repo, "master")
        n = int(head["/counter"])
        assert n >= 5
        assert head == _expected_after(n)
        commits = p.list_commits(repo)
        assert len(commits) == n + 1
        for back, ci in enumerate(commits[:5]):
            assert tree_of(p, repo, ci.commit.id) == _expected_after(n - back)
        # and it keeps working
        put_files(p, repo, "master", {"/counter": b"after"})
    finally:
        p.close()
        meta.close()
        chunks.close()


# ---- concurrency -----------------------------------------------------------------------------
def test_concurrent_one_off_commits_serialize(pfs):
    pfs.create_repo(R("a"))
    errors = []

    def worker(t):
        try:
            for i in range(15):
                put_files(pfs, R("a"), "master", {f"/t{t}/f{i}": b"%d-%d" % (t, i)})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    files = tree_of(pfs, R("a"), "master")
    assert len(files) == 90
    commits = pfs.list_commits(R("a"))
    assert len(commits) == 90
    # a linear history: each commit's parent is the next older one
    for newer, older in zip(commits, commits[1:]):
        assert newer.parent == older.commit.id


def test_concurrent_sessions_on_one_open_commit(pfs):
    pfs.create_repo(R("a"))
    ci = pfs.start_commit(B("a"))
    errors = []

    def worker(t):
        try:
            for i in range(10):
                put_files(pfs, R("a"), ci.commit.id, {f"/t{t}/f{i}": b"x"})
                put_files(pfs, R("a"), ci.commit.id, {"/shared": b"%d" % t}, append=True)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    pfs.finish_commit(R("a"), ci.commit.id)
    files = tree_of(pfs, R("a"), "master")
    assert len(files) == 51
    # every append landed exactly once (in some order)
    assert sorted(files["/shared"]) == sorted(b"".join(b"%d" % t * 10 for t in range(5)))


def test_concurrent_branches_and_repos(pfs):
    errors = []

    def worker(t):
        try:
            pfs.create_repo(R(f"r{t}"))
            for i in range(5):
                put_files(pfs, R(f"r{t}"), f"b{i % 2}", {f"/f{i}": b"x"})
                pfs.create_branch(Branch(R(f"r{t}"), f"copy{i}"), head=(R(f"r{t}"), "", "b0"))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(pfs.list_repos()) == 6
    for t in range(6):
        assert len(pfs.list_commits(R(f"r{t}"))) == 5
        assert len(pfs.list_branches(R(f"r{t}"))) == 7
