"""Page-aligned buffer pools (pfs.core.buffers): reuse only after every use ends; idle trimming."""
from __future__ import annotations

import ctypes
import time
from concurrent.futures import Future

from pfs.core.buffers import PAGE, BlockPool, page_down, page_up
from pfs.core.content import ContentStore
from pfs.storage.local import LocalChunkStore
from pfs.storage.metadata import MemoryMetadataStore


def _address(buf) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def _wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_page_rounding():
    assert (page_down(0), page_up(0), page_down(PAGE + 1), page_up(PAGE + 1)) == (0, 0, PAGE, 2 * PAGE)


def test_buffers_are_page_aligned_whole_pages_and_reused_only_when_every_use_ended():
    pool = BlockPool(3 * PAGE + 5, keep=2)
    a = pool.take()
    assert len(a) == 4 * PAGE and _address(a) % PAGE == 0
    pool.hold(a)  # a pack being filled points into it
    write = Future()
    pool.release_when_done([a], write)  # ... and its write is pending
    pool.release(a)  # the reader is done with it
    b = pool.take()
    assert b is not a, "reused while a write still pointed into it"
    write.set_result(None)  # the write ends: the pack's hold ends with it
    assert pool.idle_buffers() == 1 and pool.take() is a
    for buf in (a, b, pool.take()):
        pool.release(buf)
    assert pool.idle_buffers() == 2  # at most `keep` idle


def test_idle_buffers_are_let_go_once_the_pool_is_unused_for_a_while():
    pool = BlockPool(PAGE, keep=4, idle_seconds=0.05)
    a, b = pool.take(), pool.take()
    pool.release(a)
    time.sleep(0.3)
    assert pool.idle_buffers() == 1, "trimmed while a buffer was still in use"
    pool.release(b)
    assert _wait_for(lambda: pool.idle_buffers() == 0)
    c = pool.take()  # still usable afterwards
    pool.release(c)
    assert _wait_for(lambda: pool.idle_buffers() == 0)


def test_uploads_of_one_store_share_its_read_buffers(tmp_path):
    store = ContentStore(LocalChunkStore(tmp_path / "chunks", durable=False), MemoryMetadataStore())
    try:
        size = 18 * 1024 * 1024
        pool = store.writer().read_pool(size)
        assert store.writer().read_pool(size) is pool  # a second upload reuses the first one's buffers
        assert pool.idle_seconds == store.BUFFERS_IDLE_SECONDS and pool.populate
        packs = store.buffer_pool(size, populate=False)  # pack buffers: same size, not populated
        assert packs is not pool and store.buffer_pool(size, populate=False) is packs
    finally:
        store.close()
