"""What the S3 gateway asks auth: who signed (the access key is the caller's token, as in
Pachyderm) and whether their roles on the bucket's repo grant the operation.

Invariants:
- Every S3 operation the gateway routes is in OPERATIONS; one that is not is refused
  (fail closed), like an RPC missing from rules.RULES.
- Reads need REPO_READ, writes REPO_WRITE, CreateBucket (a new repo) PROJECT_CREATE_REPO or,
  for a new branch of an existing repo, REPO_CREATE_BRANCH; DeleteBucket REPO_DELETE.
- ListBuckets lists only repos the caller may read.
- The creator of a new bucket's repo becomes its repoOwner only after CreateBucket
  succeeded (`created`): a failed CreateBucket leaves no binding behind.
"""
from __future__ import annotations

from typing import Optional

from auth.core import Auth
from auth.model import AuthError, NotAuthorized, project_resource, repo_resource

_READ = ("GetObject", "HeadObject", "HeadBucket", "ListObjects", "ListObjectsV2", "ListObjectVersions",
         "GetBucketLocation", "GetBucketVersioning", "ListMultipartUploads", "ListParts")
_WRITE = ("PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "PutBucketVersioning",
          "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
          "AbortMultipartUpload")
OPERATIONS: dict[str, str] = {**{op: "REPO_READ" for op in _READ}, **{op: "REPO_WRITE" for op in _WRITE},
                              "DeleteBucket": "REPO_DELETE", "CreateBucket": "CREATE"}


class S3Access:
    def __init__(self, auth: Auth, repo_exists):
        self.auth = auth
        self.repo_exists = repo_exists  # (Resource) -> bool

    @property
    def active(self) -> bool:
        return self.auth.active

    def principal(self, access_key: str) -> Optional[str]:
        try:
            return self.auth.authenticate(access_key)
        except AuthError:
            return None

    def authorize(self, principal: Optional[str], operation: str, project: str, repo: str) -> Optional[str]:
        if principal is None:
            return "this request carries no credentials (sign it with your Pachyderm token as access key and secret)"
        perm = OPERATIONS.get(operation)
        if perm is None:
            return f"the S3 operation {operation} is not in pachd's permission map"
        res = repo_resource(project, repo)
        if perm == "CREATE":
            if self.repo_exists(res):
                res, perm = res, "REPO_CREATE_BRANCH"
            else:
                res, perm = project_resource(project), "PROJECT_CREATE_REPO"
        try:
            self.auth.check(principal, res, perm)
        except NotAuthorized as e:
            return str(e)
        return None

    def repo_is_new(self, project: str, repo: str) -> bool:
        return not self.repo_exists(repo_resource(project, repo))

    def created(self, principal: Optional[str], project: str, repo: str) -> None:
        """CreateBucket made a new repo: its creator owns it (as CreateRepo's)."""
        if principal is not None:
            self.auth.grant(repo_resource(project, repo), principal, ["repoOwner"])

    def can_list(self, principal: Optional[str], project: str, repo: str) -> bool:
        return principal is not None and self.auth.has(principal, "REPO_READ", repo_resource(project, repo))
