"""R1 for pfs: a writer against a pachd that is killed -9 (at random moments or at a named
failpoint), and the checks after every restart.

The writer keeps a model of what pachd acknowledged: every commit it learned the id of, the
tree ({path: sha256}) that commit must have, and whether it must be finished. At most one
operation is in flight when pachd dies; the model knows the states that operation may leave
(the state before it, or the state after it, never anything else).

After each restart `reconcile` checks, against the model:
- no acknowledged commit is lost, and each has exactly its acknowledged files, byte for byte
  (every file of every commit is read back in full, so a commit whose chunks were not all
  stored is caught too);
- no partial commit is visible: a commit the model does not know is only the in-flight one-off
  commit or started commit, with exactly the after-state and the right parent; the in-flight
  commit's files are the before- or the after-state;
- the branch head is the last acknowledged head or the in-flight operation's commit;
- every open commit can be finished (and then is: the next round starts from finished
  commits or continues the open one).
Operations: one-off commits (ModifyFile on the branch), start commit, ModifyFile into the open
commit, finish commit; files from a few bytes to 3 MiB (several chunks, streamed in 256 KiB
messages), overwrites and deletes.
"""
from __future__ import annotations

import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import grpc

from tests.reliability.harness import CrashablePachd, Pach, commit_pb, dead, sha

REPO = "data"


class Lost(AssertionError):
    """A check after restart failed: something acknowledged is gone, or something half is visible."""


@dataclass
class Commit:
    id: str
    parent: str
    tree: dict
    finished: bool


@dataclass
class Pending:
    kind: str               # "oneoff" | "start" | "modify" | "finish"
    commit: str = ""        # the commit it works on ("" for oneoff/start: not known yet)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    parent: str = ""        # oneoff/start: the head it builds on


class Model:
    def __init__(self, seed: int, sample_old: Optional[int] = None):
        self.rng = random.Random(seed)
        self.sample_old = sample_old  # None: re-read every commit after each restart
        self.verified: set[str] = set()  # commits read back in full after some restart
        self.commits: dict[str, Commit] = {}
        self.head = ""          # the branch head the model expects
        self.pending: Optional[Pending] = None
        self.seq = 0
        self.acked = 0          # operations acknowledged, all rounds

    # ---- content -----------------------------------------------------------------------------
    def _data(self) -> bytes:
        self.seq += 1
        r = self.rng.random()
        n = self.rng.randint(0, 64) if r < 0.5 else self.rng.randint(65, 64 << 10) if r < 0.93 \
            else self.rng.randint(1 << 20, 3 << 20)
        head = f"{self.seq}:".encode()
        return (head + self.rng.randbytes(max(0, n - len(head))))[:max(n, len(head))]

    def head_tree(self) -> dict:
        return dict(self.commits[self.head].tree) if self.head else {}

    def _change(self, tree: dict) -> tuple[dict, list, dict]:
        puts = {}
        for _ in range(self.rng.randint(1, 4)):
            if tree and self.rng.random() < 0.3:
                path = self.rng.choice(sorted(tree))  # overwrite
            else:
                path = f"/d{self.rng.randint(0, 7)}/f{self.seq}-{self.rng.randint(0, 1 << 20)}"
            puts[path] = self._data()
        deletes = []
        if tree and self.rng.random() < 0.3:
            victim = self.rng.choice(sorted(tree))
            if victim not in puts:
                deletes.append(victim)
        after = dict(tree)
        for p in deletes:
            after.pop(p, None)
        for p, b in puts.items():
            after[p] = sha(b)
        return puts, deletes, after

    # ---- one operation -----------------------------------------------------------------------
    def step(self, c: Pach) -> None:
        """Do one operation; the model records it only once pachd acknowledged it."""
        head = self.commits.get(self.head)
        if head is not None and not head.finished:
            if self.rng.random() < 0.65:
                puts, deletes, after = self._change(head.tree)
                self.pending = Pending("modify", head.id, dict(head.tree), after)
                c.modify(commit_pb(REPO, head.id), puts, deletes)
                head.tree = after
            else:
                self.pending = Pending("finish", head.id, head.tree, head.tree)
                c.finish_commit(REPO, head.id)
                head.finished = True
        elif self.rng.random() < 0.3:
            base = self.head_tree()
            self.pending = Pending("start", parent=self.head, before=base, after=base)
            cid = c.start_commit(REPO)
            self.commits[cid] = Commit(cid, self.head, base, False)
            self.head = cid
        else:
            puts, deletes, after = self._change(self.head_tree())
            self.pending = Pending("oneoff", parent=self.head, before=self.head_tree(), after=after)
            c.modify(commit_pb(REPO, branch="master"), puts, deletes)
            cid = c.branch_head(REPO)  # one writer: the new head is this operation's commit
            if cid == self.head:
                raise Lost(f"a one-off commit was acknowledged but the branch head stayed {cid}")
            self.commits[cid] = Commit(cid, self.head, after, True)
            self.head = cid
        self.pending = None
        self.acked += 1

    # ---- after a restart -----------------------------------------------------------------------
    def reconcile(self, c: Pach) -> dict:
        """Check pachd's state against the model (see the module docstring); adopt the in-flight
        operation's outcome; finish an open commit. Returns what was checked."""
        infos = {ci.commit.id: ci for ci in c.list_commits(REPO)}
        p = self.pending
        unknown = [i for i in infos if i not in self.commits]
        for cid in self.commits:
            if cid not in infos:
                raise Lost(f"acknowledged commit {cid} is gone after the restart")
        if len(unknown) > 1 or (unknown and (p is None or p.kind not in ("oneoff", "start"))):
            raise Lost(f"commits nobody acknowledged or started appeared: {unknown} (in flight: {p})")
        files_read = 0
        old = sorted(cid for cid in infos if cid in self.verified and self.commits[cid].finished
                     and (p is None or p.commit != cid))
        if self.sample_old is not None and len(old) > self.sample_old:
            skip = set(old) - set(self.rng.sample(old, self.sample_old))
        else:
            skip = set()
        for cid, ci in infos.items():
            if cid in skip:  # a finished commit read back in full after an earlier restart
                if not ci.HasField("finished"):
                    raise Lost(f"acknowledged finished commit {cid} is open again")
                continue
            tree = c.tree(REPO, cid)
            files_read += len(tree)
            finished = ci.HasField("finished")
            if cid in unknown:
                if tree != p.after:
                    raise Lost(f"in-flight {p.kind} commit {cid} is partial: {_difference(p.after, tree)}")
                if ci.parent_commit.id != p.parent:
                    raise Lost(f"in-flight commit {cid} has parent {ci.parent_commit.id}, expected {p.parent!r}")
                if finished != (p.kind == "oneoff"):
                    raise Lost(f"in-flight {p.kind} commit {cid} finished={finished}")
                self.commits[cid] = Commit(cid, p.parent, tree, finished)
                continue
            m = self.commits[cid]
            if p is not None and p.commit == cid:
                if tree not in (p.before, p.after):
                    raise Lost(f"commit {cid} is neither before nor after the in-flight {p.kind}: "
                               f"{_difference(p.after, tree)}")
                m.tree = tree
                if p.kind == "finish":
                    m.finished = finished
            elif tree != m.tree:
                raise Lost(f"acknowledged commit {cid} changed: {_difference(m.tree, tree)}")
            if m.finished and not finished:
                raise Lost(f"acknowledged finished commit {cid} is open again")
            if finished and not m.finished and not (p is not None and p.commit == cid):
                raise Lost(f"commit {cid} finished although nobody finished it")
            m.finished = finished
        self.verified |= set(infos) - skip
        head = c.branch_head(REPO) if infos else ""
        allowed = {self.head} | set(unknown)
        if head not in allowed:
            raise Lost(f"branch head is {head}, expected one of {sorted(allowed)}")
        self.head = head
        self.pending = None
        finished_open = 0
        for cid, m in self.commits.items():
            if not m.finished:
                c.finish_commit(REPO, cid)  # open commits are finishable after a crash
                ci = c.inspect_commit(REPO, cid)
                if not ci.HasField("finished") or c.tree(REPO, cid) != m.tree:
                    raise Lost(f"open commit {cid} did not finish with its files")
                m.finished = True
                finished_open += 1
        return {"commits": len(infos), "files_read": files_read, "finished_open": finished_open}


def _difference(want: dict, got: dict) -> str:
    missing = sorted(set(want) - set(got))[:3]
    extra = sorted(set(got) - set(want))[:3]
    changed = sorted(p for p in set(want) & set(got) if want[p] != got[p])[:3]
    return f"missing {missing}, unexpected {extra}, different {changed}"


@dataclass
class RoundResult:
    killed_by: str           # "random" | failpoint name | "none" (the failpoint never fired)
    ops_acked: int
    after: dict


def run_round(pd: CrashablePachd, model: Model, failpoint: str = "", kill_after: Optional[float] = None,
              max_ops: int = 400) -> RoundResult:
    """Start pachd (armed with `failpoint` if given), write until it dies (kill -9 after
    `kill_after` seconds if given), restart it unarmed, check everything (Model.reconcile)."""
    pd.start(failpoints=failpoint)
    acked0 = model.acked
    killer = None
    if kill_after is not None:
        killer = threading.Timer(kill_after, pd.kill9)
        killer.start()
    c = pd.client()
    try:
        if not model.commits and model.pending is None and model.acked == 0:
            try:
                c.create_repo(REPO)
            except grpc.RpcError as e:  # made by a round that died before its first operation
                if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
        for _ in range(max_ops):
            try:
                model.step(c)
            except grpc.RpcError as e:
                if pd.alive() and not pd.wait_dead(5.0):
                    raise AssertionError(f"pachd answered {e.code()}: {e.details()} while alive:\n"
                                         f"{pd.log_tail()}") from e
                if not dead(e):
                    raise
                break
    finally:
        c.close()
        if killer is not None:
            killer.cancel()
            killer.join()
    fired = failpoint.split("@")[0] if failpoint else ""
    if fired and not pd.fired(fired):
        how = "none"
    else:
        how = fired or ("random" if kill_after is not None else "none")
    pd.kill9()  # if it is still up (the failpoint never fired): a kill at a random moment too
    if pd.proc.returncode != -signal.SIGKILL and how != "none":
        raise AssertionError(f"pachd ended with {pd.proc.returncode}, not by kill -9:\n{pd.log_tail()}")
    pd.start()
    try:
        with pd.client() as c:
            after = model.reconcile(c)
    finally:
        pd.stop()
    return RoundResult(how, model.acked - acked0, after)


def timed(f, *a, **kw):
    t = time.monotonic()
    r = f(*a, **kw)
    return r, time.monotonic() - t
