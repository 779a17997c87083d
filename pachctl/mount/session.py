"""`pachctl mount`: check, mount, serve until unmounted, then commit what was written.

Invariants:
- Every check that can fail is made before the kernel mount (FUSE available, mountpoint an
  empty directory and not mounted already, views resolved), each failing with one line that
  says what to do; nothing is left mounted or staged after a failed start.
- The mount ends on `fusermount -u`/`pachctl unmount`, SIGINT, SIGTERM or SIGHUP; then each
  written view is committed once (retrying while pachd is unreachable). A read-only mount
  says nothing at the end. A failed commit keeps its staged files, writes `changes.json`
  next to them, says where they are and how to commit them later (`pachctl mount
  --recover`), and the process exits with status 1.
- Each writable view's changes are journaled as they happen (pachctl.mount.journal), so a
  killed mount's staged files can be committed by `pachctl mount --recover` too.
- The staging directory lives under `~/.pachyderm/mounts/staging/` (or
  `$PACH_MOUNT_STAGING`) and is removed once everything in it is committed.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys
import time
import uuid
from typing import Optional, TextIO

import pyfuse3
import trio

from pachctl.mount import unmount as um
from pachctl.mount.fs import MountFS
from pachctl.mount.staging import Staging
from pachctl.mount.views import MountError, View

log = logging.getLogger("pachctl.mount")
STAGING_ENV = "PACH_MOUNT_STAGING"
READ_AHEAD_KB = 1024
COMMIT_RETRIES = 4
GC_GEN0 = 50_000  # new objects between young collections of the mount process (see _tune_gc)


def check_fuse() -> None:
    """FUSE can be mounted by this process. libfuse opens /dev/fuse itself, also for a normal
    user (fusermount3 only does the mount(2) for it), so a /dev/fuse this user cannot open
    is refused here, in one line."""
    if not os.path.exists("/dev/fuse"):
        raise MountError("FUSE is not available: /dev/fuse does not exist. Install fuse3 (apt-get install "
                         "fuse3) and load the module (modprobe fuse); in a container, run it with "
                         "--device /dev/fuse --cap-add SYS_ADMIN")
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except PermissionError:
        raise MountError("cannot open /dev/fuse: permission denied. Run as root, or give your user "
                         "access to /dev/fuse (e.g. add it to the 'fuse' group)") from None
    except OSError as e:
        raise MountError(f"cannot open /dev/fuse: {e.strerror}") from None
    if os.geteuid() != 0 and um._fusermount() is None:
        raise MountError("fusermount3 is not installed: install fuse3 (apt-get install fuse3) to mount "
                         "as a normal user")


def check_mountpoint(mountpoint: str) -> str:
    mp = um.real(mountpoint)
    entry = um.find(mp)
    if entry is not None or um.is_stale(mp):
        if um.is_stale(mp):
            raise MountError(f"{mountpoint} is a mount whose process is gone (Transport endpoint is not "
                             f"connected); clear it first: pachctl unmount {mountpoint}")
        what = "a pachctl mount" if entry.fstype == um.FSTYPE else f"a {entry.fstype} mount"
        raise MountError(f"{mountpoint} is already mounted ({what}); unmount it first"
                         + (f": pachctl unmount {mountpoint}" if entry.fstype == um.FSTYPE else ""))
    if not os.path.lexists(mp):
        raise MountError(f"mountpoint {mountpoint} does not exist; create it first: mkdir -p {mountpoint}")
    if not os.path.isdir(mp):
        raise MountError(f"mountpoint {mountpoint} is not a directory")
    try:
        if os.listdir(mp):
            raise MountError(f"mountpoint {mountpoint} is not empty; mount on an empty directory")
    except PermissionError:
        raise MountError(f"cannot read mountpoint {mountpoint}: permission denied") from None
    return mp


def staging_root(env=None) -> str:
    env = os.environ if env is None else env
    base = env.get(STAGING_ENV) or str(um.records_dir(env) / "staging")
    return os.path.join(base, f"{os.getpid()}-{uuid.uuid4().hex[:8]}")


def tune_read_ahead(mountpoint: str, kb: int = READ_AHEAD_KB) -> bool:
    """Raise the kernel's read-ahead for this mount (root only; 128 KiB otherwise)."""
    try:
        text = open("/proc/self/mountinfo").read()
    except OSError:
        return False
    for line in text.splitlines():
        f = line.split()
        if len(f) > 4 and um._unescape(f[4]) == mountpoint:
            try:
                with open(f"/sys/class/bdi/{f[2]}/read_ahead_kb", "w") as out:
                    out.write(str(kb))
                return True
            except OSError:
                return False
    return False


def fuse_options(views: list[View], allow_other: bool, debug: bool, read_only: bool) -> set:
    opts = set(pyfuse3.default_options)
    opts |= {"fsname=pfs", "subtype=pfs"}
    if allow_other:
        opts.add("allow_other")
    if debug:
        opts.add("debug")
    if read_only:
        opts.add("ro")
    return opts


class Session:
    """One mounted file system, served by this process until it is unmounted."""

    def __init__(self, client, views: list[View], mountpoint: str, *, allow_other: bool = False,
                 debug: bool = False, err: TextIO = sys.stderr, env=None, dynamic: bool = False):
        self.client = client
        self.views = views
        self.mountpoint_arg = mountpoint
        self.allow_other = allow_other
        self.debug = debug
        self.err = err
        self.env = os.environ if env is None else env
        self.dynamic = dynamic  # the mount server adds and removes views while mounted
        self.fs: Optional[MountFS] = None
        self.staging: Optional[Staging] = None
        self.mountpoint = ""
        self.signalled = False
        self.failed = False
        self.trio_token = None
        self.report: list[dict] = []
        self.deferred_drops: list = []  # committed staged files, removed with the session's directory

    def say(self, msg: str) -> None:
        try:
            self.err.write(msg.rstrip("\n") + "\n")
            self.err.flush()
        except (OSError, ValueError):
            pass

    # ---- mounting ---------------------------------------------------------------------------
    def mount(self) -> None:
        check_fuse()
        self.mountpoint = check_mountpoint(self.mountpoint_arg)
        if self.dynamic or any(v.writable for v in self.views):
            self.staging = Staging(staging_root(self.env))
        self.fs = MountFS(self.client, self.views, self.mountpoint, staging=self.staging)
        for v in self.views:
            self.attach_journal(v)
        read_only = not self.dynamic and not any(v.writable for v in self.views)
        try:
            pyfuse3.init(self.fs, self.mountpoint, fuse_options(self.views, self.allow_other, self.debug, read_only))
        except RuntimeError as e:
            if self.staging is not None:
                self.staging.remove_all()
            hint = " (allow_other needs 'user_allow_other' in /etc/fuse.conf)" if self.allow_other else ""
            raise MountError(f"cannot mount {self.mountpoint_arg}: {e}{hint}") from None
        um.write_record(self.mountpoint, {"pid": os.getpid(), "mountpoint": self.mountpoint,
                                          "views": [v.describe() for v in self.views],
                                          "staging": self.staging.root if self.staging else "",
                                          "started": time.time()}, self.env, resolved=True)

    def attach_journal(self, view: View) -> None:
        """Write the view's changes down as they happen, so that they survive this process."""
        if (self.staging is not None and view.overlay is not None and not view.local_only
                and view.overlay.journal is None):
            view.overlay.journal = self.staging.journal(view, self.mountpoint)

    def run(self, on_ready=None) -> int:
        """Mount, serve until unmounted, commit; the exit status (1 if a commit failed)."""
        self.mount()
        _tune_gc()
        try:
            trio.run(self._main, on_ready)
        finally:
            if not self.report:
                um.remove_record(self.mountpoint, self.env, resolved=True)
        return 1 if self.failed else 0

    async def _main(self, on_ready) -> None:
        self.trio_token = trio.lowlevel.current_trio_token()
        closed = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_signals)
                nursery.start_soon(self._after_init, on_ready)
                await pyfuse3.main(min_tasks=2, max_tasks=64)
                pyfuse3.close(unmount=True)
                closed = True
                await self.commit_all(retries=COMMIT_RETRIES, final=True)
                nursery.cancel_scope.cancel()
        finally:
            if not closed:
                pyfuse3.close(unmount=True)
            self._finish()

    async def _after_init(self, on_ready) -> None:
        """Once the kernel's INIT is answered (the first request the loop serves), raise the
        mount's read-ahead: INIT sets it to what the kernel offered then (128 KiB), so a
        value written before would be undone."""
        await trio.sleep(0.2)
        await trio.to_thread.run_sync(tune_read_ahead, self.mountpoint)
        if on_ready is not None:
            await on_ready(self)

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async for _ in signals:
                if not self.signalled:
                    self.signalled = True
                    pyfuse3.terminate()
                elif any(v.writable for v in self.views):
                    self.say("still committing; the staged changes are kept if it fails")

    # ---- committing -------------------------------------------------------------------------
    async def commit_all(self, retries: int = 0, final: bool = False) -> None:
        """Commit every written view; `final` (the mount has ended): the staged files these
        commits make unnecessary stay until `_finish` removes the session's directory."""
        for view in list(self.fs.views.values()):
            if not view.writable or view.local_only:
                continue
            await self.commit_one(view, retries, final=final)

    async def commit_one(self, view: View, retries: int = 0, final: bool = False) -> Optional[object]:
        try:
            result = await self.fs.commit_view(view, retries=retries, say=self.say,
                                               defer_drops=self.deferred_drops if final else None)
        except Exception as e:  # noqa: BLE001 - reported, staged files kept
            self.failed = True
            reason = _reason(e)
            where = self.staging.root if self.staging else ""
            self.say(f"could not commit {view.repo}@{view.branch}: {reason}. The staged changes are kept in "
                     f"{where} (changes.json lists them); nothing was committed. Commit them later with: "
                     f"pachctl mount --recover")
            self.report.append({"view": view.name, "error": reason})
            self._write_manifest(view)
            return None
        if result is None:
            return None
        for path, why in result.skipped:
            self.say(f"not committed: {view.repo}@{view.branch}:{path}: {why}")
        if result.ops:
            self.say(f"committed {view.repo}@{view.branch}: {result.commit}")
            self.report.append({"view": view.name, "commit": result.commit})
        return result

    def _write_manifest(self, view: View) -> None:
        if self.staging is None or view.overlay is None:
            return
        items = []
        for path, c in sorted(view.overlay.changes.items()):
            item = {"repo": view.repo, "branch": view.branch, "path": path, "change": c.kind}
            if c.kind == "file":
                item["staged_file"] = c.staged.path
            elif c.kind == "copy":
                item.update(commit=c.commit, source=c.src)
            elif c.kind == "link":
                item["target"] = c.target
            items.append(item)
        try:
            with open(os.path.join(self.staging.root, "changes.json"), "w") as f:
                json.dump(items, f, indent=1)
        except OSError:
            pass

    def _finish(self) -> None:
        if self.staging is not None and not self.failed:
            self.staging.remove_all(behind=True)  # everything is committed: nothing to wait for
        elif self.staging is not None:
            for sf in self.deferred_drops:  # committed; what failed stays for --recover
                self.staging.drop(sf)
        if self.report:
            um.write_record(self.mountpoint, {"pid": os.getpid(), "mountpoint": self.mountpoint,
                                              "done": True, "report": self.report,
                                              "staging": self.staging.root if self.staging else ""}, self.env, resolved=True)


def _reason(e: Exception) -> str:
    from pachctl.mount.staging import PachdUnreachable
    if isinstance(e, PachdUnreachable):
        return f"pachd is not reachable ({e})"
    details = getattr(e, "details", None)
    if callable(details):
        code = e.code() if hasattr(e, "code") else None
        text = details() or (code.name if code else "")
        if code is not None and code.name == "UNAVAILABLE":
            return f"pachd is not reachable ({text})"
        return text
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return "no space left on device"
    return str(e) or type(e).__name__


def _tune_gc() -> None:
    """The mount builds a node per entry it lists; Python's cyclic collector, run every 700
    new objects, was a third of the mount's CPU for a fresh `ls -l` of 10,000 entries (py-spy).
    Objects alive at start-up (imported modules, the client) are frozen out of its scans, and it
    runs every GC_GEN0 new objects instead: nodes form no cycles, so garbage still goes at once
    by reference counting and only rare cyclic garbage waits a little longer."""
    import gc
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0, g1, g2)
