"""pachctl config commands, and pachyderm-sdk reading the config they write."""
import json

import pytest


def read(env):
    with open(env["PACH_CONFIG"]) as f:
        return json.load(f)


def test_active_context_and_list(ok, pachctl, env):
    assert ok("config", "get", "active-context") == "default\n"
    assert ok("config", "list", "context") == "ACTIVE NAME\n*      default\n"
    ok("config", "set", "context", "remote", input='{"pachd_address": "pach.example.com:650"}')
    assert ok("config", "list", "contexts") == "ACTIVE NAME\n*      default\n       remote\n"
    assert ok("config", "get", "context", "remote") == '{\n  "pachd_address": "grpc://pach.example.com:650"\n}\n'
    ok("config", "set", "active-context", "remote")
    assert ok("config", "get", "active-context") == "remote\n"
    assert read(env)["v2"]["active_context"] == "remote"
    r = pachctl("config", "set", "active-context", "ghost")
    assert (r.exit_code, r.stderr) == (1, "context does not exist: ghost\n")
    r = pachctl("config", "delete", "context", "remote")
    assert (r.exit_code, r.stderr) == (1, "cannot delete an active context\n")
    ok("config", "set", "active-context", "default")
    assert ok("config", "delete", "context", "remote") == ""
    assert "remote" not in read(env)["v2"]["contexts"]


def test_set_context_exists_and_bad_json(pachctl, ok):
    ok("config", "set", "context", "c1", input="{}")
    r = pachctl("config", "set", "context", "c1", input="{}")
    assert r.stderr == "context 'c1' already exists, use `--overwrite` if you wish to replace it\n"
    assert ok("config", "set", "context", "c1", "--overwrite", input='{"project": "p"}') == ""
    r = pachctl("config", "set", "context", "c2", input="not json")
    assert r.exit_code == 1 and r.stderr.startswith("could not parse context JSON")
    r = pachctl("config", "set", "context", "c3", input='{"bogus": 1}')
    assert (r.exit_code, r.stderr) == (1, 'malformed context: unknown field "bogus"\n')


def test_update_context(ok, pachctl, env):
    out = ok("config", "update", "context", "--pachd-address", "10.0.0.1:30651", "--project", "proj")
    assert out == 'editing the currently active context "default"\n'
    assert read(env)["v2"]["contexts"]["default"] == {"pachd_address": "grpc://10.0.0.1:30651", "project": "proj"}
    ok("config", "update", "context", "default", "--project", "")
    assert read(env)["v2"]["contexts"]["default"] == {"pachd_address": "grpc://10.0.0.1:30651"}
    r = pachctl("config", "update", "context", "ghost", "--project", "x")
    assert (r.exit_code, r.stderr) == (1, "context does not exist: ghost\n")
    assert ok("config", "get", "metrics") == "true\n"
    ok("config", "set", "metrics", "false")
    assert ok("config", "get", "metrics") == "false\n"


def test_project_flag_defaults_to_context(ok, pachctl):
    ok("create", "project", "ctxproj")
    ok("config", "update", "context", "--project", "ctxproj")
    ok("create", "repo", "inproj")
    assert ok("list", "repo").splitlines()[1].split()[:2] == ["ctxproj", "inproj"]
    assert ok("list", "repo", "--project", "default").splitlines()[1:] == []
    active = {line[1:].split()[0]: line.startswith("*")
              for line in ok("list", "project").splitlines()[1:]}
    assert active == {"ctxproj": True, "default": False}
    r = pachctl("inspect", "repo", "inproj", "--project", "default")
    assert r.stderr == "repo default/inproj not found\n"


def test_pachyderm_sdk_reads_our_config(ok, env, pachd):
    sdk = pytest.importorskip("pachyderm_sdk")
    from pachyderm_sdk.api import pfs as sdk_pfs

    ok("config", "set", "context", "local", input=json.dumps({"pachd_address": f"localhost:{pachd.port}"}))
    ok("config", "set", "active-context", "local")
    ok("config", "update", "context", "--project", "default")
    ok("create", "repo", "shared")
    ok("put", "file", "shared@master:/hello.txt", input="hi from pachctl")
    client = sdk.Client.from_config(env["PACH_CONFIG"])
    try:
        assert client.address == f"localhost:{pachd.port}"
        names = [ri.repo.name for ri in client.pfs.list_repo()]
        assert names == ["shared"]
        f = sdk_pfs.File.from_uri("shared@master:/hello.txt")
        assert client.pfs.pfs_file(f).read() == b"hi from pachctl"
        client.pfs.create_repo(repo=sdk_pfs.Repo(name="from-sdk"))
    finally:
        client._channel.close()
    assert sorted(line.split()[1] for line in ok("list", "repo").splitlines()[1:]) == ["from-sdk", "shared"]
