"""`pachctl mount --recover`: commit the staged changes a stopped mount left behind (killed,
crashed, or its commit failed), from the journals it wrote (pachctl.mount.journal).

Invariants:
- Only sessions whose lock is free are touched (their mount process is gone; see
  pachctl.mount.staging); the lock is held while recovering, so two recoveries never commit
  the same session. A running mount's session is reported and left alone.
- Exactly once: each journal's changes become at most one commit. Before committing,
  "begin <head>" is appended (fsynced) to the journal and "done <commit>" after; a journal
  whose last commit began on a head that has since moved is taken as committed (the
  ModifyFile that applies a plan is atomic, so it landed whole), so running the command
  again, or after a mount killed in the middle of its own commit, commits nothing twice.
  (A commit by someone else to the same branch in that very window would be mistaken for
  it: then the changes stay staged and the command says so.)
- A session's directory is removed only when every journal in it is committed or empty; on
  any failure everything stays for the next try, and the failure is reported.
"""
from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass, field
from typing import Callable, Optional

import grpc

from pachctl.mount import journal as jr
from pachctl.mount import unmount as um
from pachctl.mount.remote import Remote, RemoteError
from pachctl.mount.staging import LinkResolver, commit_plan, lock_session
from pachctl.mount.views import View


@dataclass
class Outcome:
    committed: list = field(default_factory=list)   # (repo@branch, commit id)
    errors: list = field(default_factory=list)      # messages
    busy: list = field(default_factory=list)        # session dirs in use by a running mount
    sessions: int = 0                               # sessions found with something to do


def staging_base(env=None) -> str:
    from pachctl.mount.session import STAGING_ENV
    env = os.environ if env is None else env
    return env.get(STAGING_ENV) or str(um.records_dir(env) / "staging")


def _view(h: dict) -> View:
    return View(name=h["view"], project=h.get("project") or "default", repo=h["repo"],
                repo_type=h.get("repo_type") or "user", branch=h["branch"], writable=True)


def _recover_journal(client, session: str, path: str, say: Callable[[str], None], out: Outcome) -> bool:
    """Commit one journal's changes; False if they are still staged."""
    r = jr.replay(path, session)
    view = _view(r.header)
    where = f"{view.repo}@{view.branch}"
    remote = Remote(client)
    head = remote.head(view).commit or ""
    writer = jr.Journal.reopen(path, session)
    try:
        if r.begun is not None and head != r.begun:
            say(f"{where}: the commit its mount started had already landed ({head}); nothing more to commit")
            r.overlay.journal = writer
            r.overlay.committed()
            writer.done(head, sync=True)
            return True
        plan = r.overlay.plan()
        for p, sf in r.overlay.failed_files():
            say(f"not committed: {where}:{p}: a write to it failed ({os.strerror(sf.failed)})")
        if not plan:
            return True
        mp = os.path.join(r.header.get("mountpoint") or "/nonexistent", view.name)

        def kind(commit, p):
            e = remote.inspect(view, commit, p)
            return None if e is None else (not e.is_dir)
        links = LinkResolver(r.overlay, head or None, mp, kind)
        writer.begin(head, sync=True)
        from pachctl.transfer import is_loopback
        result = commit_plan(client, view, plan, links, local_pachd=is_loopback(client))
        r.overlay.journal = writer
        r.overlay.committed()
        writer.done(result.commit, sync=True)
    finally:
        writer.close()
    for p, why in result.skipped:
        say(f"not committed: {where}:{p}: {why}")
    say(f"committed {where}: {result.commit}")
    out.committed.append((where, result.commit))
    return True


def recover(client, mountpoint: Optional[str] = None, env=None,
            say: Callable[[str], None] = print) -> Outcome:
    """Commit what stopped mounts left staged (only those once mounted at `mountpoint`)."""
    out = Outcome()
    base = staging_base(env)
    want = um.real(mountpoint) if mountpoint else None
    try:
        sessions = sorted(os.path.join(base, d) for d in os.listdir(base) if not d.startswith("."))
    except FileNotFoundError:
        sessions = []
    for session in sessions:
        if not os.path.isdir(session):
            continue
        journals = sorted(glob.glob(os.path.join(session, jr.PATTERN)))
        if want is not None and not any(_mounted_at(j) == want for j in journals):
            continue
        lock = lock_session(session)
        if lock is None:
            out.busy.append(session)
            continue
        try:
            if not journals:
                if os.path.exists(os.path.join(session, "changes.json")):
                    out.errors.append(f"{session} was left by an older pachctl without a journal; its "
                                      "changes.json lists the staged files, commit them with pachctl put file")
                    continue
                shutil.rmtree(session, ignore_errors=True)  # nothing staged in it
                continue
            out.sessions += 1
            ok = True
            for j in journals:
                try:
                    ok = _recover_journal(client, session, j, say, out) and ok
                except grpc.RpcError as e:
                    ok = False
                    out.errors.append(f"could not commit the changes in {os.path.dirname(j)}: "
                                      f"{e.details() or e.code().name}; they are kept, try again")
                except RemoteError as e:
                    ok = False
                    out.errors.append(f"could not commit the changes in {os.path.dirname(j)}: {e}; "
                                      "they are kept, try again")
                except (OSError, ValueError, KeyError, IndexError) as e:
                    ok = False
                    out.errors.append(f"could not read the journal {j}: {e}; the staged files are kept")
            if ok:
                shutil.rmtree(session, ignore_errors=True)
        finally:
            os.close(lock)
    return out


def _mounted_at(journal_path: str) -> str:
    try:
        with open(journal_path, encoding="utf-8") as f:
            import json
            return json.loads(f.readline()).get("mountpoint", "")
    except (OSError, ValueError):
        return ""
