"""ListObjects v1 / ListObjectsV2 / ListObjectVersions: order, prefixes, delimiters, paging."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from pfs.model import Branch, Repo

B = "master.big"


@pytest.fixture
def big(pfs):
    """2,500 keys in 50 directories plus top-level files, written in one commit."""
    r = Repo("default", "big")
    pfs.create_repo(r)
    pfs.create_branch(Branch(r, "master"))
    keys = []
    with pfs.open_writer(r, "master") as w:
        for d in range(50):
            for f in range(49):
                k = f"d{d:02d}/f{f:03d}.txt"
                w.put("/" + k, [k.encode()])
                keys.append(k)
        for t in range(50):
            k = f"top{t:02d}"
            w.put("/" + k, [b"t"])
            keys.append(k)
    return sorted(keys)


def test_v2_pagination_2500_keys(s3, big):
    assert len(big) == 2500
    got, pages, token = [], 0, None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=B, MaxKeys=300, **kw)
        pages += 1
        got += [o["Key"] for o in r.get("Contents", [])]
        assert r["KeyCount"] == len(r.get("Contents", []))
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert got == big and pages == 9
    paginated = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=B) for o in p["Contents"]]
    assert paginated == big
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=B)["Contents"]] == big[:1000]


def test_v1_pagination_and_markers(s3, big):
    got = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=B, PaginationConfig={"PageSize": 333})
           for o in p["Contents"]]
    assert got == big
    r = s3.list_objects(Bucket=B, Marker="d49/f047.txt", MaxKeys=3)
    assert [o["Key"] for o in r["Contents"]] == ["d49/f048.txt", "top00", "top01"] and r["IsTruncated"]
    assert r["NextMarker"] == "top01"
    r = s3.list_objects_v2(Bucket=B, StartAfter="top47")
    assert [o["Key"] for o in r["Contents"]] == ["top48", "top49"] and not r["IsTruncated"]


def test_delimiter_and_prefix(s3, big):
    r = s3.list_objects_v2(Bucket=B, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == [f"d{d:02d}/" for d in range(50)]
    assert [o["Key"] for o in r["Contents"]] == [f"top{t:02d}" for t in range(50)]
    assert r["KeyCount"] == 100
    # paging over common prefixes never repeats a prefix
    seen_p, seen_k = [], []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=B, Delimiter="/",
                                                             PaginationConfig={"PageSize": 7}):
        seen_p += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        seen_k += [o["Key"] for o in page.get("Contents", [])]
    assert seen_p == [f"d{d:02d}/" for d in range(50)] and len(seen_k) == 50
    for page in s3.get_paginator("list_objects").paginate(Bucket=B, Delimiter="/", PaginationConfig={"PageSize": 7}):
        assert page["IsTruncated"] == ("NextMarker" in page)
    r = s3.list_objects_v2(Bucket=B, Prefix="d07/", Delimiter="/")
    assert len(r["Contents"]) == 49 and "CommonPrefixes" not in r
    r = s3.list_objects_v2(Bucket=B, Prefix="d0", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == [f"d0{d}/" for d in range(10)]
    r = s3.list_objects_v2(Bucket=B, Prefix="d07/f04")
    assert [o["Key"] for o in r["Contents"]] == [f"d07/f04{i}.txt" for i in range(9)]
    assert "Contents" not in s3.list_objects_v2(Bucket=B, Prefix="zzz")
    r = s3.list_objects_v2(Bucket=B, Delimiter="f0")  # any delimiter, not only "/"
    assert [p["Prefix"] for p in r["CommonPrefixes"]][:2] == ["d00/f0", "d01/f0"]


def test_empty_and_zero(s3, pfs):
    pfs.create_repo(Repo("default", "empty"))
    pfs.create_branch(Branch(Repo("default", "empty"), "master"))
    r = s3.list_objects_v2(Bucket="master.empty")
    assert r["KeyCount"] == 0 and not r["IsTruncated"] and "Contents" not in r
    assert "Contents" not in s3.list_objects(Bucket="master.empty")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sets(st.text(alphabet="ab/c", min_size=1, max_size=6), min_size=0, max_size=25),
       prefix=st.text(alphabet="ab/", max_size=2), delim=st.sampled_from(["", "/", "b"]),
       page=st.integers(min_value=1, max_value=5))
def test_listing_matches_a_model_of_s3(s3, pfs, keys, prefix, delim, page):
    """Against a straightforward model of S3 listing semantics (over valid pfs key sets)."""
    keys = {k for k in keys if not k.startswith("/") and not k.endswith("/") and "//" not in k}
    keys = {k for k in keys if not any(o.startswith(k + "/") for o in keys)}  # no file/dir clash
    r = Repo("default", "model")
    try:
        pfs.delete_repo(r, force=True)
    except Exception:
        pass
    pfs.create_repo(r)
    pfs.create_branch(Branch(r, "master"))
    if keys:
        with pfs.open_writer(r, "master") as w:
            for k in keys:
                w.put("/" + k, [b"."])
    expect: list = []
    for k in sorted(keys):
        if not k.startswith(prefix):
            continue
        i = k.find(delim, len(prefix)) if delim else -1
        item = k[: i + len(delim)] if i >= 0 else k
        if item not in expect:
            expect.append(item)
    got = []
    kw = {"Prefix": prefix, "PaginationConfig": {"PageSize": page}}
    if delim:
        kw["Delimiter"] = delim
    for p in s3.get_paginator("list_objects_v2").paginate(Bucket="master.model", **kw):
        items = [o["Key"] for o in p.get("Contents", [])] + [c["Prefix"] for c in p.get("CommonPrefixes", [])]
        got += sorted(items)
    assert got == expect


def test_versions_paging(s3, pfs):
    r = Repo("default", "hist")
    pfs.create_repo(r)
    pfs.create_branch(Branch(r, "master"))
    ids = []
    for i in range(4):
        with pfs.open_writer(r, "master") as w:
            w.put("/k", [b"%d" % i])
            if i == 1:
                w.put("/other", [b"o"])
            if i == 3:
                w.delete("/other")
        ids.append(w.result.commit.id)
    out = s3.list_object_versions(Bucket="master.hist")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in out["Versions"]] == [
        ("k", ids[3], True), ("k", ids[2], False), ("k", ids[1], False), ("k", ids[0], False),
        ("other", ids[1], False)]
    assert [(d["Key"], d["VersionId"], d["IsLatest"]) for d in out["DeleteMarkers"]] == [("other", ids[3], True)]
    pages = list(s3.get_paginator("list_object_versions").paginate(Bucket="master.hist",
                                                                     PaginationConfig={"PageSize": 2}))
    flat = [(v["Key"], v["VersionId"]) for p in pages for v in p.get("Versions", []) + p.get("DeleteMarkers", [])]
    assert sorted(flat) == sorted([("k", i) for i in ids] + [("other", ids[1]), ("other", ids[3])])
    assert len(pages) == 3
