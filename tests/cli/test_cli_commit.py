"""pachctl commit commands against a real pachd."""
import json
import re

from pachctl import pretty
from pachctl.pfs_pretty import dt
from proto.pfs_v2 import pfs_pb2 as pfs

AGO = r"(Less than a second|\d+ seconds?) ago"
ID = r"[0-9a-f]{32}"


def commits(client, repo="r"):
    req = pfs.ListCommitRequest(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name="default")))
    return list(client.pfs.ListCommit(req))


def test_start_put_finish_inspect(ok, pachctl, client):
    ok("create", "repo", "r")
    out = ok("start", "commit", "r@master", "-m", "first")
    assert re.fullmatch(ID + "\n", out)
    cid = out.strip()
    ok("put", "file", f"r@{cid}:/a.txt", input="hello")
    ok("put", "file", "r@master:/b.txt", input="world!")  # the open head takes the write
    insp = ok("inspect", "commit", f"r@{cid}")
    assert re.fullmatch(rf"Commit: r@{cid}\nDescription: first\nStarted: {AGO}\n(Size: \d+B\n)?", insp), insp
    assert ok("list", "commit", "r").splitlines()[1].split()[3] == "-"  # FINISHED of an open commit
    assert ok("finish", "commit", "r@master", "--description", "done") == ""
    ci = client.pfs.InspectCommit(pfs.InspectCommitRequest(commit=pfs.Commit(
        repo=pfs.Repo(name="r", project=pfs.Project(name="default")), id=cid)))
    ts = {f: pretty.timestamp(dt(ci, f)) for f in ("started", "finished")}
    assert ok("inspect", "commit", f"r@{cid}", "--full-timestamps") == (
        f"Commit: r@{cid}\nDescription: done\nStarted: {ts['started']}\nFinished: {ts['finished']}\nSize: 11B\n")
    assert ok("wait", "commit", "r@master", "--full-timestamps") == ok(
        "inspect", "commit", f"r@{cid}", "--full-timestamps")
    raw = json.loads(ok("inspect", "commit", "r@master", "--raw"))
    assert raw["commit"]["id"] == cid and raw["origin"] == {"kind": "USER"} and raw["description"] == "done"
    r = pachctl("finish", "commit", f"r@{cid}")
    assert r.exit_code == 1 and "finished" in r.stderr
    r = pachctl("inspect", "commit", cid)
    assert r.stderr == f'Use "list commit {cid}" to see commits with a given ID across different repos\n'


def test_list_commit_tables(ok, pachctl, client):
    ok("create", "repo", "r")
    ok("put", "file", "r@master:/a", input="a" * 2000)
    ok("put", "file", "r@master:/b", input="b" * 100)
    c2, c1 = commits(client)
    full = {c.commit.id: (pretty.timestamp(dt(c, "finished")), pretty.timestamp(dt(c, "started"))) for c in (c1, c2)}
    out = ok("list", "commit", "r", "--full-timestamps")
    assert out == (
        "PROJECT REPO COMMIT                           FINISHED             SIZE    ORIGIN CREATOR DESCRIPTION \n"
        f"default r    {c2.commit.id} {full[c2.commit.id][0]} 2.051KiB USER   -                   \n"
        f"default r    {c1.commit.id} {full[c1.commit.id][0]} 1.953KiB USER   -                   \n"
    ).replace("SIZE    ORIGIN", "SIZE     ORIGIN")
    legacy = ok("list", "commit", "r@master", "--legacy").splitlines()
    assert legacy[0] == ("REPO BRANCH COMMIT                           PARENT                           "
                         "STARTED" + legacy[0][legacy[0].index("STARTED") + 7:])
    assert re.fullmatch(r"REPO BRANCH COMMIT +PARENT +STARTED +DURATION +SIZE +", legacy[0])
    assert re.fullmatch(rf"r +master {c2.commit.id} {c1.commit.id} {AGO} +Less than a second +2\.051KiB +",
                        legacy[1]), legacy
    assert re.fullmatch(rf"r +master {c1.commit.id} <none> +{AGO} +Less than a second +1\.953KiB +", legacy[2])
    assert [line.split()[2] for line in ok("list", "commit", "r", "-n", "1").splitlines()[1:]] == [c2.commit.id]
    assert [line.split()[2] for line in ok("list", "commit", "r@master^").splitlines()[1:]] == [c1.commit.id]
    assert [line.split()[2] for line in ok("list", "commit", "r@master.1").splitlines()[1:]] == [c1.commit.id]
    raw = ok("list", "commits", "r", "--raw")
    assert raw.count('"commit": {') == 2 and "}{" in raw


def test_list_commit_flag_errors(pachctl, ok):
    ok("create", "repo", "r")
    cases = [
        (["list", "commit", "r", "--all", "--origin", "USER"], "cannot specify both --all and --origin"),
        (["list", "commit", "--origin", "AUTO"], "cannot specify --origin when listing all commits"),
        (["list", "commit", "--from", "abc"], "cannot specify --from when listing all commits"),
        (["list", "commit", "r", "--origin", "bogus"],
         "unknown commit origin type 'bogus', must be one of: USER, AUTO, FSCK"),
        (["list", "commit", "0" * 12 + "4" + "0" * 19, "--all"], "cannot specify --all when listing subcommits"),
        (["list", "commit", "a", "b"], "expected 0 to 1 arguments, got 2"),
        (["subscribe", "commit", "r@master", "--new", "--from", "x"], "--new and --from cannot be used together"),
    ]
    for args, msg in cases:
        r = pachctl(*args)
        assert r.exit_code == 1, args
        assert r.stderr.splitlines()[0] == msg, (args, r.stderr)


def test_commit_set_subcommits_squash_delete(ok, pachctl, client):
    ok("create", "repo", "r")
    for content in ("1", "2", "3"):
        ok("put", "file", "r@master:/f", input=content)
    c3, c2, c1 = commits(client)
    out = ok("list", "commit", c2.commit.id).splitlines()
    assert out[0].split() == ["PROJECT", "REPO", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "CREATOR", "DESCRIPTION"]
    assert [line.split()[2] for line in out[1:]] == [c2.commit.id]
    assert ok("squash", "commit", c2.commit.id) == ""
    assert [c.commit.id for c in commits(client)] == [c3.commit.id, c1.commit.id]
    assert ok("get", "file", f"r@{c3.commit.id}:/f") == "3"
    r = pachctl("delete", "commit", c1.commit.id)
    assert r.exit_code == 1 and r.stderr  # it has children
    assert ok("delete", "commit", c3.commit.id) == ""
    assert [c.commit.id for c in commits(client)] == [c1.commit.id]
    assert ok("get", "file", "r@master:/f") == "1"


def test_start_commit_with_parent(ok, client):
    ok("create", "repo", "r")
    ok("put", "file", "r@master:/f", input="1")
    ok("put", "file", "r@master:/f", input="2")
    first = commits(client)[-1].commit.id
    cid = ok("start", "commit", "r@side", "-p", first).strip()
    assert f"Parent: {first}\n" in ok("inspect", "commit", f"r@{cid}")
    ok("finish", "commit", "r@side")
    assert ok("get", "file", "r@side:/f") == "1"


def test_find_commits(ok, pachctl, client):
    ok("create", "repo", "r")
    ok("put", "file", "r@master:/a", input="1")
    ok("put", "file", "r@master:/b", input="1")
    ok("put", "file", "r@master:/a", input="2")
    c3, c2, c1 = commits(client)
    assert ok("find", "commit", "r@master:/a") == (
        f"FOUND IN COMMITS\n{c3.commit.id}\n{c1.commit.id}\n\nLAST SEARCHED COMMIT\n{c1.commit.id}\n")
    assert ok("find", "commits", "r@master:/a", "--limit", "1").startswith(f"FOUND IN COMMITS\n{c3.commit.id}\n")
    assert ok("find", "commit", "r@master:/zzz") == (
        f"FOUND IN COMMITS\nno commits found.\n\nLAST SEARCHED COMMIT\n{c1.commit.id}\n")
    lines = ok("find", "commit", "r@master:/b", "--json").splitlines()
    assert json.loads("".join(lines[: lines.index("}") + 1]))["found_commit"]["id"] == c2.commit.id


def test_list_commit_without_arguments_lists_commit_sets(ok):
    ok("create", "repo", "r")
    ok("put", "file", "r@master:/a", input="1")
    ok("put", "file", "r@master:/b", input="2")
    ids = [line.split()[2] for line in ok("list", "commit", "r").splitlines()[1:]]
    lines = ok("list", "commit").splitlines()
    assert re.fullmatch(r"ID +SUBCOMMITS PROGRESS CREATED +MODIFIED", lines[0])
    assert [line.split()[0] for line in lines[1:]] == ids
    for line in lines[1:]:
        assert re.fullmatch(r"[0-9a-f]{32} 1 +\u2587{8} .* ago +.* ago", line), line
    expanded = ok("list", "commit", "-x").splitlines()
    assert [line.split()[2] for line in expanded[1:]] == ids
    assert len(ok("list", "commit", "-n", "1").splitlines()) == 2
    raw = json.loads("[" + ok("list", "commit", "--raw").replace("}{", "},{") + "]")
    assert [r["commit_set"]["id"] for r in raw] == ids and all(len(r["commits"]) == 1 for r in raw)
    legacy = ok("list", "commit", "--legacy").splitlines()
    assert legacy[0].split() == ["REPO", "BRANCH", "COMMIT", "PARENT", "STARTED", "DURATION", "SIZE"]
    assert [line.split()[2] for line in legacy[1:]] == ids
