"""Auth: the state machine behind auth_v2 and the interceptor. No gRPC here.

Invariants:
- All reads and changes of the state happen under one lock; a change is saved (atomically)
  before it is visible to the next call, and if saving fails the in-memory state is reloaded
  from the file, so memory never runs ahead of the disk.
- `authenticate` costs one SHA-256 and one dict lookup; expired tokens are refused (and
  dropped on the next change).
- Permissions are evaluated cluster -> project -> repo: the roles of the subject, of
  `allClusterUsers` and of every group the subject is a member of, on each level, apply to
  everything below it (Pachyderm's authorize_req.go). A spec repo grants repoReader to every
  signed-in subject and is otherwise evaluated as the repo of the same name.
- Activation binds what Pachyderm's does: pach:root clusterAdmin and allClusterUsers
  projectCreator on the cluster, allClusterUsers projectWriter on the `default` project if
  it exists. Deactivation forgets every binding, token, group and the OIDC configuration.
- An OIDC login (auth.oidc) changes the state once: the user's token and, when the IdP sent
  groups, the user's group memberships, in one atomic save.
"""
from __future__ import annotations

import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Optional

from auth.model import (ALL_CLUSTER_USERS, CLUSTER_RESOURCE, ROOT_USER, AlreadyActivated, BadToken,
                        InvalidArgument, NotActivated, NotAuthorized, NotFoundError, NotSignedIn, Resource,
                        canonical_subject, group_name, normalize_subject, pipeline_subject, project_resource,
                        repo_resource)
from auth.roles import CLUSTER, PROJECT, REPO, ROLES, SPEC_REPO, grants
from auth.state import AuthState, StateFile, TokenRecord, hash_token


def new_token() -> str:
    return secrets.token_hex(16)


class Auth:
    def __init__(self, path: Path, clock=time.time):
        self.file = StateFile(path)
        self.clock = clock
        self._lock = threading.RLock()
        self.state = self.file.load()
        self._pipeline_tokens: dict[str, str] = {}  # subject -> the token its workers hold (memory only)
        self._member_of: dict[str, tuple[str, ...]] = {}  # subject -> its groups (from state.groups)
        self._index_groups()

    # ---- persistence -------------------------------------------------------------------
    @contextmanager
    def _change(self):
        with self._lock:
            try:
                yield self.state
                self.file.save(self.state)
            except BaseException:
                self.state = self.file.load()
                raise
            finally:
                self._index_groups()

    def _index_groups(self) -> None:
        member_of: dict[str, list[str]] = {}
        for group, members in self.state.groups.items():
            for m in members:
                member_of.setdefault(m, []).append(group)
        self._member_of = {m: tuple(sorted(g)) for m, g in member_of.items()}

    @property
    def active(self) -> bool:
        return self.state.active

    def require_active(self) -> None:
        if not self.state.active:
            raise NotActivated()

    # ---- activation --------------------------------------------------------------------
    @staticmethod
    def _initial_bindings(default_project_exists: bool) -> dict[str, dict[str, list[str]]]:
        """Pachyderm's activateInTransaction: root is clusterAdmin, every signed-in user may
        create projects, and may create repos in (and list) the `default` project."""
        b = {CLUSTER_RESOURCE.key: {ROOT_USER: ["clusterAdmin"], ALL_CLUSTER_USERS: ["projectCreator"]}}
        if default_project_exists:
            b[project_resource("default").key] = {ALL_CLUSTER_USERS: ["projectWriter"]}
        return b

    def activate(self, root_token: str = "", default_project_exists: bool = True) -> str:
        with self._change() as st:
            if st.active:
                raise AlreadyActivated()
            token = root_token.strip() or new_token()
            st.active = True
            st.tokens = {hash_token(token): TokenRecord(ROOT_USER)}
            st.bindings = self._initial_bindings(default_project_exists)
            st.groups = {}
            self._pipeline_tokens.clear()
            return token

    def ensure_root_token(self, token: str, default_project_exists: bool = True) -> None:
        """pachd --auth-token: auth is active and `token` is a root token."""
        with self._lock:
            if self.state.active and hash_token(token) in self.state.tokens:
                return
        with self._change() as st:
            if not st.active:
                st.active = True
                st.tokens = {}
                st.bindings = self._initial_bindings(default_project_exists)
                st.groups = {}
            st.tokens[hash_token(token)] = TokenRecord(ROOT_USER)

    def deactivate(self) -> None:
        with self._change() as st:
            self.require_active()
            st.active, st.tokens, st.bindings, st.groups, st.oidc = False, {}, {}, {}, None
            self._pipeline_tokens.clear()

    def rotate_root_token(self, token: str = "") -> str:
        with self._change() as st:
            self.require_active()
            token = token.strip() or new_token()
            st.tokens = {h: t for h, t in st.tokens.items() if t.subject != ROOT_USER}
            st.tokens[hash_token(token)] = TokenRecord(ROOT_USER)
            return token

    # ---- tokens --------------------------------------------------------------------------
    def authenticate(self, token: Optional[str]) -> str:
        """The subject holding `token`; NotSignedIn without one, BadToken if unknown/expired."""
        if not token:
            raise NotSignedIn()
        rec = self.state.tokens.get(hash_token(token))
        if rec is None or (rec.expires is not None and rec.expires <= self.clock()):
            raise BadToken()
        return rec.subject

    def token_info(self, token: str) -> TokenRecord:
        rec = self.state.tokens.get(hash_token(token))
        if rec is None:
            raise BadToken()
        return rec

    def issue_token(self, subject: str, ttl: float = 0) -> str:
        subject = normalize_subject(subject)
        if ttl < 0:
            raise InvalidArgument(f"a token's time to live must be positive (got {ttl} seconds)")
        token = new_token()
        with self._change() as st:
            self.require_active()
            self._drop_expired(st)
            st.tokens[hash_token(token)] = TokenRecord(subject, self.clock() + ttl if ttl else None)
        return token

    def login_user(self, subject: str, groups: Optional[Iterable[str]], ttl: float) -> str:
        """An OIDC login succeeded: a token for `subject` living `ttl` seconds and, unless
        `groups` is None, `subject`'s groups set to exactly `groups` (Pachyderm's
        syncGroupMembership), saved together."""
        subject = canonical_subject(subject)
        wanted = None if groups is None else {group_name(g) for g in groups}
        token = new_token()
        with self._change() as st:
            self.require_active()
            self._drop_expired(st)
            if wanted is not None:
                self._set_groups(st, subject, wanted)
            st.tokens[hash_token(token)] = TokenRecord(subject, self.clock() + ttl)
        return token

    # ---- the OIDC identity provider's configuration ------------------------------------------
    def oidc_config(self) -> Optional[dict]:
        with self._lock:
            return dict(self.state.oidc) if self.state.oidc else None

    def set_oidc_config(self, config: Optional[dict]) -> None:
        with self._change() as st:
            self.require_active()
            st.oidc = dict(config) if config else None

    def robot_token(self, robot: str, ttl: float = 0) -> str:
        robot = robot.strip()
        if not robot:
            raise InvalidArgument("a robot name is required")
        return self.issue_token(robot if robot.startswith("robot:") else "robot:" + robot, ttl)

    def revoke(self, token: str) -> int:
        with self._change() as st:
            self.require_active()
            return 1 if st.tokens.pop(hash_token(token), None) is not None else 0

    def revoke_subject(self, subject: str) -> int:
        subject = normalize_subject(subject)
        if subject == ROOT_USER:
            raise InvalidArgument("the root user's tokens cannot be revoked this way (use rotate-root-token)")
        with self._change() as st:
            self.require_active()
            gone = [h for h, t in st.tokens.items() if t.subject == subject]
            for h in gone:
                del st.tokens[h]
            self._pipeline_tokens.pop(subject, None)
            return len(gone)

    def delete_expired(self) -> None:
        with self._change() as st:
            self._drop_expired(st)

    def _drop_expired(self, st: AuthState) -> None:
        now = self.clock()
        for h in [h for h, t in st.tokens.items() if t.expires is not None and t.expires <= now]:
            del st.tokens[h]

    def extract_tokens(self) -> list[tuple[str, TokenRecord]]:
        with self._lock:
            return list(self.state.tokens.items())

    def restore_token(self, hashed: str, subject: str, expires: Optional[float]) -> None:
        if expires is not None and expires <= self.clock():
            raise InvalidArgument("token expiration is in the past")
        with self._change() as st:
            self.require_active()
            st.tokens[hashed] = TokenRecord(normalize_subject(subject), expires)

    # ---- pipelines ---------------------------------------------------------------------------
    def pipeline_token(self, project: str, name: str) -> Optional[str]:
        """The token the pipeline's workers use (None with auth off). Kept in memory only: a
        restarted pachd issues a new one to the workers it starts."""
        if not self.state.active:
            return None
        subject = pipeline_subject(project, name)
        with self._lock:
            tok = self._pipeline_tokens.get(subject)
            if tok is not None and hash_token(tok) in self.state.tokens:
                return tok
            tok = new_token()
            with self._change() as st:  # earlier tokens of this pipeline (a previous pachd's) go
                for h in [h for h, t in st.tokens.items() if t.subject == subject]:
                    del st.tokens[h]
                st.tokens[hash_token(tok)] = TokenRecord(subject)
            self._pipeline_tokens[subject] = tok
            return tok

    def setup_pipeline(self, project: str, name: str, input_repos: Iterable[tuple[str, str]]) -> None:
        """The pipeline reads its inputs (repoReader) and writes its output repo (repoWriter)."""
        if not self.state.active:
            return
        subject = pipeline_subject(project, name)
        with self._change() as st:
            for b in st.bindings.values():  # an update may have dropped inputs
                b.pop(subject, None)
            for proj, repo in input_repos:
                self._bind(st, repo_resource(proj, repo), subject, ["repoReader"])
            self._bind(st, repo_resource(project, name), subject, ["repoWriter"])

    def remove_pipeline(self, project: str, name: str) -> None:
        if not self.state.active:
            return
        subject = pipeline_subject(project, name)
        with self._change() as st:
            for b in st.bindings.values():
                b.pop(subject, None)
            for h in [h for h, t in st.tokens.items() if t.subject == subject]:
                del st.tokens[h]
            self._pipeline_tokens.pop(subject, None)

    # ---- role bindings -----------------------------------------------------------------------
    def _bind(self, st: AuthState, resource: Resource, subject: str, roles: list[str]) -> None:
        entry = st.bindings.setdefault(resource.key, {})
        have = entry.setdefault(subject, [])
        for r in roles:
            if r not in have:
                have.append(r)

    def modify_binding(self, resource: Resource, subject: str, roles: list[str]) -> None:
        """Set `subject`'s roles on `resource` to exactly `roles` (none removes them)."""
        subject = normalize_subject(subject)
        for r in roles:
            role = ROLES.get(r)
            if role is None:
                raise InvalidArgument(f'unknown role "{r}" (known: {", ".join(sorted(ROLES))})')
            if resource.type not in role.can_be_bound_to:
                raise InvalidArgument(f"role {r} cannot be bound to a {resource.type.lower()}")
        if subject == ROOT_USER and resource.type == CLUSTER and "clusterAdmin" not in roles:
            raise InvalidArgument("cannot remove clusterAdmin from pach:root")
        with self._change() as st:
            self.require_active()
            entry = st.bindings.setdefault(resource.key, {})
            if roles:
                entry[subject] = list(dict.fromkeys(roles))
            else:
                entry.pop(subject, None)

    def grant(self, resource: Resource, subject: str, roles: list[str]) -> None:
        """Add roles (keeping the ones held): the creator of a repo becomes its repoOwner."""
        if not self.state.active or not subject or subject == ROOT_USER:
            return
        with self._change() as st:
            self._bind(st, resource, subject, roles)

    def drop_resource(self, resource: Resource) -> None:
        """A deleted repo or project takes its bindings with it (a new one of the same name
        starts with none)."""
        if not self.state.active:
            return
        with self._change() as st:
            st.bindings.pop(resource.key, None)
            if resource.type == PROJECT:
                for k in [k for k in st.bindings if k.startswith(f"{REPO}:{resource.name}/")]:
                    del st.bindings[k]

    def get_binding(self, resource: Resource) -> dict[str, list[str]]:
        self.require_active()
        with self._lock:
            return {s: list(r) for s, r in self.state.bindings.get(resource.key, {}).items()}

    # ---- groups (Pachyderm's ModifyMembers / SetGroupsForUser / GetGroups / GetUsers) ------------
    def modify_members(self, group: str, add: Iterable[str], remove: Iterable[str]) -> None:
        group = group_name(group)
        add = [canonical_subject(s) for s in add]
        remove = [canonical_subject(s) for s in remove]
        with self._change() as st:
            self.require_active()
            members = [m for m in st.groups.get(group, []) if m not in remove]
            members += [m for m in dict.fromkeys(add) if m not in members]
            if members:
                st.groups[group] = members
            else:
                st.groups.pop(group, None)

    def set_groups_for_user(self, subject: str, groups: Iterable[str]) -> None:
        subject = canonical_subject(subject)
        wanted = {group_name(g) for g in groups}
        with self._change() as st:
            self.require_active()
            self._set_groups(st, subject, wanted)

    @staticmethod
    def _set_groups(st: AuthState, subject: str, wanted: set[str]) -> None:
        for g in list(st.groups):
            if g not in wanted and subject in st.groups[g]:
                st.groups[g] = [m for m in st.groups[g] if m != subject]
                if not st.groups[g]:
                    del st.groups[g]
        for g in sorted(wanted):
            members = st.groups.setdefault(g, [])
            if subject not in members:
                members.append(subject)

    def groups_of(self, subject: str) -> list[str]:
        return list(self._member_of.get(subject, ()))

    def users(self, group: str = "") -> list[str]:
        self.require_active()
        with self._lock:
            if not group:
                return sorted(self._member_of)
            g = group_name(group)
            if g not in self.state.groups:
                raise NotFoundError(f'group "{g}" not found (it has no members)')
            return list(self.state.groups[g])

    # ---- evaluation ----------------------------------------------------------------------------
    def _levels(self, resource: Resource) -> list[str]:
        keys = [CLUSTER_RESOURCE.key]
        if resource.type in (PROJECT, REPO):
            keys.append(project_resource(resource.project).key)
        if resource.type == REPO:
            keys.append(resource.key)
        return keys

    def roles_of(self, subject: str, resource: Resource) -> list[str]:
        roles: list[str] = ["clusterAdmin"] if subject == ROOT_USER else []
        if resource.type == SPEC_REPO:  # Pachyderm: spec repos are world-readable
            roles.append("repoReader")
            resource = Resource(REPO, resource.name)
        b = self.state.bindings
        whos = (subject, ALL_CLUSTER_USERS, *self._member_of.get(subject, ()))
        for key in self._levels(resource):
            level = b.get(key)
            if not level:
                continue
            for who in whos:
                for r in level.get(who, ()):
                    if r not in roles:
                        roles.append(r)
        return roles

    def permissions(self, subject: str, resource: Resource) -> tuple[list[str], list[str]]:
        roles = self.roles_of(subject, resource)
        perms: list[str] = []
        for r in roles:
            role = ROLES.get(r)
            for p in role.permissions if role else ():
                if p not in perms:
                    perms.append(p)
        return perms, roles

    def reported(self, subject: str, resource: Resource) -> tuple[list[str], list[str]]:
        """(permissions, roles) as GetPermissions reports them (Pachyderm's
        rolesForResourceType): only roles returned for the resource's type (a cluster-wide
        projectCreator is not shown on a repo), and the permissions those roles grant."""
        rtype = REPO if resource.type == SPEC_REPO else resource.type
        roles = [r for r in self.roles_of(subject, resource) if r in ROLES and rtype in ROLES[r].returned_for]
        perms: list[str] = []
        for r in roles:
            for p in ROLES[r].permissions:
                if p not in perms:
                    perms.append(p)
        return perms, roles

    def has(self, subject: str, permission: str, resource: Resource) -> bool:
        return any(grants(r, permission) for r in self.roles_of(subject, resource))

    def check(self, subject: str, resource: Resource, *permissions: str) -> None:
        missing = [p for p in permissions if not self.has(subject, p, resource)]
        if missing:
            raise NotAuthorized(subject, missing, resource)
