"""The collector never deletes anything reachable: randomized operations, collections at random
points (also in the middle of write sessions and inside a collection, between its phases),
and a full read-back of every live commit after each collection against a model."""
from __future__ import annotations

import random
import threading

import pytest

from pfs.core import keys
from pfs.core.gc import GarbageCollector, GcSettings
from pfs.errors import Conflict, FailedPrecondition
from tests.core.helpers import R, tree_of

KiB = 1024


class Model:
    """Expected content of every commit that exists: {(repo, commit id): {path: bytes}}."""

    def __init__(self):
        self.commits: dict = {}

    def check(self, p) -> int:
        n = 0
        for (repo, cid), files in self.commits.items():
            assert tree_of(p, repo, cid) == files, (repo, cid)
            n += len(files)
        return n


def _data(rng: random.Random, pool: list) -> bytes:
    if pool and rng.random() < 0.3:
        return rng.choice(pool)  # the same bytes again: deduplicated across files and repos
    n = rng.choice([0, 1, rng.randrange(1, 3000), rng.randrange(3000, 40_000), rng.randrange(40_000, 150_000)])
    b = rng.randbytes(n)
    pool.append(b)
    if len(pool) > 40:
        pool.pop(0)
    return b


def _session(p, rng, model, repo, pool, collector, commit_id=""):
    """One write session with random operations; maybe a collection in its middle, maybe
    abandoned. Returns the new commit (or None)."""
    head = p.list_commits(repo, number=1)
    base_files = dict(model.commits.get((repo, head[0].commit.id), {})) if head else {}
    files = dict(base_files)
    w = p.open_writer(repo, commit_id or "master")
    _BUSY.add(repo)
    abandon = rng.random() < 0.15
    try:
        for _ in range(rng.randrange(1, 8)):
            op = rng.random()
            if op < 0.55 or not files:
                path = f"/{rng.choice('abc')}/{rng.randrange(12)}"
                if path + "/" in {f[:len(path) + 1] for f in files}:
                    continue
                if any(path.startswith(f + "/") for f in files):
                    continue
                data = _data(rng, pool)
                w.put(path, [data[:7], data[7:]])
                files[path] = data
            elif op < 0.7:
                path = rng.choice(sorted(files))
                extra = _data(rng, pool)
                w.put(path, [extra], append=True)
                files[path] += extra
            elif op < 0.85:
                path = rng.choice(sorted(files))
                w.delete(path)
                del files[path]
            else:  # copy a file from some other live commit
                others = [(r, c) for (r, c), fs in model.commits.items() if fs]
                if not others:
                    continue
                r2, c2 = rng.choice(others)
                src = rng.choice(sorted(model.commits[(r2, c2)]))
                dst = f"/copied/{rng.randrange(5)}"
                if any(f.startswith(dst + "/") for f in files):
                    continue
                w.copy(r2, c2, "", src, dst)
                files[dst] = model.commits[(r2, c2)][src]
            if rng.random() < 0.2:
                w.content.flush()
                collector.run()  # in the middle of the session: its data is leased
                model.check(p)
        if abandon:
            raise _Abandon()
        w.close()
    except _Abandon:
        w.abort()
        return None
    except BaseException:
        w.abort()
        raise
    finally:
        _BUSY.discard(repo)
    ci = w.result
    model.commits[(repo, ci.commit.id)] = files
    return ci


class _Abandon(Exception):
    pass


# repos with a session open on this thread: a write racing the collector from inside that
# session's collection must pick another repo (the same one would wait for its own lock)
_BUSY: set = set()


def _step(p, rng, model, repos, pool, collector):
    op = rng.random()
    repo = rng.choice(repos)
    if op < 0.5:
        _session(p, rng, model, repo, pool, collector)
    elif op < 0.6:  # an open commit written by two sessions, then finished
        ci = p.start_commit(repo_branch(repo))
        files = dict(model.commits.get((repo, ci.parent), {})) if ci.parent else {}
        for _ in range(2):
            files = _session_on_open(p, rng, model, repo, ci.commit.id, files, pool, collector)
        p.finish_commit(repo, ci.commit.id)
        model.commits[(repo, ci.commit.id)] = files
    elif op < 0.72:  # squash or drop a commit
        commits = p.list_commits(repo)
        if len(commits) >= 2:
            victim = rng.choice(commits[1:])  # not the head: squash
            p.squash_commit(repo, victim.commit.id)
            model.commits.pop((repo, victim.commit.id), None)
        elif commits:
            p.drop_commit(repo, commits[0].commit.id)
            model.commits.pop((repo, commits[0].commit.id), None)
        _resync_heads(p, model, repo)
    elif op < 0.8:  # delete the repo and make it again
        p.delete_repo(repo, force=True)
        for k in [k for k in model.commits if k[0] == repo]:
            del model.commits[k]
        p.create_repo(repo)
    else:
        collector.run(orphans=rng.random() < 0.3)
        model.check(p)


def _session_on_open(p, rng, model, repo, cid, files, pool, collector):
    w = p.open_writer(repo, cid)
    _BUSY.add(repo)
    files = dict(files)
    try:
        for _ in range(rng.randrange(1, 5)):
            path = f"/o/{rng.randrange(6)}"
            data = _data(rng, pool)
            w.put(path, [data])
            files[path] = data
            if rng.random() < 0.3:
                w.content.flush()
                collector.run()
        w.close()
    except BaseException:
        w.abort()
        raise
    finally:
        _BUSY.discard(repo)
    return files


def repo_branch(repo):
    from pfs.model import Branch
    return Branch(repo, "master")


def _resync_heads(p, model, repo):
    """Squash/drop can create an empty AUTO commit as the new head: record what it holds."""
    for c in p.list_commits(repo):
        if (repo, c.commit.id) not in model.commits:
            model.commits[(repo, c.commit.id)] = tree_of(p, repo, c.commit.id) if c.root else {}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_and_collections_never_lose_reachable_data(make_pfs, seed):
    p = make_pfs(pack_target=48 * KiB, cdc=(2 * KiB, 4 * KiB, 8 * KiB))
    rng = random.Random(seed)
    collector = GarbageCollector(p, GcSettings(compact_min_dead=1024, orphans_every=3))
    repos = [R(f"r{i}") for i in range(3)]
    for r in repos:
        p.create_repo(r)
    model = Model()
    pool: list = []

    # a write that lands between the collector's phase 1 and phase 2 reuses chunks it just
    # claimed: it must store them again, never point at a pack being deleted
    def racing_write():
        free = [r for r in repos if r not in _BUSY]
        if rng.random() < 0.5 and pool and free:
            r = rng.choice(free)
            _session(p, random.Random(rng.random()), model, r, pool, _NoGc())
    collector.hooks["after_packs"] = racing_write

    for _ in range(70):
        _step(p, rng, model, repos, pool, collector)
    collector.run(orphans=True)
    files = model.check(p)
    assert files > 0
    # nothing live was lost; now drop everything: the store must empty completely
    for r in repos:
        p.delete_repo(r, force=True)
    collector.hooks.clear()
    collector.run(orphans=True)
    collector.run(orphans=True)
    assert list(p.chunks.iterate("packs/")) == []
    for prefix in (keys.NODE_PREFIX, keys.CHUNK_PREFIX, keys.PACK_RECORD_PREFIX, keys.LEASE_PREFIX):
        assert list(p.meta.scan(prefix=prefix)) == [], prefix


class _NoGc:
    def run(self, **kw):
        return None


def test_collections_running_alongside_concurrent_writers(make_pfs):
    """Writers and a collector looping at the same time; every acknowledged file reads back,
    and once the writers are gone everything unreferenced is gone too."""
    p = make_pfs(pack_target=48 * KiB, cdc=(2 * KiB, 4 * KiB, 8 * KiB))
    collector = GarbageCollector(p, GcSettings(compact_min_dead=1024, orphans_every=2))
    repos = [R(f"w{i}") for i in range(4)]
    for r in repos:
        p.create_repo(r)
    shared = [random.Random(99).randbytes(20 * KiB) for _ in range(5)]
    acked: dict = {}
    errors: list = []
    stop = threading.Event()

    def writer(i):
        rng = random.Random(i)
        repo = repos[i]
        n = 0
        while not stop.is_set() and n < 25:
            n += 1
            files = {f"/f{rng.randrange(8)}": (rng.choice(shared) if rng.random() < 0.3
                                               else rng.randbytes(rng.randrange(1, 60_000)))
                     for _ in range(rng.randrange(1, 4))}
            try:
                with p.open_writer(repo, "master") as w:
                    for path, data in files.items():
                        w.put(path, [data])
                acked[(repo, w.result.commit.id)] = None
                if rng.random() < 0.3:
                    cs = p.list_commits(repo)
                    if len(cs) > 2:
                        p.squash_commit(repo, cs[-1].commit.id)
                        acked.pop((repo, cs[-1].commit.id), None)
            except (Conflict, FailedPrecondition):
                continue
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                return

    def gc_loop():
        while not stop.is_set():
            try:
                collector.run()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                return

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(repos))]
    g = threading.Thread(target=gc_loop)
    g.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    g.join()
    assert not errors, errors
    # every acknowledged commit that still exists reads back (contents compared with a
    # fresh read through a second path: tree via walk + get; the index must be complete)
    alive = 0
    for (repo, cid) in list(acked):
        if p.get_commit(repo, cid) is None:
            continue
        tree_of(p, repo, cid)
        alive += 1
    assert alive > 10
    before = {(r, c): tree_of(p, r, c) for (r, c) in acked if p.get_commit(r, c) is not None}
    collector.run(orphans=True)
    after = {(r, c): tree_of(p, r, c) for (r, c) in before}
    assert after == before
