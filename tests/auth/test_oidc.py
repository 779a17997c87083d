"""OIDC logins end to end: a real pachd on loopback (gRPC and its OIDC callback port), a real
OpenID Connect provider (oidc-provider-mock) on another port, and an HTTP client playing the
browser. Each bad input is refused with UNAUTHENTICATED or FAILED_PRECONDITION naming what
was wrong, and leaves the stored auth state byte for byte as it was."""
from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import auth.oidc
from pachd.oidc_callback import SUCCESS
from pachd.server import Pachd
from proto.auth_v2 import auth_pb2, auth_pb2_grpc
from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
from tests.oidc_idp import deny, follow, id_token_from, idp_server, query, sign_in

ALICE = "user:alice@example.com"


@pytest.fixture
def issuer():
    with idp_server() as url:
        yield url


class Cluster:
    def __init__(self, pachd: Pachd, channel):
        self.pachd, self.channel = pachd, channel
        self.auth = auth_pb2_grpc.APIStub(channel)
        self.pfs = pfs_pb2_grpc.APIStub(channel)
        self.root = self.auth.Activate(auth_pb2.ActivateRequest()).pach_token
        self.redirect = f"http://127.0.0.1:{pachd.oidc_port}/authorization-code/callback"

    def md(self, token):
        return (("authn-token", token),) if token else None

    def configure(self, issuer: str, **kw) -> None:
        cfg = auth_pb2.OIDCConfig(issuer=issuer, client_id="pachd", client_secret="s3cret",
                                  redirect_uri=self.redirect, **kw)
        self.auth.SetConfiguration(auth_pb2.SetConfigurationRequest(configuration=cfg), metadata=self.md(self.root))

    def stored(self) -> bytes:
        return (self.pachd.root / "auth.json").read_bytes()

    def login(self):
        r = self.auth.GetOIDCLogin(auth_pb2.GetOIDCLoginRequest())
        return r.login_url, r.state

    def authenticate(self, **kw) -> str:
        return self.auth.Authenticate(auth_pb2.AuthenticateRequest(**kw), timeout=30).pach_token

    def whoami(self, token):
        return self.auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=self.md(token))


@pytest.fixture
def cluster(tmp_path):
    p = Pachd(tmp_path / "pachd", port=0, host="127.0.0.1", enable_pps=False, oidc_port=0).start()
    ch = grpc.insecure_channel(f"localhost:{p.port}")
    try:
        yield Cluster(p, ch)
    finally:
        ch.close()
        p.stop(grace=0.5)


def refused(fn, *args, **kw):
    with pytest.raises(grpc.RpcError) as ei:
        fn(*args, **kw)
    return ei.value.code(), ei.value.details()


def test_configuration_is_checked_and_kept(cluster, issuer):
    c = cluster
    code, msg = refused(c.login)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "OIDC ID provider configuration not found" in msg
    c.configure(issuer, scopes=["openid", "email"])
    got = c.auth.GetConfiguration(auth_pb2.GetConfigurationRequest(), metadata=c.md(c.root)).configuration
    assert (got.issuer, got.client_id, got.redirect_uri, list(got.scopes)) == (issuer, "pachd", c.redirect,
                                                                              ["openid", "email"])
    before = c.stored()
    # not an admin; an issuer that is down; one that names itself differently; no client_id
    bot = c.auth.GetRobotToken(auth_pb2.GetRobotTokenRequest(robot="ci"), metadata=c.md(c.root)).token
    before = c.stored()
    code, msg = refused(c.auth.SetConfiguration, auth_pb2.SetConfigurationRequest(
        configuration=auth_pb2.OIDCConfig(issuer=issuer, client_id="x", redirect_uri=c.redirect)), metadata=c.md(bot))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "CLUSTER_AUTH_SET_CONFIG" in msg
    code, msg = refused(c.configure, "http://127.0.0.1:9")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "http://127.0.0.1:9/.well-known/openid-configuration" in msg
    code, msg = refused(c.configure, issuer + "/")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and f'names itself "{issuer}"' in msg
    code, msg = refused(c.auth.SetConfiguration, auth_pb2.SetConfigurationRequest(
        configuration=auth_pb2.OIDCConfig(issuer=issuer, redirect_uri=c.redirect)), metadata=c.md(c.root))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "client_id" in msg
    assert c.stored() == before
    # no configuration removes it
    c.auth.SetConfiguration(auth_pb2.SetConfigurationRequest(), metadata=c.md(c.root))
    assert refused(c.login)[0] == grpc.StatusCode.FAILED_PRECONDITION


def test_browser_login_to_whoami_with_groups(cluster, issuer):
    c = cluster
    c.configure(issuer)
    url, state = c.login()
    q = query(url)
    assert (q["client_id"], q["redirect_uri"], q["state"], q["response_type"]) == ("pachd", c.redirect, state, "code")
    assert q["scope"].split() == ["openid", "profile", "email"] and len(q["nonce"]) >= 30 and len(state) >= 30
    got = {}
    waiter = threading.Thread(target=lambda: got.setdefault("token", c.authenticate(oidc_state=state)))
    waiter.start()  # Authenticate waits for the browser, as Pachyderm's does
    time.sleep(0.5)
    assert waiter.is_alive()
    location = sign_in(url, "alice")
    assert location.startswith(c.redirect + "?")
    page = follow(location)
    assert page.status_code == 200 and SUCCESS in page.text
    waiter.join(30)
    token = got["token"]
    who = c.whoami(token)
    assert who.username == ALICE
    assert 29.9 * 86400 < who.expiration.seconds - time.time() <= 30 * 86400  # Pachyderm's 30 days
    assert list(c.auth.GetGroups(auth_pb2.GetGroupsRequest(), metadata=c.md(token)).groups) == ["group:eng"]
    # the same callback again, and the same state again: refused, nothing changes
    before = c.stored()
    again = follow(location)
    assert again.status_code == 401 and "unknown, expired or already completed" in again.text
    code, msg = refused(c.authenticate, oidc_state=state)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "unknown, expired or already used" in msg
    assert c.stored() == before


def test_roles_apply_to_oidc_users(cluster, issuer):
    c = cluster
    c.configure(issuer)
    root = c.md(c.root)
    for name in ("shared", "team"):
        c.pfs.CreateRepo(pfs_pb2.CreateRepoRequest(repo=pfs_pb2.Repo(name=name, type="user",
                                                                     project=pfs_pb2.Project(name="default"))),
                         metadata=root)
    res = lambda name: auth_pb2.Resource(type=auth_pb2.REPO, name=f"default/{name}")  # noqa: E731
    c.auth.ModifyRoleBinding(auth_pb2.ModifyRoleBindingRequest(resource=res("shared"), principal=ALICE,
                                                               roles=["repoReader"]), metadata=root)
    c.auth.ModifyRoleBinding(auth_pb2.ModifyRoleBindingRequest(resource=res("team"), principal="group:eng",
                                                               roles=["repoWriter"]), metadata=root)
    url, state = c.login()
    assert follow(sign_in(url, "alice")).status_code == 200
    alice = c.md(c.authenticate(oidc_state=state))

    def may(name, *perms):
        r = c.auth.Authorize(auth_pb2.AuthorizeRequest(resource=res(name), permissions=list(perms)), metadata=alice)
        return r.authorized

    assert may("shared", auth_pb2.REPO_READ) and not may("shared", auth_pb2.REPO_WRITE)
    assert may("team", auth_pb2.REPO_WRITE)  # through the groups claim
    code, msg = refused(c.pfs.StartCommit, pfs_pb2.StartCommitRequest(branch=pfs_pb2.Branch(
        repo=pfs_pb2.Repo(name="shared", type="user", project=pfs_pb2.Project(name="default")), name="master")),
        metadata=alice)
    assert code == grpc.StatusCode.PERMISSION_DENIED and f"{ALICE} is not authorized" in msg
    c.pfs.StartCommit(pfs_pb2.StartCommitRequest(branch=pfs_pb2.Branch(
        repo=pfs_pb2.Repo(name="team", type="user", project=pfs_pb2.Project(name="default")), name="master")),
        metadata=alice)
    names = [r.repo.name for r in c.pfs.ListRepo(pfs_pb2.ListRepoRequest(), metadata=alice)]
    assert sorted(names) == ["shared", "team"]


def test_wrong_or_expired_state_is_refused(cluster, issuer, monkeypatch):
    c = cluster
    c.configure(issuer)
    url, state = c.login()
    location = sign_in(url, "alice")
    before = c.stored()
    forged = location.replace(f"state={state}", "state=" + "x" * len(state))
    page = follow(forged)
    assert page.status_code == 401 and "unknown, expired or already completed" in page.text
    code, msg = refused(c.authenticate, oidc_state="x" * len(state))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "unknown, expired or already used" in msg
    code, msg = refused(c.authenticate)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "oidc_state" in msg
    # the user says no at the IdP
    url, denied = c.login()
    page = follow(deny(url))  # this IdP's refusal names no state: no login to end
    assert page.status_code == 400 and "the identity provider refused the login: access_denied" in page.text
    page = follow(f"{c.redirect}?error=access_denied&state={denied}")
    assert page.status_code == 401 and "refused the login: access_denied" in page.text
    code, msg = refused(c.authenticate, oidc_state=denied)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "access_denied" in msg
    # a login left waiting past its life
    monkeypatch.setattr(auth.oidc, "SESSION_TTL", 1)
    url, late = c.login()
    location = sign_in(url, "alice")
    time.sleep(1.2)
    assert follow(location).status_code == 401
    code, msg = refused(c.authenticate, oidc_state=late)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "expired" in msg
    assert c.stored() == before


def test_code_of_another_login_fails_the_nonce_check(cluster, issuer):
    c = cluster
    c.configure(issuer)
    url_a, state_a = c.login()
    url_b, state_b = c.login()
    code_b = query(sign_in(url_b, "alice"))["code"]
    before = c.stored()
    page = follow(f"{c.redirect}?code={code_b}&state={state_a}")
    assert page.status_code == 401 and "nonce" in page.text
    code, msg = refused(c.authenticate, oidc_state=state_a)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "nonce does not match" in msg
    assert c.stored() == before


def test_replayed_code_is_refused_by_the_idp(cluster, issuer):
    c = cluster
    c.configure(issuer)
    url, state = c.login()
    location = sign_in(url, "alice")
    assert follow(location).status_code == 200
    c.authenticate(oidc_state=state)
    before = c.stored()
    _, state2 = c.login()
    page = follow(f"{c.redirect}?code={query(location)['code']}&state={state2}")
    assert page.status_code == 401 and "refused the authorization code (invalid_grant" in page.text
    code, msg = refused(c.authenticate, oidc_state=state2)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "invalid_grant" in msg
    assert c.stored() == before


def test_id_tokens_from_elsewhere(cluster, issuer):
    c = cluster
    c.configure(issuer, require_email_verified=True)
    raw = id_token_from(issuer, "alice")
    token = c.authenticate(id_token=raw)
    who = c.whoami(token)
    assert who.username == ALICE
    assert who.expiration.seconds <= jwt.decode(raw, options={"verify_signature": False})["exp"]
    before = c.stored()

    def refused_token(bad: str) -> str:
        code, msg = refused(c.authenticate, id_token=bad)
        assert code == grpc.StatusCode.UNAUTHENTICATED, msg
        return msg

    head, body, sig = raw.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["email"] = "mallory@example.com"
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert "signature does not verify" in refused_token(f"{head}.{tampered}.{sig}")
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "signature does not verify" in refused_token(jwt.encode(claims, own_key, algorithm="RS256"))
    assert "HS256" in refused_token(jwt.encode(claims, "s3cret", algorithm="HS256"))
    assert "not a signed JWT" in refused_token("not-a-token")
    assert "audience" in refused_token(id_token_from(issuer, "alice", client_id="someone-else"))
    assert "email_verified" in refused_token(id_token_from(issuer, "bob"))
    assert "no email claim" in refused_token(id_token_from(issuer, "nomail"))
    with idp_server(max_age=timedelta(seconds=-60)) as stale_issuer:
        stale = id_token_from(stale_issuer, "alice")
        assert "signature does not verify" in refused_token(stale)  # another IdP's token
        c.configure(stale_issuer)
        assert "has expired" in refused_token(stale)
    # configure rewrote the file; the refusals after it stored nothing either
    assert json.loads(c.stored())["tokens"] == json.loads(before)["tokens"]


def test_idp_down(cluster):
    c = cluster
    with idp_server() as issuer:
        c.configure(issuer)
        raw = id_token_from(issuer, "alice")
        url, state = c.login()
        location = sign_in(url, "alice")
    before = c.stored()
    page = follow(location)
    assert page.status_code == 503 and "cannot reach the OIDC identity provider" in page.text
    code, msg = refused(c.authenticate, oidc_state=state)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and f"{issuer}/.well-known/openid-configuration" in msg
    code, msg = refused(c.login)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "cannot reach the OIDC identity provider" in msg
    code, msg = refused(c.authenticate, id_token=raw)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and issuer in msg
    assert c.stored() == before
