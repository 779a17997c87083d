"""`pachctl auth ...`: activate, deactivate, login/logout/use-auth-token, whoami,
get-robot-token, revoke, rotate-root-token, set|get cluster|project|repo, check
project|repo, roles-for-permission, get-groups, get-config/set-config — with Pachyderm's
outputs.

Invariants:
- The token in use is the active context's `session_token` (Pachyderm's config field): activate
  and login write it there, logout clears it.
- Role lists are `role1,role2` or `none`; subjects are `user:NAME`, `robot:NAME`,
  `pipeline:PROJECT/NAME`, `group:NAME` or `allClusterUsers` (a bare name means `user:NAME`).
- `auth login` is Pachyderm's OIDC login: it prints the identity provider's login URL, tries
  to open a browser (not with --no-browser) and waits for pachd to see the sign-in; with
  --id-token it reads an ID token on stdin instead. `--token T` (ours) logs in with a
  Pachyderm token (robot or root) and checks it first.
- A refused login leaves the stored token as it was.
"""
from __future__ import annotations

import json
import sys
import time

import click
import grpc

from pachctl.cli import CliError, PCommand, VerbGroup, get_app, parse_duration, root
from proto.auth_v2 import auth_pb2

WARNING = ("WARNING: DO NOT LOSE THE AUTH TOKEN BELOW. STORE IT SECURELY FOR THE LIFE OF THE CLUSTER."
           "THIS TOKEN WILL ALWAYS HAVE ADMIN ACCESS TO FIX THE CLUSTER CONFIGURATION.")

auth = VerbGroup("auth", help="Auth commands manage access to data in a Pachyderm cluster")
root.add_command(auth)
get_group = VerbGroup("get", help="Get the role bindings for a resource")
set_group = VerbGroup("set", help="Set the role bindings for a resource")
check_group = VerbGroup("check", help="Check whether a subject has a permission on a resource")
for _g in (get_group, set_group, check_group):
    auth.add_command(_g)


def sub(group, name: str, arity=(0, 0), metavar: str = "", **kw):
    def deco(f):
        if arity != (0, 0):
            f = click.argument("args", nargs=-1, metavar=metavar)(f)
        cmd = click.command(name, cls=PCommand, arity=arity, **kw)(f)
        group.add_command(cmd)
        return cmd
    return deco


def _client():
    return get_app().client()


def _save_token(token: str) -> None:
    cfg = get_app().config
    cfg.update_context(None, session_token=token)
    cfg.save()


def _read_token(prompt: str) -> str:
    if sys.stdin.isatty():
        import getpass
        return getpass.getpass(prompt + " ").strip()
    print(prompt, flush=True)
    return sys.stdin.readline().strip()


def _roles_arg(text: str) -> list[str]:
    return [] if text == "none" else [r for r in text.split(",") if r]


def _resource(kind: str, name: str = "", project: str = "default") -> auth_pb2.Resource:
    if kind == "repo":
        return auth_pb2.Resource(type=auth_pb2.REPO, name=f"{project}/{name}")
    if kind == "project":
        return auth_pb2.Resource(type=auth_pb2.PROJECT, name=name)
    return auth_pb2.Resource(type=auth_pb2.CLUSTER)


def _go_list(items) -> str:
    return "[" + " ".join(items) + "]"


@sub(auth, "activate", help="Activate Pachyderm's auth system, and restrict access to existing data to the root user")
@click.option("--supply-root-token", is_flag=True,
              help="Prompt the user to input a root token on stdin, rather than generating a random one.")
@click.option("--only-activate", is_flag=True, help="Activate auth without configuring the OIDC service (always so here)")
def activate(supply_root_token, only_activate):
    token = _read_token("Root token:") if supply_root_token else ""
    c = _client()
    resp = c.auth.Activate(auth_pb2.ActivateRequest(root_token=token))
    _save_token(resp.pach_token)
    print(WARNING)
    print(f"Pachyderm root token:\n{resp.pach_token}")


@sub(auth, "deactivate", help="Delete all ACLs, tokens and admins, and deactivate Pachyderm auth")
def deactivate():
    print("Are you sure you want to delete ALL auth information (ACLs, tokens, and admins) in this cluster, "
          "and expose ALL data? yN", flush=True)
    confirm = sys.stdin.readline()
    if not confirm or confirm[0] not in "yY":
        raise CliError("operation aborted")
    _client().auth.Deactivate(auth_pb2.DeactivateRequest())


LOGIN_WAIT = 200.0  # seconds: longer than pachd keeps a login (3 minutes)


def _half(state: str) -> str:
    return f"{state[:len(state) // 2]}.../{len(state)}"


def _open_browser(url: str) -> bool:
    import webbrowser
    try:
        return webbrowser.open(url)
    except Exception:  # noqa: BLE001 - no browser is not an error: the URL is printed
        return False


def _oidc_login(c, no_browser: bool) -> str:
    try:
        info = c.auth.GetOIDCLogin(auth_pb2.GetOIDCLoginRequest())
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.FAILED_PRECONDITION and "configuration not found" in (e.details() or ""):
            raise CliError("no authentication providers are configured (log in with a Pachyderm token "
                           "instead: pachctl auth login --token TOKEN)") from None
        raise
    print("You will momentarily be directed to your IdP and asked to authorize Pachyderm's login app on your "
          f"IdP.\n\nPaste the following URL into a browser if not automatically redirected:\n\n{info.login_url}\n\n",
          flush=True)
    if not no_browser and not _open_browser(info.login_url):
        print("Couldn't open a browser, visit the page manually.", flush=True)
    print("Retrieving Pachyderm token...", flush=True)
    deadline = time.monotonic() + LOGIN_WAIT
    while True:  # pachd answers when the browser's sign-in reaches it; a dropped call is retried
        try:
            return c.auth.Authenticate(auth_pb2.AuthenticateRequest(oidc_state=info.state),
                                       timeout=max(1.0, deadline - time.monotonic())).pach_token
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                    and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise CliError(f"authorization failed (OIDC state token: {_half(info.state)!r}; Pachyderm logs may "
                           f"contain more information): {e.details()}") from None


@sub(auth, "login", help="Log in to Pachyderm. Any resources that have been restricted to the account you have "
                         "with your ID provider (e.g. Okta, Keycloak) will subsequently be accessible.")
@click.option("--no-browser", "-b", is_flag=True, help="If set, don't try to open a web browser")
@click.option("--id-token", "-t", "id_token", is_flag=True,
              help="If set, read an ID token on stdin to authenticate the user")
@click.option("--token", "token", default=None,
              help="Log in with a Pachyderm auth token (a robot token or the root token) instead of the ID "
                   "provider; it is checked before it is stored")
def login(no_browser, id_token, token):
    from pachctl.client import PachClient
    app = get_app()
    if token is not None:
        token = token.strip()
        if not token:
            raise CliError("no token given")
        with PachClient(app.config.pachd_address(app.env), token=token,
                        server_cas=(app.config.active_context(app.env)[1] or {}).get("server_cas", "")) as c:
            who = c.auth.WhoAmI(auth_pb2.WhoAmIRequest())
        _save_token(token)
        print(f'You are "{who.username}"', file=sys.stderr)
        return
    c = _client()
    if id_token:
        raw = _read_token("ID token:")
        if not raw:
            raise CliError("no ID token given")
        try:
            resp = c.auth.Authenticate(auth_pb2.AuthenticateRequest(id_token=raw))
        except grpc.RpcError as e:
            raise CliError(f"authorization failed (Pachyderm logs may contain more information): {e.details()}") \
                from None
        pach_token = resp.pach_token
    else:
        pach_token = _oidc_login(c, no_browser)
    _save_token(pach_token)


@sub(auth, "use-auth-token", help="Read a Pachyderm auth token from stdin, and write it to the current "
                                  "user's Pachyderm config file")
def use_auth_token():
    _save_token(_read_token("Please paste your Pachyderm auth token:"))


@sub(auth, "logout", help="Log out of Pachyderm by deleting your local credential")
def logout():
    _save_token("")


@sub(auth, "whoami", help="Print your Pachyderm identity.")
def whoami():
    resp = _client().auth.WhoAmI(auth_pb2.WhoAmIRequest())
    print(f'You are "{resp.username}"')
    if resp.HasField("expiration"):
        t = time.gmtime(resp.expiration.seconds)
        print("session expires: " + time.strftime("%d %b %y %H:%M UTC", t))


@sub(auth, "get-robot-token", arity=(1, 1), metavar="[username]",
     help="Get an auth token for a robot user with the specified name.")
@click.option("-q", "--quiet", is_flag=True, help="if set, only print the resulting token (if successful).")
@click.option("--ttl", default="", help='if set, the resulting auth token will have the given lifetime '
              '(a Go duration such as "30s" or "1h2m3s"). If not set, the token does not expire.')
def get_robot_token(args, quiet, ttl):
    req = auth_pb2.GetRobotTokenRequest(robot=args[0])
    if ttl:
        try:
            req.ttl = int(parse_duration(ttl))
        except (ValueError, TypeError):
            raise CliError(f'could not parse duration "{ttl}"') from None
    resp = _client().auth.GetRobotToken(req)
    print(resp.token if quiet else f"Token: {resp.token}")


@sub(auth, "revoke", help="Revoke a Pachyderm auth token.")
@click.option("--token", default="", help="Pachyderm auth token that should be revoked")
@click.option("--user", default="", help="User whose Pachyderm auth tokens should be revoked")
def revoke(token, user):
    if not token and not user:
        raise CliError("one of --token or --user must be set")
    if token and user:
        raise CliError("only one of --token or --user may be set")
    c = _client()
    if token:
        c.auth.RevokeAuthToken(auth_pb2.RevokeAuthTokenRequest(token=token))
    else:
        c.auth.RevokeAuthTokensForUser(auth_pb2.RevokeAuthTokensForUserRequest(username=user))


@sub(auth, "get-config", help="Retrieve Pachyderm's current auth configuration")
@click.option("--output-format", "-o", "fmt", default="json", help='output format ("json" or "yaml")')
def get_config(fmt):
    from google.protobuf import json_format
    resp = _client().auth.GetConfiguration(auth_pb2.GetConfigurationRequest())
    if not resp.HasField("configuration"):
        print("no auth config set", file=sys.stderr)
        return
    d = json_format.MessageToDict(resp.configuration, preserving_proto_field_name=True)
    fmt = (fmt or "json").lower()
    if fmt == "json":
        print(json.dumps(d, indent=2))
    elif fmt == "yaml":
        import yaml
        sys.stdout.write(yaml.safe_dump(d, sort_keys=False))
    else:
        raise CliError(f"invalid output format: {fmt}")


@sub(auth, "set-config", help="Set Pachyderm's current auth configuration (an OIDCConfig as JSON or YAML: "
                              "issuer, client_id, client_secret, redirect_uri, scopes, require_email_verified, "
                              "localhost_issuer, user_accessible_issuer_host)")
@click.option("--file", "-f", "path", default="-", help="input file (to use as the new config); - reads stdin")
def set_config(path):
    from google.protobuf import json_format
    import yaml
    if not path:
        raise CliError('must set input file (use "-" to read from stdin)')
    try:
        raw = sys.stdin.read() if path == "-" else open(path).read()
    except OSError as e:
        raise CliError(f'could not read config from "{path}": {e.strerror or e}') from None
    try:
        data = yaml.safe_load(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("expected an object with the OIDCConfig fields")
        config = json_format.ParseDict(data, auth_pb2.OIDCConfig())
    except (yaml.YAMLError, ValueError, json_format.ParseError) as e:
        raise CliError(f"could not parse config: {e}") from None
    _client().auth.SetConfiguration(auth_pb2.SetConfigurationRequest(configuration=config))


@sub(auth, "rotate-root-token", help="Rotate the root user's auth token")
@click.option("--supply-token", default="", help="An auth token to rotate to. If left blank, one will be auto-generated.")
def rotate_root_token(supply_token):
    resp = _client().auth.RotateRootToken(auth_pb2.RotateRootTokenRequest(root_token=supply_token))
    print(WARNING)
    print(f"Pachyderm auth token:\n{resp.root_token}")


@sub(auth, "get-groups", arity=(0, 1), metavar="[username]",
     help="Get the list of groups a user belongs to. If no user is specified, the current user's groups "
          "are listed.")
def get_groups(args):
    c = _client()
    if args:
        resp = c.auth.GetGroupsForPrincipal(auth_pb2.GetGroupsForPrincipalRequest(principal=args[0]))
    else:
        resp = c.auth.GetGroups(auth_pb2.GetGroupsRequest())
    print("\n".join(resp.groups))


@sub(auth, "roles-for-permission", arity=(1, 1), metavar="<permission>",
     help="List roles that grant the given permission")
def roles_for_permission(args):
    try:
        perm = auth_pb2.Permission.Value(args[0].upper())
    except ValueError:
        raise CliError(f'unknown permission "{args[0]}"') from None
    resp = _client().auth.GetRolesForPermission(auth_pb2.GetRolesForPermissionRequest(permission=perm))
    sys.stdout.write("\n".join(sorted(r.name for r in resp.roles)))


def _print_binding(resp) -> None:
    for subject in sorted(resp.binding.entries):
        roles = [r for r, on in resp.binding.entries[subject].roles.items() if on]
        print(f"{subject}: {_go_list(sorted(roles))}")


def _modify(resource, roles_text: str, subject: str) -> None:
    _client().auth.ModifyRoleBinding(auth_pb2.ModifyRoleBindingRequest(
        resource=resource, principal=subject, roles=_roles_arg(roles_text)))


def _get(resource) -> None:
    _print_binding(_client().auth.GetRoleBinding(auth_pb2.GetRoleBindingRequest(resource=resource)))


def _check(resource, user) -> None:
    c = _client()
    if user:
        resp = c.auth.GetPermissionsForPrincipal(auth_pb2.GetPermissionsForPrincipalRequest(resource=resource,
                                                                                            principal=user))
    else:
        resp = c.auth.GetPermissions(auth_pb2.GetPermissionsRequest(resource=resource))
    perms = [auth_pb2.Permission.Name(p) for p in resp.permissions]
    print(f"Roles: {_go_list(resp.roles)}\nPermissions: {_go_list(perms)}")


_project_opt = click.option("--project", default=None, help="The project containing the repo.")


@sub(set_group, "cluster", arity=(2, 2), metavar="[role1,role2 | none ] subject",
     help="Set the roles that 'username' has on the cluster")
def set_cluster(args):
    _modify(_resource("cluster"), args[0], args[1])


@sub(set_group, "project", arity=(3, 3), metavar="<project> [role1,role2 | none ] <subject>",
     help="Set the roles that 'username' has on 'project'")
def set_project(args):
    _modify(_resource("project", args[0]), args[1], args[2])


@sub(set_group, "repo", arity=(3, 3), metavar="<repo> [role1,role2 | none ] <subject>",
     help="Set the roles that 'username' has on 'repo'")
@_project_opt
def set_repo(args, project):
    _modify(_resource("repo", args[0], get_app().project(project)), args[1], args[2])


@sub(get_group, "cluster", help="Get the role bindings for the cluster")
def get_cluster():
    _get(_resource("cluster"))


@sub(get_group, "project", arity=(1, 1), metavar="<project>", help="Get the role bindings for 'project'")
def get_project(args):
    _get(_resource("project", args[0]))


@sub(get_group, "repo", arity=(1, 1), metavar="<repo>", help="Get the role bindings for 'repo'")
@_project_opt
def get_repo(args, project):
    _get(_resource("repo", args[0], get_app().project(project)))


@sub(check_group, "project", arity=(1, 2), metavar="<project> [<user>]",
     help="Check the permissions a user has on 'project'")
def check_project(args):
    _check(_resource("project", args[0]), args[1] if len(args) > 1 else "")


@sub(check_group, "repo", arity=(1, 2), metavar="<repo> [<user>]", help="Check the permissions a user has on 'repo'")
@_project_opt
def check_repo(args, project):
    _check(_resource("repo", args[0], get_app().project(project)), args[1] if len(args) > 1 else "")
