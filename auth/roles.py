"""Pachyderm's built-in roles and the permissions each grants (names as auth_v2.Permission).

Invariants:
- Same names, permissions and resource types as Pachyderm's src/server/auth/server/roles.go;
  roles that include another list the other's permissions (repoWriter > repoReader ...).
- `can_be_bound_to` says on which resource types a role may be bound; `returned_for`
  which roles GetPermissions reports for a resource type.
"""
from __future__ import annotations

from dataclasses import dataclass

CLUSTER, PROJECT, REPO = "CLUSTER", "PROJECT", "REPO"
# A pipeline's spec repo (Pachyderm's ResourceType SPEC_REPO): readable by every signed-in
# user, anything more is checked against the repo of the same name. No role is bound to it.
SPEC_REPO = "SPEC_REPO"


@dataclass(frozen=True)
class Role:
    name: str
    permissions: tuple[str, ...]
    can_be_bound_to: tuple[str, ...]
    returned_for: tuple[str, ...]


def _union(*sets) -> tuple[str, ...]:
    out: list[str] = []
    for s in sets:
        for p in s:
            if p not in out:
                out.append(p)
    return tuple(out)


_REPO_READER = ("REPO_READ", "REPO_INSPECT_COMMIT", "REPO_LIST_COMMIT", "REPO_LIST_BRANCH",
                "REPO_LIST_FILE", "REPO_INSPECT_FILE", "REPO_ADD_PIPELINE_READER",
                "REPO_REMOVE_PIPELINE_READER", "PIPELINE_LIST_JOB")
_REPO_WRITER = _union(_REPO_READER, ("REPO_WRITE", "REPO_DELETE_COMMIT", "REPO_CREATE_BRANCH",
                                     "REPO_DELETE_BRANCH", "REPO_ADD_PIPELINE_WRITER"))
_REPO_OWNER = _union(_REPO_WRITER, ("REPO_MODIFY_BINDINGS", "REPO_DELETE"))
_OIDC_APP_ADMIN = ("CLUSTER_IDENTITY_DELETE_OIDC_CLIENT", "CLUSTER_IDENTITY_CREATE_OIDC_CLIENT",
                   "CLUSTER_IDENTITY_UPDATE_OIDC_CLIENT", "CLUSTER_IDENTITY_LIST_OIDC_CLIENTS",
                   "CLUSTER_IDENTITY_GET_OIDC_CLIENT")
_IDP_ADMIN = ("CLUSTER_IDENTITY_CREATE_IDP", "CLUSTER_IDENTITY_UPDATE_IDP", "CLUSTER_IDENTITY_LIST_IDPS",
              "CLUSTER_IDENTITY_GET_IDP", "CLUSTER_IDENTITY_DELETE_IDP")
_IDENTITY_ADMIN = ("CLUSTER_IDENTITY_SET_CONFIG", "CLUSTER_IDENTITY_GET_CONFIG")
_DEBUGGER = ("CLUSTER_DEBUG_DUMP", "CLUSTER_GET_PACHD_LOGS", "CLUSTER_GET_LOKI_LOGS")
_LOKI_LOG_READER = ("CLUSTER_GET_LOKI_LOGS",)
_ROBOT_USER = ("CLUSTER_AUTH_GET_ROBOT_TOKEN",)
_LICENSE_ADMIN = ("CLUSTER_LICENSE_ACTIVATE", "CLUSTER_LICENSE_GET_CODE", "CLUSTER_LICENSE_ADD_CLUSTER",
                  "CLUSTER_LICENSE_UPDATE_CLUSTER", "CLUSTER_LICENSE_DELETE_CLUSTER",
                  "CLUSTER_LICENSE_LIST_CLUSTERS")
_SECRET_ADMIN = ("CLUSTER_CREATE_SECRET", "CLUSTER_LIST_SECRETS", "SECRET_INSPECT", "SECRET_DELETE")
_PACHD_LOG_READER = ("CLUSTER_GET_PACHD_LOGS",)
_PROJECT_VIEWER = ("PROJECT_LIST_REPO",)
_PROJECT_WRITER = _union(_PROJECT_VIEWER, ("PROJECT_CREATE_REPO",))
# PROJECT_SET_DEFAULTS: granted by no role in the roles.go read; projectOwner (and so
# clusterAdmin) gets it here, else nobody could call SetProjectDefaults
_PROJECT_OWNER = _union(_REPO_OWNER, _PROJECT_WRITER, ("PROJECT_DELETE", "PROJECT_MODIFY_BINDINGS",
                                                     "PROJECT_SET_DEFAULTS"))
_PROJECT_CREATOR = ("PROJECT_CREATE",)
_CLUSTER_ADMIN = _union(
    _REPO_OWNER, _OIDC_APP_ADMIN, _IDP_ADMIN, _IDENTITY_ADMIN, _DEBUGGER, _LOKI_LOG_READER, _ROBOT_USER,
    _LICENSE_ADMIN, _SECRET_ADMIN, _PACHD_LOG_READER, _PROJECT_OWNER, _PROJECT_CREATOR,
    ("CLUSTER_MODIFY_BINDINGS", "CLUSTER_GET_BINDINGS", "CLUSTER_AUTH_ACTIVATE", "CLUSTER_AUTH_DEACTIVATE",
     "CLUSTER_AUTH_GET_CONFIG", "CLUSTER_AUTH_SET_CONFIG", "CLUSTER_AUTH_MODIFY_GROUP_MEMBERS",
     "CLUSTER_AUTH_GET_GROUPS", "CLUSTER_AUTH_GET_GROUP_USERS", "CLUSTER_AUTH_EXTRACT_TOKENS",
     "CLUSTER_AUTH_RESTORE_TOKEN", "CLUSTER_AUTH_ROTATE_ROOT_TOKEN", "CLUSTER_AUTH_DELETE_EXPIRED_TOKENS",
     "CLUSTER_AUTH_GET_PERMISSIONS_FOR_PRINCIPAL", "CLUSTER_AUTH_REVOKE_USER_TOKENS",
     "CLUSTER_ENTERPRISE_ACTIVATE", "CLUSTER_ENTERPRISE_HEARTBEAT", "CLUSTER_ENTERPRISE_GET_CODE",
     "CLUSTER_ENTERPRISE_DEACTIVATE", "CLUSTER_DELETE_ALL", "CLUSTER_ENTERPRISE_PAUSE",
     "CLUSTER_SET_DEFAULTS", "CLUSTER_EDIT_CLUSTER_METADATA"))

_ALL_THREE, _CP, _C = (CLUSTER, PROJECT, REPO), (CLUSTER, PROJECT), (CLUSTER,)
ROLES: dict[str, Role] = {r.name: r for r in (
    Role("repoReader", _REPO_READER, _ALL_THREE, (REPO,)),
    Role("repoWriter", _REPO_WRITER, _ALL_THREE, (REPO,)),
    Role("repoOwner", _REPO_OWNER, _ALL_THREE, (REPO,)),
    Role("oidcAppAdmin", _OIDC_APP_ADMIN, _C, _C),
    Role("idpAdmin", _IDP_ADMIN, _C, _C),
    Role("identityAdmin", _IDENTITY_ADMIN, _C, _C),
    Role("debugger", _DEBUGGER, _C, _C),
    Role("lokiLogReader", _LOKI_LOG_READER, _C, _C),
    Role("robotUser", _ROBOT_USER, _C, _C),
    Role("licenseAdmin", _LICENSE_ADMIN, _C, _C),
    Role("secretAdmin", _SECRET_ADMIN, _C, _C),
    Role("pachdLogReader", _PACHD_LOG_READER, _C, _C),
    Role("projectViewer", _PROJECT_VIEWER, _CP, (PROJECT,)),
    Role("projectWriter", _PROJECT_WRITER, _CP, (PROJECT,)),
    Role("projectOwner", _PROJECT_OWNER, _CP, (PROJECT, REPO)),
    Role("projectCreator", _PROJECT_CREATOR, _C, _C),
    Role("clusterAdmin", _CLUSTER_ADMIN, _C, (CLUSTER, PROJECT, REPO)),
)}
_INDEX = {name: frozenset(r.permissions) for name, r in ROLES.items()}


def grants(role: str, permission: str) -> bool:
    return permission in _INDEX.get(role, ())


def roles_for_permission(permission: str) -> list[Role]:
    return [r for r in ROLES.values() if permission in _INDEX[r.name]]
