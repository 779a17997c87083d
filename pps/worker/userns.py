"""A small bubblewrap for machines without it: `python -I -S userns.py [bwrap options] -- CMD...`

Why: where bubblewrap is not installed (and cannot be), an unprivileged user + mount + PID
namespace gives the worker the same view as bwrap: a fresh root in which `/pfs/<input>` and
`/pfs/out` are real paths. The sandbox's layout is defined once, by
`pps.worker.sandbox.bwrap_command`; this launcher runs that same command line. It accepts
exactly the options that function emits:
  --die-with-parent --unshare-pid --new-session --tmpfs DST --ro-bind SRC DST --bind SRC DST
  --symlink TARGET DST --proc DST --dev DST --chdir DIR -- CMD [ARGS...]
and refuses anything else (exit 2). Stdlib only, Linux only (pivot_root by syscall number).

How (bwrap's own steps, done with ctypes):
1. Sources are resolved (realpath) and checked before anything changes.
2. unshare(CLONE_NEWUSER | CLONE_NEWNS [| CLONE_NEWPID]); the caller's uid and gid map to
   themselves, so user code sees the same ids as under bwrap; all mounts become private.
3. fork: the child is PID 1 of the new PID namespace (it reaps orphans). It mounts a tmpfs on
   /tmp and pivot_roots into it, the old root at /oldroot (the old /tmp shows again there),
   builds the new root at /newroot reading every source from /oldroot, pivot_roots into
   /newroot and detaches the old root entirely.
4. PID 1 forks the command: capability bounding set emptied and no_new_privs set (so not even
   a caller that is root keeps privileges), setsid with --new-session, chdir, execvp with the
   environment this launcher was given.
Invariants:
- Read-only binds are read-only all the way down (every mount under them is remounted).
- Nothing outlives the sandbox: with --die-with-parent this process dies with its parent
  (PDEATHSIG), PID 1 dies with this process, and the kernel kills every process of the PID
  namespace when PID 1 exits.
- Exit status: the command's, or 128+N when signal N killed it (as bwrap). A failure before
  the command starts prints one line `userns sandbox: <what>: <why>` and exits 1.
- Process tree, as with bwrap: this launcher -> PID 1 -> the command (its grandchild).
"""
from __future__ import annotations

import ctypes
import os
import platform
import re
import signal
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203,
               "s390x": 217, "i686": 217, "armv7l": 218}
# statvfs flags that a user namespace may not clear when remounting -> their mount flags
_LOCKED = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
           (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
           (os.ST_RELATIME, MS_RELATIME))
_DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
              ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"))
OLD, NEW = "/oldroot", "/newroot"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class SandboxError(Exception):
    pass


class UsageError(SandboxError):
    """A command line this launcher does not accept (exit status 2)."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)}")


def _b(s):
    return None if s is None else os.fsencode(s)


def mount(src, dst, fstype=None, flags=0, data=None) -> None:
    _check(_libc.mount(_b(src), _b(dst), _b(fstype), flags, _b(data)),
           f"mount {fstype or ''} {src or ''} on {dst}".replace("  ", " "))


def pivot_root(new, put_old) -> None:
    nr = _PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise SandboxError(f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(_libc.syscall(ctypes.c_long(nr), _b(new), _b(put_old)), f"pivot_root {new}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl {option}")


# ---- options -------------------------------------------------------------------------------
_FLAGS = {"--die-with-parent", "--unshare-pid", "--new-session"}
_ONE = {"--tmpfs", "--proc", "--dev", "--chdir"}
_TWO = {"--ro-bind", "--bind", "--symlink"}


def parse(argv: list[str]) -> tuple[set, list, str, list]:
    """-> (flags, [(op, a, b)], chdir, command)."""
    flags, ops, chdir, i = set(), [], "/", 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            cmd = argv[i + 1:]
            if not cmd:
                raise UsageError("no command after --")
            return flags, ops, chdir, cmd
        if a in _FLAGS:
            flags.add(a)
            i += 1
        elif a in _ONE and i + 1 < len(argv):
            if a == "--chdir":
                chdir = argv[i + 1]
            else:
                ops.append((a, argv[i + 1], None))
            i += 2
        elif a in _TWO and i + 2 < len(argv):
            src = argv[i + 1] if a == "--symlink" else os.path.realpath(argv[i + 1])
            if a != "--symlink":
                try:
                    os.stat(src)
                except OSError as e:
                    raise SandboxError(f"{a} {argv[i + 1]}: {e.strerror}") from None
            ops.append((a, src, argv[i + 2]))
            i += 3
        else:
            raise UsageError(f"unsupported or incomplete option {a!r} (this is not bwrap)")
    raise UsageError("missing -- before the command")


# ---- building the new root -----------------------------------------------------------------
def _mountpoint(dst: str, like: str) -> None:
    """Create `dst` (inside /newroot) as a directory or empty file, like `like` on the host."""
    if os.path.isdir(like):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst):
            with open(dst, "wb"):
                pass


def _mounts_under(path: str) -> list[str]:
    out = []
    with open(OLD + "/proc/self/mountinfo", "rb") as f:  # while building, /proc is the old one
        for line in f:
            raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), line.split()[4])
            point = os.fsdecode(raw)
            if point == path or point.startswith(path.rstrip("/") + "/"):
                out.append(point)
    return out


def _remount_ro(path: str) -> None:
    for point in _mounts_under(path):
        try:
            st = os.statvfs(point)
        except OSError:
            continue  # a mount point we cannot reach (e.g. hidden under another); skip it
        keep = 0
        for st_flag, ms_flag in _LOCKED:
            if st.f_flag & st_flag:
                keep |= ms_flag
        mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)


def _bind(src: str, dst: str, readonly: bool) -> None:
    target = NEW + dst
    _mountpoint(target, OLD + src)
    mount(OLD + src, target, None, MS_BIND | MS_REC)
    if readonly:
        _remount_ro(target)


def _dev(dst: str) -> None:
    target = NEW + dst
    os.makedirs(target, exist_ok=True)
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for name in _DEV_NODES:
        if os.path.exists(f"{OLD}/dev/{name}"):
            _mountpoint(f"{target}/{name}", f"{OLD}/dev/{name}")
            mount(f"{OLD}/dev/{name}", f"{target}/{name}", None, MS_BIND)
    for link, name in _DEV_LINKS:
        os.symlink(link, f"{target}/{name}")
    os.mkdir(f"{target}/shm")
    os.mkdir(f"{target}/pts")
    try:
        mount("devpts", f"{target}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    except SandboxError:
        pass  # no pseudo-terminals in the sandbox; nothing the worker needs


def _proc(dst: str) -> None:
    target = NEW + dst
    os.makedirs(target, exist_ok=True)
    try:
        mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except SandboxError:
        # a container that hides parts of its /proc forbids a fresh one: show the host's
        mount(OLD + "/proc", target, None, MS_BIND | MS_REC)


def build_root(ops: list) -> None:
    """In PID 1: the new root from `ops`, then pivot into it and drop the old one."""
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
    os.mkdir("/tmp" + NEW)
    os.mkdir("/tmp" + OLD)
    pivot_root("/tmp", "/tmp" + OLD)
    os.chdir("/")
    mount(NEW, NEW, None, MS_BIND | MS_REC)  # pivot_root needs a mount point
    for op, a, b in ops:
        if op == "--tmpfs":
            os.makedirs(NEW + a, exist_ok=True)
            mount("tmpfs", NEW + a, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        elif op in ("--ro-bind", "--bind"):
            _bind(a, b, readonly=op == "--ro-bind")
        elif op == "--symlink":
            os.makedirs(os.path.dirname(NEW + b), exist_ok=True)
            os.symlink(a, NEW + b)
        elif op == "--proc":
            _proc(a)
        elif op == "--dev":
            _dev(a)
    os.chdir(NEW)
    pivot_root(".", ".")
    _check(_libc.umount2(b".", MNT_DETACH), "detaching the old root")
    os.chdir("/")


# ---- processes -----------------------------------------------------------------------------
def _status(st: int) -> int:
    if os.WIFSIGNALED(st):
        return 128 + os.WTERMSIG(st)
    return os.waitstatus_to_exitcode(st)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _exec(cmd: list[str], chdir: str, new_session: bool) -> None:
    """The command's process: no privileges left, then exec (never returns)."""
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if new_session:
        os.setsid()
    os.chdir(chdir)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        raise SandboxError(f"exec {cmd[0]}: {e.strerror}") from None


def _init(ops, chdir, cmd, flags) -> int:
    """PID 1 of the sandbox: build the root, start the command, reap until it exits."""
    if "--die-with-parent" in flags or "--unshare-pid" in flags:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    build_root(ops)
    pid = os.fork()
    if pid == 0:
        try:
            _exec(cmd, chdir, "--new-session" in flags)
        except SandboxError as e:
            print(f"userns sandbox: {e}", file=sys.stderr, flush=True)
        os._exit(1)
    while True:
        try:
            got, st = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        if got == pid:
            return _status(st)


def run(argv: list[str]) -> int:
    flags, ops, chdir, cmd = parse(argv)
    if "--die-with-parent" in flags:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before PDEATHSIG was armed
            return 1
    uid, gid = os.getuid(), os.getgid()
    clone = CLONE_NEWUSER | CLONE_NEWNS | (CLONE_NEWPID if "--unshare-pid" in flags else 0)
    _check(_libc.unshare(clone), "unshare (are unprivileged user namespaces disabled?)")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _init(ops, chdir, cmd, flags)
        except (SandboxError, OSError) as e:
            print(f"userns sandbox: {e}", file=sys.stderr, flush=True)
        os._exit(code)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sandbox decides; a ^C reaches it too
    _, st = os.waitpid(pid, 0)
    return _status(st)


def main(argv=None) -> int:
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        print(f"userns sandbox: {e}", file=sys.stderr, flush=True)
        return 2
    except SandboxError as e:
        print(f"userns sandbox: {e}", file=sys.stderr, flush=True)
        return 1
    except OSError as e:
        print(f"userns sandbox: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
