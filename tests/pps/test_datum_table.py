"""A job's datum table (pps.store) is carried forward in O(changed): the next job's table is
its base's edited by the datums it removes and runs, sharing every other node."""
from __future__ import annotations

import pytest

from pfs.core.keys import pps_prefix
from pfs.storage.metadata import MemoryMetadataStore
from pps.store import D_FAILED, D_SKIPPED, D_SUCCESS, DatumRecord, JobRecord, PpsStore


def _job(i: int) -> JobRecord:
    return JobRecord("default", "p", f"job{i}", 1, "p", "master")


def _rec(i: int, state=D_SUCCESS) -> DatumRecord:
    return DatumRecord(f"{i:064x}", f"h{i}", state, [["in", "default", "in", "master", "c", f"/{i}", b"x", 1]],
                       [f"/{i}"])


def _nodes(meta) -> int:
    return sum(1 for _ in meta.scan(prefix=pps_prefix("dnode", "default", "p")))


@pytest.mark.parametrize("n", [2_000, 20_000])
def test_carrying_a_table_forward_writes_o_changed_nodes(n):
    meta = MemoryMetadataStore()
    store = PpsStore(meta)
    base = _job(0)
    assert store.start_datum_table(base, None, []) == 0
    store.put_job_datums(base, [_rec(i) for i in range(n)])
    store.put_job(base)
    before = _nodes(meta)
    # the next job: one datum gone, one re-run, one new; every other row is inherited
    j = _job(1)
    inherited = store.start_datum_table(j, base, [_rec(5).id, _rec(7).id])
    assert inherited == n - 2
    store.put_job_datums(j, [_rec(7), _rec(n + 1, D_FAILED)])
    store.put_job(j)
    written = _nodes(meta) - before
    assert written <= 3 * 8, written  # a few nodes per edited path, however big the table
    rows = store.summaries("default", "p", j.id)
    assert len(rows) == n
    assert _rec(5).id not in rows and rows[_rec(n + 1).id] == ("h%d" % (n + 1), D_FAILED, j.id)
    assert rows[_rec(3).id] == ("h3", D_SUCCESS, base.id)  # inherited verbatim
    # read back as the job sees it: inherited rows are skipped, its own runs keep their state
    assert store.get_datum("default", "p", j.id, _rec(3).id).state == D_SKIPPED
    assert store.get_datum("default", "p", j.id, _rec(7).id).state == D_SUCCESS
    assert store.get_datum("default", "p", j.id, _rec(5).id) is None
    # the base's own table is untouched
    assert len(store.summaries("default", "p", base.id)) == n


def test_deleting_the_pipeline_deletes_its_table_nodes():
    meta = MemoryMetadataStore()
    store = PpsStore(meta)
    j = _job(0)
    store.start_datum_table(j, None, [])
    store.put_job_datums(j, [_rec(i) for i in range(100)])
    store.put_job(j)
    assert _nodes(meta) > 0
    store.delete_pipeline("default", "p")
    assert _nodes(meta) == 0
