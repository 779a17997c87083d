"""Finding our mounts and clearing them: `pachctl unmount`, and the checks before mounting.

Our mounts show in /proc/self/mountinfo as type `fuse.pfs` (source `pfs`). Each running mount
also leaves a small record (`~/.pachyderm/mounts/<id>.json`: pid, mountpoint, staging
directory, and at the end what its commits did), so `unmount` can wait for the mount process
to finish committing and report it.

Invariants:
- `unmount` never kills anything: it asks the kernel to unmount (`fusermount3 -u`, or
  `umount` as root); the mount process sees that, commits and exits by itself. A stale
  mount (its process gone: "Transport endpoint is not connected") is detached lazily (-z).
- Mountpoints are compared as absolute, symlink-free paths.
- This module needs only the standard library (and pachctl.daemon's), so `pachctl unmount
  MOUNTPOINT` runs without loading click or grpc (`run`, called by pachctl.main first): a
  third of a second less before the mount process is told to commit.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import sys
from typing import Optional, TextIO

from pachctl.daemon import alive  # running and not a zombie

FSTYPE = "fuse.pfs"


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    fstype: str
    source: str


def _unescape(s: str) -> str:
    return s.encode().decode("unicode_escape") if "\\" in s else s


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[MountEntry]:
    out = []
    try:
        text = Path(mountinfo).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        if len(f) < 5 or len(r) < 2:
            continue
        out.append(MountEntry(_unescape(f[4]), r[0], _unescape(r[1])))
    return out


def pfs_mounts() -> list[MountEntry]:
    return [m for m in mounts() if m.fstype == FSTYPE or (m.fstype.startswith("fuse") and m.source == "pfs")]


def recorded_mounts(env=None) -> list[str]:
    """Mountpoints of pfs mounts made by this user's pachctl (a record in its ~/.pachyderm):
    what `unmount --all` clears. Other users' or other HOMEs' mounts are left alone."""
    found = []
    for m in pfs_mounts():
        if record_path(m.mountpoint, env, resolved=True).exists():
            found.append(m.mountpoint)
    return sorted(set(found))


def real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def find(mountpoint: str) -> Optional[MountEntry]:
    mp = real(mountpoint)
    for m in reversed(mounts()):
        if m.mountpoint == mp:
            return m
    return None


def is_stale(mountpoint: str) -> bool:
    try:
        os.stat(mountpoint)
        return False
    except OSError as e:
        return e.errno == errno.ENOTCONN


# ---- records of running mounts ---------------------------------------------------------------
def records_dir(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".pachyderm" / "mounts"


def record_path(mountpoint: str, env=None, resolved: bool = False) -> Path:
    """The record of the mount at `mountpoint`. The mount process passes its own, already
    resolved mountpoint with `resolved=True`: resolving it again would stat the mount's root,
    which the process itself must answer (a deadlock before its loop runs)."""
    key = hashlib.sha1((mountpoint if resolved else real(mountpoint)).encode()).hexdigest()[:16]
    return records_dir(env) / f"{key}.json"


def write_record(mountpoint: str, data: dict, env=None, resolved: bool = False) -> None:
    p = record_path(mountpoint, env, resolved)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, p)


def read_record(mountpoint: str, env=None) -> Optional[dict]:
    try:
        return json.loads(record_path(mountpoint, env).read_text())
    except (OSError, ValueError):
        return None


def remove_record(mountpoint: str, env=None, resolved: bool = False) -> None:
    try:
        record_path(mountpoint, env, resolved).unlink()
    except FileNotFoundError:
        pass


# ---- unmounting --------------------------------------------------------------------------------
class UnmountError(Exception):
    pass


def _fusermount() -> Optional[str]:
    return shutil.which("fusermount3") or shutil.which("fusermount")


def detach(mountpoint: str, lazy: bool = False) -> None:
    """Ask the kernel to unmount (lazily: detach now, finish when no longer busy)."""
    tool = _fusermount()
    if tool is not None:
        argv = [tool, "-u"] + (["-z"] if lazy else []) + [mountpoint]
    elif os.geteuid() == 0:
        argv = ["umount"] + (["-l"] if lazy else []) + [mountpoint]
    else:
        raise UnmountError("cannot unmount: fusermount3 is not installed (apt-get install fuse3)")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip()
        if "busy" in msg.lower():
            raise UnmountError(f"cannot unmount {mountpoint}: it is busy (a program has a file open in it, "
                               f"or its current directory there); close it and try again")
        raise UnmountError(f"cannot unmount {mountpoint}: {msg or f'{argv[0]} failed'}")


def unmount(mountpoint: str, wait: float = 600.0, say=None) -> Optional[dict]:
    """Unmount one of our mounts and wait for its process to finish; its final record."""
    mp = real(mountpoint)
    entry = find(mp)
    if entry is None:
        raise UnmountError(f"{mountpoint} is not mounted")
    if entry.fstype != FSTYPE and entry.source != "pfs":
        raise UnmountError(f"{mountpoint} is not a pachctl mount (it is {entry.fstype}); not touching it")
    record = read_record(mp)
    stale = is_stale(mp)
    if stale or (record and not alive(record.get("pid", -1))):
        detach(mp, lazy=True)
        remove_record(mp)
        return {"stale": True, "pid": (record or {}).get("pid"), "staging": (record or {}).get("staging")}
    detach(mp)
    if not record:
        return None
    pid = record.get("pid", -1)
    start = time.monotonic()
    told = False
    while alive(pid) and time.monotonic() - start < wait:
        if not told and say and time.monotonic() - start > 1.0:
            say(f"waiting for the mount process (pid {pid}) to commit and exit...")
            told = True
        time.sleep(0.05)
    final = read_record(mp) or record
    if not alive(pid):
        remove_record(mp)
    return final


def report(mountpoint: str, final: Optional[dict], err: TextIO) -> None:
    """Say what the unmount of `mountpoint` did (its final record, from `unmount`)."""
    if not final:
        return
    if final.get("stale"):
        pid = final.get("pid")
        staging = final.get("staging")
        msg = f"cleared the stale mount at {mountpoint}"
        if pid:
            msg += f" (its process {pid} is gone; nothing was committed"
            msg += (f"; staged files, if any, are in {staging}; commit them with: pachctl mount --recover "
                    f"{mountpoint})") if staging else ")"
        err.write(msg + "\n")
        return
    for item in final.get("report", []):
        if item.get("commit"):
            err.write(f"committed {item['view']}: {item['commit']}\n")
        elif item.get("error"):
            err.write(f"could not commit {item['view']}: {item['error']} (staged files kept in "
                      f"{final.get('staging')}; commit them with: pachctl mount --recover)\n")


def unmount_all_of(targets: list[str], err: TextIO) -> list[str]:
    """Unmount each of `targets`, reporting as it goes; the error messages of those that failed."""
    failed = []
    for mp in targets:
        try:
            final = unmount(mp, say=lambda m: (err.write(m + "\n"), err.flush()))
        except UnmountError as e:
            failed.append(str(e))
            continue
        report(mp, final, err)
    return failed


def run(args: list[str], err: Optional[TextIO] = None) -> Optional[int]:
    """`pachctl unmount MOUNTPOINT` without the full CLI: its exit status, or None (nothing
    done) for anything else (--all, help, options), which the full CLI runs."""
    if len(args) != 2 or args[0] != "unmount" or args[1].startswith("-"):
        return None
    err = sys.stderr if err is None else err
    failed = unmount_all_of([args[1]], err)
    if failed:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        err.write("\n".join(failed).rstrip("\n") + "\n")
    err.flush()
    return 1 if failed else 0
