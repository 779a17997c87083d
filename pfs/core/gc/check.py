"""Checks: `fsck` (provenance and commit consistency, Pachyderm's Fsck) and `check_storage`
(every object a live commit needs is there and, optionally, intact; Pachyderm's CheckStorage).

fsck checks, over one metadata snapshot (Pachyderm's invariants, in our records):
- every branch's head commit exists; every commit's repo exists;
- branch provenance is transitive, and provenance and subvenance are dual relations;
- a commit's parent exists and lists it as a child, and each listed child names it as parent;
- a commit's direct provenance commits exist and list it in their direct subvenance.
`fix` repairs what can be repaired without guessing: missing subvenance and child entries
are added, children and subvenance entries naming missing commits are dropped, and commits of
repos that no longer exist are deleted. A missing head or parent is reported, never invented.

check_storage walks every commit's file index (a missing index node is damage naming the
commit), looks every chunk of every file up in the chunk index and the chunk store (one
listing of packs/), and with `read_chunk_data` reads each distinct chunk once and re-hashes
it; `chunk_begin`/`chunk_end` (Pachyderm's CheckStorageRequest) limit it to the chunks whose
ids -- here their blake3 hashes -- fall in [begin, end). Damage names repo, commit and path. Objects under packs/ that nothing records are counted
as orphans (the garbage collector removes them once they are older than the lease TTL).

Invariants: both only read (fsck writes only with `fix`, each repair one small atomic
batch); neither holds a whole file in memory (one chunk at a time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import blake3
import msgpack

from pfs.core import keys, records
from pfs.core.content import pack_key
from pfs.core.filetree import FileTree
from pfs.core.index import IndexTree
from pfs.errors import DataLoss, ObjectNotFound, PfsError

MAX_REPORTED = 200


# ---- fsck ----------------------------------------------------------------------------------
def _load(snap):
    repos = {records.decode_repo(v).repo for _k, v in snap.scan(prefix=keys.repo_prefix())}
    branches = {}
    for _k, v in snap.scan(prefix=b"B\x00"):
        bi = records.decode_branch(v)
        branches[bi.branch] = bi
    commits = {}
    for k, v in snap.scan(prefix=keys.COMMIT_PREFIX):
        ci = records.decode_commit(v)
        commits[(ci.commit.repo, ci.commit.id)] = (k, v, ci)
    return repos, branches, commits


def fsck(pfs, fix: bool = False) -> Iterator[tuple[str, str]]:
    """Yield ("error", message) for each problem and ("fix", message) for each repair."""
    with pfs.meta.snapshot() as snap:
        repos, branches, commits = _load(snap)
    for (repo, cid), (k, _v, ci) in sorted(commits.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        if repo not in repos:
            yield "error", f"consistency error: commit {ci.commit} belongs to repo {repo}, which does not exist"
            if fix and pfs.meta.put_if(k, _v, None):
                yield "fix", f"deleted commit {ci.commit} of the deleted repo {repo}"
    for b, bi in sorted(branches.items(), key=lambda kv: str(kv[0])):
        if bi.head and (b.repo, bi.head) not in commits:
            yield "error", (f"consistency error: the commit {b.repo}@{bi.head} could not be found while "
                            f"checking the head of branch {b}")
        prov = set(bi.provenance)
        for p in bi.provenance:
            pi = branches.get(p)
            if pi is None:
                yield "error", f"consistency error: branch {b} has provenance {p}, which does not exist"
                continue
            missing = [str(x) for x in pi.provenance if x not in prov and x != b]
            if missing:
                yield "error", (f"consistency error: branch provenance is not transitive: {b} has {p} in its "
                                f"provenance but not {', '.join(missing)}")
            if b not in pi.subvenance:
                yield "error", (f"consistency error: branch {b} has {p} in its provenance, but {p} does not have "
                                f"{b} in its subvenance")
                if fix and _add_branch_subvenance(pfs, p, b):
                    yield "fix", f"added {b} to the subvenance of branch {p}"
    for (repo, cid), (_k, _v, ci) in sorted(commits.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        if repo not in repos:
            continue
        if ci.parent:
            parent = commits.get((repo, ci.parent))
            if parent is None:
                yield "error", (f"consistency error: the commit {repo}@{ci.parent} could not be found while "
                                f"checking the parent of {ci.commit}")
            elif cid not in parent[2].children:
                yield "error", (f"consistency error: parent commit {parent[2].commit} and child commit {ci.commit} "
                                "disagree about their parent/child relationship")
                if fix and _edit_commit(pfs, repo, ci.parent, lambda c: c.children.append(cid)):
                    yield "fix", f"added {cid} to the children of {parent[2].commit}"
        for child in ci.children:
            c = commits.get((repo, child))
            if c is None or c[2].parent != cid:
                yield "error", (f"consistency error: parent commit {ci.commit} and child commit {repo}@{child} "
                                "disagree about their parent/child relationship")
                if fix and c is None and _edit_commit(pfs, repo, cid, lambda x, ch=child: x.children.remove(ch)
                                                      if ch in x.children else None):
                    yield "fix", f"removed the missing child {child} from {ci.commit}"
        for p in ci.direct_provenance:
            pc = commits.get((p.repo, p.id))
            if pc is None:
                yield "error", (f"consistency error: the commit {p} could not be found while checking the "
                                f"provenance of {ci.commit}")
                continue
            if all(s.id != cid or s.repo != repo for s in pc[2].direct_subvenance):
                yield "error", ("consistency error: the commit was not in its provenance's subvenance\n"
                                f"commit {ci.commit}\nprovenance commit {pc[2].commit}")
                if fix and _edit_commit(pfs, p.repo, p.id, lambda x, r=ci.commit: x.direct_subvenance.append(r)):
                    yield "fix", f"added {ci.commit} to the subvenance of {pc[2].commit}"
        for s in ci.direct_subvenance:
            if (s.repo, s.id) not in commits:
                yield "error", (f"consistency error: the commit {s} could not be found while checking the "
                                f"subvenance of {ci.commit}")
                if fix and _edit_commit(pfs, repo, cid, lambda x, s=s: x.direct_subvenance.remove(s)
                                        if s in x.direct_subvenance else None):
                    yield "fix", f"removed the missing commit {s} from the subvenance of {ci.commit}"


def _edit_commit(pfs, repo, cid: str, change) -> bool:
    with pfs.txn() as t:
        ci = t.commit_info(repo, cid)
        if ci is None:
            return False
        change(ci)
        t.put_commit(ci)
    return True


def _add_branch_subvenance(pfs, b, sub) -> bool:
    with pfs.txn() as t:
        bi = t.branch(b)
        if bi is None:
            return False
        if sub not in bi.subvenance:
            bi.subvenance.append(sub)
            t.put_branch(bi)
    return True


# ---- check storage ---------------------------------------------------------------------------
@dataclass
class StorageCheck:
    commits: int = 0
    files: int = 0
    chunks: int = 0  # distinct chunks checked
    chunks_read: int = 0
    bytes_read: int = 0
    packs: int = 0  # pack objects in the chunk store
    pack_bytes: int = 0  # their total size
    live_bytes: int = 0  # bytes of the distinct chunks live commits refer to
    dead_bytes: int = 0  # bytes of indexed chunks nothing refers to, still stored (plus orphans)
    orphans: int = 0  # pack objects nothing records
    orphan_bytes: int = 0
    damage: list = field(default_factory=list)  # human-readable, naming repo, commit and path
    damaged: int = 0  # damaged files (damage may be cut at MAX_REPORTED)

    def add(self, msg: str) -> None:
        self.damaged += 1
        if len(self.damage) < MAX_REPORTED:
            self.damage.append(msg)


class _SnapNodes:
    def __init__(self, snap):
        self.snap = snap

    def get_node(self, h: bytes) -> bytes:
        from pfs.core.gc.records import unframe_node
        raw = self.snap.get(keys.node_key(h))
        if raw is None:
            raise DataLoss(f"index node {h.hex()} is missing from the metadata store")
        return unframe_node(raw)


def in_range(h: bytes, begin: bytes, end: bytes) -> bool:
    """Pachyderm's chunk_begin/chunk_end: chunk ids in [begin, end); an empty bound is open."""
    return h >= begin and (not end or h < end)


def check_storage(pfs, read_chunk_data: bool = False, chunk_begin: bytes = b"", chunk_end: bytes = b"") -> StorageCheck:
    """Check every chunk a commit refers to whose id (its blake3 hash) is in [chunk_begin,
    chunk_end) (Pachyderm's CheckStorageRequest; empty bounds are open), so a big store can be
    checked in ranges, one call each. `chunks` counts the chunks checked."""
    r = StorageCheck()
    objects = {}
    for info in pfs.chunks.iterate_info("packs/"):
        objects[info.key] = info.size
    r.packs = len(objects)
    r.pack_bytes = sum(objects.values())
    verdict: dict[bytes, str] = {}  # chunk hash -> "" (fine) or what is wrong
    with pfs.meta.snapshot() as snap:
        recorded = {k[len(keys.PACK_RECORD_PREFIX):] for k, _ in snap.scan(prefix=keys.PACK_RECORD_PREFIX)}
        index = IndexTree(_SnapNodes(snap))
        for _k, v in snap.scan(prefix=keys.COMMIT_PREFIX):
            ci = records.decode_commit(v)
            r.commits += 1
            if not ci.root:
                continue
            tree = FileTree(index, ci.root)
            try:
                for path, e in tree.files("/"):
                    r.files += 1
                    for ref in e.refs:
                        if not in_range(ref.hash, chunk_begin, chunk_end):
                            continue
                        bad = verdict.get(ref.hash)
                        if bad is None:
                            bad = _check_chunk(pfs, snap, objects, ref, read_chunk_data, r)
                            verdict[ref.hash] = bad
                            r.live_bytes += ref.length
                        if bad:
                            r.add(f"repo {ci.commit.repo} commit {ci.commit.id} path {path}: {bad}")
                            break
            except DataLoss as e:
                r.add(f"repo {ci.commit.repo} commit {ci.commit.id}: its file index is damaged: {e.message}")
        r.chunks = len(verdict)
        for k, v in snap.scan(prefix=keys.CHUNK_PREFIX):
            h = k[len(keys.CHUNK_PREFIX):]
            if h not in verdict and in_range(h, chunk_begin, chunk_end):
                pack, _off, length = msgpack.unpackb(v)
                if pack_key(pack) in objects:
                    r.dead_bytes += length
    for key, size in objects.items():
        try:
            pack = bytes.fromhex(key.rsplit("/", 1)[-1])
        except ValueError:
            continue
        if pack not in recorded:
            r.orphans += 1
            r.orphan_bytes += size
            r.dead_bytes += size
    return r


def _check_chunk(pfs, snap, objects: dict, ref, read: bool, r: StorageCheck) -> str:
    raw = snap.get(keys.chunk_key(ref.hash))
    where = ref
    if raw is not None:
        pack, off, length = msgpack.unpackb(raw)
        if pack_key(pack) in objects:
            where = type(ref)(ref.hash, pack, off, length)
    key = pack_key(where.pack)
    if key not in objects:
        return f"chunk {ref.hash.hex()} is missing (pack {where.pack.hex()} is not in the chunk store)"
    if objects[key] >= 0 and where.offset + where.length > objects[key]:
        return (f"chunk {ref.hash.hex()} is missing (pack {where.pack.hex()} holds {objects[key]} bytes, the chunk "
                f"ends at {where.offset + where.length})")
    if not read:
        return ""
    try:
        data = pfs.chunks.get_range(key, where.offset, where.length)
    except ObjectNotFound:
        return f"chunk {ref.hash.hex()} is missing (pack {where.pack.hex()} vanished while being read)"
    except PfsError as e:
        return f"chunk {ref.hash.hex()} could not be read: {e.message}"
    r.chunks_read += 1
    r.bytes_read += len(data)
    if len(data) != where.length or blake3.blake3(data).digest() != ref.hash:
        return f"chunk {ref.hash.hex()} is corrupt (its bytes in pack {where.pack.hex()} do not match its hash)"
    return ""
