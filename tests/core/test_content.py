"""Content storage: deduplication, small-file packing, content-defined chunking locality."""
from __future__ import annotations

import os
import random

from pfs.core import Pfs, keys
from pfs.core.buffers import page_up
from pfs.storage.local import LocalChunkStore
from pfs.storage.metadata import MemoryMetadataStore, WriteBatch
from tests.core.helpers import B, R, put_files, read


def packs(p) -> dict:
    """pack key -> stored size (any chunk store: S3 ones have no `root`)."""
    root = getattr(p.chunks, "root", None)
    if root is None:
        return {k: len(p.chunks.get(k)) for k in p.chunks.iterate("packs/")}
    return {k: os.path.getsize(root / k) for k in p.chunks.iterate("packs/")}


def chunk_index_size(p) -> int:
    return sum(1 for _ in p.meta.scan(prefix=b"K\x00"))


def test_identical_content_stored_once_across_files_commits_branches_repos(pfs):
    rng = random.Random(1)
    data = rng.randbytes(3 * 1024 * 1024)  # several chunks
    pfs.create_repo(R("a"))
    pfs.create_repo(R("b"))
    pfs.create_project("p")
    pfs.create_repo(R("c", "p"))
    put_files(pfs, R("a"), "master", {"/one": data})
    n_packs, n_chunks = len(packs(pfs)), chunk_index_size(pfs)
    stored = sum(packs(pfs).values())
    assert len(data) <= stored < len(data) + 4096
    put_files(pfs, R("a"), "master", {"/two": data})           # another file
    put_files(pfs, R("a"), "dev", {"/three": data})            # another branch
    put_files(pfs, R("b"), "master", {"/x/y/z": data})         # another repo
    put_files(pfs, R("c", "p"), "master", {"/in-p": data})      # another project
    assert len(packs(pfs)) == n_packs
    assert chunk_index_size(pfs) == n_chunks
    assert read(pfs, R("b"), "master", "/x/y/z") == data
    ci_a = pfs.commit_for_read(R("a"), "master")
    ci_b = pfs.commit_for_read(R("b"), "master")
    assert pfs.inspect_file(ci_a, "/one").hash == pfs.inspect_file(ci_b, "/x/y/z").hash


def test_small_files_are_packed(make_pfs):
    p = make_pfs()
    p.create_repo(R("tiny"))
    with p.open_writer(R("tiny"), "master") as w:
        for i in range(10_000):
            w.put(f"/d{i % 10}/f{i:05d}", [b"content %d" % i])
    assert len(packs(p)) <= 3
    assert chunk_index_size(p) == 10_000
    ci = p.commit_for_read(R("tiny"), "master")
    assert p.inspect_file(ci, "/").file_count == 10_000
    assert read(p, R("tiny"), "master", "/d7/f04567") == b"content 4567"
    assert [f.path for f in p.list_file(ci, "/")] == [f"/d{i}/" for i in range(10)]


def test_packs_split_at_target_size(make_pfs):
    p = make_pfs(pack_target=256 * 1024)
    p.create_repo(R("a"))
    rng = random.Random(2)
    with p.open_writer(R("a"), "master") as w:
        for i in range(40):
            w.put(f"/f{i}", [rng.randbytes(20_000)])
    sizes = packs(p)
    assert 3 <= len(sizes) <= 5
    # a local pack is padded with zeros to a whole page (written around the page cache)
    assert all(s <= page_up(256 * 1024 + 20_000) for s in sizes.values())


def test_insert_in_middle_of_big_file_stores_little(make_pfs):
    p = make_pfs()
    p.create_repo(R("big"))
    rng = random.Random(3)
    size = 64 * 1024 * 1024
    data = rng.randbytes(size)
    with p.open_writer(R("big"), "master") as w:
        for i in range(0, size, 4 << 20):
            w.add("/f", data[i:i + (4 << 20)])
    before = sum(packs(p).values())
    insert = rng.randbytes(1024 * 1024)
    mid = size // 2 + 12345
    edited = data[:mid] + insert + data[mid:]
    del data
    with p.open_writer(R("big"), "master") as w:
        w.put("/f", [edited[i:i + (1 << 20)] for i in range(0, len(edited), 1 << 20)])
    added = sum(packs(p).values()) - before
    assert added <= 4 * 1024 * 1024, added
    ci = p.commit_for_read(R("big"), "master")
    _, it = p.read_file(ci, "/f", mid - 10, 1024 * 1024 + 20)
    assert b"".join(it) == edited[mid - 10: mid + 1024 * 1024 + 10]
    assert p.inspect_file(ci, "/f").size == len(edited)


def test_chunk_boundaries_do_not_depend_on_message_split(pfs):
    """The same bytes sent in different pieces produce the same chunks (and hash)."""
    rng = random.Random(4)
    data = rng.randbytes(3 * 1024 * 1024 + 17)
    pfs.create_repo(R("a"))
    with pfs.open_writer(R("a"), "master") as w:
        w.put("/whole", [data])
        w.put("/pieces", [data[i:i + 7777] for i in range(0, len(data), 7777)])
    ci = pfs.commit_for_read(R("a"), "master")
    e1 = pfs.tree(ci).entry("/whole")
    e2 = pfs.tree(ci).entry("/pieces")
    assert [r.hash for r in e1.refs] == [r.hash for r in e2.refs]
    assert len(e1.refs) > 1
    assert e1.hash == e2.hash


def test_chunks_indexed_only_after_their_pack(pfs):
    """Every chunk-index entry points into a pack object that exists."""
    pfs.create_repo(R("a"))
    rng = random.Random(5)
    put_files(pfs, R("a"), "master", {f"/f{i}": rng.randbytes(100_000) for i in range(30)})
    existing = set(packs(pfs))
    from pfs.core.content import pack_key
    import msgpack
    for k, v in pfs.meta.scan(prefix=b"K\x00"):
        pack, off, length = msgpack.unpackb(v)
        assert pack_key(pack) in existing
    assert keys.chunk_key(b"\x00" * 32).startswith(b"K\x00")


def test_put_local_stores_what_a_streamed_put_stores(pfs, tmp_path, monkeypatch):
    """`put_local` (pachd reading a local file itself, in blocks) cuts the same chunks as a
    streamed put of the same bytes, across block boundaries, and deduplicates against it."""
    from pfs.core.content import ContentWriter
    monkeypatch.setattr(ContentWriter, "LOCAL_BLOCK", 1)  # the smallest block: 4 x CDC max
    rng = random.Random(6)
    half = rng.randbytes(9 * 1024 * 1024 + 5)
    data = half + rng.randbytes(1234) + half  # repeated content inside one file, too
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    pfs.create_repo(R("a"))
    with pfs.open_writer(R("a"), "master") as w:
        w.put_local("/local", str(src))
    stored = sum(packs(pfs).values())
    assert len(half) < stored < len(half) + 4 * 1024 * 1024  # the repeat was not stored twice
    with pfs.open_writer(R("a"), "master") as w:
        w.put("/streamed", [data[i:i + 999_999] for i in range(0, len(data), 999_999)])
    assert sum(packs(pfs).values()) == stored  # nothing new: identical chunks
    ci = pfs.commit_for_read(R("a"), "master")
    e1, e2 = pfs.tree(ci).entry("/local"), pfs.tree(ci).entry("/streamed")
    assert [r.hash for r in e1.refs] == [r.hash for r in e2.refs] and len(e1.refs) > 20
    assert e1.hash == e2.hash and e1.size == len(data)
    assert read(pfs, R("a"), "master", "/local") == data


def test_put_local_cuts_like_a_stream_where_segments_never_meet(pfs, tmp_path, monkeypatch):
    """Runs of zeros have no content-defined cut points, only forced ones every CDC max, so
    a segment's speculative cuts never meet the true ones there: the stitcher cuts on from
    the true position itself. The chunks still equal a streamed put's."""
    from pfs.core.content import ContentWriter
    monkeypatch.setattr(ContentWriter, "LOCAL_BLOCK", 1)  # the smallest segments: 4 x CDC max
    rng = random.Random(10)
    data = (rng.randbytes(5 * 1024 * 1024) + bytes(27 * 1024 * 1024 + 77) + rng.randbytes(9 * 1024 * 1024 + 1)
            + bytes(11 * 1024 * 1024))
    (tmp_path / "sparse").write_bytes(data)
    pfs.create_repo(R("a"))
    with pfs.open_writer(R("a"), "master") as w:
        w.put_local("/local", str(tmp_path / "sparse"))
        w.put("/streamed", [data[i:i + 999_999] for i in range(0, len(data), 999_999)])
    ci = pfs.commit_for_read(R("a"), "master")
    e1, e2 = pfs.tree(ci).entry("/local"), pfs.tree(ci).entry("/streamed")
    assert [(r.hash, r.length) for r in e1.refs] == [(r.hash, r.length) for r in e2.refs]
    assert read(pfs, R("a"), "master", "/local") == data


def test_put_local_small_and_empty_files(pfs, tmp_path):
    pfs.create_repo(R("a"))
    files = {f"/d/f{i:04d}": b"x%d" % i * (i % 7) for i in range(2000)}
    for name, body in files.items():
        (tmp_path / name[3:]).write_bytes(body)
    with pfs.open_writer(R("a"), "master") as w:
        for name in files:
            w.put_local(name, str(tmp_path / name[3:]))
        w.put_local("/d/f0001", str(tmp_path / "f0002"), append=True)
    files["/d/f0001"] += files["/d/f0002"]
    assert len(packs(pfs)) <= 2
    ci = pfs.commit_for_read(R("a"), "master")
    assert pfs.inspect_file(ci, "/d").file_count == 2000
    for name in ("/d/f0000", "/d/f0001", "/d/f0006", "/d/f1999"):
        assert read(pfs, R("a"), "master", name) == files[name]
    assert pfs.inspect_file(ci, "/d/f0000").size == 0


def test_put_local_reuses_read_buffers_only_after_their_packs_are_written(make_pfs, tmp_path, monkeypatch):
    """Packs that span read blocks, many blocks per file, several files: every byte read
    back equals the source, so no buffer was overwritten while a pack still pointed into it."""
    from pfs.core.content import ContentWriter
    monkeypatch.setattr(ContentWriter, "LOCAL_BLOCK", 1)
    p = make_pfs(pack_target=3 * 1024 * 1024 + 7)
    p.create_repo(R("a"))
    rng = random.Random(7)
    bodies = {f"/f{i}": rng.randbytes(41 * 1024 * 1024 + i * 977) for i in range(3)}
    for name, body in bodies.items():
        (tmp_path / name[1:]).write_bytes(body)
    with p.open_writer(R("a"), "master") as w:
        for name in bodies:
            w.put_local(name, str(tmp_path / name[1:]))
    assert len(packs(p)) >= 3 * 10  # ~3 MiB packs of 41 MiB files
    for name, body in bodies.items():
        assert read(p, R("a"), "master", name) == body


def test_put_local_packs_hold_no_stale_bytes_of_an_earlier_file(pfs, tmp_path, monkeypatch):
    """Packs of a local put are page-widened views of reused read buffers: every stored byte
    outside the file's own chunks is zero or the file's own bytes, never left over from the
    file read into the same buffers before."""
    from pfs.core.content import ContentWriter, pack_key
    monkeypatch.setattr(ContentWriter, "LOCAL_BLOCK", 1)
    rng = random.Random(8)
    first, second = rng.randbytes(30 * 1024 * 1024 + 123), rng.randbytes(29 * 1024 * 1024 + 4567)
    (tmp_path / "first").write_bytes(first)
    (tmp_path / "second").write_bytes(second)
    pfs.create_repo(R("a"))
    with pfs.open_writer(R("a"), "master") as w:  # one session: the second file reuses the buffers
        w.put_local("/first", str(tmp_path / "first"))
        w.put_local("/second", str(tmp_path / "second"))
    ci = pfs.commit_for_read(R("a"), "master")
    refs = pfs.tree(ci).entry("/second").refs
    by_pack: dict = {}
    for r in refs:
        by_pack.setdefault(r.pack, []).append((r.offset, r.offset + r.length))
    assert len(by_pack) >= 3
    gaps = 0
    for pack, spans in by_pack.items():
        body = pfs.chunks.get(pack_key(pack))
        at = 0
        for lo, hi in sorted(spans) + [(len(body), len(body))]:
            gaps += lo > at
            while at < lo:  # page by page: a part of a pack starts on a page boundary
                page_end = min(lo, (at // 4096 + 1) * 4096)
                own = body[at:page_end].strip(b"\0")  # zeros past the file's end, its own bytes otherwise
                assert not own or second.find(own) >= 0, "stale bytes in a pack"
                at = page_end
            at = max(at, hi)
    assert gaps >= 3  # the widening happened, so the check above checked something
    assert read(pfs, R("a"), "master", "/second") == second


class _RecordingLocalStore(LocalChunkStore):
    """The real local chunk store, noting how each pack was handed to it."""

    def __init__(self, root):
        super().__init__(root, durable=False)
        self.puts: list[tuple[str, bool, list[int]]] = []  # (key, direct, part lengths)

    def put_parts(self, key, parts, *, direct=False):
        self.puts.append((key, direct, [len(memoryview(x).cast("B")) for x in parts]))
        super().put_parts(key, parts, direct=direct)


def _pfs_recording_packs(tmp_path):
    store = _RecordingLocalStore(tmp_path / "chunks")
    return Pfs(MemoryMetadataStore(), store), store


def _assert_direct_whole_pages(store):
    """Every pack went to the store as whole pages with O_DIRECT asked for (the store's own
    tests check that such a write stays out of the page cache: tests/storage/test_local.py)."""
    packs_put = [x for x in store.puts if x[0].startswith("packs/")]
    assert packs_put
    for key, direct, lengths in packs_put:
        assert direct, key
        assert all(n % 4096 == 0 for n in lengths), (key, lengths)


def test_put_local_packs_are_written_around_the_page_cache(tmp_path):
    """A big local put's packs are whole pages written with O_DIRECT (where the file
    system has it): they do not fill the page cache with a second copy of the file."""
    p, store = _pfs_recording_packs(tmp_path)
    try:
        body = random.Random(9).randbytes(24 * 1024 * 1024)
        (tmp_path / "big").write_bytes(body)
        p.create_repo(R("a"))
        with p.open_writer(R("a"), "master") as w:
            w.put_local("/big", str(tmp_path / "big"))
        _assert_direct_whole_pages(store)
        assert len(store.puts) >= 3
        assert read(p, R("a"), "master", "/big") == body
    finally:
        p.close()


def test_streamed_packs_are_whole_pages_written_around_the_page_cache(tmp_path):
    """Fed bytes (a gRPC upload) go into pooled page-aligned pack buffers on the local store:
    whole pages, written with O_DIRECT, including a last pack of a few bytes."""
    p, store = _pfs_recording_packs(tmp_path)
    try:
        p.content.pack_target = 1024 * 1024
        body = random.Random(10).randbytes(9 * 1024 * 1024 + 333)
        p.create_repo(R("a"))
        with p.open_writer(R("a"), "master") as w:
            w.put("/big", [body[i:i + 100_000] for i in range(0, len(body), 100_000)])
            w.put("/small", [b"tail"])
        _assert_direct_whole_pages(store)
        assert len(store.puts) >= 4
        assert read(p, R("a"), "master", "/big") == body
        assert read(p, R("a"), "master", "/small") == b"tail"
    finally:
        p.close()


def test_streamed_packs_hold_no_stale_bytes_of_an_earlier_pack(make_pfs):
    """Pack buffers are reused within a session: past its last chunk a pack holds zeros,
    never bytes of the pack that used the buffer before."""
    from pfs.core.content import pack_key
    p = make_pfs(pack_target=1024 * 1024)
    if getattr(p.chunks, "root", None) is None:
        return
    rng = random.Random(11)
    p.create_repo(R("a"))
    with p.open_writer(R("a"), "master") as w:
        for i in range(12):  # full packs, then short ones in the same reused buffers
            w.put(f"/f{i}", [rng.randbytes(3 * 1024 * 1024 if i < 8 else 5000 + i)])
    ci = p.commit_for_read(R("a"), "master")
    ends: dict = {}
    for i in range(12):
        for r in p.tree(ci).entry(f"/f{i}").refs:
            ends[r.pack] = max(ends.get(r.pack, 0), r.offset + r.length)
    padded = 0
    for pack, end in ends.items():
        body = p.chunks.get(pack_key(pack))
        assert len(body) - end < 4096 and body[end:] == bytes(len(body) - end), "stale bytes past a pack's end"
        padded += len(body) > end
    assert padded >= 2  # the padding happened, so the check above checked something


def test_put_local_of_an_unreadable_file_is_invalid_argument(pfs, tmp_path):
    from pfs.errors import InvalidArgument
    import pytest
    pfs.create_repo(R("a"))
    c = put_files(pfs, R("a"), "master", {"/keep": b"k"})
    with pytest.raises(InvalidArgument, match="cannot read .*gone.bin: No such file"):
        with pfs.open_writer(R("a"), "master") as w:
            w.put("/fine", [b"written before the bad file"])
            w.put_local("/x", str(tmp_path / "gone.bin"))  # e.g. deleted after the caller looked
    assert pfs.inspect_branch(B(R("a"))).head == c.commit.id  # nothing of the failed write


class _RecordingMeta(MemoryMetadataStore):
    """Notes each batch's durability and whether it holds chunk-index keys, in order."""

    def __init__(self):
        super().__init__()
        self.batches: list[tuple[bool, bool]] = []  # (durable, has chunk keys)

    def batch(self, *, durable: bool = True):
        def apply(writes, expects):
            self.batches.append((durable, any(k.startswith(keys.chunk_key(b"")) for k in writes)))
            self._apply(writes, expects)
        self._alive()
        return WriteBatch(apply)


def test_chunk_index_is_written_deferred_and_made_durable_by_the_commit(tmp_path):
    meta = _RecordingMeta()
    p = Pfs(meta, LocalChunkStore(tmp_path / "chunks", durable=False))
    try:
        p.create_repo(R("a"))
        big = tmp_path / "big.bin"
        big.write_bytes(random.Random(5).randbytes(12 * 1024 * 1024))  # the local-ingest path
        with p.open_writer(R("a"), "master") as w:
            w.put("/small", [b"x" * 1000])
            w.put_local("/big", str(big))
        chunk_batches = [i for i, (_, has_chunks) in enumerate(meta.batches) if has_chunks]
        assert len(chunk_batches) >= 2, meta.batches
        assert all(not meta.batches[i][0] for i in chunk_batches), "chunk entries are written deferred"
        # the commit that refers to them is a durable write after the last of them
        assert any(durable for durable, _ in meta.batches[chunk_batches[-1] + 1:]), meta.batches
        assert read(p, R("a"), "master", "/big") == big.read_bytes()
    finally:
        p.close()
