"""Incremental datum planning: which datums changed between two jobs, from the changed files.

A job's datums are a pure function of its input listings (`pps.datums.enumerate_datums`).
Between a job and its base job most datums are identical (same DatumID, same hash); this
module finds the others from each pfs leaf's file changes (a diff of its two input commits)
instead of enumerating and hashing both sides in full.

`plan_changes` returns a `Delta`: `dirty` = the new side's datums whose (id, hash) the old
side lacks; `gone` = the old side's datums whose id the new side lacks. Invariant (checked by
property tests against two full enumerations): every datum of the new side not in `dirty` has
an identical twin (id and hash) on the old side, and every old datum not in `gone` still
exists by id on the new side. So the job processes `dirty`, deletes the outputs of `gone`,
and inherits every other datum from the base, exactly as a full classification would.

Per input kind:
- pfs/cron leaf: dirty = a datum per added or modified match, gone = one per deleted match.
- union: the children's deltas concatenated (deduplicated by id; equal ids are equal files).
  A union whose branches share an input name and contain a join or group is not planned: a
  one-file group or join datum and that file's own datum in the other branch share an id.
- cross: each child's dirty datums crossed with the other children's full new enumerations,
  and each child's gone datums with the other children's full old enumerations (a cross of
  a changed child is inherently that big).
- join / group whose children are pfs or cron leaves: a file's key (its `join_on`/`group_by`
  template expanded with its glob captures) depends only on its path, so only the keys of
  changed files can have different datums. For each such key, the old members come from the
  base job's *key index* (below) and the new members are the old ones with the changes
  applied; the key's datums are built on both sides with Pachyderm's rules (join: per-key
  product across children, outer children alone when a key is missing elsewhere; group: one
  datum of all members) and compared. A file that moves between keys (rename) touches both.
  Joins or groups over compound children are not planned (`plannable` is False): the job
  then classifies every datum.

Key index: a sorted map carried from job to job (stored by pps.store as an index tree), one
item per file of each join/group child: `<node>\\0<key>\\0<child>\\0<path>` -> msgpack
[file hash, size], where <node> is the join/group node's position in the input tree ("0",
"0.1", ...) and <child> a 4-digit child number. `Delta.key_edits` turns the base job's map
into this job's (sorted; value None deletes); `key_index_items` builds it from full listings.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

import msgpack

from pfs.glob import compile_glob
from pps.datums import (Commits, Datum, Entry, InputFile, Listing, _enumerate, _pfs_datums,
                        pfs_leaf)
from pps.spec import CrossInput, GroupInput, Input, JoinInput, PfsInput, UnionInput, iter_inputs

__all__ = ["Delta", "plannable", "keyed_nodes", "key_index_items", "plan_changes", "member_range"]

#: leaf -> (added or modified entries, deleted paths), both already filtered by the leaf's glob
Changes = Callable[[PfsInput], tuple[Iterable[Entry], Iterable[str]]]
#: (node position, key) -> {child number: its members with that key, in path order}
OldMembers = Callable[[str, str], dict[int, list[Entry]]]


@dataclass
class Delta:
    dirty: list[Datum] = field(default_factory=list)
    gone: list[Datum] = field(default_factory=list)
    key_edits: list[tuple[str, Optional[bytes]]] = field(default_factory=list)


def plannable(inp: Optional[Input]) -> bool:
    """True when `plan_changes` can plan this input: leaves under cross, union, and joins or
    groups whose children are all leaves."""
    if inp is None or pfs_leaf(inp) is not None:
        return True
    if isinstance(inp, UnionInput) and _branch_ids_may_collide(inp):
        return False
    if isinstance(inp, (CrossInput, UnionInput)):
        return all(plannable(k) for k in inp.inputs)
    if isinstance(inp, (JoinInput, GroupInput)):
        return all(pfs_leaf(k) is not None for k in inp.inputs)
    return False


def _branch_ids_may_collide(u: UnionInput) -> bool:
    """A union whose branches share an input name, where one of them has a join or group: a
    group or join datum of one file has the same DatumID as that file's own datum in the other
    branch, so one id stands for two datums that change independently (a full classification
    sees one of them; a plan per branch would see both). Such unions are classified in full."""
    names, keyed = [], []
    for child in u.inputs:
        nodes = list(iter_inputs(child))
        names.append({n.name for n in nodes if isinstance(n, PfsInput)})
        keyed.append(any(isinstance(n, (JoinInput, GroupInput)) for n in nodes))
    return any(names[i] & names[j] and (keyed[i] or keyed[j])
               for i in range(len(names)) for j in range(i + 1, len(names)))


def keyed_nodes(inp: Optional[Input], pos: str = "0") -> Iterator[tuple[str, Input]]:
    """(position, node) of every join and group node, in tree order."""
    if inp is None or pfs_leaf(inp) is not None:
        return
    if isinstance(inp, (JoinInput, GroupInput)):
        yield pos, inp
    for i, k in enumerate(inp.inputs):
        yield from keyed_nodes(k, f"{pos}.{i}")


def _key_of(node: Input, leaf: PfsInput) -> Callable[[str], str]:
    template = leaf.join_on if isinstance(node, JoinInput) else leaf.group_by
    if not template:
        return lambda path: ""
    g = compile_glob(leaf.glob or "/")
    return lambda path: g.replace(path, template)


def _ikey(pos: str, key: str, child: int, path: str) -> str:
    return f"{pos}\x00{key}\x00{child:04d}\x00{path}"


def member_range(pos: str, key: str) -> tuple[str, str]:
    """[start, end) of the key index items of one key of one node."""
    return f"{pos}\x00{key}\x00", f"{pos}\x00{key}\x01"


def parse_member(ikey: str, raw: bytes) -> tuple[int, Entry]:
    """(child, (path, hash, size)) of one key index item."""
    _pos, _key, child, path = ikey.split("\x00", 3)
    h, size = msgpack.unpackb(raw)
    return int(child), (path, h, size)


def key_index_items(inp: Optional[Input], listing: Listing) -> list[tuple[str, bytes]]:
    """The whole key index of an input, from full listings (a job without a usable base)."""
    items = []
    for pos, node in keyed_nodes(inp):
        for c, kid in enumerate(node.inputs):
            leaf = pfs_leaf(kid)
            key = _key_of(node, leaf)
            for path, h, size in listing(leaf):
                items.append((_ikey(pos, key(path), c, path), msgpack.packb([h, size])))
    items.sort(key=lambda kv: kv[0])
    return items


def _member_file(leaf: PfsInput, glob, entry: Entry, commit: str) -> InputFile:
    path, h, size = entry
    return InputFile(
        name=leaf.name, project=leaf.project, repo=leaf.repo, branch=leaf.branch, commit=commit,
        path=path, file_hash=h, size=size,
        join_on=glob.replace(path, leaf.join_on) if leaf.join_on else "",
        group_by=glob.replace(path, leaf.group_by) if leaf.group_by else "",
        lazy=leaf.lazy, empty_files=leaf.empty_files, s3=leaf.s3, reference=leaf.reference)


def _key_datums(node: Input, leaves: list[PfsInput], globs: list, members: list[list[Entry]],
                commits: Commits) -> list[Datum]:
    """The datums one key of a join or group gives (pps.datums: same rules, one key)."""
    files = [[_member_file(leaf, globs[c], e, commits.get((leaf.project, leaf.repo, leaf.branch), ""))
              for e in members[c]] for c, leaf in enumerate(leaves)]
    if isinstance(node, GroupInput):
        inputs = tuple(f for fs in files for f in fs)
        return [Datum(inputs)] if inputs else []
    present = [c for c, fs in enumerate(files) if fs]
    if not present:
        return []
    if len(present) < len(files):
        present = [c for c in present if leaves[c].outer_join]
        if not present:
            return []
    return [Datum(tuple(combo)) for combo in itertools.product(*(files[c] for c in present))]


class _Planner:
    def __init__(self, listing: Listing, old_listing: Listing, changes: Changes, commits: Commits,
                 old_commits: Commits, old_members: Optional[OldMembers]):
        self.listing, self.old_listing = listing, old_listing
        self.changes = changes
        self.commits, self.old_commits = commits, old_commits
        self.old_members = old_members
        self.key_edits: list[tuple[str, Optional[bytes]]] = []
        self._cache: dict[PfsInput, tuple[list[Entry], list[str]]] = {}

    def leaf_changes(self, leaf: PfsInput) -> tuple[list[Entry], list[str]]:
        if leaf not in self._cache:
            changed, deleted = self.changes(leaf)
            self._cache[leaf] = (sorted(changed), sorted(deleted))
        return self._cache[leaf]

    def _commit(self, commits: Commits, leaf: PfsInput) -> str:
        return commits.get((leaf.project, leaf.repo, leaf.branch), "")

    def delta(self, inp: Input, pos: str) -> tuple[list[Datum], list[Datum]]:
        leaf = pfs_leaf(inp)
        if leaf is not None:
            changed, deleted = self.leaf_changes(leaf)
            return (_pfs_datums(leaf, lambda _l: changed, self._commit(self.commits, leaf)),
                    _pfs_datums(leaf, lambda _l: [(p, b"", 0) for p in deleted],
                                self._commit(self.old_commits, leaf)))
        if isinstance(inp, (JoinInput, GroupInput)):
            return self._keyed(inp, pos)
        parts = [self.delta(k, f"{pos}.{i}") for i, k in enumerate(inp.inputs)]
        if isinstance(inp, UnionInput):
            return (_dedup(itertools.chain.from_iterable(p[0] for p in parts)),
                    _dedup(itertools.chain.from_iterable(p[1] for p in parts)))
        return (self._cross(inp, [p[0] for p in parts], pos, self.listing, self.commits),
                self._cross(inp, [p[1] for p in parts], pos, self.old_listing, self.old_commits))

    def _cross(self, inp: CrossInput, touched: list[list[Datum]], pos: str, listing: Listing,
               commits: Commits) -> list[Datum]:
        """Datums of the cross holding a touched datum of some child (others in full)."""
        out: dict[str, Datum] = {}
        full: dict[int, list[Datum]] = {}
        for i, p in enumerate(touched):
            if not p:
                continue
            lists = []
            for j, k in enumerate(inp.inputs):
                if j == i:
                    lists.append(p)
                    continue
                if j not in full:
                    full[j] = _enumerate(k, listing, commits)
                lists.append(full[j])
            for combo in itertools.product(*lists):
                d = Datum(tuple(f for c in combo for f in c.inputs))
                out.setdefault(d.id, d)
        return list(out.values())

    def _keyed(self, node: Input, pos: str) -> tuple[list[Datum], list[Datum]]:
        leaves = [pfs_leaf(k) for k in node.inputs]
        globs = [compile_glob(lf.glob or "/") for lf in leaves]
        # key -> per child {path: entry, or None for deleted}
        by_key: dict[str, list[dict[str, Optional[Entry]]]] = {}
        for c, leaf in enumerate(leaves):
            key_of = _key_of(node, leaf)
            changed, deleted = self.leaf_changes(leaf)
            for e in changed:
                k = key_of(e[0])
                by_key.setdefault(k, [{} for _ in leaves])[c][e[0]] = e
                self.key_edits.append((_ikey(pos, k, c, e[0]), msgpack.packb([e[1], e[2]])))
            for p in deleted:
                k = key_of(p)
                by_key.setdefault(k, [{} for _ in leaves])[c][p] = None
                self.key_edits.append((_ikey(pos, k, c, p), None))
        dirty: list[Datum] = []
        gone: list[Datum] = []
        for k in sorted(by_key):
            old_by_child = self.old_members(pos, k)
            old = [old_by_child.get(c, []) for c in range(len(leaves))]
            new = []
            for c, edits in enumerate(by_key[k]):
                members = {e[0]: e for e in old[c]}
                for p, e in edits.items():
                    if e is None:
                        members.pop(p, None)
                    else:
                        members[p] = e
                new.append(sorted(members.values()))
            old_d = _key_datums(node, leaves, globs, old, self.old_commits)
            new_d = _key_datums(node, leaves, globs, new, self.commits)
            old_sig = {d.id: d.hash("") for d in old_d}
            new_ids = {d.id for d in new_d}
            dirty.extend(d for d in new_d if old_sig.get(d.id) != d.hash(""))
            gone.extend(d for d in old_d if d.id not in new_ids)
        return dirty, gone


def _dedup(datums: Iterable[Datum]) -> list[Datum]:
    out: dict[str, Datum] = {}
    for d in datums:
        out.setdefault(d.id, d)
    return list(out.values())


def plan_changes(inp: Optional[Input], listing: Listing, old_listing: Listing, changes: Changes,
                 commits: Commits | None = None, old_commits: Commits | None = None,
                 old_members: Optional[OldMembers] = None) -> Optional[Delta]:
    """The datums that differ between the old and the new side of an input (see the module
    docstring), or None when the input is not `plannable`.

    `changes(leaf)` gives a leaf's (added or modified entries, deleted paths), glob-filtered;
    `listing`/`commits` describe the new side and `old_listing`/`old_commits` the old one (a
    full listing is read only for the other children of a cross whose child changed);
    `old_members(node, key)` reads the old side's key index (needed when the input has a
    join or group: pass None only when it has none)."""
    if inp is None:
        return Delta()
    if not plannable(inp):
        return None
    if old_members is None and next(keyed_nodes(inp), None) is not None:
        raise ValueError("a join or group needs the old side's key index (old_members)")
    p = _Planner(listing, old_listing, changes, commits or {}, old_commits or {}, old_members)
    dirty, gone = p.delta(inp, "0")
    edits = dict(p.key_edits)
    return Delta(dirty, gone, sorted(edits.items()))
