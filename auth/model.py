"""Resources, subjects and the one error tree of auth (mapped to gRPC codes in service.py).

Invariants:
- A resource is (type, name): the cluster is ("CLUSTER", ""), a project ("PROJECT", name),
  a repo ("REPO", "project/repo") — Pachyderm's names, so bindings read the same. As in
  Pachyderm (pfs Repo.AuthResource), the repo type is not part of the name: a pipeline's meta
  repo is the resource of its output repo, and its spec repo is ("SPEC_REPO", "project/repo"),
  which every signed-in user may read and which otherwise follows the output repo's bindings.
- Subjects carry a prefix: `user:`, `robot:`, `pipeline:` (`pipeline:project/name`),
  `pach:` (pach:root), `group:` (a group: its members get the group's roles) or are
  `allClusterUsers`. A bare name means `user:name`.
"""
from __future__ import annotations

from dataclasses import dataclass

from auth.roles import CLUSTER, PROJECT, REPO, SPEC_REPO

ROOT_USER = "pach:root"
ALL_CLUSTER_USERS = "allClusterUsers"
PREFIXES = ("user:", "robot:", "pipeline:", "pach:", "group:")


@dataclass(frozen=True)
class Resource:
    type: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.type} {self.name}".rstrip()

    @property
    def key(self) -> str:
        return f"{self.type}:{self.name}"

    @property
    def project(self) -> str | None:
        if self.type == PROJECT:
            return self.name
        if self.type in (REPO, SPEC_REPO):
            return self.name.split("/", 1)[0]
        return None


CLUSTER_RESOURCE = Resource(CLUSTER, "")


def repo_resource(project: str, repo: str, repo_type: str = "user") -> Resource:
    """A repo's resource; `repo_type` is pfs's ("user", "meta", "spec", or "" for user)."""
    return Resource(SPEC_REPO if repo_type == "spec" else REPO, f"{project or 'default'}/{repo}")


def project_resource(project: str) -> Resource:
    return Resource(PROJECT, project or "default")


def pipeline_subject(project: str, name: str) -> str:
    return f"pipeline:{project or 'default'}/{name}"


def normalize_subject(s: str) -> str:
    """`alice` -> `user:alice`; prefixed names and allClusterUsers stay as they are."""
    s = s.strip()
    if not s:
        raise InvalidArgument("a subject is required (user:NAME, robot:NAME, pipeline:PROJECT/NAME, "
                              "allClusterUsers)")
    if s == ALL_CLUSTER_USERS or s.startswith(PREFIXES):
        return s
    if ":" in s:
        raise InvalidArgument(f'invalid principal "{s}"; must start with one of "user:", "robot:", '
                              f'"pipeline:", "group:" or be "allClusterUsers"')
    return "user:" + s


def canonical_subject(s: str) -> str:
    """Pachyderm's checkCanonicalSubject (group members): a known prefix is required."""
    s = s.strip()
    if s == ALL_CLUSTER_USERS:
        return s
    if ":" not in s:
        raise InvalidArgument(f'subject "{s}" has no prefix, must be of the form <type>:<name> '
                              '(user:, robot:, pipeline:, group:, pach:)')
    if not s.startswith(PREFIXES):
        raise InvalidArgument(f'subject has unrecognized prefix: {s.split(":", 1)[0]}:')
    return s


def group_name(s: str) -> str:
    """`eng` -> `group:eng`: a group is bound and evaluated by its `group:` name."""
    s = s.strip()
    if not s:
        raise InvalidArgument("a group name is required")
    if s.startswith("group:"):
        return s
    if ":" in s:
        raise InvalidArgument(f'"{s}" is not a group name (a group is named group:NAME)')
    return "group:" + s


class AuthError(Exception):
    """Base of auth's errors; `code` names the gRPC status they map to."""
    code = "INTERNAL"


class NotActivated(AuthError):
    code = "UNIMPLEMENTED"

    def __init__(self):
        super().__init__("the auth service is not activated")


class AlreadyActivated(AuthError):
    code = "UNIMPLEMENTED"

    def __init__(self):
        super().__init__("the auth service is already activated")


class NotSignedIn(AuthError):
    code = "UNAUTHENTICATED"

    def __init__(self):
        super().__init__("no authentication token (try logging in)")


class BadToken(AuthError):
    """Unknown, forged, expired or revoked: one message for all, nothing to tell them apart."""
    code = "UNAUTHENTICATED"

    def __init__(self):
        super().__init__("provided auth token is corrupted or has expired (try logging in again)")


class NotAuthorized(AuthError):
    code = "PERMISSION_DENIED"

    def __init__(self, subject: str, permissions, resource: Resource):
        self.subject, self.permissions, self.resource = subject, list(permissions), resource
        super().__init__(
            f"{subject} is not authorized to perform this operation - needs permissions "
            f"[{' '.join(self.permissions)}] on {resource.type} {resource.name}. Run `pachctl auth "
            f"roles-for-permission` to find roles that grant a given permission.")


class InvalidArgument(AuthError):
    code = "INVALID_ARGUMENT"


class NotFoundError(AuthError):
    code = "NOT_FOUND"


class Unsupported(AuthError):
    code = "FAILED_PRECONDITION"  # cannot apply here, and says why (docs/compat.md)
