"""pachctl.config: the ~/.pachyderm/config.json file, checked against pachyderm-sdk's reader."""
import json
import os
import stat

import pytest
from hypothesis import given, strategies as st

from pachctl import config as cfgmod
from pachctl.config import (
    CONTEXT_FIELDS,
    Config,
    ConfigError,
    PachdAddress,
    clean_context,
    config_path,
    new_context,
    normalize_address,
    parse_address,
)

sdk_config = pytest.importorskip("pachyderm_sdk.config")


@pytest.fixture
def path(tmp_path):
    return tmp_path / "config.json"


# ---- paths and addresses -----------------------------------------------------------------
def test_config_path(tmp_path):
    assert config_path({"PACH_CONFIG": "/x/y.json", "HOME": "/h"}) == cfgmod.Path("/x/y.json")
    assert config_path({"HOME": "/h"}) == cfgmod.Path("/h/.pachyderm/config.json")


@pytest.mark.parametrize("raw,qualified,target,secured", [
    ("localhost:30650", "grpc://localhost:30650", "localhost:30650", False),
    ("localhost", "grpc://localhost:30650", "localhost:30650", False),
    ("grpc://localhost:30650", "grpc://localhost:30650", "localhost:30650", False),
    ("grpcs://pach.example.com:443", "grpcs://pach.example.com:443", "pach.example.com:443", True),
    ("https://pach.example.com", "grpcs://pach.example.com:30650", "pach.example.com:30650", True),
    ("http://10.0.0.1:80", "grpc://10.0.0.1:80", "10.0.0.1:80", False),
    ("192.168.1.2:650", "grpc://192.168.1.2:650", "192.168.1.2:650", False),
    ("grpc://[::1]:30650", "grpc://[::1]:30650", "[::1]:30650", False),
    ("unix:///tmp/pachd.sock", "unix:///tmp/pachd.sock", "unix:///tmp/pachd.sock", False),
])
def test_parse_address(raw, qualified, target, secured):
    a = parse_address(raw)
    assert a.qualified == qualified
    assert a.target == target
    assert a.secured is secured
    assert normalize_address(raw) == qualified


@pytest.mark.parametrize("raw,text", [
    ("", "no pachd address specified"),
    ("ftp://host:1", "unrecognized scheme in pachd address: ftp"),
    ("grpc://host:1/path", "pachd address should not include a path"),
    ("grpc://u:p@host:1", "pachd address should not include login credentials"),
    ("grpc://host:1?x=1", "pachd address should not include a query string"),
    ("grpc://host:1#frag", "pachd address should not include a fragment"),
])
def test_parse_address_errors(raw, text):
    with pytest.raises(ConfigError) as e:
        parse_address(raw)
    assert str(e.value) == text


def test_parse_address_bad_port():
    with pytest.raises(ConfigError, match="could not parse pachd address"):
        parse_address("host:99999")


@given(st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5})?", fullmatch=True), st.integers(1, 65535))
def test_address_normalisation_is_idempotent(host, port):
    q = normalize_address(f"{host}:{port}")
    assert q == f"grpc://{host}:{port}"
    assert normalize_address(q) == q
    assert parse_address(q) == PachdAddress(host, port, False)


# ---- fresh config ------------------------------------------------------------------------
def test_fresh_config_is_created_atomically(path):
    cfg = Config.load(path)
    assert path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp files left
    data = json.loads(path.read_text())
    assert list(data) == ["user_id", "v2"]
    assert len(data["user_id"]) == 32 and int(data["user_id"], 16) >= 0
    assert data["v2"] == {
        "active_context": "default",
        "contexts": {"default": {"pachd_address": "grpc://localhost:30650", "project": "default"}},
        "metrics": True,
    }
    assert path.read_text().endswith("}\n") and '\n  "v2": {\n' in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert cfg.active_context_name == "default"
    # loading again keeps the same user id and does not rewrite
    mtime = path.stat().st_mtime_ns
    again = Config.load(path)
    assert again.user_id == cfg.user_id
    assert path.stat().st_mtime_ns == mtime


def test_load_without_write(path):
    Config.load(path, write=False)
    assert not path.exists()


def test_load_from_env(tmp_path):
    p = tmp_path / "env.json"
    cfg = Config.load(env={"PACH_CONFIG": str(p)})
    assert cfg.path == p and p.exists()


def test_missing_parent_dir_with_explicit_path(tmp_path):
    with pytest.raises(ConfigError, match="could not stat parent directory"):
        Config.load(tmp_path / "nope" / "config.json")


def test_default_home_dir_is_created(tmp_path, monkeypatch):
    monkeypatch.delenv("PACH_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = Config.load(env={"HOME": str(tmp_path)})
    assert (tmp_path / ".pachyderm" / "config.json").exists()
    assert cfg.path == tmp_path / ".pachyderm" / "config.json"


def test_repairs_and_normalises_existing_file(path):
    path.write_text(json.dumps({"v2": {"active_context": "c", "contexts": {
        "c": {"pachd_address": "example.com:80", "project": "p"}}}}))
    cfg = Config.load(path)
    data = json.loads(path.read_text())
    assert data["v2"]["contexts"]["c"]["pachd_address"] == "grpc://example.com:80"
    assert data["user_id"] == cfg.user_id
    assert cfg.project(env={}) == "p"


def test_bad_files(path):
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="could not parse config json"):
        Config.load(path)
    path.write_text(json.dumps({"v2": {"active_context": "c", "contexts": {"c": {"pachd_address": "ftp://x"}}}}))
    with pytest.raises(ConfigError) as e:
        Config.load(path)
    assert str(e.value) == "could not parse pachd address for context 'c': unrecognized scheme in pachd address: ftp"


def test_v1_config_is_replaced(path):
    path.write_text(json.dumps({"user_id": "u", "v1": {"pachd_address": "x:1"}}))
    cfg = Config.load(path)
    assert "v1" not in json.loads(path.read_text())
    assert cfg.active_context_name == "default"


# ---- pachyderm-sdk compatibility ---------------------------------------------------------
def test_sdk_reads_our_fresh_config(path):
    Config.load(path)
    cf = sdk_config.ConfigFile.from_path(path)
    ctx = cf.active_context
    assert ctx.active_pachd_address == "grpc://localhost:30650"
    assert ctx.project == "default"
    assert len(cf.user_id) == 32


def test_sdk_reads_every_context_field(path):
    cfg = Config.load(path)
    full = {"source": 3, "pachd_address": "grpcs://pach.example.com:443", "server_cas": "Y2VydA==",
            "session_token": "tok", "active_transaction": "txn", "cluster_name": "kind",
            "auth_info": "ai", "namespace": "ns", "port_forwarders": {"pachd": 30651},
            "cluster_deployment_id": "dep", "enterprise_server": True, "project": "proj"}
    assert set(full) == set(CONTEXT_FIELDS)
    cfg.set_context("full", full)
    cfg.set_active_context("full")
    cfg.save()
    written = json.loads(path.read_text())["v2"]["contexts"]["full"]
    assert list(written) == list(CONTEXT_FIELDS)  # proto order
    ctx = sdk_config.ConfigFile.from_path(path).active_context
    assert ctx.pachd_address == "grpcs://pach.example.com:443"
    assert ctx.session_token == "tok" and ctx.project == "proj"
    assert ctx.server_cas_decoded == b"cert"
    assert ctx.port_forwarders == {"pachd": 30651}


def test_sdk_client_from_config(path):
    from pachyderm_sdk import Client

    cfg = Config.load(path)
    cfg.set_context("remote", new_context("pachd.example.com:31400", project="p", session_token="abc"))
    cfg.set_active_context("remote")
    cfg.save()
    client = Client.from_config(path)  # lazy channel: no connection attempted
    try:
        assert client.address == "pachd.example.com:31400"
        assert client.auth_token == "abc"
    finally:
        client._channel.close()
    assert cfg.pachd_address(env={}).target == client.address


def test_we_read_sdk_written_config(path):
    ctx = sdk_config.Context(pachd_address="grpc://h:1", project="sp")
    sdk_config.ConfigFile.new_with_context("sdkctx", ctx).write(path)
    cfg = Config.load(path)
    name, c = cfg.active_context(env={})
    assert name == "sdkctx" and c["pachd_address"] == "grpc://h:1"
    assert cfg.project(env={}) == "sp"
    cfg.save()  # our rewrite drops the sdk's null fields but stays sdk-readable
    assert sdk_config.ConfigFile.from_path(path).active_context.project == "sp"
    assert "null" not in path.read_text()


# ---- environment overrides ---------------------------------------------------------------
@pytest.fixture
def two(path):
    cfg = Config.load(path)
    cfg.set_context("other", {"pachd_address": "grpc://other:1234", "project": "op"})
    return cfg


def test_pach_context_env(two):
    assert two.active_context(env={})[0] == "default"
    assert two.active_context(env={"PACH_CONTEXT": "other"})[0] == "other"
    assert two.project(env={"PACH_CONTEXT": "other"}) == "op"
    with pytest.raises(ConfigError) as e:
        two.active_context(env={"PACH_CONTEXT": "ghost"})
    assert str(e.value) == ('pachctl config error: `PACH_CONTEXT` refers to a context ("ghost") '
                            "that does not exist")


def test_pachd_address_env(two):
    assert two.pachd_address(env={}).target == "localhost:30650"
    assert two.pachd_address(env={"PACH_CONTEXT": "other"}).target == "other:1234"
    assert two.pachd_address(env={"PACHD_ADDRESS": "localhost:1650"}).target == "localhost:1650"
    assert two.pachd_address(env={"PACHD_ADDRESS": "grpcs://s:1"}).secured
    with pytest.raises(ConfigError, match="could not parse the active context's pachd address"):
        two.pachd_address(env={"PACHD_ADDRESS": "ftp://x"})


def test_defaults_when_context_has_no_address_or_project(two):
    two.set_context("bare", {"port_forwarders": {"pachd": 31111}})
    env = {"PACH_CONTEXT": "bare"}
    assert two.pachd_address(env=env).qualified == "grpc://localhost:31111"
    assert two.project(env=env) == "default"
    two.set_context("empty", {})
    assert two.pachd_address(env={"PACH_CONTEXT": "empty"}).qualified == "grpc://localhost:30650"


def test_active_context_missing(two):
    two.data["v2"]["active_context"] = "gone"
    with pytest.raises(ConfigError, match='pachctl\'s active context is "gone"'):
        two.active_context(env={})
    two.data["v2"]["active_context"] = ""
    with pytest.raises(ConfigError, match="no active context configured"):
        two.active_context(env={})
    assert two.active_context(env={}, error_on_no_active=False) == ("", None)
    assert two.project(env={}) == "default"


# ---- context commands --------------------------------------------------------------------
def test_get_set_update_delete(two, path):
    assert two.get_context("other")["project"] == "op"
    with pytest.raises(ConfigError) as e:
        two.get_context("ghost")
    assert str(e.value) == "context does not exist: ghost"

    with pytest.raises(ConfigError) as e:
        two.set_context("other", {"project": "x"})
    assert str(e.value) == ("context 'other' already exists, use `--overwrite` if you wish to "
                            "replace it")
    two.set_context("other", {"project": "x", "pachd_address": "h:2"}, overwrite=True)
    assert two.get_context("other") == {"pachd_address": "grpc://h:2", "project": "x"}
    with pytest.raises(ConfigError, match='unknown field "bogus"'):
        two.set_context("z", {"bogus": 1})

    assert two.update_context("other", namespace="ns", pachd_address=None) == "other"
    assert two.get_context("other") == {"pachd_address": "grpc://h:2", "namespace": "ns", "project": "x"}
    two.update_context("other", namespace="")  # empty string clears
    assert "namespace" not in two.get_context("other")
    assert two.update_context(project="newp") == "default"  # no name: the active context
    assert two.project(env={}) == "newp"
    two.update_context("other", cluster_deployment_id="dep")
    two.update_context("other", remove_cluster_deployment_id=True)
    assert "cluster_deployment_id" not in two.get_context("other")
    with pytest.raises(ConfigError, match="context does not exist: nope"):
        two.update_context("nope", project="x")

    with pytest.raises(ConfigError) as e:
        two.delete_context("default")
    assert str(e.value) == "cannot delete an active context"
    with pytest.raises(ConfigError, match="context does not exist: ghost"):
        two.delete_context("ghost")
    two.delete_context("other")
    assert "other" not in two.contexts

    with pytest.raises(ConfigError, match="context does not exist: ghost"):
        two.set_active_context("ghost")
    two.save()
    assert json.loads(path.read_text())["v2"]["contexts"] == {
        "default": {"pachd_address": "grpc://localhost:30650", "project": "newp"}}


def test_list_contexts(two):
    two.set_context("aaa", {})
    two.set_active_enterprise_context("other")
    assert two.list_contexts() == [("aaa", False, False), ("default", True, False), ("other", False, True)]
    assert two.list_context_lines() == ["ACTIVE\tNAME", "\taaa", "*\tdefault", "E\tother"]
    two.set_active_enterprise_context("default")
    assert two.list_context_lines()[2] == "E*\tdefault"
    assert two.active_enterprise_context(env={})[0] == "default"
    assert two.active_enterprise_context(env={"PACH_ENTERPRISE_CONTEXT": "aaa"})[0] == "aaa"


def test_metrics_and_to_json_escaping(two):
    two.metrics = False
    two.set_context("html", {"namespace": "<a&b>"})
    text = two.to_json()
    assert '"metrics"' not in text  # omitempty, like Go
    assert "\\u003ca\\u0026b\\u003e" in text
    assert json.loads(text)["v2"]["contexts"]["html"]["namespace"] == "<a&b>"


def test_clean_context():
    assert clean_context({"project": "p", "source": 0, "enterprise_server": False,
                          "port_forwarders": {}, "session_token": ""}) == {"project": "p"}
    assert clean_context({"zzz": 1, "project": "p"}, strict=False) == {"project": "p"}
    with pytest.raises(ConfigError):
        clean_context({"zzz": 1})


def test_save_is_atomic_on_failure(path, monkeypatch):
    cfg = Config.load(path)
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(cfgmod.os, "replace", boom)
    cfg.set_context("x", {})
    with pytest.raises(OSError):
        cfg.save()
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]
    assert os.path.exists(path)
