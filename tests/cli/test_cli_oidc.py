"""`pachctl auth login` through a real OpenID Connect provider (oidc-provider-mock) to `auth
whoami`: pachctl as a real process printing the login URL and waiting, an HTTP client playing
the browser; `--id-token`; `auth set-config` / `get-config`."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pachd.server import Pachd
from tests.cli.conftest import subprocess_env
from tests.oidc_idp import follow, id_token_from, idp_server, sign_in


@pytest.fixture
def pachd(tmp_path):  # this module's pachd also serves the OIDC callback
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", enable_pps=False, oidc_port=0).start()
    try:
        yield p
    finally:
        p.stop(grace=0.5)


@pytest.fixture
def issuer():
    with idp_server() as url:
        yield url


@pytest.fixture
def configured(ok, pachd, issuer):
    ok("auth", "activate")
    cfg = {"issuer": issuer, "client_id": "pachd", "client_secret": "s3cret",
           "redirect_uri": f"http://127.0.0.1:{pachd.oidc_port}/authorization-code/callback"}
    ok("auth", "set-config", input=json.dumps(cfg))
    return cfg


def test_set_and_get_config(ok, pachctl, pachd, issuer, configured):
    out = json.loads(ok("auth", "get-config"))
    assert out == configured
    assert "client_id: pachd" in ok("auth", "get-config", "-o", "yaml")
    r = pachctl("auth", "set-config", input="issuer: [not, a, string]")
    assert r.exit_code == 1 and "could not parse config" in r.stderr
    r = pachctl("auth", "set-config", input=json.dumps({**configured, "issuer": "http://127.0.0.1:9"}))
    assert r.exit_code == 1 and "cannot reach the OIDC identity provider's discovery document" in r.stderr
    assert json.loads(ok("auth", "get-config")) == configured  # unchanged


def test_login_with_nothing_configured_says_so(ok, pachctl):
    ok("auth", "activate")
    r = pachctl("auth", "login", "--no-browser")
    assert r.exit_code == 1 and "no authentication providers are configured" in r.stderr


def test_login_no_browser_prints_the_url_and_waits(console_script, env, ok, configured):
    root_whoami = ok("auth", "whoami")
    assert root_whoami == 'You are "pach:root"\n'
    proc = subprocess.Popen(console_script + ["auth", "login", "--no-browser"], env=subprocess_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Retrieving Pachyderm token..."):
                break
        assert lines[0].startswith("You will momentarily be directed to your IdP")
        url = next(x.strip() for x in lines if x.startswith("http"))
        assert proc.poll() is None  # still waiting for the browser
        page = follow(sign_in(url, "alice"))
        assert page.status_code == 200
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    who = ok("auth", "whoami").splitlines()
    assert who[0] == 'You are "user:alice@example.com"' and who[1].startswith("session expires: ")


def test_login_opens_the_browser(console_script, env, ok, configured, tmp_path):
    browser = tmp_path / "browser.py"
    browser.write_text(textwrap.dedent("""
        import sys
        from tests.oidc_idp import follow, sign_in
        sys.exit(0 if follow(sign_in(sys.argv[1], "alice")).status_code == 200 else 1)
    """))
    e = subprocess_env(env)
    e["BROWSER"] = f"{sys.executable} {browser} %s"
    r = subprocess.run(console_script + ["auth", "login"], env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Couldn't open a browser" not in r.stdout
    assert ok("auth", "whoami").startswith('You are "user:alice@example.com"')


def test_login_with_an_id_token(ok, pachctl, issuer, configured):
    ok("auth", "login", "--id-token", input=id_token_from(issuer, "alice") + "\n")
    assert ok("auth", "whoami").startswith('You are "user:alice@example.com"')
    r = pachctl("auth", "login", "-t", input=id_token_from(issuer, "alice", client_id="other") + "\n")
    assert r.exit_code == 1
    assert "authorization failed" in r.stderr and "audience" in r.stderr
    assert ok("auth", "whoami").startswith('You are "user:alice@example.com"')  # the old token stays
