"""Small helpers shared by the core tests (fixtures live in conftest.py)."""
from __future__ import annotations

from pfs.core import Pfs
from pfs.model import Branch, Repo


def R(name: str, project: str = "default") -> Repo:
    return Repo(project, name)


def B(repo: str | Repo, name: str = "master") -> Branch:
    return Branch(repo if isinstance(repo, Repo) else R(repo), name)


def put_files(p: Pfs, repo: Repo, ref: str, files: dict, append: bool = False):
    """Write {path: bytes | None} (None deletes) in one write session; returns its commit."""
    with p.open_writer(repo, ref) as w:
        for path, data in files.items():
            if data is None:
                w.delete(path)
            else:
                w.put(path, [data], append=append)
    return w.result


def read(p: Pfs, repo: Repo, ref: str, path: str, offset: int = 0) -> bytes:
    ci = p.commit_for_read(repo, ref)
    _, it = p.read_file(ci, path, offset)
    return b"".join(it)


def tree_of(p: Pfs, repo: Repo, ref: str) -> dict:
    ci = p.commit_for_read(repo, ref)
    out = {}
    for fi in p.walk_file(ci, "/"):
        if not fi.is_dir:
            _, it = p.read_file(ci, fi.path)
            out[fi.path] = b"".join(it)
    return out
