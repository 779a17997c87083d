"""The input algebra as pure functions: file listings in, datums out.

A datum is an ordered tuple of `InputFile`s. Its identity and its content hash are separate:
- `Datum.id` (DatumID) depends only on WHICH files: BLAKE2b-256 over, for each input in order,
  name, int64-BE len(name), repo, len, branch, len, path, len; hex. Paths are PFS paths
  (directories end in `/`; the glob `/` gives the path `/`).
- `Datum.hash(salt)` = BLAKE2b-256(id-hex ‖ file_hash of each non-`reference` input ‖ salt),
  hex: a content change or a new salt gives a new hash for the same id.

Invariants of `enumerate_datums` (deterministic; no glob matching inside: the caller's
`listing(pfs_input)` returns that input's glob matches as (path, hash, size), dirs ending in
`/`, in path order):
- pfs: one datum per listed match, in listing order. cron: a pfs input on the cron repo,
  branch master, glob `/*` (one datum per tick file).
- cross: the cartesian product of the children's datums, children in spec order (the spec
  already sorted them), earlier children varying slowest; any empty child -> no datums.
- union: the children's datums concatenated in child order; a datum whose id was already
  produced is dropped (datums are keyed by id), so |union| = sum - duplicate ids.
- join: every input of every child datum is filed under its key (`join_on` expanded with the
  input's glob captures). For each key in sorted order: if every child has the key, the
  cartesian product across children of their inputs with that key; otherwise the product over
  only the children that have the key AND are `outer_join` pfs inputs (nothing if none).
- group: every input is filed under its `group_by` key; one datum per key (sorted) holding all
  inputs with that key, child order then listing order. Groups partition the inputs.
`classify` splits a job's datums against its base job's record: new ids are processed; ids
only in the base are deleted; shared ids are skipped only when the hash is unchanged AND the
base recorded success (FAILED/RECOVERED are retried) AND skipping is allowed (not every_job).
"""
from __future__ import annotations

import hashlib
import itertools
import posixpath
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterable, Mapping, NamedTuple, Optional

from pfs.glob import Glob, clean_glob, compile_glob
from pps.spec import CronInput, CrossInput, GroupInput, Input, JoinInput, PfsInput, UnionInput

__all__ = [
    "InputFile",
    "Datum",
    "Listing",
    "enumerate_datums",
    "glob_listing",
    "cron_as_pfs",
    "classify",
    "datum_env",
    "SUCCESS_STATES",
]

Entry = tuple[str, bytes, int]  # (path, content hash, size)
Listing = Callable[[PfsInput], Iterable[Entry]]

#: Base-job datum states that allow skipping (a skipped datum's output was inherited).
SUCCESS_STATES = frozenset({"success", "processed", "skipped"})


class InputFile(NamedTuple):
    """One input of a datum: which file of which input, plus what the worker needs.
    (A NamedTuple: a job builds one per listed file, and this is the cheapest immutable.)"""

    name: str
    project: str
    repo: str
    branch: str
    commit: str
    path: str
    file_hash: bytes
    size: int
    join_on: str = ""
    group_by: str = ""
    lazy: bool = False
    empty_files: bool = False
    s3: bool = False
    reference: bool = False


_PREFIXES: dict[tuple[str, str, str], "hashlib._Hash"] = {}


def _prefix_hasher(name: str, repo: str, branch: str):
    """A BLAKE2b state that has absorbed one input's name, repo and branch (copied per datum)."""
    key = (name, repo, branch)
    base = _PREFIXES.get(key)
    if base is None:
        base = hashlib.blake2b(digest_size=32)
        for part in key:
            raw = part.encode()
            base.update(raw)
            base.update(struct.pack(">q", len(raw)))
        if len(_PREFIXES) > 4096:
            _PREFIXES.clear()
        _PREFIXES[key] = base
    return base.copy()


@dataclass(frozen=True)
class Datum:
    inputs: tuple[InputFile, ...]

    @cached_property
    def id(self) -> str:
        h = None
        for f in self.inputs:
            if h is None:  # the first input's (name, repo, branch) part is shared by most datums
                h = _prefix_hasher(f.name, f.repo, f.branch)
            else:
                for part in (f.name, f.repo, f.branch):
                    raw = part.encode()
                    h.update(raw)
                    h.update(struct.pack(">q", len(raw)))
            raw = f.path.encode()
            h.update(raw)
            h.update(struct.pack(">q", len(raw)))
        return (h or hashlib.blake2b(digest_size=32)).hexdigest()

    def hash(self, salt: str) -> str:
        h = hashlib.blake2b(digest_size=32)
        h.update(self.id.encode())
        for f in self.inputs:
            if not f.reference:
                h.update(f.file_hash)
        h.update(salt.encode())
        return h.hexdigest()


# ---- listings ---------------------------------------------------------------------------
def glob_listing(glob: str, entries: Iterable[Entry]) -> list[Entry]:
    """Apply a (cleaned) PFS glob to (path, hash, size) entries of files and directories."""
    g = compile_glob(clean_glob(glob))
    return sorted((e for e in entries if g.match_path(e[0]) is not None), key=lambda e: e[0])


def cron_as_pfs(cron: CronInput) -> PfsInput:
    """The pfs input a cron input reads: its tick repo, branch master, glob `/*`."""
    return PfsInput(project=cron.project, name=cron.name, repo=cron.repo, repo_type="user",
                    branch="master", glob="/*")


# ---- the algebra ------------------------------------------------------------------------
def _pfs_datums(pfs: PfsInput, listing: Listing, commit: str) -> list[Datum]:
    glob: Optional[Glob] = None
    if pfs.join_on or pfs.group_by:
        glob = compile_glob(pfs.glob or "/")
    out = []
    for path, file_hash, size in listing(pfs):
        f = InputFile(
            name=pfs.name, project=pfs.project, repo=pfs.repo, branch=pfs.branch,
            commit=commit, path=path, file_hash=file_hash, size=size,
            join_on=glob.replace(path, pfs.join_on) if glob and pfs.join_on else "",
            group_by=glob.replace(path, pfs.group_by) if glob and pfs.group_by else "",
            lazy=pfs.lazy, empty_files=pfs.empty_files, s3=pfs.s3, reference=pfs.reference)
        out.append(Datum((f,)))
    return out


def _keyed(children: list[list[Datum]], attr: str) -> list[dict[str, list[InputFile]]]:
    tables = []
    for datums in children:
        table: dict[str, list[InputFile]] = {}
        for d in datums:
            for f in d.inputs:
                table.setdefault(getattr(f, attr), []).append(f)
        tables.append(table)
    return tables


Commits = Mapping[tuple[str, str, str], str]


def _enumerate(inp: Input, listing: Listing, commits: Commits) -> list[Datum]:
    pfs = pfs_leaf(inp)
    if pfs is not None:
        return _pfs_datums(pfs, listing, commits.get((pfs.project, pfs.repo, pfs.branch), ""))
    kids = [_enumerate(k, listing, commits) for k in inp.inputs]
    if isinstance(inp, CrossInput):
        return [Datum(tuple(f for d in combo for f in d.inputs)) for combo in itertools.product(*kids)]
    if isinstance(inp, UnionInput):
        seen: set[str] = set()
        out = []
        for d in itertools.chain.from_iterable(kids):
            if d.id not in seen:
                seen.add(d.id)
                out.append(d)
        return out
    if isinstance(inp, JoinInput):
        tables = _keyed(kids, "join_on")
        outer = [isinstance(k, PfsInput) and k.outer_join for k in inp.inputs]
        out = []
        for key in sorted(set().union(*tables)):
            present = [i for i, t in enumerate(tables) if key in t]
            if len(present) < len(tables):
                present = [i for i in present if outer[i]]
                if not present:
                    continue
            for combo in itertools.product(*(tables[i][key] for i in present)):
                out.append(Datum(tuple(combo)))
        return out
    if isinstance(inp, GroupInput):
        tables = _keyed(kids, "group_by")
        return [Datum(tuple(f for t in tables for f in t.get(key, ())))
                for key in sorted(set().union(*tables))]
    raise TypeError(f"not an input: {inp!r}")


def enumerate_datums(inp: Optional[Input], listing: Listing,
                     commits: Commits | None = None) -> list[Datum]:
    """All datums of an input tree (see the module invariants for order and semantics).

    `listing(pfs_input)` returns the glob matches of that pfs input (a cron input is listed
    as `cron_as_pfs(cron)`); `commits` maps (project, repo, branch) to the input commit id
    recorded in each InputFile as `commit` (optional; "" when absent)."""
    if inp is None:
        return []
    return _enumerate(inp, listing, commits or {})


# ---- leaves ----------------------------------------------------------------------------------
def pfs_leaf(inp: Input) -> Optional[PfsInput]:
    """The pfs input a leaf reads (a cron input as `cron_as_pfs`); None for a compound."""
    if isinstance(inp, PfsInput):
        return inp
    if isinstance(inp, CronInput):
        return cron_as_pfs(inp)
    return None


# ---- skipping -----------------------------------------------------------------------------
def classify(new: Iterable[Datum], base: Mapping[str, tuple[str, str]], salt: str,
             reprocess_every_job: bool = False) -> tuple[list[Datum], list[Datum], list[str]]:
    """(to_process, to_skip, to_delete) for a job whose datums are `new`, given the base
    job's `{datum_id: (hash, state)}`. States are compared case-insensitively against
    SUCCESS_STATES. Ids in `to_process` that are also in `base` need the base's outputs of
    that datum removed first. `to_delete` (ids only in base) is sorted."""
    to_process: list[Datum] = []
    to_skip: list[Datum] = []
    seen: set[str] = set()
    for d in new:
        if d.id in seen:
            continue
        seen.add(d.id)
        prev = base.get(d.id)
        if (prev is not None and not reprocess_every_job and prev[0] == d.hash(salt)
                and str(prev[1]).lower() in SUCCESS_STATES):
            to_skip.append(d)
        else:
            to_process.append(d)
    to_delete = sorted(i for i in base if i not in seen)
    return to_process, to_skip, to_delete


# ---- worker environment ---------------------------------------------------------------
def datum_env(datum: Datum, job_id: str, output_commit_id: str) -> dict[str, str]:
    """Per-datum env vars for user code (inputs in order; a repeated name keeps the last)."""
    env: dict[str, str] = {}
    for f in datum.inputs:
        env[f.name] = posixpath.normpath(posixpath.join("/pfs", f.name, f.path.lstrip("/")))
        env[f"{f.name}_COMMIT"] = f.commit
        if f.join_on:
            env[f"PACH_DATUM_{f.name}_JOIN_ON"] = f.join_on
        if f.group_by:
            env[f"PACH_DATUM_{f.name}_GROUP_BY"] = f.group_by
    env["PACH_DATUM_ID"] = datum.id
    env["PACH_JOB_ID"] = job_id
    env["PACH_OUTPUT_COMMIT_ID"] = output_commit_id
    return env
