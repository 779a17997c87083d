"""R4: writers, readers and subscribers on one branch at the same time.

- `writers` threads (own channel each) for `seconds`: one-off ModifyFile commits on
  `cc@master` (into the open head commit when one is open), StartCommit, writes into their own
  open commit by id, FinishCommit. Writer w touches only `/w<w>/`; each operation rewrites its
  manifest `/w<w>/MANIFEST` ({"seq", "files": {path: sha256}}) together with the files it
  adds or deletes, in one stream.
- readers read whole head commits (GetFileTAR) and check every writer's directory against its
  manifest: a reader that saw half of an operation finds a file the manifest does not list,
  misses one it lists, or a different hash.
- subscribers (SubscribeCommit master, FINISHED) from before the first write.
After the writers stop and every commit is finished:
- no lost write: each writer's directory at the head is exactly its last acknowledged state;
- every subscriber got every finished commit of master exactly once, oldest first;
- latencies: p50 / p99 / max per operation kind.
An operation pachd rejects cleanly (FAILED_PRECONDITION: "parent commit ... has not been
finished", a commit finished meanwhile; ABORTED: the branch moved) is not acknowledged and the
model keeps the state before it; the manifest check proves it changed nothing.
"""
from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field

import grpc

from proto.pfs_v2 import pfs_pb2 as pb
from tests.reliability.harness import CALL, CrashablePachd, Pach, branch_pb, commit_pb, repo_pb

REPO = "cc"
REJECTED = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}


class Broken(AssertionError):
    pass


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def check_tree(files: dict[str, bytes], where: str) -> int:
    """Every writer directory in `files` agrees with its manifest; returns directories checked."""
    dirs: dict[str, dict] = {}
    for path, data in files.items():
        parts = path.split("/")
        if len(parts) != 3:
            raise Broken(f"{where}: unexpected path {path}")
        dirs.setdefault(parts[1], {})[path] = data
    for d, fs in dirs.items():
        man = fs.pop(f"/{d}/MANIFEST", None)
        if man is None:
            raise Broken(f"{where}: /{d}/ has files {sorted(fs)[:3]} but no MANIFEST")
        want = json.loads(man)["files"]
        got = {p: _sha(b) for p, b in fs.items()}
        if got != want:
            raise Broken(f"{where}: /{d}/ is half an operation (manifest seq {json.loads(man)['seq']}): "
                         f"missing {sorted(set(want) - set(got))[:3]}, extra {sorted(set(got) - set(want))[:3]}, "
                         f"different {sorted(p for p in set(got) & set(want) if got[p] != want[p])[:3]}")
    return len(dirs)


@dataclass
class Stats:
    lat: dict = field(default_factory=dict)   # kind -> [seconds]
    acked: int = 0
    rejected: int = 0
    reads: int = 0
    dirs_checked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, dt: float) -> None:
        with self.lock:
            self.lat.setdefault(kind, []).append(dt)

    def percentiles(self) -> dict:
        out = {}
        for k, v in sorted(self.lat.items()):
            v = sorted(v)
            out[k] = {"n": len(v), "p50_ms": round(1000 * v[len(v) // 2], 1),
                      "p99_ms": round(1000 * v[min(len(v) - 1, int(len(v) * 0.99))], 1),
                      "max_ms": round(1000 * v[-1], 1)}
        return out


class Writer(threading.Thread):
    def __init__(self, w: int, port: int, stop: threading.Event, stats: Stats, seed: int):
        super().__init__(name=f"writer-{w}", daemon=True)
        self.w, self.port, self.stop, self.stats = w, port, stop, stats
        self.rng = random.Random(seed * 1000 + w)
        self.state: dict[str, str] = {}   # acknowledged: path -> sha256
        self.seq = 0
        self.own_open = ""                 # a commit this writer started and has not finished
        self.error: BaseException | None = None

    def _op_stream(self, commit: pb.Commit):
        """The next operation on this writer's directory: (requests, state after)."""
        self.seq += 1
        after = dict(self.state)
        reqs = [pb.ModifyFileRequest(set_commit=commit)]
        if after and self.rng.random() < 0.3:
            victim = self.rng.choice(sorted(after))
            after.pop(victim)
            reqs.append(pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=victim)))
        for _ in range(self.rng.randint(1, 3)):
            path = f"/w{self.w}/f{self.rng.randint(0, 30)}"
            data = f"{self.w}:{self.seq}:{path}:".encode() + self.rng.randbytes(self.rng.randint(0, 20000))
            reqs.append(pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=path)))
            reqs.append(pb.ModifyFileRequest(add_file=pb.AddFile(path=path, raw={"value": data})))
            after[path] = _sha(data)
        man = json.dumps({"seq": self.seq, "files": after}).encode()
        mp = f"/w{self.w}/MANIFEST"
        reqs += [pb.ModifyFileRequest(delete_file=pb.DeleteFile(path=mp)),
                 pb.ModifyFileRequest(add_file=pb.AddFile(path=mp, raw={"value": man}))]
        return reqs, after

    def _timed(self, kind: str, fn, *a, **kw):
        t = time.monotonic()
        try:
            r = fn(*a, timeout=CALL, **kw)
        except grpc.RpcError as e:
            if e.code() in REJECTED:
                with self.stats.lock:
                    self.stats.rejected += 1
                return False, e
            raise Broken(f"writer {self.w} {kind}: {e.code().name}: {e.details()}") from None
        self.stats.add(kind, time.monotonic() - t)
        with self.stats.lock:
            self.stats.acked += 1
        return True, r

    def run(self) -> None:
        c = Pach(self.port)
        try:
            while not self.stop.is_set():
                r = self.rng.random()
                if self.own_open:
                    if r < 0.7:
                        reqs, after = self._op_stream(commit_pb(REPO, self.own_open))
                        ok, _ = self._timed("modify-open", c.pfs.ModifyFile, iter(reqs))
                        if ok:
                            self.state = after
                        elif isinstance(_, grpc.RpcError) and "finished" not in (_.details() or ""):
                            raise Broken(f"writer {self.w}: write into its open commit rejected: {_.details()}")
                    else:
                        ok, _ = self._timed("finish", c.pfs.FinishCommit,
                                            pb.FinishCommitRequest(commit=commit_pb(REPO, self.own_open)))
                        self.own_open = ""
                elif r < 0.1:
                    ok, res = self._timed("start", c.pfs.StartCommit, pb.StartCommitRequest(branch=branch_pb(REPO)))
                    if ok:
                        self.own_open = res.id
                else:
                    reqs, after = self._op_stream(commit_pb(REPO, branch="master"))
                    ok, _ = self._timed("modify-branch", c.pfs.ModifyFile, iter(reqs))
                    if ok:
                        self.state = after
            if self.own_open:
                self._timed("finish", c.pfs.FinishCommit, pb.FinishCommitRequest(commit=commit_pb(REPO, self.own_open)))
                self.own_open = ""
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.error = e
        finally:
            c.close()


class Reader(threading.Thread):
    def __init__(self, port: int, stop: threading.Event, stats: Stats):
        super().__init__(name="reader", daemon=True)
        self.port, self.stop, self.stats = port, stop, stats
        self.error: BaseException | None = None

    def run(self) -> None:
        c = Pach(self.port)
        try:
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    head = c.branch_head(REPO)
                    files = c.files(REPO, head)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.NOT_FOUND:  # no commit yet
                        time.sleep(0.01)
                        continue
                    raise Broken(f"reader: {e.code().name}: {e.details()}") from None
                self.stats.add("read-head", time.monotonic() - t)
                n = check_tree(files, f"reader at commit {head}")
                with self.stats.lock:
                    self.stats.reads += 1
                    self.stats.dirs_checked += n
        except BaseException as e:  # noqa: BLE001
            self.error = e
        finally:
            c.close()


class Subscriber(threading.Thread):
    def __init__(self, port: int):
        super().__init__(name="subscriber", daemon=True)
        self.c = Pach(port)
        self.got: list[str] = []
        self.error: BaseException | None = None
        self.call = self.c.pfs.SubscribeCommit(pb.SubscribeCommitRequest(
            repo=repo_pb(REPO), branch="master", state=pb.CommitState.FINISHED), timeout=None)

    def run(self) -> None:
        try:
            for ci in self.call:
                self.got.append(ci.commit.id)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = Broken(f"subscriber: {e.code().name}: {e.details()}")
        finally:
            self.c.close()


def run(pd: CrashablePachd, seconds: float, writers: int = 8, readers: int = 2, subscribers: int = 2,
        seed: int = 1, min_commits: int = 0, min_reads: int = 0, min_ops: int = 0) -> dict:
    """The whole R4 scenario on a running pachd; returns the figures (raises Broken on a loss).
    Runs `seconds`, and longer (up to 10x, at least 2 minutes) until the subscribers saw
    `min_commits` commits, the readers made `min_reads` reads and the writers had `min_ops`
    operations acknowledged: a slow machine does the
    same amount of work, only later."""
    with pd.client() as c:
        c.create_repo(REPO)
    stats, stop = Stats(), threading.Event()
    subs = [Subscriber(pd.port) for _ in range(subscribers)]
    for s in subs:
        s.start()
    ws = [Writer(i, pd.port, stop, stats, seed) for i in range(writers)]
    rs = [Reader(pd.port, stop, stats) for _ in range(readers)]
    for t in ws + rs:
        t.start()
    t0 = time.monotonic()
    cap = max(10 * seconds, 120.0)

    def more_needed() -> bool:
        seen = max((len(s.got) for s in subs), default=min_commits)
        return seen < min_commits or stats.reads < min_reads or stats.acked < min_ops
    while (time.monotonic() - t0 < seconds or (more_needed() and time.monotonic() - t0 < cap)) \
            and not any(t.error for t in ws + rs):
        time.sleep(0.2)
    stop.set()
    for t in ws + rs:
        t.join(CALL * 3)
        if t.is_alive():
            raise Broken(f"{t.name} did not stop")
    errors = [t.error for t in ws + rs if t.error]
    try:
        if errors:
            raise errors[0]
        with pd.client() as c:
            commits = list(reversed([ci.commit.id for ci in c.list_commits(REPO)]))  # oldest first
            for ci in c.list_commits(REPO):
                if not ci.HasField("finished"):
                    raise Broken(f"commit {ci.commit.id} is still open after every writer finished its own")
            head = c.branch_head(REPO)
            files = c.files(REPO, head)
        check_tree(files, f"final head {head}")
        for w in ws:
            got = {p: _sha(b) for p, b in files.items() if p.startswith(f"/w{w.w}/") and not p.endswith("MANIFEST")}
            if got != w.state:
                raise Broken(f"writer {w.w}: acknowledged writes lost: missing {sorted(set(w.state) - set(got))[:3]}, "
                             f"extra {sorted(set(got) - set(w.state))[:3]}")
        deadline = time.monotonic() + 30
        while any(len(s.got) < len(commits) for s in subs) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for s in subs:
            s.call.cancel()
            s.join(10)
    for s in subs:
        if s.error:
            raise s.error
        if s.got != commits:
            dup = len(s.got) - len(set(s.got))
            raise Broken(f"subscriber got {len(s.got)} commits ({dup} twice), master has {len(commits)}; "
                         f"first difference at {next((i for i, (a, b) in enumerate(zip(s.got, commits)) if a != b), None)}")
    return {"seconds": round(time.monotonic() - t0, 1), "writers": writers, "readers": readers,
            "subscribers": subscribers, "ops_acked": stats.acked, "ops_rejected_cleanly": stats.rejected,
            "commits": len(commits), "head_reads": stats.reads, "dirs_checked": stats.dirs_checked,
            "lost_writes": 0, "half_commits_seen": 0, "latency": stats.percentiles()}
