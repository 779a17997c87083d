"""pachctl project / repo / branch commands against a real pachd."""
import json
import re

import yaml

from pachctl import pretty
from pachctl.pfs_pretty import dt
from proto.pfs_v2 import pfs_pb2 as pfs

AGO = r"(Less than a second|\d+ seconds?) ago"


def repo_msg(name, project="default"):
    return pfs.Repo(name=name, type="user", project=pfs.Project(name=project))


# ---- projects --------------------------------------------------------------------------------
def test_project_lifecycle(pachctl, ok, client):
    assert ok("create", "project", "proj1", "-d", "my project") == ""
    lines = ok("list", "project").splitlines()
    assert lines[0] == "ACTIVE PROJECT CREATED                DESCRIPTION" or re.fullmatch(
        r"ACTIVE PROJECT CREATED +DESCRIPTION", lines[0])
    assert re.fullmatch(rf"\*      default {AGO} +-", lines[1]), lines
    assert re.fullmatch(rf"       proj1   {AGO} +my project", lines[2]), lines
    out = ok("inspect", "project", "proj1")
    created = client.pfs.InspectProject(pfs.InspectProjectRequest(project=pfs.Project(name="proj1")))
    assert out == f"Name: proj1\nDescription: my project\nCreated at: {pretty.timestamp(dt(created, 'created_at'))}\n"
    assert ok("update", "project", "proj1", "-d", "changed") == ""
    assert "Description: changed\n" in ok("inspect", "project", "proj1")
    r = pachctl("create", "project", "proj1")
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", "project proj1 already exists\n")
    assert ok("delete", "project", "proj1") == ""
    r = pachctl("inspect", "project", "proj1")
    assert (r.exit_code, r.stderr) == (1, 'project "proj1" not found\n')


def test_list_project_raw(ok):
    ok("create", "project", "p2")
    out = ok("list", "projects", "--raw")
    objs = [json.loads("{" + part + "}") for part in out.strip()[1:-1].split("}{")]
    assert [o["project"]["name"] for o in objs] == ["default", "p2"]
    assert not out.endswith("\n")
    docs = list(yaml.safe_load_all(ok("list", "project", "--raw", "-o", "yaml")))
    assert [d["project"]["name"] for d in docs] == ["default", "p2"]


def test_delete_project_with_repos_asks(pachctl, ok):
    ok("create", "project", "busy")
    ok("create", "repo", "r1", "--project", "busy")
    r = pachctl("delete", "project", "busy", input="n\n")
    assert r.exit_code == 0
    assert r.stdout == "This will delete repo r1\n"
    assert r.stderr == "Are you sure you want to do this? (y/N): "
    assert "busy" in ok("list", "project")
    r = pachctl("delete", "project", "busy", input="y\n")
    assert r.exit_code == 0, r
    assert "busy" not in ok("list", "project")


def test_delete_current_project_warns(pachctl, ok):
    ok("create", "project", "cur")
    ok("config", "update", "context", "--project", "cur")
    r = pachctl("delete", "project", "cur")
    assert r.exit_code == 0
    assert r.stderr == ("warning: deleted current project cur; update context by running:\n"
                        "   pachctl config update context --project PROJECT\n")


# ---- repos -----------------------------------------------------------------------------------
def test_repo_lifecycle(pachctl, ok, client):
    assert ok("create", "repo", "images", "-d", "pictures") == ""
    assert ok("create", "repo", "edges") == ""
    out = ok("list", "repo", "--full-timestamps")
    ts = {ri.repo.name: pretty.timestamp(dt(ri, "created"))
          for ri in client.pfs.ListRepo(pfs.ListRepoRequest())}
    assert out == (
        "PROJECT NAME   CREATED              SIZE (MASTER) DESCRIPTION \n"
        f"default edges  {ts['edges']} 0B            " + " " * 12 + "\n"
        f"default images {ts['images']} 0B            pictures    \n")
    assert re.fullmatch(rf"Name: images\nDescription: pictures\nCreated: {AGO}\nSize of HEAD on master: 0B\n",
                        ok("inspect", "repo", "images"))
    assert ok("inspect", "repo", "images", "--full-timestamps") == (
        f"Name: images\nDescription: pictures\nCreated: {ts['images']}\nSize of HEAD on master: 0B\n")
    assert ok("update", "repo", "images", "-d", "photos") == ""
    assert "Description: photos\n" in ok("inspect", "repo", "images")
    r = pachctl("create", "repo", "images")
    assert (r.exit_code, r.stderr) == (1, "repo default/images already exists\n")
    r = pachctl("delete", "repo", "images")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "Repo deleted.\n")
    r = pachctl("inspect", "repo", "images")
    assert (r.exit_code, r.stderr) == (1, "repo default/images not found\n")


def test_repo_raw_and_yaml(ok):
    ok("create", "repo", "data")
    raw = json.loads(ok("inspect", "repo", "data", "--raw"))
    assert raw["repo"] == {"name": "data", "type": "user", "project": {"name": "default"}}
    assert "size_bytes_upper_bound" not in raw  # protojson omits zero values
    assert list(raw)[:2] == ["repo", "created"]
    doc = yaml.safe_load(ok("inspect", "repo", "data", "--raw", "-o", "yaml"))
    assert doc["repo"]["name"] == "data"


def test_repo_errors(pachctl):
    r = pachctl("create", "repo")
    assert r.exit_code == 1
    assert r.stderr.startswith("expected 1 arguments, got 0\n\n")
    assert "pachctl create repo" in r.stderr
    r = pachctl("create", "repo", "a", "b")
    assert r.stderr.startswith("expected 1 arguments, got 2\n\n")
    r = pachctl("create", "repo", "bad name!")
    assert r.exit_code == 1 and "only alphanumeric characters, underscores, and dashes are allowed" in r.stderr
    r = pachctl("delete", "repo")
    assert (r.exit_code, r.stderr) == (1, "either a repo name or the --all flag needs to be provided\n")
    r = pachctl("delete", "repo", "x", "--all")
    assert (r.exit_code, r.stderr) == (1, "cannot use the --all flag with an argument\n")
    r = pachctl("inspect", "repo", "x", "-o", "json")
    assert (r.exit_code, r.stderr) == (1, "cannot set --output (-o) without --raw\n")
    r = pachctl("inspect", "repo", "x", "--raw", "-o", "xml")
    assert (r.exit_code, r.stderr) == (1, 'unrecognized encoding: "xml" (must be "yaml" or "json")\n')
    assert "Traceback" not in r.stderr


def test_repo_projects_and_delete_all(ok, pachctl):
    ok("create", "project", "other")
    ok("create", "repo", "a")
    ok("create", "repo", "b", "--project", "other")
    assert [line.split()[:2] for line in ok("list", "repo").splitlines()[1:]] == [["default", "a"]]
    assert [line.split()[:2] for line in ok("list", "repo", "-A").splitlines()[1:]] == \
        [["other", "b"], ["default", "a"]]  # newest first, as pachd lists them
    assert ok("list", "repo", "--project", "other").splitlines()[1].split()[:2] == ["other", "b"]
    ok("delete", "repo", "--all")
    assert ok("list", "repo").splitlines()[1:] == []
    assert len(ok("list", "repo", "-A").splitlines()) == 2
    ok("delete", "repo", "--all", "-A")
    assert ok("list", "repo", "-A").splitlines()[1:] == []


# ---- branches --------------------------------------------------------------------------------
def test_branches(ok, pachctl, client):
    ok("create", "repo", "r")
    ok("put", "file", "r@master:/f", input="x")
    head = client.pfs.InspectBranch(pfs.InspectBranchRequest(
        branch=pfs.Branch(repo=repo_msg("r"), name="master"))).head.id
    assert ok("create", "branch", "r@dev", "--head", "master") == ""
    ok("create", "branch", "r@empty")
    ok("create", "branch", "r@trig", "--trigger", "master", "--trigger-size", "1MB", "--trigger-commits", "3")
    infos = {bi.branch.name: bi for bi in client.pfs.ListBranch(pfs.ListBranchRequest(repo=repo_msg("r")))}
    local = {n: pretty.local_timestamp(dt(bi, "created_at")) for n, bi in infos.items()}
    out = ok("list", "branch", "r")
    lines = out.splitlines()
    trig = "master on Size(1MB) or Commits(3)"
    assert lines[0] == (f"{'BRANCH':<7}{'HEAD':<33}{'TRIGGER':<{len(trig) + 1}}{'CREATOR':<8}"
                        f"{'CREATED':<{len(local['master']) + 1}}")
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["dev"].split() == ["dev", head, "-", "-", local["dev"]]
    # a branch made without a head gets a fresh empty commit (Pachyderm 2.x)
    assert rows["empty"].split() == ["empty", infos["empty"].head.id, "-", "-", local["empty"]]
    assert rows["trig"].split("  ")[0].startswith("trig")
    assert "master on Size(1MB) or Commits(3)" in rows["trig"]
    assert ok("inspect", "branch", "r@dev") == (
        f"Name: r@dev\nHead Commit: r@{head} \n\nCreated at: "
        f"{pretty.timestamp(dt(infos['dev'], 'created_at'))}\n")
    ok("create", "repo", "up")
    ok("create", "branch", "up@master")
    ok("create", "branch", "r@down", "-p", "up@master")
    assert "\nProvenance:  up@master  \n" in ok("inspect", "branch", "r@down")
    assert ok("delete", "branch", "r@empty") == ""
    r = pachctl("inspect", "branch", "r@empty")
    assert (r.exit_code, r.stderr) == (1, 'branch "empty" not found in repo default/r\n')
    r = pachctl("create", "branch", "r@x", "--trigger-size", "1MB")
    assert r.stderr == ("trigger condition specified without a branch to trigger on, "
                        "specify a branch with --trigger\n")
    r = pachctl("create", "branch", "r@x", "-p", "up@master", "-t", "master")
    assert r.stderr == "cannot use provenance and triggers on the same branch\n"
    r = pachctl("inspect", "branch", f"r@{head}")
    assert r.stderr == f'invalid branch "r@{head}": cannot specify a commit or ancestry\n'
    assert json.loads(ok("inspect", "branch", "r@dev", "--raw"))["head"]["id"] == head


def test_create_branch_at_commit_syntax(ok, client):
    ok("create", "repo", "r")
    ok("put", "file", "r@master:/f", input="1")
    first = ok("list", "commit", "r").splitlines()[1].split()[2]
    ok("put", "file", "r@master:/f", input="2")
    ok("create", "branch", f"r@old={first}")
    assert ok("get", "file", "r@old:/f") == "1"
    ok("create", "branch", "r@prev", "--head", "master^")
    assert ok("get", "file", "r@prev:/f") == "1"
