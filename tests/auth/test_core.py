"""The auth core without a server: roles, evaluation order, tokens, persistence."""
from __future__ import annotations

import json

import pytest

from auth.core import Auth
from auth.model import (BadToken, CLUSTER_RESOURCE, InvalidArgument, NotActivated, NotAuthorized,
                        NotSignedIn, project_resource, repo_resource)
from auth.roles import ROLES, roles_for_permission
from auth.state import hash_token


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def auth(tmp_path, clock):
    return Auth(tmp_path / "auth.json", clock=clock)


def test_roles_match_pachyderm():
    assert set(ROLES["repoWriter"].permissions) > set(ROLES["repoReader"].permissions)
    assert set(ROLES["repoOwner"].permissions) - set(ROLES["repoWriter"].permissions) == {
        "REPO_MODIFY_BINDINGS", "REPO_DELETE"}
    assert set(ROLES["projectOwner"].permissions) >= set(ROLES["repoOwner"].permissions)
    assert {r.name for r in roles_for_permission("PROJECT_CREATE_REPO")} == {
        "projectWriter", "projectOwner", "clusterAdmin"}
    assert {r.name for r in roles_for_permission("REPO_READ")} == {
        "repoReader", "repoWriter", "repoOwner", "projectOwner", "clusterAdmin"}
    assert set(ROLES["clusterAdmin"].permissions) == set().union(*(r.permissions for r in ROLES.values()))


def test_not_activated_until_activate(auth):
    with pytest.raises(NotActivated):
        auth.robot_token("bot")
    root = auth.activate()
    assert auth.authenticate(root) == "pach:root"
    assert auth.has("pach:root", "CLUSTER_DELETE_ALL", CLUSTER_RESOURCE)


def test_tokens_are_stored_only_as_hashes(auth, tmp_path):
    root = auth.activate()
    bot = auth.robot_token("ci")
    raw = (tmp_path / "auth.json").read_text()
    assert root not in raw and bot not in raw
    assert hash_token(root) in raw and hash_token(bot) in raw
    assert (tmp_path / "auth.json").stat().st_mode & 0o777 == 0o600


def test_bad_tokens(auth, clock):
    auth.activate()
    with pytest.raises(NotSignedIn):
        auth.authenticate("")
    with pytest.raises(BadToken):
        auth.authenticate("f" * 32)
    short = auth.robot_token("short", ttl=10)
    assert auth.authenticate(short) == "robot:short"
    clock.t += 10
    with pytest.raises(BadToken):
        auth.authenticate(short)
    t = auth.robot_token("r")
    assert auth.revoke(t) == 1
    with pytest.raises(BadToken):
        auth.authenticate(t)


def test_evaluation_cluster_project_repo(auth):
    auth.activate()
    repo = repo_resource("p", "r")
    assert not auth.has("user:alice", "REPO_READ", repo)
    auth.modify_binding(repo, "alice", ["repoReader"])
    assert auth.has("user:alice", "REPO_READ", repo)
    assert not auth.has("user:alice", "REPO_WRITE", repo)
    assert not auth.has("user:alice", "REPO_READ", repo_resource("p", "other"))
    auth.modify_binding(project_resource("p"), "user:alice", ["projectOwner"])
    assert auth.has("user:alice", "REPO_DELETE", repo_resource("p", "other"))
    assert not auth.has("user:alice", "REPO_READ", repo_resource("q", "r"))
    auth.modify_binding(CLUSTER_RESOURCE, "allClusterUsers", ["repoReader"])
    assert auth.has("robot:anyone", "REPO_READ", repo_resource("q", "r"))
    perms, roles = auth.permissions("user:alice", repo)
    assert roles == ["repoReader", "projectOwner"] and "REPO_DELETE" in perms
    with pytest.raises(NotAuthorized) as ei:
        auth.check("user:bob", repo_resource("q", "r"), "REPO_WRITE")
    assert "user:bob is not authorized to perform this operation - needs permissions [REPO_WRITE] on REPO q/r" \
        in str(ei.value)


def test_binding_validation(auth):
    auth.activate()
    with pytest.raises(InvalidArgument, match="unknown role"):
        auth.modify_binding(repo_resource("p", "r"), "alice", ["repoReeder"])
    with pytest.raises(InvalidArgument, match="cannot be bound to a repo"):
        auth.modify_binding(repo_resource("p", "r"), "alice", ["clusterAdmin"])
    with pytest.raises(InvalidArgument, match="invalid principal"):
        auth.modify_binding(repo_resource("p", "r"), "github:alice", ["repoReader"])
    with pytest.raises(InvalidArgument, match="pach:root"):
        auth.modify_binding(CLUSTER_RESOURCE, "pach:root", [])


def test_state_survives_restart_and_deactivate_clears(auth, tmp_path, clock):
    root = auth.activate()
    auth.modify_binding(repo_resource("default", "r"), "alice", ["repoWriter"])
    again = Auth(tmp_path / "auth.json", clock=clock)
    assert again.authenticate(root) == "pach:root"
    assert again.has("user:alice", "REPO_WRITE", repo_resource("default", "r"))
    again.deactivate()
    assert not Auth(tmp_path / "auth.json", clock=clock).active


def test_failed_save_leaves_old_state(auth, tmp_path, monkeypatch):
    auth.activate()
    before = json.loads((tmp_path / "auth.json").read_text())

    def boom(state):
        raise OSError("disk full")
    monkeypatch.setattr(auth.file, "save", boom)
    with pytest.raises(OSError):
        auth.modify_binding(repo_resource("default", "r"), "alice", ["repoWriter"])
    assert not auth.has("user:alice", "REPO_WRITE", repo_resource("default", "r"))  # memory == disk
    assert json.loads((tmp_path / "auth.json").read_text()) == before


def test_pipeline_bindings_and_token(auth):
    auth.activate()
    tok = auth.pipeline_token("default", "edges")
    assert auth.authenticate(tok) == "pipeline:default/edges"
    assert auth.pipeline_token("default", "edges") == tok
    auth.setup_pipeline("default", "edges", [("default", "images")])
    assert auth.has("pipeline:default/edges", "REPO_READ", repo_resource("default", "images"))
    assert not auth.has("pipeline:default/edges", "REPO_WRITE", repo_resource("default", "images"))
    assert auth.has("pipeline:default/edges", "REPO_WRITE", repo_resource("default", "edges"))
    auth.remove_pipeline("default", "edges")
    with pytest.raises(BadToken):
        auth.authenticate(tok)
    assert not auth.has("pipeline:default/edges", "REPO_READ", repo_resource("default", "images"))


def test_a_restarted_pachd_replaces_pipeline_tokens(auth, tmp_path, clock):
    auth.activate()
    old = auth.pipeline_token("default", "p")
    again = Auth(tmp_path / "auth.json", clock=clock)  # pachd restarted: its workers start afresh
    new = again.pipeline_token("default", "p")
    assert new != old and again.authenticate(new) == "pipeline:default/p"
    with pytest.raises(BadToken):
        again.authenticate(old)
    assert sum(t.subject == "pipeline:default/p" for t in again.state.tokens.values()) == 1


def test_groups_grant_their_roles_and_survive_a_restart(tmp_path, clock):
    auth = Auth(tmp_path / "auth.json", clock=clock)
    auth.activate()
    res = repo_resource("default", "shared")
    auth.modify_binding(res, "group:eng", ["repoWriter"])
    assert not auth.has("user:bob", "REPO_WRITE", res)
    auth.modify_members("eng", ["user:bob"], [])  # a bare group name means group:eng
    assert auth.has("user:bob", "REPO_WRITE", res) and auth.groups_of("user:bob") == ["group:eng"]
    again = Auth(tmp_path / "auth.json", clock=clock)  # groups are in auth.json
    assert again.has("user:bob", "REPO_WRITE", res)
    with pytest.raises(InvalidArgument):
        auth.modify_members("eng", ["bob"], [])  # members need a prefix, as Pachyderm's
    auth.modify_members("eng", [], ["user:bob"])
    assert not auth.has("user:bob", "REPO_WRITE", res) and auth.users() == []


def test_state_file_without_groups_still_loads(tmp_path, clock):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"version": 1, "active": True, "tokens": {},
                                "bindings": {"CLUSTER:": {"pach:root": ["clusterAdmin"]}}}))
    auth = Auth(path, clock=clock)
    assert auth.users() == [] and auth.has("pach:root", "REPO_READ", repo_resource("default", "x"))


def test_spec_repo_readable_by_everyone_else_the_output_repos(auth):
    auth.activate()
    spec = repo_resource("default", "edges", "spec")
    assert spec.type == "SPEC_REPO" and repo_resource("default", "edges", "meta").type == "REPO"
    assert auth.has("user:anyone", "REPO_READ", spec)
    assert not auth.has("user:anyone", "REPO_WRITE", spec)
    auth.modify_binding(repo_resource("default", "edges"), "user:anyone", ["repoWriter"])
    assert auth.has("user:anyone", "REPO_WRITE", spec)


def test_activation_grants_pachyderms_defaults(auth):
    auth.activate(default_project_exists=False)
    assert auth.roles_of("user:x", CLUSTER_RESOURCE) == ["projectCreator"]
    assert auth.roles_of("user:x", project_resource("default")) == ["projectCreator"]
    auth.deactivate()
    auth.activate()
    assert auth.roles_of("user:x", project_resource("default")) == ["projectCreator", "projectWriter"]
    assert auth.reported("user:x", project_resource("default")) == (["PROJECT_LIST_REPO", "PROJECT_CREATE_REPO"],
                                                                    ["projectWriter"])
