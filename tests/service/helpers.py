"""Helpers shared by the service tests (pachyderm-sdk message builders, error checks)."""
from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pfs


def repo_of(name: str, project: str = "default") -> pfs.Repo:
    return pfs.Repo(name=name, type="user", project=pfs.Project(name=project))


def branch_of(repo: pfs.Repo, name: str = "master") -> pfs.Branch:
    return pfs.Branch(repo=repo, name=name)


def head(repo: pfs.Repo, branch: str = "master") -> pfs.Commit:
    return pfs.Commit(repo=repo, branch=branch_of(repo, branch))


def at(repo: pfs.Repo, commit_id: str) -> pfs.Commit:
    return pfs.Commit(repo=repo, id=commit_id)


def is_set(ts) -> bool:
    """betterproto decodes an unset Timestamp as the epoch."""
    return ts is not None and ts.year > 1970


def get_bytes(client, file: pfs.File) -> bytes:
    with client.pfs.pfs_file(file) as f:
        return f.read()


def expect_error(code: grpc.StatusCode, fn, *args, **kw) -> str:
    with pytest.raises(grpc.RpcError) as ei:
        r = fn(*args, **kw)
        if hasattr(r, "__next__"):
            list(r)
    assert ei.value.code() == code, ei.value.details()
    return ei.value.details()
