"""The auth_v2.API servicer: request -> Auth -> response. No logic beyond conversion.

Invariants:
- With auth off every method but Activate answers UNIMPLEMENTED "the auth service is not
  activated" (both Pachyderm clients map this text to AuthServiceNotActivated).
- The caller is found from its own `authn-token` (the interceptor has already refused
  calls without a valid one where the method needs it).
- Groups are Pachyderm's: ModifyMembers / SetGroupsForUser change membership, GetGroups,
  GetGroupsForPrincipal and GetUsers read it; a binding to `group:NAME` applies to its members.
- OIDC logins (auth.oidc): Get/SetConfiguration keep Pachyderm's OIDCConfig in the auth
  state (SetConfiguration checks the issuer's discovery document first; no configuration
  removes it); GetOIDCLogin answers the IdP's login URL and the state; Authenticate with
  `oidc_state` waits for pachd's callback of that login, with `id_token` verifies the token.
  There is no licensing: Activate activates.
"""
from __future__ import annotations

import functools

import grpc
from google.protobuf import timestamp_pb2

from auth.core import Auth
from auth.interceptor import status_of, token_of
from auth.model import CLUSTER_RESOURCE, AuthError, InvalidArgument, NotActivated, Resource, normalize_subject
from auth.oidc import Identity, OIDCLogins, OIDCSettings
from auth.roles import CLUSTER, PROJECT, REPO, ROLES, roles_for_permission
from proto.auth_v2 import auth_pb2, auth_pb2_grpc

_TYPES = {auth_pb2.CLUSTER: CLUSTER, auth_pb2.PROJECT: PROJECT, auth_pb2.REPO: REPO}
_TYPE_NUMBERS = {v: k for k, v in _TYPES.items()}


def resource_from_proto(r) -> Resource:
    t = _TYPES.get(r.type)
    if t is None:
        raise InvalidArgument(f"unsupported resource type {auth_pb2.ResourceType.Name(r.type)} "
                              "(CLUSTER, PROJECT or REPO)")
    if t == CLUSTER:
        return CLUSTER_RESOURCE
    if not r.name:
        raise InvalidArgument(f"a {t.lower()} resource needs a name")
    if t == REPO and "/" not in r.name:
        return Resource(REPO, f"default/{r.name}")
    return Resource(t, r.name)


def _perm_names(values) -> list[str]:
    try:
        return [auth_pb2.Permission.Name(v) for v in values]
    except ValueError as e:
        raise InvalidArgument(f"unknown permission: {e}") from None


def _role_message(role) -> auth_pb2.Role:
    return auth_pb2.Role(name=role.name, permissions=[auth_pb2.Permission.Value(p) for p in role.permissions],
                         can_be_bound_to=[_TYPE_NUMBERS[t] for t in role.can_be_bound_to],
                         returned_for=[_TYPE_NUMBERS[t] for t in role.returned_for])


def _timestamp(t) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(t * 1e9))
    return ts


def rpc(fn):
    @functools.wraps(fn)
    def wrapper(self, request, context):
        try:
            if fn.__name__ != "Activate":
                self.auth.require_active()
            return fn(self, request, context)
        except AuthError as e:
            context.abort(status_of(e), str(e))
    return wrapper


def settings_from_proto(c: auth_pb2.OIDCConfig) -> OIDCSettings:
    return OIDCSettings(issuer=c.issuer.strip(), client_id=c.client_id.strip(), client_secret=c.client_secret,
                        redirect_uri=c.redirect_uri.strip(), scopes=tuple(x.strip() for x in c.scopes if x.strip()),
                        require_email_verified=c.require_email_verified, localhost_issuer=c.localhost_issuer,
                        user_accessible_issuer_host=c.user_accessible_issuer_host.strip())


def settings_to_proto(s: OIDCSettings) -> auth_pb2.OIDCConfig:
    return auth_pb2.OIDCConfig(issuer=s.issuer, client_id=s.client_id, client_secret=s.client_secret,
                               redirect_uri=s.redirect_uri, scopes=list(s.scopes),
                               require_email_verified=s.require_email_verified, localhost_issuer=s.localhost_issuer,
                               user_accessible_issuer_host=s.user_accessible_issuer_host)


def oidc_logins(auth: Auth) -> OIDCLogins:
    """The OIDC logins over `auth`'s stored configuration; a successful one becomes a token."""
    def settings():
        d = auth.oidc_config()
        return OIDCSettings.from_json(d) if d else None

    def issue(identity: Identity, ttl: float) -> str:
        return auth.login_user(identity.subject, identity.groups, ttl)

    return OIDCLogins(settings, issue, clock=auth.clock)


class AuthServicer(auth_pb2_grpc.APIServicer):
    def __init__(self, auth: Auth, oidc: OIDCLogins | None = None):
        self.auth = auth
        self.oidc = oidc if oidc is not None else oidc_logins(auth)
        self.on_activate = None  # set by pachd: give existing pipelines their bindings and tokens
        self.default_project_exists = lambda: True  # set by pachd: decides a default grant

    def _caller(self, context) -> str:
        return self.auth.authenticate(token_of(context.invocation_metadata()))

    @rpc
    def Activate(self, req, ctx):
        token = self.auth.activate(req.root_token, default_project_exists=self.default_project_exists())
        if self.on_activate is not None:
            self.on_activate()
        return auth_pb2.ActivateResponse(pach_token=token)

    @rpc
    def Deactivate(self, req, ctx):
        self.auth.deactivate()
        self.oidc.forget()
        return auth_pb2.DeactivateResponse()

    @rpc
    def GetConfiguration(self, req, ctx):
        d = self.auth.oidc_config()
        return auth_pb2.GetConfigurationResponse(
            configuration=settings_to_proto(OIDCSettings.from_json(d)) if d else auth_pb2.OIDCConfig())

    @rpc
    def SetConfiguration(self, req, ctx):
        if not req.HasField("configuration"):
            self.auth.set_oidc_config(None)
        else:
            settings = settings_from_proto(req.configuration)
            self.oidc.check_settings(settings)
            self.auth.set_oidc_config(settings.to_json())
        self.oidc.forget()
        return auth_pb2.SetConfigurationResponse()

    @rpc
    def GetOIDCLogin(self, req, ctx):
        url, state = self.oidc.login_url()
        return auth_pb2.GetOIDCLoginResponse(login_url=url, state=state)

    @rpc
    def Authenticate(self, req, ctx):
        if req.oidc_state:
            token = self.oidc.redeem_state(req.oidc_state, still_waiting=ctx.is_active)
        elif req.id_token:
            token = self.oidc.redeem_id_token(req.id_token)
        else:
            raise InvalidArgument("unrecognized authentication mechanism: set oidc_state (from GetOIDCLogin) "
                                  "or id_token")
        return auth_pb2.AuthenticateResponse(pach_token=token)

    @rpc
    def RotateRootToken(self, req, ctx):
        return auth_pb2.RotateRootTokenResponse(root_token=self.auth.rotate_root_token(req.root_token))

    @rpc
    def WhoAmI(self, req, ctx):
        token = token_of(ctx.invocation_metadata())
        subject = self.auth.authenticate(token)
        rec = self.auth.token_info(token)
        resp = auth_pb2.WhoAmIResponse(username=subject)
        if rec.expires is not None:
            resp.expiration.CopyFrom(_timestamp(rec.expires))
        return resp

    @rpc
    def GetRobotToken(self, req, ctx):
        return auth_pb2.GetRobotTokenResponse(token=self.auth.robot_token(req.robot, req.ttl))

    @rpc
    def RevokeAuthToken(self, req, ctx):
        caller = self._caller(ctx)
        try:
            owner = self.auth.token_info(req.token).subject
        except AuthError:
            return auth_pb2.RevokeAuthTokenResponse(number=0)
        if owner != caller:
            self.auth.check(caller, CLUSTER_RESOURCE, "CLUSTER_AUTH_REVOKE_USER_TOKENS")
        return auth_pb2.RevokeAuthTokenResponse(number=self.auth.revoke(req.token))

    @rpc
    def RevokeAuthTokensForUser(self, req, ctx):
        return auth_pb2.RevokeAuthTokensForUserResponse(number=self.auth.revoke_subject(req.username))

    @rpc
    def ModifyRoleBinding(self, req, ctx):
        self.auth.modify_binding(resource_from_proto(req.resource), req.principal, list(req.roles))
        return auth_pb2.ModifyRoleBindingResponse()

    @rpc
    def GetRoleBinding(self, req, ctx):
        binding = self.auth.get_binding(resource_from_proto(req.resource))
        out = auth_pb2.RoleBinding()
        for subject, roles in binding.items():
            for r in roles:
                out.entries[subject].roles[r] = True
        return auth_pb2.GetRoleBindingResponse(binding=out)

    @rpc
    def Authorize(self, req, ctx):
        caller = self._caller(ctx)
        res = resource_from_proto(req.resource)
        wanted = _perm_names(req.permissions)
        perms, _ = self.auth.permissions(caller, res)
        sat = [p for p in wanted if p in perms]
        miss = [p for p in wanted if p not in perms]
        return auth_pb2.AuthorizeResponse(
            authorized=not miss, principal=caller,
            satisfied=[auth_pb2.Permission.Value(p) for p in sat],
            missing=[auth_pb2.Permission.Value(p) for p in miss])

    def _permissions(self, subject: str, resource) -> auth_pb2.GetPermissionsResponse:
        perms, roles = self.auth.reported(subject, resource)
        return auth_pb2.GetPermissionsResponse(permissions=[auth_pb2.Permission.Value(p) for p in perms],
                                               roles=roles)

    @rpc
    def GetPermissions(self, req, ctx):
        return self._permissions(self._caller(ctx), resource_from_proto(req.resource))

    @rpc
    def GetPermissionsForPrincipal(self, req, ctx):
        return self._permissions(normalize_subject(req.principal), resource_from_proto(req.resource))

    @rpc
    def GetRolesForPermission(self, req, ctx):
        name = _perm_names([req.permission])[0]
        return auth_pb2.GetRolesForPermissionResponse(roles=[_role_message(r) for r in roles_for_permission(name)])

    @rpc
    def ExtractAuthTokens(self, req, ctx):
        out = auth_pb2.ExtractAuthTokensResponse()
        for h, rec in self.auth.extract_tokens():
            info = out.tokens.add(subject=rec.subject, hashed_token=h)
            if rec.expires is not None:
                info.expiration.CopyFrom(_timestamp(rec.expires))
        return out

    @rpc
    def RestoreAuthToken(self, req, ctx):
        t = req.token
        expires = t.expiration.ToNanoseconds() / 1e9 if t.HasField("expiration") else None
        if not t.hashed_token:
            raise InvalidArgument("a token to restore needs its hashed_token")
        self.auth.restore_token(t.hashed_token, t.subject, expires)
        return auth_pb2.RestoreAuthTokenResponse()

    @rpc
    def ModifyMembers(self, req, ctx):
        self.auth.modify_members(req.group, list(req.add), list(req.remove))
        return auth_pb2.ModifyMembersResponse()

    @rpc
    def SetGroupsForUser(self, req, ctx):
        self.auth.set_groups_for_user(req.username, list(req.groups))
        return auth_pb2.SetGroupsForUserResponse()

    @rpc
    def GetGroups(self, req, ctx):
        return auth_pb2.GetGroupsResponse(groups=self.auth.groups_of(self._caller(ctx)))

    @rpc
    def GetGroupsForPrincipal(self, req, ctx):
        return auth_pb2.GetGroupsResponse(groups=self.auth.groups_of(req.principal.strip()))

    @rpc
    def GetUsers(self, req, ctx):
        return auth_pb2.GetUsersResponse(usernames=self.auth.users(req.group))

    @rpc
    def DeleteExpiredAuthTokens(self, req, ctx):
        self.auth.delete_expired()
        return auth_pb2.DeleteExpiredAuthTokensResponse()


__all__ = ["AuthServicer", "resource_from_proto", "ROLES", "NotActivated"]
