"""OIDC logins, as Pachyderm's: auth_v2 GetOIDCLogin / Authenticate and pachd's
`/authorization-code/callback`, over an OpenID Connect identity provider (IdP). No gRPC and no
HTTP server here: auth/service.py and pachd/oidc_callback.py are the thin fronts.

The browser flow: GetOIDCLogin makes a login session (a random `state` and `nonce`) and
answers the IdP's authorization URL. The user signs in there; the IdP sends the browser to
the callback with `code` and `state`; the callback exchanges the code at the IdP's token
endpoint and verifies the ID token it gets. Authenticate(oidc_state) waits for that and
answers a Pachyderm token for `user:<email>`. Authenticate(id_token) verifies an ID token
obtained elsewhere the same way (without a nonce).

Invariants:
- An ID token is accepted only if PyJWT verifies it: its signature with a key of the IdP's
  JWKS (asymmetric algorithms the IdP announces, never `none` or HMAC), `iss` equal to the
  configured issuer, `aud` containing the configured client_id, `exp` in the future, and for
  the browser flow `nonce` equal to the session's. With require_email_verified,
  `email_verified` must be true. The subject is `user:` + the `email` claim (Pachyderm's);
  a token without one is refused.
- A login session lives in memory only, for SESSION_TTL seconds (Pachyderm's three minutes):
  a restarted pachd forgets logins in progress (the user starts again). A session is
  completed by at most one callback and redeemed by at most one Authenticate; a replayed
  callback or state is refused and changes nothing.
- Nothing is stored unless a login succeeds: then one atomic change of the auth state adds
  the user's token and, if the ID token has a `groups` claim, sets the user's groups to
  `group:<name>` for each (Pachyderm's syncGroupMembership). A token without the claim leaves
  the user's groups as they are.
- Tokens from the browser flow live DEFAULT_SESSION_TTL (Pachyderm's 30 days); from an ID
  token, until the ID token expires, at most that long.
- Talking to the IdP (discovery, JWKS, token endpoint) has a timeout; an IdP that cannot be
  reached is an IdPUnavailable naming the URL, never a hang. Discovery is fetched for each
  login (as Pachyderm does); JWKS are cached per URL and fetched again for an unknown key id
  at most once per JWKS_REFRESH seconds.
- At most MAX_SESSIONS logins are in progress and MAX_WAITERS Authenticate calls wait at
  once (a wait holds one of pachd's RPC threads); beyond that, TooManyLogins.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt
import requests

from auth.model import AuthError, InvalidArgument

log = logging.getLogger("pachd.auth.oidc")

SESSION_TTL = 3 * 60
DEFAULT_SESSION_TTL = 30 * 24 * 60 * 60
DEFAULT_SCOPES = ("openid", "profile", "email")
HTTP_TIMEOUT = (5.0, 15.0)  # connect, read
JWKS_REFRESH = 30.0
MAX_SESSIONS = 1000
MAX_WAITERS = 8
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CALLBACK_PATH = "/authorization-code/callback"


class OIDCNotConfigured(AuthError):
    code = "FAILED_PRECONDITION"

    def __init__(self):
        super().__init__("OIDC ID provider configuration not found (a cluster admin sets one with "
                         "`pachctl auth set-config`; until then log in with a token: pachctl auth login --token)")


class IdPUnavailable(AuthError):
    """The IdP could not be reached or answered nonsense: a precondition, not the user's fault."""
    code = "FAILED_PRECONDITION"


class LoginRefused(AuthError):
    """The credential (code, state, ID token) was not accepted."""
    code = "UNAUTHENTICATED"


class TooManyLogins(AuthError):
    code = "RESOURCE_EXHAUSTED"


@dataclass(frozen=True)
class OIDCSettings:
    """Pachyderm's auth_v2.OIDCConfig."""
    issuer: str
    client_id: str
    client_secret: str = ""
    redirect_uri: str = ""
    scopes: tuple[str, ...] = ()
    require_email_verified: bool = False
    localhost_issuer: bool = False
    user_accessible_issuer_host: str = ""

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["scopes"] = list(self.scopes)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "OIDCSettings":
        d = dict(d)
        d["scopes"] = tuple(d.get("scopes") or ())
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def requested_scopes(self) -> list[str]:
        scopes = list(self.scopes) or list(DEFAULT_SCOPES)
        return scopes if "openid" in scopes else ["openid", *scopes]

    def check(self) -> None:
        """Pachyderm's validateOIDCConfig, the parts that need no network."""
        for name in ("issuer", "redirect_uri"):
            value = getattr(self, name)
            parts = urlsplit(value)
            if not value or parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidArgument(f'OIDC {name} must be an http(s) URL (got "{value}")')
        if not self.client_id:
            raise InvalidArgument("OIDC configuration must have a non-empty client_id")


@dataclass(frozen=True)
class Identity:
    subject: str                 # user:<email>
    groups: Optional[tuple[str, ...]]  # group:<name>..., or None without a groups claim
    expires: float               # the ID token's exp


@dataclass
class _Session:
    nonce: str
    expires: float
    busy: bool = False                    # a callback is exchanging its code
    identity: Optional[Identity] = None   # a callback succeeded
    failure: Optional[AuthError] = None   # a callback failed
    done: threading.Event = field(default_factory=threading.Event)


def half(state: str) -> str:
    """Enough of a state to find a login in the logs, not enough to use it (Pachyderm's)."""
    return f"{state[:len(state) // 2]}.../{len(state)}"


class IdPClient:
    """HTTP to one IdP: discovery, JWKS (cached), the token endpoint."""

    def __init__(self, settings: OIDCSettings, jwks_cache: dict):
        self.settings = settings
        self._jwks = jwks_cache  # jwks_uri -> (PyJWKSet, fetched_at); shared across configs

    def _url(self, url: str) -> tuple[str, dict]:
        """localhost_issuer (Pachyderm's LocalhostRewriteClient): requests to the issuer's
        host go to localhost, keeping the Host header the IdP expects."""
        if not self.settings.localhost_issuer:
            return url, {}
        issuer, parts = urlsplit(self.settings.issuer), urlsplit(url)
        if parts.netloc != issuer.netloc:
            return url, {}
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"localhost{port}")), {"Host": parts.netloc}

    def _request(self, method: str, url: str, what: str, **kw) -> requests.Response:
        target, headers = self._url(url)
        try:
            return requests.request(method, target, headers={**headers, **kw.pop("headers", {})},
                                    timeout=HTTP_TIMEOUT, allow_redirects=False, **kw)
        except requests.RequestException as e:
            raise IdPUnavailable(f"cannot reach the OIDC identity provider's {what} at {url}: "
                                 f"{type(e).__name__}: {e}") from None

    def _json(self, resp: requests.Response, what: str, url: str) -> dict:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200 or not isinstance(body, dict):
            raise IdPUnavailable(f"the OIDC identity provider's {what} at {url} answered HTTP "
                                 f"{resp.status_code} without the expected JSON")
        return body

    def discover(self) -> dict:
        url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = self._json(self._request("GET", url, "discovery document"), "discovery document", url)
        if doc.get("issuer") != self.settings.issuer:
            raise IdPUnavailable(f'the OIDC issuer {self.settings.issuer} names itself "{doc.get("issuer")}" '
                                 "in its discovery document; set issuer to exactly that")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise IdPUnavailable(f"the discovery document at {url} has no {key}: "
                                     f"{self.settings.issuer} does not implement the OIDC protocol")
        return doc

    def keys(self, jwks_uri: str, refresh: bool = False) -> jwt.PyJWKSet:
        cached = self._jwks.get(jwks_uri)
        if cached is not None and (not refresh or time.monotonic() - cached[1] < JWKS_REFRESH):
            return cached[0]
        body = self._json(self._request("GET", jwks_uri, "key set (JWKS)"), "key set (JWKS)", jwks_uri)
        try:
            keys = jwt.PyJWKSet.from_dict(body)
        except jwt.PyJWTError as e:
            raise IdPUnavailable(f"the OIDC identity provider's key set at {jwks_uri} is unusable: {e}") from None
        self._jwks[jwks_uri] = (keys, time.monotonic())
        return keys

    def exchange(self, doc: dict, code: str) -> str:
        """The authorization code -> the raw ID token (client_secret_basic unless the IdP
        only takes client_secret_post)."""
        s = self.settings
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": s.redirect_uri}
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        kw: dict = {}
        if s.client_secret and "client_secret_basic" in methods:
            kw["auth"] = (s.client_id, s.client_secret)
        else:
            data["client_id"] = s.client_id
            if s.client_secret:
                data["client_secret"] = s.client_secret
        url = doc["token_endpoint"]
        resp = self._request("POST", url, "token endpoint", data=data, headers={"Accept": "application/json"}, **kw)
        if resp.status_code in (400, 401):
            try:
                err = resp.json()
            except ValueError:
                err = {}
            raise LoginRefused(f"the identity provider refused the authorization code "
                               f"({err.get('error', 'HTTP %d' % resp.status_code)}"
                               f"{': ' + err['error_description'] if err.get('error_description') else ''})")
        body = self._json(resp, "token endpoint", url)
        raw = body.get("id_token")
        if not isinstance(raw, str):
            raise LoginRefused("the identity provider's token response has no id_token "
                               "(is the openid scope requested?)")
        return raw


def verify_id_token(idp: IdPClient, doc: dict, raw: str, nonce: Optional[str]) -> Identity:
    """Check `raw` as the invariants say; LoginRefused naming what is wrong."""
    s = idp.settings
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.PyJWTError as e:
        raise LoginRefused(f"the ID token is not a signed JWT ({e})") from None
    announced = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in announced if a in ASYMMETRIC]
    alg = header.get("alg")
    if alg not in algorithms:
        raise LoginRefused(f'the ID token is signed with "{alg}", which the identity provider does not '
                           f"announce (accepted: {', '.join(algorithms) or 'none'})")
    keys = _candidate_keys(idp, doc["jwks_uri"], header.get("kid"))
    claims = None
    last: Optional[Exception] = None
    for key in keys:
        try:
            claims = jwt.decode(raw, key=key, algorithms=algorithms, audience=s.client_id, issuer=s.issuer,
                                options={"require": ["exp", "iat", "iss", "aud"]})
            break
        except (jwt.InvalidSignatureError, jwt.InvalidKeyError) as e:  # try the next key
            last = e
        except jwt.ExpiredSignatureError:
            raise LoginRefused("the ID token has expired") from None
        except jwt.InvalidAudienceError:
            raise LoginRefused(f'the ID token is not meant for this pachd: its audience does not include '
                               f'the configured client_id "{s.client_id}"') from None
        except jwt.InvalidIssuerError:
            raise LoginRefused(f"the ID token was not issued by the configured issuer {s.issuer}") from None
        except jwt.PyJWTError as e:
            raise LoginRefused(f"the ID token is invalid: {e}") from None
    if claims is None:
        raise LoginRefused(f"the ID token's signature does not verify with the keys of {s.issuer} "
                           f"({last or 'no usable key'})")
    if nonce is not None and not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise LoginRefused("the ID token's nonce does not match this login's (a code from another login?)")
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise LoginRefused("the ID token has no email claim (request the email scope), and Pachyderm "
                           "names OIDC users by email")
    if s.require_email_verified and claims.get("email_verified") is not True:
        raise LoginRefused("email_verified claim was false, and require_email_verified was set")
    groups = claims.get("groups")
    if groups is not None:
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            raise LoginRefused("the ID token's groups claim is not a list of names")
        groups = tuple(g if g.startswith("group:") else "group:" + g for g in groups)
    return Identity("user:" + email, groups, float(claims["exp"]))


def _candidate_keys(idp: IdPClient, jwks_uri: str, kid: Optional[str]) -> list:
    def pick(keyset) -> list:
        usable = [k for k in keyset.keys if getattr(k, "public_key_use", None) in (None, "sig")]
        if kid:
            return [k.key for k in usable if k.key_id == kid]
        return [k.key for k in usable]

    found = pick(idp.keys(jwks_uri))
    if not found and kid:  # a rotated key: fetch the set again (rate-limited)
        found = pick(idp.keys(jwks_uri, refresh=True))
    if not found:
        raise LoginRefused(f'the ID token names a signing key ("{kid}") that the issuer '
                           f"{idp.settings.issuer} does not publish")
    return found


class OIDCLogins:
    """The login sessions and the three entry points (login URL, callback, authenticate).
    `settings()` answers the stored configuration (or None); `issue(identity, ttl)` stores the
    user's token (and groups) in one atomic change and answers the token."""

    def __init__(self, settings: Callable[[], Optional[OIDCSettings]],
                 issue: Callable[[Identity, float], str], clock=time.time):
        self._settings, self._issue, self.clock = settings, issue, clock
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._waiters = threading.BoundedSemaphore(MAX_WAITERS)
        self._jwks: dict = {}

    def _idp(self) -> IdPClient:
        s = self._settings()
        if s is None:
            raise OIDCNotConfigured()
        return IdPClient(s, self._jwks)

    def check_settings(self, s: OIDCSettings) -> None:
        """SetConfiguration's validation: the fields, then the issuer really is an OIDC IdP."""
        s.check()
        IdPClient(s, self._jwks).discover()

    def forget(self) -> None:
        """The configuration changed or auth was deactivated: logins in progress end."""
        with self._lock:
            for sess in self._sessions.values():
                sess.failure = sess.failure or LoginRefused("the OIDC configuration changed during this login; "
                                                            "start again")
                sess.done.set()
            self._sessions.clear()
            self._jwks.clear()

    # ---- GetOIDCLogin ------------------------------------------------------------------------
    def login_url(self) -> tuple[str, str]:
        idp = self._idp()
        doc = idp.discover()
        state, nonce = secrets.token_urlsafe(30)[:40], secrets.token_urlsafe(30)[:40]
        now = self.clock()
        with self._lock:
            for k in [k for k, v in self._sessions.items() if v.expires <= now]:
                del self._sessions[k]
            if len(self._sessions) >= MAX_SESSIONS:
                raise TooManyLogins(f"{MAX_SESSIONS} OIDC logins are already in progress; try again in a few minutes")
            self._sessions[state] = _Session(nonce, now + SESSION_TTL)
        s = idp.settings
        query = urlencode({"client_id": s.client_id, "redirect_uri": s.redirect_uri, "response_type": "code",
                           "scope": " ".join(s.requested_scopes()), "state": state, "nonce": nonce})
        endpoint = doc["authorization_endpoint"]
        url = endpoint + ("&" if "?" in endpoint else "?") + query
        if s.user_accessible_issuer_host:
            url = _rewrite_host(url, s.user_accessible_issuer_host)
        return url, state

    # ---- the callback --------------------------------------------------------------------------
    def callback(self, state: str, code: str, error: str = "", error_description: str = "") -> None:
        """Complete the login `state` with `code`; raises what the browser should be told.
        Only the first callback of a session counts."""
        refusal = (f"the identity provider refused the login: {error}"
                   f"{' (' + error_description + ')' if error_description else ''}") if error else ""
        if not state:
            raise InvalidArgument(f"{refusal}; the redirect names no login (no state)" if refusal
                                  else "invalid OIDC callback request: missing OIDC state token")
        with self._lock:
            sess = self._sessions.get(state)
            if sess is None or sess.expires <= self.clock():
                raise LoginRefused("this login is unknown, expired or already completed "
                                   "(start again with pachctl auth login)")
            if sess.busy or sess.done.is_set():
                raise LoginRefused("this login was already completed; a callback counts once")
            sess.busy = True
        try:
            if refusal:
                raise LoginRefused(refusal)
            if not code:
                raise InvalidArgument("invalid OIDC callback request: missing authorization code")
            idp = self._idp()
            doc = idp.discover()
            sess.identity = verify_id_token(idp, doc, idp.exchange(doc, code), sess.nonce)
        except AuthError as e:
            log.warning("OIDC login %s refused: %s", half(state), e)
            sess.failure = e
            raise
        except BaseException:
            sess.failure = IdPUnavailable("an unexpected error ended this login (pachd's log has the details)")
            raise
        finally:  # the waiting Authenticate sees identity or failure, never neither
            sess.busy = False
            sess.done.set()
        log.info("OIDC login %s: the identity provider vouched for %s", half(state), sess.identity.subject)

    # ---- Authenticate ----------------------------------------------------------------------------
    def redeem_state(self, state: str, still_waiting: Callable[[], bool] = lambda: True) -> str:
        """Wait for the callback of `state` (until the session expires or the caller goes
        away), then answer a Pachyderm token, once."""
        with self._lock:
            sess = self._sessions.get(state)
        if sess is None:
            raise LoginRefused("OIDC login state is unknown, expired or already used "
                               "(start a new login with pachctl auth login)")
        if not self._waiters.acquire(blocking=False):
            raise TooManyLogins("too many logins are waiting for their identity provider; try again shortly")
        try:
            while not sess.done.wait(timeout=0.5):
                if self.clock() >= sess.expires:
                    raise LoginRefused("error during authorization: OIDC state token expired "
                                       "(the sign-in at the identity provider did not finish in time)")
                if not still_waiting():
                    raise LoginRefused("the caller stopped waiting for this login")
        finally:
            self._waiters.release()
        with self._lock:
            if self._sessions.get(state) is sess:
                del self._sessions[state]  # redeemed: a second Authenticate with it is refused
            elif sess.failure is None:  # another Authenticate redeemed it first
                raise LoginRefused("OIDC login state is unknown, expired or already used "
                                   "(start a new login with pachctl auth login)")
        if sess.failure is not None:
            kind = IdPUnavailable if sess.failure.code == "FAILED_PRECONDITION" else LoginRefused
            raise kind(f"authorization failed: {sess.failure}")
        assert sess.identity is not None
        return self._issue(sess.identity, DEFAULT_SESSION_TTL)

    def redeem_id_token(self, raw: str) -> str:
        idp = self._idp()
        identity = verify_id_token(idp, idp.discover(), raw.strip(), None)
        ttl = min(identity.expires - self.clock(), DEFAULT_SESSION_TTL)
        if ttl <= 0:
            raise LoginRefused("the ID token has expired")
        return self._issue(identity, ttl)


def _rewrite_host(url: str, host: str) -> str:
    """user_accessible_issuer_host: the browser reaches the IdP at another address."""
    target = urlsplit(host if "://" in host else "//" + host)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=target.scheme or parts.scheme, netloc=target.netloc))

