"""Where a worker runs: one sandbox per worker process (bubblewrap, else a user namespace), or
the documented fallback.

With bwrap (`bwrap_command`) the WHOLE worker process lives in one sandbox for its lifetime
(~14 ms to start, paid once, never per datum); the worker starts the user's code per datum
inside it. The sandbox:
- has a fresh tmpfs as `/`; the host's `/usr /bin /lib /lib64 /lib32 /sbin /etc` are bound
  read-only (a symlinked `/bin -> usr/bin` stays a symlink);
- binds the Python installation (`sys.base_prefix`, `sys.prefix`) and the project directory
  read-only, so `python -m pps.worker` and the venv's packages work inside;
- gets a tmpfs `/tmp`, a fresh `/proc` and a minimal `/dev`; the network is SHARED (the
  worker reaches pachd on loopback, user code serves `PPS_WORKER_GRPC_PORT` on 127.0.0.1);
- binds the worker's scratch directory read-write at `/pfs`, so user code sees real
  `/pfs/<input>/...` and `/pfs/out` paths;
- LOCAL IMAGES: `transform.image` `registry/name:tag` maps to the first existing
  `<local_image_dir>/<name>/` (last path component, tag/digest dropped); its top-level entries
  are bound read-only at `/<entry>` (so `python3 /video_mp4_converter.py` works). Entries that
  would hide a system or Python path (`usr`, `etc`, `tmp`, `pfs`, `opt` when the venv lives in
  /opt, ...) are skipped with a warning. An image without a local dir runs on the host system.
- runs in a new PID namespace with `--die-with-parent`: when the worker (or the pachd that
  launched it) dies, every process started inside dies too. Nothing leaks.
- inherits exactly the environment given to Popen (`worker_env`): PATH with the venv's bin
  first (so `python3` has the project's packages), HOME=/tmp, PYTHONPATH=project dir, plus
  what the master passes. The host's own environment never reaches user code.

WITHOUT BUBBLEWRAP (`userns_command`, mode "userns"): the same bwrap command line is run by
`pps/worker/userns.py`, a small stdlib launcher that builds the same root in an unprivileged
user + mount + PID namespace (see its docstring). User code sees the same `/pfs` paths, the
same file system and environment, so its outputs and logs are the same as under bwrap. "auto"
takes bwrap when usable, else this when the kernel allows unprivileged user namespaces.

FALLBACK (neither is usable, or `sandbox="none"`): the worker runs as a plain process
with NO mount namespace. Its pfs root is a real per-worker scratch directory, and the worker
rewrites the `/pfs` path prefix in cmd/err_cmd arguments, stdin lines, env values and
working_dir to that directory (`PathRewriter`); a local image's top-level entries `/<entry>`
are rewritten to the image dir the same way. User code then sees the whole host file system,
and anything that hard-codes `/pfs` elsewhere (pachyderm-sdk's `batch_datum()` loads the literal
`/pfs/.env`) will not find it. User processes get PDEATHSIG so a killed worker takes them along.
A warning is logged once per process when the fallback is chosen automatically.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

log = logging.getLogger("pps.worker")

PFS = "/pfs"
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin", "/etc")
PROJECT_DIR = Path(__file__).resolve().parents[2]
_RESERVED = frozenset({"usr", "bin", "lib", "lib64", "lib32", "libx32", "sbin", "etc", "tmp",
                       "proc", "dev", "sys", "pfs", "pps", "run"})
_warned = False


def bwrap_binary() -> Optional[str]:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=None)
def bwrap_usable(binary: Optional[str] = None) -> bool:
    """True when bwrap exists and can create the namespaces we use (probed once)."""
    binary = binary or bwrap_binary()
    if not binary:
        return False
    probe = [binary, "--die-with-parent", "--unshare-pid", "--tmpfs", "/", *_system_binds(),
             "--proc", "/proc", "--dev", "/dev", "--", "/bin/sh", "-c", "exit 0"]
    try:
        return subprocess.run(probe, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=None)
def userns_usable() -> bool:
    """True when pps/worker/userns.py can build a sandbox here (probed once)."""
    probe = userns_command(["/bin/sh", "-c", "test -d /pfs"], Path(os.path.realpath("/tmp")))
    try:
        return subprocess.run(probe, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def choose_sandbox(mode: str) -> str:
    """'bwrap', 'userns' or 'none' for a requested mode 'bwrap' | 'userns' | 'none' | 'auto'."""
    global _warned
    if mode not in ("bwrap", "userns", "none", "auto"):
        raise ValueError(f"sandbox must be 'bwrap', 'userns', 'none' or 'auto', not {mode!r}")
    if mode == "none":
        return "none"
    if mode in ("bwrap", "auto") and bwrap_usable():
        return "bwrap"
    if mode == "bwrap":
        raise RuntimeError("bubblewrap (bwrap) is required but missing or unusable here "
                           "(apt-get install bubblewrap)")
    if userns_usable():
        if mode == "auto" and not _warned:
            _warned = True
            log.info("bubblewrap (bwrap) is not usable: workers run in a user-namespace sandbox "
                     "(pps/worker/userns.py); `apt-get install bubblewrap` to use bwrap")
        return "userns"
    if mode == "userns":
        raise RuntimeError("unprivileged user namespaces are not available here "
                           "(sysctl kernel.unprivileged_userns_clone=1, or a container that allows them)")
    if not _warned:
        _warned = True
        log.warning("neither bubblewrap (bwrap) nor unprivileged user namespaces are usable: "
                    "workers run WITHOUT a sandbox; /pfs paths are rewritten to per-worker "
                    "scratch directories (see pps/worker/sandbox.py); `apt-get install bubblewrap`")
    return "none"


def image_name(image: str) -> str:
    """`registry:5000/org/name:tag@sha256:...` -> `name`."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def resolve_image(image: str, local_image_dirs: Iterable[Path]) -> Optional[Path]:
    """The first `<dir>/<image name>/` that exists, else None (run on the host as is)."""
    name = image_name(image or "")
    if not name:
        return None
    for d in local_image_dirs:
        candidate = Path(d) / name
        if candidate.is_dir():
            return candidate.resolve()
    return None


def python_paths() -> list[str]:
    """Host paths the worker needs inside the sandbox (read-only), de-duplicated, nested ones dropped."""
    paths = [sys.base_prefix, sys.prefix, str(PROJECT_DIR)]
    real_exe = os.path.realpath(sys.executable)
    if not any(real_exe.startswith(p.rstrip("/") + "/") for p in paths):
        paths.append(os.path.dirname(os.path.dirname(real_exe)))
    out: list[str] = []
    for p in sorted({os.path.abspath(p) for p in paths}, key=len):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


def image_entries(image_dir: Optional[Path], taken: Iterable[str] = ()) -> list[str]:
    """Top-level names of a local image that can be bound at `/<name>`."""
    if image_dir is None:
        return []
    blocked = set(_RESERVED) | {p.strip("/").split("/")[0] for p in taken}
    out = []
    for entry in sorted(os.listdir(image_dir)):
        if entry in blocked or entry.startswith("."):
            log.warning("local image %s: not binding /%s (reserved path)", image_dir, entry)
            continue
        out.append(entry)
    return out


def worker_env(extra: Mapping[str, str] = {}, home: str = "/tmp") -> dict[str, str]:
    """The environment a worker (and through it, user code) starts with."""
    env = {
        "PATH": f"{sys.prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(PROJECT_DIR),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PACH_IN_WORKER": "true",
    }
    if "VIRTUAL_ENV" in os.environ or sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env.update(extra)
    return env


def _system_binds() -> list[str]:
    args: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    return args


def bwrap_command(argv: Sequence[str], pfs_dir: Path, image_dir: Optional[Path] = None,
                  ro_files: Mapping[str, str] = {}, binary: Optional[str] = None) -> list[str]:
    """The bwrap command line that runs `argv` in a worker sandbox (see the module doc).

    `ro_files` maps host paths to sandbox paths bound read-only (e.g. the spec file)."""
    binary = binary or bwrap_binary() or "bwrap"
    args = [binary, "--die-with-parent", "--unshare-pid", "--new-session", "--tmpfs", "/"]
    args += _system_binds()
    # /tmp first: later mounts win, so a Python or project that lives under /tmp (a CI clone
    # with its venv inside) stays visible on top of the fresh /tmp
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    py = python_paths()
    for p in py:
        args += ["--ro-bind", p, p]
    args += ["--bind", str(pfs_dir), PFS]
    for entry in image_entries(image_dir, py):
        args += ["--ro-bind", str(Path(image_dir) / entry), "/" + entry]
    for host, inside in ro_files.items():
        args += ["--ro-bind", str(host), inside]
    args += ["--chdir", "/", "--", *argv]
    return args


USERNS_LAUNCHER = Path(__file__).resolve().with_name("userns.py")


def userns_command(argv: Sequence[str], pfs_dir: Path, image_dir: Optional[Path] = None,
                   ro_files: Mapping[str, str] = {}) -> list[str]:
    """`bwrap_command`'s sandbox, built by pps/worker/userns.py instead of bwrap."""
    args = bwrap_command(argv, pfs_dir, image_dir, ro_files, binary="bwrap")
    return [sys.executable, "-I", "-S", str(USERNS_LAUNCHER), *args[1:]]


def sandbox_command(mode: str, argv: Sequence[str], pfs_dir: Path, image_dir: Optional[Path] = None,
                    ro_files: Mapping[str, str] = {}) -> list[str]:
    """The command line running `argv` in sandbox `mode` ('bwrap' or 'userns')."""
    if mode == "bwrap":
        return bwrap_command(argv, pfs_dir, image_dir, ro_files)
    if mode == "userns":
        return userns_command(argv, pfs_dir, image_dir, ro_files)
    raise ValueError(f"no sandbox command for mode {mode!r}")


class PathRewriter:
    """Fallback mode: map sandbox paths (`/pfs...`, `/<image entry>...`) to real host paths.

    Only whole path components are rewritten: `/pfs/out` and `x=/pfs/in` change, `/pfsx` and
    `a/pfs` do not. With `pfs_root == "/pfs"` and no image it is the identity."""

    def __init__(self, pfs_root: str, image_dir: Optional[Path] = None,
                 extra: Mapping[str, str] = {}):
        self.map: dict[str, str] = {}
        if pfs_root.rstrip("/") != PFS:
            self.map[PFS] = pfs_root.rstrip("/")
        for entry in image_entries(image_dir) if image_dir else []:
            self.map["/" + entry] = str(Path(image_dir) / entry)
        for inside, host in extra.items():  # e.g. secrets' mount paths
            if inside.rstrip("/") != str(host).rstrip("/"):
                self.map[inside.rstrip("/")] = str(host).rstrip("/")
        if self.map:
            alts = "|".join(re.escape(k) for k in sorted(self.map, key=len, reverse=True))
            self._re = re.compile(r"(?<![\w.~/-])(" + alts + r")(?![\w.-])")
        else:
            self._re = None

    @property
    def active(self) -> bool:
        return self._re is not None

    def __call__(self, s: str) -> str:
        if self._re is None or "/" not in s:
            return s
        return self._re.sub(lambda m: self.map[m.group(1)], s)

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        if self._re is None:
            return dict(env)
        return {k: self(v) for k, v in env.items()}
