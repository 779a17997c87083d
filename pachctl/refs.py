"""Parsing of pachctl object arguments: `repo[@ref[:path]]`, `pipeline@job`.

Grammar (pachctl's cmdutil.parseFile)::

    arg    := repo [ '@' rest ]                 # split on the FIRST '@'
    rest   := ref [ ':' path ]                  # split on the FIRST ':'; path kept verbatim
    ref    := branch '=' commit                 # split on the FIRST '='
            | single                            # UUIDv4-without-dashes or not a valid name
                                                #   -> commit id (e.g. `master^`, `master.1`)
                                                #   else -> branch name
    repo   := name [ '.' type ]                 # text after the first '.' is the repo type

Invariants:
- Parsing never talks to a server and never validates names: an invalid branch name becomes
  a commit id and is resolved (and rejected) server-side, exactly like Pachyderm.
- The project never comes from the argument; it is a parameter (the `--project` flag or the
  active context's project, `default` when unset).
- All returned refs are frozen dataclasses; errors are `ValueError` with Pachyderm's texts.
- Server-side rules (names, paths, ancestry) live in `pfs.ancestry` and are re-exported here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pfs.ancestry import (  # re-exported: pachctl commands import everything from here
    DEFAULT_PROJECT,
    clean_path,
    is_valid_name,
    parse_ancestry,
    validate_branch_name,
    validate_name,
    validate_path,
    validate_pipeline_name,
    validate_project_name,
    validate_repo_name,
)

__all__ = [
    "DEFAULT_PROJECT", "USER_REPO_TYPE", "META_REPO_TYPE", "SPEC_REPO_TYPE",
    "RepoRef", "BranchRef", "CommitRef", "FileRef", "JobRef",
    "parse_repo", "parse_file", "parse_commit", "parse_branch", "parse_job",
    "commit_in_repo", "parse_head", "is_commit_set_id", "is_uuid_without_dashes", "new_id",
    "clean_path", "is_valid_name", "parse_ancestry", "validate_branch_name", "validate_name",
    "validate_path", "validate_pipeline_name", "validate_project_name", "validate_repo_name",
]

USER_REPO_TYPE = "user"
META_REPO_TYPE = "meta"
SPEC_REPO_TYPE = "spec"

_UUID_NO_DASHES = re.compile(r"^[0-9a-f]{12}4[0-9a-f]{19}$")


def is_commit_set_id(s: str) -> bool:
    """A dashless UUIDv4 (`^[0-9a-f]{12}4[0-9a-f]{19}$`): commit ids, commit-set/job ids."""
    return bool(_UUID_NO_DASHES.match(s))


is_uuid_without_dashes = is_commit_set_id


def new_id() -> str:
    """A fresh commit / commit-set id (32 lowercase hex chars, version nibble 4)."""
    import uuid  # here: parsing arguments needs no uuid (pachctl.lean_put counts milliseconds)
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RepoRef:
    name: str
    type: str = USER_REPO_TYPE
    project: str = DEFAULT_PROJECT

    @property
    def compact(self) -> str:
        """pachctl's REPO column: `name`, or `name.type` for non-user repos."""
        return self.name if self.type in ("", USER_REPO_TYPE) else f"{self.name}.{self.type}"

    def __str__(self) -> str:
        """Go's Repo.String(): `project/name`, `project/name.type` for non-user repos."""
        return f"{self.project}/{self.compact}"


@dataclass(frozen=True)
class BranchRef:
    repo: RepoRef
    name: str = ""

    def __str__(self) -> str:
        return f"{self.repo}@{self.name}"


@dataclass(frozen=True)
class CommitRef:
    repo: RepoRef
    branch: str = ""
    id: str = ""

    @property
    def ref(self) -> str:
        """What the user referred to: the commit id if given, else the branch name."""
        return self.id or self.branch

    @property
    def branch_ref(self) -> BranchRef:
        return BranchRef(self.repo, self.branch)

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref}"


@dataclass(frozen=True)
class FileRef:
    commit: CommitRef
    path: str = ""

    def __str__(self) -> str:
        return f"{self.commit}:{self.path}"


@dataclass(frozen=True)
class JobRef:
    pipeline: str
    id: str
    project: str = DEFAULT_PROJECT

    def __str__(self) -> str:
        return f"{self.project}/{self.pipeline}@{self.id}"


def parse_repo(name: str, project: str = DEFAULT_PROJECT) -> RepoRef:
    """`name` or `name.type` (split on the first '.'); no `project/` syntax."""
    if "." in name:
        repo_name, repo_type = name.split(".", 1)
        return RepoRef(repo_name, repo_type, project)
    return RepoRef(name, USER_REPO_TYPE, project)


def _classify(ref: str) -> tuple[str, str]:
    """A single ref -> (branch, commit id)."""
    if "=" in ref:
        branch, commit = ref.split("=", 1)
        return branch, commit
    if is_commit_set_id(ref) or not is_valid_name(ref):
        return "", ref
    return ref, ""


def _parse(arg: str, project: str) -> tuple[FileRef, int]:
    """parseFile: the FileRef and how many fields were present (1 repo, 2 +ref, 3 +path)."""
    repo_part, at, rest = arg.partition("@")
    if repo_part == "":
        raise ValueError(f'invalid format "{arg}": repo cannot be empty')
    repo = parse_repo(repo_part, project)
    if not at:
        return FileRef(CommitRef(repo), ""), 1
    ref, colon, path = rest.partition(":")
    branch, commit = _classify(ref)
    return FileRef(CommitRef(repo, branch, commit), path), (3 if colon else 2)


def parse_file(arg: str, project: str = DEFAULT_PROJECT) -> FileRef:
    """`repo[@branch-or-commit[:path]]` (path verbatim, may be empty or relative)."""
    return _parse(arg, project)[0]


def parse_commit(arg: str, project: str = DEFAULT_PROJECT) -> CommitRef:
    """`repo[@branch-or-commit]`; a `:path` part is an error."""
    file, fields = _parse(arg, project)
    if fields > 2:
        raise ValueError(f'invalid format "{arg}": cannot specify a file path')
    return file.commit


def parse_branch(arg: str, project: str = DEFAULT_PROJECT) -> BranchRef:
    """`repo[@branch]`; a commit id, `branch=commit` or ancestry is an error."""
    commit = parse_commit(arg, project)
    if commit.id != "":
        raise ValueError(f'invalid branch "{arg}": cannot specify a commit or ancestry')
    return commit.branch_ref


def parse_job(arg: str, project: str = DEFAULT_PROJECT) -> JobRef:
    """`pipeline@job-id`."""
    pipeline, at, job_id = arg.partition("@")
    if pipeline == "":
        raise ValueError(f'invalid format "{arg}": pipeline must be specified')
    if not at:
        raise ValueError(f'invalid format "{arg}": expected pipeline@job-id')
    return JobRef(pipeline, job_id, project)


def commit_in_repo(repo: RepoRef, ref: str) -> CommitRef:
    """A bare ref (`branch`, `commit-id`, `branch=commit`, `master^`) inside a known repo.

    Used for `create branch --head X` (when X has no '@') and `start commit -p X`.
    """
    branch, commit = _classify(ref)
    return CommitRef(repo, branch, commit)


def parse_head(head: str, repo: RepoRef) -> CommitRef:
    """`create branch --head`: `repo@ref` if it contains '@', else a ref in `repo`."""
    if "@" in head:
        return parse_commit(head, repo.project)
    return commit_in_repo(repo, head)
