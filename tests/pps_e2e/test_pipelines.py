"""End to end through pachd: one pipeline (the pachyderm-sdk scenario), a chain of three,
the input algebra (union, cross, join, outer join, group) and provenance."""
from __future__ import annotations

import pytest
from pachyderm_sdk.api import pfs, pps

from proto.pps_v2 import pps_pb2
from tests.pps_e2e.conftest import pfs_in

CP = "cp -r /pfs/*/* /pfs/out/ 2>/dev/null; true"


# ---- the pachyderm-sdk scenario ------------------------------------------------------------
def test_sdk_creates_pipeline_waits_lists_datums_reads_output(pach):
    """Unmodified pachyderm-sdk 2.12.2: typed create_pipeline, inspect_job(wait=True),
    list_datum, pfs_file."""
    c = pach.client
    repo = pach.name("words")
    c.pfs.create_repo(repo=pfs.Repo(name=repo))
    with c.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as commit:
        commit.put_file_from_bytes(path="/a.txt", data=b"apple\n")
        commit.put_file_from_bytes(path="/b.txt", data=b"banana\n")
    name = pach.name("upper")
    c.pps.create_pipeline(
        pipeline=pps.Pipeline(name=name),
        transform=pps.Transform(cmd=["sh"], stdin=[
            f"for f in /pfs/{repo}/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"]),
        input=pps.Input(pfs=pps.PfsInput(repo=repo, glob="/*")),
        parallelism_spec=pps.ParallelismSpec(constant=1))
    pach.pipelines.append(name)
    info = c.pps.inspect_pipeline(pipeline=pps.Pipeline(name=name))
    assert info.pipeline.name == name and info.version == 1
    assert info.details.output_branch == "master" and info.details.datum_tries == 3
    jobs = list(c.pps.list_job(pipeline=pps.Pipeline(name=name)))
    assert len(jobs) == 1
    job = c.pps.inspect_job(job=jobs[0].job, wait=True)
    assert job.state == pps.JobState.JOB_SUCCESS, job.reason
    assert (job.data_total, job.data_processed, job.data_skipped, job.data_failed) == (2, 2, 0, 0)
    datums = list(c.pps.list_datum(job=job.job))
    assert len(datums) == 2 and {d.state for d in datums} == {pps.DatumState.SUCCESS}
    assert sorted(d.data[0].file.path for d in datums) == ["/a.txt", "/b.txt"]
    assert all(len(d.datum.id) == 64 for d in datums)
    out = pfs.File.from_uri(f"{name}@{job.job.id}:/b.txt")
    with c.pfs.pfs_file(file=out) as f:
        assert f.read() == b"BANANA\n"
    assert sorted(fi.file.path for fi in c.pfs.list_file(file=pfs.File.from_uri(f"{name}@master:/"))) == [
        "/a.txt", "/b.txt"]
    ci = c.pfs.wait_commit(pfs.Commit.from_uri(f"{name}@{job.job.id}"))
    assert ci.error == "" and ci.finished


# ---- a chain of three ----------------------------------------------------------------------
def test_chain_of_three_shares_one_commit_set(pach):
    src = pach.repo("chain")
    a = pach.pipeline("ca", pfs_in(src), sh=f"for f in /pfs/{src}/*; do cat $f $f > /pfs/out/$(basename $f); done")
    b = pach.pipeline("cb", pfs_in(a), sh=f"for f in /pfs/{a}/*; do wc -c < $f > /pfs/out/$(basename $f).n; done")
    c = pach.pipeline("cc", pfs_in(b, "/"), sh=f"cat /pfs/{b}/* | sort > /pfs/out/all")
    cid = pach.put(src, {"/x": "12345", "/y": "ab"})
    jobs = list(pach.pps.InspectJobSet(pps_pb2.InspectJobSetRequest(
        job_set=pps_pb2.JobSet(id=cid), wait=True), timeout=60))
    assert sorted(j.job.pipeline.name for j in jobs) == sorted([a, b, c])
    assert {j.job.id for j in jobs} == {cid}
    assert all(j.state == pps_pb2.JOB_SUCCESS for j in jobs), [(j.job.pipeline.name, j.reason) for j in jobs]
    assert pach.files(a, cid) == {"/x": b"1234512345", "/y": b"abab"}
    assert pach.files(b, cid) == {"/x.n": b"10\n", "/y.n": b"4\n"}
    assert pach.files(c, cid) == {"/all": b"10\n4\n"}
    # the commit set holds the input commit and every output commit of the run
    cs = list(pach.client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=cid), wait=True))
    user = sorted(ci.commit.repo.name for ci in cs if ci.commit.repo.type == "user")
    assert user == sorted([src, a, b, c])
    assert all(ci.commit.id == cid for ci in cs)
    assert all(ci.finished and not ci.error for ci in cs)
    # each output commit's direct provenance is its upstream commit of the same set
    for up, down in ((src, a), (a, b), (b, c)):
        ci = pach.commit(down, cid)
        prov = {(p.repo.name, p.repo.type, p.id) for p in ci.direct_provenance}
        assert (up, "user", cid) in prov
        assert (down, "spec", pach.spec_commit(down)) in prov


# ---- the input algebra ---------------------------------------------------------------------
def test_union(pach):
    r1 = pach.repo("u1", {"/a": "A", "/b": "B"})
    r2 = pach.repo("u2", {"/c": "C"})
    # each union datum holds one child only: record which /pfs dirs exist
    p = pach.pipeline("union", {"union": [pfs_in(r1), pfs_in(r2)]},
                      sh="for d in /pfs/*/; do n=$(basename $d); [ $n = out ] && continue; "
                         "for f in $d*; do echo $n > /pfs/out/$(basename $f); done; done")
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_total, j.data_processed) == (3, 3)
    assert pach.files(p, j.job.id) == {"/a": f"{r1}\n".encode(), "/b": f"{r1}\n".encode(),
                                       "/c": f"{r2}\n".encode()}


def test_cross(pach):
    left = pach.repo("xl", {"/1": "one", "/2": "two"})
    right = pach.repo("xr", {"/a": "A", "/b": "B", "/c": "C"})
    p = pach.pipeline("cross", {"cross": [pfs_in(left), pfs_in(right)]},
                      sh=f'l=$(ls /pfs/{left}); r=$(ls /pfs/{right}); '
                         f'echo "$(cat /pfs/{left}/$l)$(cat /pfs/{right}/$r)" > /pfs/out/$l$r')
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert (j.data_total, j.data_processed) == (6, 6)
    assert pach.files(p, j.job.id) == {f"/{n}{x}": f"{w}{x.upper()}\n".encode()
                                       for n, w in (("1", "one"), ("2", "two")) for x in "abc"}
    # every datum holds one file of each input
    for d in pach.datums(p, j.job.id):
        assert sorted(f.file.commit.repo.name for f in d.data) == sorted([left, right])


def test_join_on_capture_group_and_outer_join(pach):
    users = pach.repo("users", {"/u1.txt": "ann", "/u2.txt": "bob", "/u3.txt": "cid"})
    orders = pach.repo("orders", {"/o-1.csv": "book", "/o-2.csv": "pen", "/o-4.csv": "cup"})
    script = (f'u=$(cat /pfs/{users}/* 2>/dev/null); o=$(cat /pfs/{orders}/* 2>/dev/null); '
              f'echo "${{u:--}} ${{o:--}}" > /pfs/out/$PACH_DATUM_ID')
    inner = pach.pipeline("join", {"join": [
        pfs_in(users, "/u(*).txt", join_on="$1"), pfs_in(orders, "/o-(*).csv", join_on="$1")]}, sh=script)
    j = pach.first_job(inner)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert j.data_total == 2
    assert sorted(pach.files(inner, j.job.id).values()) == [b"ann book\n", b"bob pen\n"]
    # outer join on users: unmatched users still form a datum (without an order)
    outer = pach.pipeline("ojoin", {"join": [
        pfs_in(users, "/u(*).txt", join_on="$1", outer_join=True),
        pfs_in(orders, "/o-(*).csv", join_on="$1")]}, sh=script)
    j = pach.first_job(outer)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert sorted(pach.files(outer, j.job.id).values()) == [b"ann book\n", b"bob pen\n", b"cid -\n"]
    # the join key reaches user code
    keyed = pach.pipeline("jkey", {"join": [
        pfs_in(users, "/u(*).txt", join_on="$1", name="users"),
        pfs_in(orders, "/o-(*).csv", join_on="$1", name="orders")]},
        sh='echo "$PACH_DATUM_users_JOIN_ON $PACH_DATUM_orders_JOIN_ON" > /pfs/out/$(cat /pfs/users/*)')
    j = pach.first_job(keyed)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert pach.files(keyed, j.job.id) == {"/ann": b"1 1\n", "/bob": b"2 2\n"}


def test_group_by(pach):
    logs = pach.repo("glogs", {"/2024-01-a.log": "1", "/2024-01-b.log": "2", "/2024-02-a.log": "3"})
    meta = pach.repo("gmeta", {"/2024-01.txt": "jan", "/2024-03.txt": "mar"})
    p = pach.pipeline("group", {"group": [
        pfs_in(logs, "/(*-*)-*.log", group_by="$1", name="logs"),
        pfs_in(meta, "/(*).txt", group_by="$1", name="meta")]},
        sh='k=$PACH_DATUM_logs_GROUP_BY; [ -n "$k" ] || k=$PACH_DATUM_meta_GROUP_BY; '
           '(ls /pfs/logs /pfs/meta 2>/dev/null | grep -v : | grep . | sort | tr "\\n" " ") > /pfs/out/$k')
    j = pach.first_job(p)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    assert j.data_total == 3  # one datum per key, no cross product
    assert pach.files(p, j.job.id) == {
        "/2024-01": b"2024-01-a.log 2024-01-b.log 2024-01.txt ",
        "/2024-02": b"2024-02-a.log ",
        "/2024-03": b"2024-03.txt "}


# ---- provenance ------------------------------------------------------------------------------
def test_provenance_of_output_commit_and_commit_set(pach):
    src = pach.repo("provin", {"/f": "x"})
    p = pach.pipeline("prov", pfs_in(src), sh=CP)
    first = pach.first_job(p)
    assert first.state == pps_pb2.JOB_SUCCESS, first.reason
    cid = pach.put(src, {"/g": "y"})
    j = pach.job(p, cid)
    assert j.state == pps_pb2.JOB_SUCCESS, j.reason
    info = pach.client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{p}@{cid}"), wait=pfs.CommitState.FINISHED)
    prov = {(c.repo.name, c.repo.type, c.id) for c in info.direct_provenance}
    assert prov == {(src, "user", cid), (p, "spec", pach.spec_commit(p))}
    assert info.origin.kind == pfs.OriginKind.AUTO
    assert info.parent_commit.id == first.job.id
    cs = list(pach.client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=cid), wait=True))
    ids = {(c.commit.repo.name, c.commit.repo.type) for c in cs}
    assert (src, "user") in ids and (p, "user") in ids
    assert {c.commit.id for c in cs} == {cid}
    assert pach.files(p, cid) == {"/f": b"x", "/g": b"y"}


def test_first_job_joins_the_spec_commit_set(pach):
    """In Pachyderm, CreatePipeline writes the spec commit and opens the output commit in one
    transaction: the first job's id is the spec commit's id."""
    src = pach.repo("first", {"/a": "a"})
    p = pach.pipeline("first", pfs_in(src), sh=CP)
    j = pach.first_job(p)
    assert j.job.id == pach.spec_commit(p)
