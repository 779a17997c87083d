"""Plain data for the versioning core: typed ids and the records it stores and returns.

Invariants:
- Everything here is transport-free (no protobuf): the service layer converts.
- Times are float seconds since the epoch (UTC); None means "not yet".
- `Repo.project` is never empty (the core maps "" to "default" at its boundary).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

DEFAULT_PROJECT = "default"
USER = "USER"
AUTO = "AUTO"
FSCK = "FSCK"


class Repo(NamedTuple):
    project: str
    name: str
    type: str = "user"

    def __str__(self) -> str:  # Pachyderm's Repo.String(): project/name[.type]
        base = f"{self.project}/{self.name}"
        return base if self.type == "user" else f"{base}.{self.type}"


class Branch(NamedTuple):
    repo: Repo
    name: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.name}"


class CommitRef(NamedTuple):
    """A resolved commit: repo + 32-hex id (plus the branch it was made on, if any)."""
    repo: Repo
    id: str
    branch: str = ""

    def __str__(self) -> str:
        return f"{self.repo}@{self.id}"


@dataclass
class ProjectInfo:
    name: str
    description: str = ""
    created_at: float = 0.0
    metadata: dict = field(default_factory=dict)


@dataclass
class RepoInfo:
    repo: Repo
    description: str = ""
    created: float = 0.0
    metadata: dict = field(default_factory=dict)
    # filled on read:
    branches: list = field(default_factory=list)  # list[Branch]
    size: int = 0


@dataclass
class BranchInfo:
    branch: Branch
    head: str = ""  # commit id
    direct_provenance: list = field(default_factory=list)  # list[Branch]
    provenance: list = field(default_factory=list)  # transitive, list[Branch]
    subvenance: list = field(default_factory=list)  # transitive, list[Branch]
    trigger: Optional[dict] = None
    created_at: float = 0.0
    created_by: str = ""
    updated_at: float = 0.0
    metadata: dict = field(default_factory=dict)


@dataclass
class CommitInfo:
    commit: CommitRef
    origin: str = USER
    parent: Optional[str] = None
    children: list = field(default_factory=list)  # list[str] ids, same repo
    started: float = 0.0
    finishing: Optional[float] = None
    finished: Optional[float] = None
    description: str = ""
    error: str = ""
    direct_provenance: list = field(default_factory=list)  # list[CommitRef]
    direct_subvenance: list = field(default_factory=list)  # list[CommitRef]
    root: Optional[bytes] = None  # file index root (the working root while open)
    size: int = 0
    created_by: str = ""
    metadata: dict = field(default_factory=dict)
    seq: int = 0  # creation order within the server
    problems: list = field(default_factory=list)  # validation errors found while it was written

    @property
    def is_open(self) -> bool:
        return self.finished is None


@dataclass
class FileInfo:
    path: str  # absolute, dirs end with "/" (root is "/")
    is_dir: bool
    size: int
    hash: bytes
    commit: CommitRef
    committed: Optional[float] = None
    datum: str = ""
    file_count: int = 1
