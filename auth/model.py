"""Resources, subjects and the one error tree of auth (mapped to gRPC codes in service.py).

Invariants:
- A resource is (type, name): the cluster is ("CLUSTER", ""), a project ("PROJECT", name),
  a repo ("REPO", "project/repo") — Pachyderm's names, so bindings read the same.
- Subjects carry a prefix: `user:`, `robot:`, `pipeline:` (`pipeline:project/name`),
  `pach:` (pach:root) or are the group `allClusterUsers`. A bare name means `user:name`.
"""
from __future__ import annotations

from dataclasses import dataclass

from auth.roles import CLUSTER, PROJECT, REPO

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
        if self.type == REPO:
            return self.name.split("/", 1)[0]
        return None


CLUSTER_RESOURCE = Resource(CLUSTER, "")


def repo_resource(project: str, repo: str) -> Resource:
    return Resource(REPO, f"{project or 'default'}/{repo}")


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


class Unsupported(AuthError):
    code = "UNIMPLEMENTED"
