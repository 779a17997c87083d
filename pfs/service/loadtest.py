"""PFS load tests (RunLoadTest, debug's RunPFSLoadTest): Pachyderm's pfsload spec, run here.

Spec (YAML or JSON, Pachyderm's `CommitSpec`): `count` commits; per commit each of
`modifications` runs `count` times and puts `putFile.count` random files from the named
`fileSources` entry (`random: {sizes: [{min, max, prob}], directory: {depth: {min, max},
run}, incrementPath}`); `validator: {}` reads every commit back and checks it.

Invariants:
- Runs against `branch` (default: a new branch of repo `load_test`, created if missing);
  the answer carries the branch, seed, duration, and `error` (the test's failure, not an
  RPC error), plus a state id: a file set holding the commits made and their hashes.
- The default specs are Pachyderm's three shapes (mixed sizes in nested directories, many
  small files, a few large files) scaled down about 100x, so a default run takes seconds on
  a laptop instead of writing several GB.
"""
from __future__ import annotations

import json
import random
import time
import uuid

import blake3
import yaml

from pfs.errors import InvalidArgument, RepoExists
from pfs.model import Branch, Repo

DEFAULT_SPECS = [
    """
count: 3
modifications:
  - count: 5
    putFile: {count: 5, source: random}
validator: {}
fileSources:
  - name: random
    random:
      directory: {depth: {min: 0, max: 3}, run: 3}
      sizes:
        - {min: 1000, max: 10000, prob: 30}
        - {min: 10000, max: 100000, prob: 30}
        - {min: 100000, max: 1000000, prob: 40}
""",
    """
count: 3
modifications:
  - count: 5
    putFile: {count: 100, source: random}
validator: {}
fileSources:
  - name: random
    random:
      sizes: [{min: 100, max: 1000, prob: 100}]
""",
    """
count: 3
modifications:
  - count: 5
    putFile: {count: 1, source: random}
validator: {}
fileSources:
  - name: random
    random:
      sizes: [{min: 1000000, max: 5000000, prob: 100}]
""",
]


def _parse(spec_text: str) -> dict:
    try:
        spec = yaml.safe_load(spec_text) or {}
    except yaml.YAMLError as e:
        raise InvalidArgument(f"load test spec is not valid YAML/JSON: {e}") from e
    if not isinstance(spec, dict):
        raise InvalidArgument("load test spec must be a mapping (Pachyderm's CommitSpec)")
    unknown = set(spec) - {"count", "modifications", "fileSources", "file_sources", "validator"}
    if unknown:
        raise InvalidArgument(f"unmarshal CommitSpec: unknown field(s) {sorted(unknown)}")
    return spec


class _RandomSource:
    def __init__(self, rnd: random.Random, conf: dict):
        self.rnd = rnd
        self.sizes = conf.get("sizes") or [{"min": 100, "max": 1000, "prob": 100}]
        d = conf.get("directory") or {}
        depth = d.get("depth") or {}
        self.depth = (int(depth.get("min", 0)), int(depth.get("max", 0)))
        self.run = int(d.get("run", 1)) or 1
        self.increment = bool(conf.get("incrementPath") or conf.get("increment_path"))
        self.n = 0
        self._dir = ""
        self._left = 0

    def next(self) -> tuple[str, bytes]:
        if self._left <= 0:
            depth = self.rnd.randint(*self.depth) if self.depth[1] else 0
            self._dir = "".join(f"/{self.rnd.getrandbits(32):08x}" for _ in range(depth))
            self._left = self.run
        self._left -= 1
        self.n += 1
        name = f"{self.n:012d}" if self.increment else f"{self.rnd.getrandbits(64):016x}"
        r = self.rnd.randint(1, 100)
        pick = self.sizes[-1]
        for s in self.sizes:
            r -= int(s.get("prob", 0))
            if r <= 0:
                pick = s
                break
        size = self.rnd.randint(int(pick.get("min", 0)), int(pick.get("max", pick.get("min", 0))))
        return f"{self._dir}/{name}", self.rnd.randbytes(size)


def run_load_test(pfs, spec_text: str, branch_msg, seed: int, response_cls, filesets=None):
    """Run one spec (or Pachyderm's default sequence when spec_text is empty); returns
    `response_cls(spec, branch, seed, error, duration, state_id)`."""
    from google.protobuf.duration_pb2 import Duration

    from pfs.service import convert as cv
    specs = [spec_text] if spec_text else DEFAULT_SPECS
    seed = seed or int(time.time_ns() % (1 << 62))
    resp = None
    for text in specs:
        if branch_msg is not None and branch_msg.name:
            branch = cv.branch_in(branch_msg)
        else:
            branch = Branch(Repo("default", "load_test", "user"), uuid.uuid4().hex)
        start = time.monotonic()
        error, state = "", {"commits": []}
        try:
            _run_one(pfs, _parse(text), branch, random.Random(seed), state)
        except Exception as e:  # noqa: BLE001 - reported in the answer, as Pachyderm does
            error = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        d = Duration()
        d.FromNanoseconds(int((time.monotonic() - start) * 1e9))
        from pfs.core.filesets import FileSets
        w = (filesets or FileSets(pfs)).writer()
        try:
            w.add("/state", json.dumps(state).encode())
            state_id = w.close()
        finally:
            w.abort()
        resp = response_cls(spec=text, branch=cv.branch_out(branch), seed=seed, error=error,
                            duration=d, state_id=state_id)
        if error:
            break
    return resp


def _run_one(pfs, spec: dict, branch: Branch, rnd: random.Random, state: dict) -> None:
    try:
        pfs.create_repo(branch.repo)
    except RepoExists:
        pass
    sources = {s.get("name", ""): _RandomSource(rnd, s.get("random") or {})
               for s in spec.get("fileSources") or spec.get("file_sources") or []}
    for _ in range(int(spec.get("count", 1))):
        ci = pfs.start_commit(branch)
        expected: dict[str, bytes] = {}
        with pfs.open_writer(branch.repo, ci.commit.id) as w:
            for mod in spec.get("modifications") or []:
                put = mod.get("putFile") or mod.get("put_file") or {}
                src = sources.get(put.get("source", ""))
                if src is None:
                    raise InvalidArgument(f"load test spec: no file source named {put.get('source', '')!r}")
                for _ in range(int(mod.get("count", 1))):
                    for _ in range(int(put.get("count", 1))):
                        path, data = src.next()
                        w.put(path, [data])
                        expected[path] = blake3.blake3(data).digest()
        pfs.finish_commit(branch.repo, ci.commit.id)
        if "validator" in spec:
            got = pfs.commit_for_read(branch.repo, ci.commit.id)
            tree = pfs.tree(got)
            for path, h in expected.items():
                e = tree.entry(path)
                got_hash = blake3.blake3()
                for piece in (pfs.content.read(e.refs) if e is not None else ()):
                    got_hash.update(piece)
                if e is None or got_hash.digest() != h:
                    raise InvalidArgument(f"validation failed: {path} in commit {ci.commit} does not hold what was put")
        state["commits"].append({"commit": ci.commit.id, "files": len(expected)})
