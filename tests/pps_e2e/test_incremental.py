"""Incremental processing end to end: skipping unchanged datums, deleted inputs, and updates
with and without --reprocess."""
from __future__ import annotations

import tempfile
from pathlib import Path

from pachyderm_sdk.api import pfs, pps

from proto.pps_v2 import pps_pb2
from tests.pps_e2e.conftest import pfs_in

# output depends on each datum's content and name (not on the job)
SUM = 'for f in /pfs/in/*; do n=$(basename $f); (echo $n; cat $f; echo) | md5sum | cut -c1-32 > /pfs/out/$n.sum; done'


def _states(pach, pipeline, job_id):
    out: dict = {}
    for d in pach.datums(pipeline, job_id):
        out[pps_pb2.DatumState.Name(d.state)] = out.get(pps_pb2.DatumState.Name(d.state), 0) + 1
    return out


def test_add_one_file_to_200_processes_one_datum(pach):
    src = pach.repo("inc")
    files = {f"/f{i:03d}": f"content {i}\n" * (i % 7 + 1) for i in range(200)}
    # the 200 files arrive through the unmodified SDK (put_files from a local directory)
    with tempfile.TemporaryDirectory() as d:
        for path, data in files.items():
            Path(d, path.lstrip("/")).write_text(data)
        with pach.client.pfs.commit(branch=pfs.Branch.from_uri(f"{src}@master")) as c:
            pach.client.pfs.put_files(commit=c, source=d, path="/")
    p = pach.pipeline("inc", pfs_in(src, name="in"), sh=SUM, parallelism=2)
    first = pach.first_job(p)
    assert first.state == pps_pb2.JOB_SUCCESS, first.reason
    assert (first.data_total, first.data_processed, first.data_skipped) == (200, 200, 0)

    cid = pach.put(src, {"/new": "brand new\n"})
    j = pach.job(p, cid)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_total, j.data_processed, j.data_skipped, j.data_failed) == (201, 1, 200, 0)
    assert _states(pach, p, cid) == {"SUCCESS": 1, "SKIPPED": 200}
    [new] = pach.datums(p, cid, states=[pps_pb2.SUCCESS])
    assert [f.file.path for f in new.data] == ["/new"]
    incremental = pach.files(p, cid)
    assert len(incremental) == 201

    # the same pipeline from scratch on the same 201 files gives the same output
    scratch = pach.pipeline("scratch", pfs_in(src, name="in"), sh=SUM, parallelism=2)
    s = pach.first_job(scratch)
    assert s.state == pps_pb2.JOB_SUCCESS, s.reason
    assert (s.data_total, s.data_processed, s.data_skipped) == (201, 201, 0)
    assert pach.files(scratch, s.job.id) == incremental

    # a changed file is reprocessed, a deleted one has its output removed
    cid = pach.put(src, {"/f000": "changed\n"}, delete=["/f001"])
    j = pach.job(p, cid)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_total, j.data_processed, j.data_skipped) == (200, 1, 199)
    out = pach.files(p, cid)
    assert "/f001.sum" not in out and len(out) == 200
    assert out["/f000.sum"] != incremental["/f000.sum"]
    assert {k: v for k, v in out.items() if k != "/f000.sum"} == {
        k: v for k, v in incremental.items() if k not in ("/f000.sum", "/f001.sum")}


def test_update_without_and_with_reprocess(pach):
    src = pach.repo("upd", {"/a": "1", "/b": "2", "/c": "3"})
    p = pach.pipeline("upd", pfs_in(src, name="in"), sh="for f in /pfs/in/*; do echo v1 > /pfs/out/$(basename $f); done")
    first = pach.first_job(p)
    assert first.state == pps_pb2.JOB_SUCCESS, first.reason
    salt = pach.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True).details.salt

    # update without reprocess: a new job, but unchanged datums are skipped (the salt is kept)
    pach.pipeline(p, pfs_in(src, name="in"), update=True,
                  sh="for f in /pfs/in/*; do echo v2 > /pfs/out/$(basename $f); done")
    info = pach.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
    assert info.version == 2 and info.details.salt == salt
    jid = info.spec_commit.id
    j = pach.job(p, jid)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert j.pipeline_version == 2
    assert (j.data_total, j.data_processed, j.data_skipped) == (3, 0, 3)
    assert pach.files(p, jid) == {"/a": b"v1\n", "/b": b"v1\n", "/c": b"v1\n"}
    # a new file is processed with the new code; the old outputs stay
    cid = pach.put(src, {"/d": "4"})
    j = pach.job(p, cid)
    assert (j.state, j.data_processed, j.data_skipped) == (pps_pb2.JOB_SUCCESS, 1, 3)
    assert pach.files(p, cid) == {"/a": b"v1\n", "/b": b"v1\n", "/c": b"v1\n", "/d": b"v2\n"}

    # update with reprocess: a new salt, every datum runs again
    pach.pipeline(p, pfs_in(src, name="in"), update=True, reprocess=True,
                  sh="for f in /pfs/in/*; do echo v3 > /pfs/out/$(basename $f); done")
    info = pach.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
    assert info.version == 3 and info.details.salt != salt
    j = pach.job(p, info.spec_commit.id)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_total, j.data_processed, j.data_skipped) == (4, 4, 0)
    assert pach.files(p, info.spec_commit.id) == {"/a": b"v3\n", "/b": b"v3\n", "/c": b"v3\n", "/d": b"v3\n"}
    # every version's jobs are listed with history
    assert len(pach.job_ids(p)) == 4


def test_update_that_changes_the_input_without_reprocess(pach):
    """An update that keeps the salt but changes the input (here the glob, then a cross)
    makes different datums on the same input commits: the job classifies them afresh
    instead of carrying the old datums over."""
    src = pach.repo("regl", {"/a": "1", "/b": "2"})
    sh = "for f in /pfs/in/*; do cat $f >> /pfs/out/all; done"
    p = pach.pipeline("regl", pfs_in(src, name="in"), sh="for f in /pfs/in/*; do cp $f /pfs/out/; done")
    assert pach.first_job(p).data_processed == 2
    pach.pipeline(p, pfs_in(src, glob="/", name="in"), update=True, sh=sh)  # one datum: the whole repo
    info = pach.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
    j = pach.job(p, info.spec_commit.id)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_total, j.data_processed, j.data_skipped) == (1, 1, 0)
    assert pach.files(p, info.spec_commit.id) == {"/all": b"12"}
    other = pach.repo("reglx", {"/x": "x"})
    pach.pipeline(p, {"cross": [pfs_in(src, glob="/", name="in"), pfs_in(other, name="x")]}, update=True, sh=sh)
    info = pach.client.pps.inspect_pipeline(pipeline=pps.Pipeline(name=p), details=True)
    j = pach.job(p, info.spec_commit.id)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_total, j.data_processed, j.data_skipped) == (1, 1, 0)
    assert pach.files(p, info.spec_commit.id) == {"/all": b"12"}


def test_a_reprocessed_datum_replaces_all_its_old_outputs(pach):
    """A datum's outputs from the base job are removed before it runs again, even when the
    new run writes different paths; other datums' outputs are inherited untouched."""
    src = pach.repo("repl", {"/a": "one", "/b": "two"})
    p = pach.pipeline("repl", pfs_in(src, name="in"),
                      sh='f=$(ls /pfs/in); mkdir -p /pfs/out/$f; cp /pfs/in/$f /pfs/out/$f/$(cat /pfs/in/$f)')
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert pach.files(p, j.job.id) == {"/a/one": b"one", "/b/two": b"two"}
    cid = pach.put(src, {"/a": "uno"})
    j = pach.job(p, cid)
    assert (j.state, j.data_processed, j.data_skipped) == (pps_pb2.JOB_SUCCESS, 1, 1)
    assert pach.files(p, cid) == {"/a/uno": b"uno", "/b/two": b"two"}


def test_reprocess_spec_every_job(pach):
    src = pach.repo("every", {"/a": "a", "/b": "b"})
    p = pach.pipeline("every", pfs_in(src, name="in"), sh="cp /pfs/in/* /pfs/out/", reprocess_spec="every_job")
    assert pach.first_job(p).data_processed == 2
    cid = pach.put(src, {"/c": "c"})
    j = pach.job(p, cid)
    assert (j.state, j.data_processed, j.data_skipped) == (pps_pb2.JOB_SUCCESS, 3, 0)
    assert pach.files(p, cid) == {"/a": b"a", "/b": b"b", "/c": b"c"}


# each datum's output names both its inputs and depends on both contents
CROSS = ('for f in /pfs/in/*; do for c in /pfs/cfg/*; do n=$(basename $f)-$(basename $c); '
         '(echo $n; cat $f $c) | md5sum | cut -c1-32 > /pfs/out/$n; done; done')


def test_cross_and_union_inputs_are_planned_from_the_diff(pach):
    """cross(in /*, cfg /*) and union(in /*, extra /*): one added file is one datum per
    combination holding it; a changed cfg file reprocesses exactly its datums; a deleted file
    removes its datums' outputs; the output always equals a from-scratch run."""
    src = pach.repo("cin", {f"/f{i}": f"{i}\n" for i in range(20)})
    cfg = pach.repo("ccfg", {"/a": "A\n", "/b": "B\n"})
    cross = {"cross": [pfs_in(src, name="in"), pfs_in(cfg, name="cfg")]}
    p = pach.pipeline("crossinc", cross, sh=CROSS, parallelism=2)
    first = pach.first_job(p)
    assert (first.state, first.data_total, first.data_processed) == (pps_pb2.JOB_SUCCESS, 40, 40), first.reason

    def check(cid, total, processed):
        j = pach.job(p, cid)
        assert j.state == pps_pb2.JOB_SUCCESS, j.reason
        assert (j.data_total, j.data_processed, j.data_skipped) == (total, processed, total - processed)
        assert _states(pach, p, cid) == {k: v for k, v in (("SUCCESS", processed), ("SKIPPED", total - processed)) if v}
        return pach.files(p, cid)

    out = check(pach.put(src, {"/new": "n\n"}), 42, 2)  # new x {a, b}
    assert {"/new-a", "/new-b"} <= set(out) and len(out) == 42
    out2 = check(pach.put(cfg, {"/b": "B2\n"}), 42, 21)  # every in-file x the changed b
    assert out2["/f3-b"] != out["/f3-b"] and out2["/f3-a"] == out["/f3-a"]
    out3 = check(pach.put(src, {}, delete=["/f0"]), 40, 0)  # only removals
    assert "/f0-a" not in out3 and "/f0-b" not in out3 and len(out3) == 40
    scratch = pach.pipeline("crossscratch", cross, sh=CROSS, parallelism=2)
    s = pach.first_job(scratch)
    assert (s.state, s.data_processed) == (pps_pb2.JOB_SUCCESS, 40), s.reason
    assert pach.files(scratch, s.job.id) == out3

    extra = pach.repo("cextra", {"/x": "x\n"})
    union = {"union": [pfs_in(src, name="in"), pfs_in(extra, name="in")]}
    u = pach.pipeline("unioninc", union, sh=SUM, parallelism=2)
    assert pach.first_job(u).data_processed == 21
    cid = pach.put(extra, {"/y": "y\n"})
    j = pach.job(u, cid)
    assert (j.state, j.data_total, j.data_processed, j.data_skipped) == (pps_pb2.JOB_SUCCESS, 22, 1, 21), j.reason
    assert "/y.sum" in pach.files(u, cid)
