"""The versioning core: projects, repos, branches, commits and files, with no transport in it.

`Pfs` is the one entry point. It is assembled from small mixins, one per concern:
- base.py     stores, the lock, transactions, commit reference resolution
- repos.py    projects and repos
- branches.py branches, provenance, propagation of commit sets downstream
- commits.py  commits, waiting, subscriptions, commit sets, squash and drop
- files.py    write sessions and file reads
and the data structures under them: content.py (chunks and packs), index.py (the
per-commit prolly tree), filetree.py (files and directories on the tree), txn.py (atomic
compare-and-swap transactions), keys.py and records.py (metadata layout and encoding).

Invariants of the whole: the core imports no grpc, protobuf, click, boto3 or kubernetes; every
mutation is one atomic metadata batch; content is written before anything refers to it.
"""
from __future__ import annotations

from pfs.core.base import PfsBase, is_commit_id, new_id
from pfs.core.branches import BranchesMixin
from pfs.core.commits import CommitsMixin, FINISHED, FINISHING, READY, STARTED
from pfs.core.files import FilesMixin, FileWriter
from pfs.core.metadata import MetadataMixin
from pfs.core.repos import ReposMixin


class Pfs(ReposMixin, BranchesMixin, CommitsMixin, FilesMixin, MetadataMixin, PfsBase):
    """The versioned file system over a metadata store and a chunk store."""


__all__ = ["Pfs", "FileWriter", "is_commit_id", "new_id", "FINISHED", "FINISHING", "READY", "STARTED"]
