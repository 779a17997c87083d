"""The garbage collector's compact live-chunk set (pfs.core.gc.hashset), and the mark's rare
path that relies on it: a live chunk missing from the chunk index keeps its hinted pack."""
from __future__ import annotations

import os
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfs.core import keys
from pfs.core.content import pack_key
from pfs.core.gc import GarbageCollector, GcSettings
from pfs.core.gc import hashset
from pfs.core.gc.hashset import HashPrefixSet
from tests.core.helpers import R, put_files, read

hashes = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(added=st.lists(hashes, max_size=300), others=st.lists(hashes, max_size=50), run=st.sampled_from([1, 3, 64]))
def test_every_added_hash_is_found_and_others_are_not(added, others, run):
    old = hashset.RUN
    hashset.RUN = run  # several sorted runs merged by freeze, duplicates across runs included
    try:
        s = HashPrefixSet()
        for h in added + added[: len(added) // 2]:
            s.add(h)
        s.freeze()
    finally:
        hashset.RUN = old
    assert all(h in s for h in added)
    assert len(s) == len({h[:8] for h in added})
    for h in others:
        assert (h in s) == (h[:8] in {a[:8] for a in added})


def test_a_lookup_before_freeze_is_refused():
    s = HashPrefixSet()
    s.add(os.urandom(32))
    with pytest.raises(RuntimeError, match="freeze"):
        _ = os.urandom(32) in s


def test_a_live_chunk_missing_from_the_chunk_index_keeps_its_hinted_pack(make_pfs):
    p = make_pfs(pack_target=16 * 1024, cdc=(1024, 2048, 4096))
    rng = random.Random(5)
    r = R("hint")
    p.create_repo(r)
    data = {f"/f{i}": rng.randbytes(3000) for i in range(20)}
    put_files(p, r, "master", data)
    by_pack: dict = {}
    for k, v in p.meta.scan(prefix=keys.CHUNK_PREFIX):
        by_pack.setdefault(msgpack.unpackb(v)[0], []).append(k)
    assert len(by_pack) > 2
    pack = sorted(by_pack)[1]
    for k in by_pack[pack]:  # the index forgets every chunk of one pack: only refs name it now
        p.meta.delete(k)
    packs_before = {i.key for i in p.chunks.iterate_info("packs/")}
    rep = GarbageCollector(p, GcSettings()).run(orphans=False)
    packs_after = {i.key for i in p.chunks.iterate_info("packs/")}
    assert pack_key(pack) in packs_after, rep
    assert packs_after == packs_before
    assert all(read(p, r, "master", k) == v for k, v in data.items())
