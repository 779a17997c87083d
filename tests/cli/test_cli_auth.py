"""`pachctl auth ...` against a real pachd: Pachyderm's outputs, the token kept as the
context's session_token, and what a user may do after `auth set`."""
from __future__ import annotations

import json
import re



def session_token(env) -> str:
    with open(env["PACH_CONFIG"]) as f:
        cfg = json.load(f)
    v2 = cfg["v2"]
    return v2["contexts"][v2["active_context"]].get("session_token", "")


def test_auth_lifecycle(pachctl, ok, env, pachd):
    r = pachctl("auth", "whoami")
    assert r.exit_code == 1 and "the auth service is not activated" in r.stderr

    out = ok("auth", "activate")
    lines = out.splitlines()
    assert lines[0].startswith("WARNING: DO NOT LOSE THE AUTH TOKEN BELOW.")
    assert lines[1] == "Pachyderm root token:"
    root = lines[2]
    assert re.fullmatch(r"[0-9a-f]{32}", root)
    assert session_token(env) == root
    assert ok("auth", "whoami") == 'You are "pach:root"\n'
    r = pachctl("auth", "activate")
    assert r.exit_code == 1 and "already activated" in r.stderr

    ok("create", "repo", "data")
    ok("put", "file", "data@master:/a", input="hello")
    bot = ok("auth", "get-robot-token", "alice", "-q").strip()
    assert re.fullmatch(r"[0-9a-f]{32}", bot)
    assert ok("auth", "get-robot-token", "bob").startswith("Token: ")
    # Pachyderm's default grants: every signed-in user creates projects, and repos in `default`
    assert ok("auth", "get", "cluster") == "allClusterUsers: [projectCreator]\npach:root: [clusterAdmin]\n"
    assert ok("auth", "get", "project", "default") == "allClusterUsers: [projectWriter]\n"
    assert ok("auth", "get", "repo", "data") == ""  # root needs no binding on what it creates

    ok("auth", "set", "repo", "data", "repoReader", "robot:alice")
    assert "robot:alice: [repoReader]" in ok("auth", "get", "repo", "data")
    out = ok("auth", "check", "repo", "data", "robot:alice")
    assert out.startswith("Roles: [repoReader]\nPermissions: [REPO_READ ")
    assert ok("auth", "roles-for-permission", "REPO_DELETE") == "clusterAdmin\nprojectOwner\nrepoOwner"
    r = pachctl("auth", "roles-for-permission", "NOPE")
    assert r.exit_code == 1 and 'unknown permission "NOPE"' in r.stderr

    # alice logs in with her token: she reads, cannot write, and her whoami says who she is
    ok("auth", "login", "--token", bot)
    assert session_token(env) == bot
    assert ok("auth", "whoami") == 'You are "robot:alice"\n'
    assert ok("get", "file", "data@master:/a") == "hello"
    r = pachctl("put", "file", "data@master:/b", input="x")
    assert r.exit_code == 1
    assert "robot:alice is not authorized to perform this operation - needs permissions [REPO_WRITE] on " \
           "REPO default/data" in r.stderr
    assert ok("auth", "check", "repo", "data").startswith("Roles: [repoReader]")
    r = pachctl("auth", "set", "repo", "data", "repoOwner", "robot:alice")
    assert r.exit_code == 1 and "REPO_MODIFY_BINDINGS" in r.stderr

    # root revokes her token: every call with it is refused from then on
    ok("auth", "login", "--token", root)
    ok("auth", "revoke", "--token", bot)
    ok("auth", "login", "--token", root)
    r = pachctl("auth", "login", "--token", bot)
    assert r.exit_code == 1 and "corrupted or has expired" in r.stderr
    assert session_token(env) == root  # a refused login keeps the old token

    # groups: membership is set through the API (Pachyderm's pachctl only reads it)
    import grpc
    from proto.auth_v2 import auth_pb2, auth_pb2_grpc
    with grpc.insecure_channel(f"localhost:{pachd.port}") as ch:
        auth_pb2_grpc.APIStub(ch).ModifyMembers(
            auth_pb2.ModifyMembersRequest(group="group:eng", add=["robot:bob", "user:carol"]),
            metadata=(("authn-token", root),))
    assert ok("auth", "get-groups", "robot:bob") == "group:eng\n"
    assert ok("auth", "get-groups") == "\n"  # root is in no group

    r = pachctl("auth", "deactivate", input="n\n")
    assert r.exit_code == 1 and "operation aborted" in r.stderr
    ok("auth", "deactivate", input="y\n")
    r = pachctl("auth", "whoami")
    assert r.exit_code == 1 and "not activated" in r.stderr
    ok("auth", "logout")
    assert session_token(env) == ""


def test_robot_token_ttl_shows_expiry(pachctl, ok, env):
    ok("auth", "activate")
    tok = ok("auth", "get-robot-token", "tmp", "--ttl", "1h", "-q").strip()
    ok("auth", "login", "--token", tok)
    out = ok("auth", "whoami").splitlines()
    assert out[0] == 'You are "robot:tmp"'
    assert out[1].startswith("session expires: ")
    r = pachctl("auth", "get-robot-token", "x", "--ttl", "soon")
    assert r.exit_code == 1 and 'invalid duration "soon"' in r.stderr
