"""LocalChunkStore.get_range_view: the bytes of get_range, mapped instead of copied, and still
readable after the object is deleted (the garbage collector may delete a pack mid-read)."""
from __future__ import annotations

import os

import pytest

from pfs.errors import ObjectNotFound
from pfs.storage.local import LocalChunkStore


def test_views_equal_ranges_and_outlive_a_delete(tmp_path):
    s = LocalChunkStore(tmp_path / "c", durable=False)
    data = os.urandom(3 * 1024 * 1024 + 5)
    s.put("packs/ab/x", data)
    for off, n in [(0, 10), (5000, 100000), (3 * 1024 * 1024, 100), (100, 10 ** 9), (len(data), 5), (4097, 0)]:
        assert bytes(s.get_range_view("packs/ab/x", off, n)) == s.get_range("packs/ab/x", off, n) == data[off:off + n]
    view = s.get_range_view("packs/ab/x", 12345, 1 << 20)
    s.delete("packs/ab/x")
    assert bytes(view) == data[12345:12345 + (1 << 20)]
    with pytest.raises(ObjectNotFound):
        s.get_range_view("packs/ab/x", 0, 1)
