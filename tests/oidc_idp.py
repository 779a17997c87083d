"""A real OpenID Connect identity provider for tests (PyPI's oidc-provider-mock, a Flask app
served on a loopback port in a thread), and an HTTP client playing the user's browser.

- `idp_server(**kw)`: context manager -> the issuer URL (`http://localhost:PORT`). Known users:
  alice (verified email, groups claim [eng]), bob (unverified email), nomail (no email claim).
- `sign_in(login_url, sub)`: what a browser does with pachd's login URL: load the IdP's page,
  sign in as `sub`, and answer the redirect the IdP sends (to pachd's callback), not followed.
- `follow(location)`: the browser arriving at that redirect (pachd's callback).
- `id_token_from(issuer, sub, client_id)`: an ID token obtained as another OIDC client would.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

USERS = {"alice": {"email": "alice@example.com", "email_verified": True, "groups": ["eng"]},
         "bob": {"email": "bob@example.com", "email_verified": False},
         "nomail": {"name": "No Mail"}}


@contextmanager
def idp_server(max_age: timedelta = timedelta(hours=1)) -> Iterator[str]:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # authlib's own import-time notices
        from oidc_provider_mock import User, run_server_in_thread
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    users = [User(sub=s, claims=c) for s, c in USERS.items()]
    with run_server_in_thread(user_claims=users, access_token_max_age=max_age, require_nonce=True) as srv:
        yield f"http://localhost:{srv.server_port}"


def sign_in(login_url: str, sub: str) -> str:
    """The IdP's redirect (to pachd's callback, with code and state) after signing in."""
    with requests.Session() as s:
        page = s.get(login_url, timeout=10)
        assert page.status_code == 200, page.text[:500]
        r = s.post(login_url, data={"sub": sub}, allow_redirects=False, timeout=10)
        assert r.status_code == 302, r.text[:500]
        return r.headers["Location"]


def deny(login_url: str) -> str:
    """The user presses Deny at the IdP: its redirect carries error=access_denied."""
    with requests.Session() as s:
        r = s.post(login_url, data={"action": "deny"}, allow_redirects=False, timeout=10)
        assert r.status_code == 302, r.text[:500]
        return r.headers["Location"]


def follow(location: str) -> requests.Response:
    return requests.get(location, timeout=30)


def query(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def id_token_from(issuer: str, sub: str, client_id: str = "pachd", nonce: str = "n-1") -> str:
    redirect = "http://localhost:9/elsewhere"
    doc = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    url = doc["authorization_endpoint"] + "?" + urlencode(
        {"client_id": client_id, "redirect_uri": redirect, "response_type": "code", "scope": "openid email profile",
         "state": "s-1", "nonce": nonce})
    code = query(sign_in(url, sub))["code"]
    r = requests.post(doc["token_endpoint"], data={"grant_type": "authorization_code", "code": code,
                                                   "redirect_uri": redirect}, auth=(client_id, "secret"), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["id_token"]
