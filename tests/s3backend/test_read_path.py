"""The core's read path with chunks in S3: read-ahead is used, merges back-to-back chunks into
few requests, returns exactly the sequential read's bytes in chunk-sized pieces, stops
fetching when abandoned and leaves no thread behind once the store is closed. (Throughput: bench/s3_storage.py.)"""
from __future__ import annotations

import random
import threading

import pytest

from pfs.core import Pfs, readahead
from pfs.core.content import CDC_MAX
from pfs.model import Branch, Repo
from pfs.storage.local import LocalChunkStore
from pfs.storage.metadata import MemoryMetadataStore

pytestmark = pytest.mark.s3
MiB = 1 << 20


class CountingGets:
    def __init__(self, store):
        self.store, self.real = store, store.get_range
        self.calls: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, key, off, n):
        with self.lock:
            self.calls.append((key, off, n))
        return self.real(key, off, n)


@pytest.fixture
def s3pfs(seaweed_server, bucket):
    meta = MemoryMetadataStore()
    store = seaweed_server.store(bucket, "read")
    p = Pfs(meta, store)
    try:
        yield p
    finally:
        p.close()
        store.close()
        meta.close()


def test_every_store_reads_ahead(s3pfs, tmp_path):
    """S3 reads are requests; local packs are written around the page cache, so their reads
    go to the disk: both read ahead."""
    assert s3pfs.content.read_ahead
    local = LocalChunkStore(tmp_path / "c")
    meta = MemoryMetadataStore()
    try:
        assert Pfs(meta, local).content.read_ahead
    finally:
        local.close()
        meta.close()


def test_read_equals_sequential_with_few_requests(s3pfs):
    p = s3pfs
    r = Repo("default", "ra")
    p.create_repo(r)
    p.create_branch(Branch(r, "master"))
    rng = random.Random(3)
    old = rng.randbytes(3 * MiB)
    p.put_bytes(r, "master", "/old", old)
    # a file whose chunks are partly new (back to back in new packs) and partly deduplicated
    # from /old (elsewhere): the merged requests must not cross those boundaries
    data = rng.randbytes(9 * MiB) + old + rng.randbytes(5 * MiB + 12345)
    ci = p.put_bytes(r, "master", "/f", data)
    refs = p.tree(ci).entry("/f").refs
    assert len({ref.pack for ref in refs}) >= 2
    counting = CountingGets(p.chunks)
    p.chunks.get_range = counting
    try:
        whole = list(p.content.read(refs))
        assert b"".join(whole) == data
        assert max(len(x) for x in whole) <= CDC_MAX  # pieces stay chunk-sized
        assert [len(x) for x in whole] == [ref.length for ref in refs]
        n_requests = len(counting.calls)
        assert n_requests <= len(refs) / 3, (n_requests, len(refs))
        assert all(n <= readahead.MAX_SPAN or n <= CDC_MAX for _, _, n in counting.calls)
        rnd = random.Random(9)
        cases = [(0, 1), (len(data) - 1, None), (len(data), None), (9 * MiB - 5, 10), (1, len(data) - 2)]
        cases += [(a, rnd.randrange(len(data) - a + 1)) for a in (rnd.randrange(len(data)) for _ in range(12))]
        for off, n in cases:
            want = data[off:] if n is None else data[off:off + n]
            assert b"".join(p.content.read(refs, off, n)) == want, (off, n)
            assert b"".join(p.content.read_sequential(refs, off, n)) == want, (off, n)
        _, it = p.read_file(ci, "/f", 4 * MiB + 7)
        assert b"".join(it) == data[4 * MiB + 7:]
    finally:
        p.chunks.get_range = counting.real


def test_abandoned_read_stops_fetching_and_close_leaves_no_threads(s3pfs):
    """Read-ahead runs on the store's shared pool: an abandoned read fetches nothing more once
    closed, and closing the store leaves no read-ahead thread behind."""
    p = s3pfs
    r = Repo("default", "ra")
    p.create_repo(r)
    ci = p.put_bytes(r, "master", "/f", random.Random(4).randbytes(24 * MiB))
    counting = p.chunks.get_range = CountingGets(p.chunks)
    try:
        _, it = p.read_file(ci, "/f")
        next(it)
        next(it)  # past the first chunk: read-ahead is running
        it.close()
        with counting.lock:
            n = len(counting.calls)
        assert n < 24 * MiB // CDC_MAX + 2  # not the whole file
        threading.Event().wait(0.5)
        assert len(counting.calls) == n  # nothing of the closed read ran after close()
    finally:
        p.chunks.get_range = counting.real
    p.content.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("readahead")]


def test_spans_merge_only_back_to_back_chunks_of_one_pack():
    from pfs.core.content import ChunkRef, pack_key
    a, b = b"a" * 16, b"b" * 16
    refs = [ChunkRef(bytes([i]) * 32, p, off, n) for i, (p, off, n) in enumerate(
        [(a, 0, 10), (a, 10, 5), (a, 20, 5), (b, 25, 5), (b, 30, 5), (b, 35, 100)])]
    pieces = [(r, 0, r.length) for r in refs]
    got = [(k, off, [p[0] for p in parts]) for k, off, parts in readahead.spans(pieces, 50)]
    assert got == [(pack_key(a), 0, refs[0:2]), (pack_key(a), 20, refs[2:3]), (pack_key(b), 25, refs[3:5]),
                   (pack_key(b), 35, refs[5:6])]
    assert list(readahead.spans([], 50)) == []
