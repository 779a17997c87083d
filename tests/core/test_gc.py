"""Garbage collection in the core: what is reclaimed, what never is (pfs.core.gc)."""
from __future__ import annotations

import random

import pytest

from pfs.core import keys
from pfs.core.content import pack_key
from pfs.core.gc import GarbageCollector, GcSettings
from pfs.core.gc.records import DELETING, PackRecord
from pfs.errors import DataLoss
from pfs.model import Branch
from tests.core.helpers import B, R, put_files, read, tree_of

KiB, MiB = 1024, 1024 * 1024


def store_bytes(p) -> int:
    return sum(i.size for i in p.chunks.iterate_info("packs/"))


def store_objects(p) -> int:
    return sum(1 for _ in p.chunks.iterate("packs/"))


def count(p, prefix: bytes) -> int:
    return sum(1 for _ in p.meta.scan(prefix=prefix))


@pytest.fixture
def small(make_pfs):
    """A Pfs with small packs and chunks, so a few hundred KiB make many objects."""
    return make_pfs(pack_target=64 * KiB, cdc=(4 * KiB, 8 * KiB, 16 * KiB))


def gc(p, **kw) -> GarbageCollector:
    return GarbageCollector(p, GcSettings(**kw))


def test_delete_repo_reclaims_its_packs_nodes_and_chunk_entries(small):
    p = small
    rng = random.Random(1)
    keep = R("keep")
    p.create_repo(keep)
    put_files(p, keep, "master", {f"/k{i}": rng.randbytes(rng.randrange(1, 3000)) for i in range(50)})
    collector = gc(p)
    collector.run(orphans=True)
    before = (store_bytes(p), store_objects(p), count(p, keys.NODE_PREFIX), count(p, keys.CHUNK_PREFIX))
    kept = tree_of(p, keep, "master")

    doomed = R("doomed")
    p.create_repo(doomed)
    put_files(p, doomed, "master", {"/big": rng.randbytes(600 * KiB)})
    put_files(p, doomed, "master", {f"/d/{i}": rng.randbytes(rng.randrange(1, 2000)) for i in range(300)})
    put_files(p, doomed, "master", {"/big": rng.randbytes(100 * KiB), "/d/7": None})
    assert store_bytes(p) > before[0] + 700 * KiB
    p.delete_repo(doomed)
    rep = collector.run()
    after = (store_bytes(p), store_objects(p), count(p, keys.NODE_PREFIX), count(p, keys.CHUNK_PREFIX))
    assert after == before, (before, after, rep)
    assert rep.packs_deleted > 5 and rep.nodes_deleted > 5 and rep.chunk_entries_deleted > 100
    assert rep.pack_bytes_deleted > 700 * KiB
    assert tree_of(p, keep, "master") == kept
    assert collector.run().objects_deleted == 0, "a second run finds nothing more"


def test_squash_of_a_middle_commit_reclaims_exactly_its_unique_data(small):
    p = small
    rng = random.Random(2)
    r = R("sq")
    p.create_repo(r)
    base = {f"/f{i}": rng.randbytes(20 * KiB) for i in range(5)}
    c1 = put_files(p, r, "master", base)
    unique = {"/only-in-c2": rng.randbytes(150 * KiB), "/f1": rng.randbytes(90 * KiB)}
    c2 = put_files(p, r, "master", unique)
    c3 = put_files(p, r, "master", {"/only-in-c2": None, "/f1": rng.randbytes(30 * KiB), "/new": b"x" * 5000})
    collector = gc(p)
    assert collector.run().packs_deleted == 0, "every commit still refers to its data"
    views = {c.commit.id: tree_of(p, r, c.commit.id) for c in (c1, c3)}
    size = store_bytes(p)
    p.squash_commit(r, c2.commit.id)
    rep = collector.run()
    freed = size - store_bytes(p)
    want = sum(len(v) for v in unique.values())
    # packs are page-padded on the local store: at most a page per pack of difference
    assert want <= freed <= want + rep.packs_deleted * 4096, (want, freed, rep)
    assert rep.pack_bytes_deleted == freed
    for cid, files in views.items():
        assert tree_of(p, r, cid) == files


def test_drop_of_the_head_reclaims_its_data_and_keeps_the_parents(small):
    p = small
    rng = random.Random(3)
    r = R("drop")
    p.create_repo(r)
    c1 = put_files(p, r, "master", {"/a": rng.randbytes(40 * KiB)})
    before = store_bytes(p)
    c2 = put_files(p, r, "master", {"/b": rng.randbytes(200 * KiB), "/a": rng.randbytes(10 * KiB)})
    p.drop_commit(r, c2.commit.id)
    gc(p).run()
    assert store_bytes(p) == before
    assert tree_of(p, r, "master") == tree_of(p, r, c1.commit.id)
    assert set(tree_of(p, r, "master")) == {"/a"}


def test_an_aborted_session_is_reclaimed_by_the_next_run(small):
    p = small
    r = R("ab")
    p.create_repo(r)
    put_files(p, r, "master", {"/keep": b"k" * 10000})
    collector = gc(p)
    collector.run()
    before = store_bytes(p)
    with pytest.raises(RuntimeError):
        with p.open_writer(r, "master") as w:
            w.put("/lost", [random.Random(4).randbytes(300 * KiB)])
            w.content.flush()  # its packs are stored...
            assert store_bytes(p) > before
            raise RuntimeError("the client went away")  # ...but never published
    rep = collector.run()
    assert store_bytes(p) == before and rep.packs_deleted >= 4
    assert read(p, r, "master", "/keep") == b"k" * 10000


def test_an_open_session_is_protected_until_its_lease_expires(small):
    """A writer that died without releasing (pachd killed): its data stays until the lease
    runs out, then goes."""
    now = [1000.0]
    p = small
    p.clock = p.leases.clock = p.content.clock = lambda: now[0]
    r = R("crash")
    p.create_repo(r)
    collector = gc(p)
    collector.run()
    before = store_bytes(p)
    w = p.open_writer(r, "master")
    w.put("/half", [random.Random(5).randbytes(300 * KiB)])
    w.content.flush()
    p.leases.close()  # the writer "dies": nobody renews or releases its lease
    stored = store_bytes(p)
    assert stored > before
    now[0] += p.leases.ttl - 1
    assert collector.run().packs_deleted == 0 and store_bytes(p) == stored, "not before the lease expires"
    now[0] += 2
    rep = collector.run()
    assert rep.packs_deleted >= 4 and rep.leases_deleted == 1 and store_bytes(p) == before
    with pytest.raises(Exception, match="lease expired"):
        w.close()  # the writer, had it lived, could not publish what was collected
    assert p.list_commits(r) == [] or all(c.root is None for c in p.list_commits(r))


def test_dedup_never_reuses_a_pack_the_collector_claimed(small):
    p = small
    r = R("dd")
    p.create_repo(r)
    data = random.Random(6).randbytes(100 * KiB)
    c = put_files(p, r, "master", {"/x": data})
    p.drop_commit(r, c.commit.id)
    collector = gc(p)
    # stop the run between phase 1 (packs claimed, chunk entries gone) and phase 2
    def write_same_bytes():
        put_files(p, r, "master", {"/again": data})
    collector.hooks["after_packs"] = write_same_bytes
    collector.run()
    assert read(p, r, "master", "/again") == data
    assert collector.run().packs_deleted == 0
    assert read(p, r, "master", "/again") == data


def test_a_claimed_pack_left_by_a_crash_is_finished_by_the_next_run(small):
    p = small
    r = R("cr")
    p.create_repo(r)
    c = put_files(p, r, "master", {"/x": random.Random(7).randbytes(200 * KiB)})
    p.drop_commit(r, c.commit.id)
    collector = gc(p)

    class Crash(BaseException):
        pass

    def crash():
        raise Crash()
    collector.hooks["per_pack"] = crash  # phase 1 done for every dead pack, phase 2 not started
    with pytest.raises(Crash):
        collector.run()
    claimed = [k for k, v in p.meta.scan(prefix=keys.PACK_RECORD_PREFIX) if PackRecord.decode(v).state == DELETING]
    assert claimed and store_objects(p) >= len(claimed)
    collector.hooks.clear()
    rep = collector.run()
    assert rep.packs_deleted >= len(claimed)
    assert store_objects(p) == 0 and count(p, keys.PACK_RECORD_PREFIX) == 0


def test_compaction_rewrites_mostly_dead_packs_and_reads_still_work(small):
    p = small
    rng = random.Random(8)
    r = R("cp")
    p.create_repo(r)
    # many small files share packs; deleting most of them leaves packs mostly dead
    files = {f"/s/{i:03d}": rng.randbytes(rng.randrange(500, 1500)) for i in range(400)}
    put_files(p, r, "master", files)
    keep = {k: v for i, (k, v) in enumerate(sorted(files.items())) if i % 10 == 0}
    put_files(p, r, "master", {k: None for k in files if k not in keep})
    # squash the first commit away: the deleted files are then unreachable
    first = p.list_commits(r)[-1]
    p.squash_commit(r, first.commit.id)
    collector = gc(p, compact_min_dead=1024)
    before = store_bytes(p)
    rep = collector.run()
    assert rep.packs_compacted > 0 and rep.compacted_into > 0, rep
    assert store_bytes(p) < before * 0.3
    assert tree_of(p, r, "master") == keep
    # a second run finds nothing more to do, and the data is intact
    rep2 = collector.run()
    assert rep2.packs_compacted == 0 and rep2.packs_deleted == 0
    assert tree_of(p, r, "master") == keep


def test_a_missing_pack_is_data_loss_naming_the_file(small):
    p = small
    r = R("dl")
    p.create_repo(r)
    put_files(p, r, "master", {"/victim": random.Random(9).randbytes(50 * KiB)})
    for k in list(p.chunks.iterate("packs/")):
        p.chunks.delete(k)
    with pytest.raises(DataLoss, match="/victim"):
        read(p, r, "master", "/victim")


def test_a_corrupt_chunk_is_never_served(make_pfs):
    p = make_pfs()
    if not hasattr(p.chunks, "root"):
        pytest.skip("corrupts a file on the local store")
    r = R("corrupt")
    p.create_repo(r)
    data = random.Random(10).randbytes(50 * KiB)
    put_files(p, r, "master", {"/f": data})
    (key,) = list(p.chunks.iterate("packs/"))
    path = p.chunks.root / key
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataLoss, match="/f.*corrupt"):
        read(p, r, "master", "/f")


def test_abandoned_multipart_uploads_are_reclaimed(small):
    """An S3 multipart upload's parts keep their chunks alive; once the upload is older than
    `upload_max_age` (or its repo is gone) it is aborted and its data reclaimed."""
    from pfs.s3gateway.mpstore import MultipartStore
    from pfs.s3gateway.names import BucketRef
    p = small
    r = R("mp")
    p.create_repo(r)
    put_files(p, r, "master", {"/keep": b"k" * 5000})
    gc(p).run(orphans=True)
    before = store_bytes(p)
    mp = MultipartStore(p)
    b = BucketRef("master.mp", r, "master")
    up = mp.create(b, "big.bin")
    part = random.Random(8).randbytes(300 * KiB)
    mp.write_part(b, "big.bin", up.upload_id, 1, [part[:100], part[100:]])
    assert store_bytes(p) >= before + 300 * KiB
    rep = gc(p, upload_max_age=3600).run()
    assert rep.uploads_aborted == 0 and rep.packs_deleted == 0, "a young upload's parts are live"
    assert [x.size for x in mp.parts(up.upload_id)] == [300 * KiB]
    rep = gc(p, upload_max_age=0).run()
    assert rep.uploads_aborted == 1 and rep.parts_deleted == 1
    gc(p).run()  # the parts' chunks are unreferenced now
    assert store_bytes(p) == before
    assert read(p, r, "master", "/keep") == b"k" * 5000
