"""Skip markers for tests that need a system tool, each naming the tool and how to get it.

`make test` (scripts/bootstrap.sh) installs these packages itself where it can (root, or sudo
without a password); where it could not, only the tests that truly need the missing tool skip,
and the reason says which tool and which command installs it. Nothing here probes a tool at
import time beyond a PATH lookup, except the sandbox checks (cached, ~50 ms each).
"""
from __future__ import annotations

import os
import shutil

import pytest

from pps.worker.sandbox import bwrap_usable, userns_usable


def _apt(pkg: str) -> str:
    return f"sudo apt-get install {pkg}"


def has_graphviz() -> bool:
    return shutil.which("dot") is not None


needs_graphviz = pytest.mark.skipif(
    not has_graphviz(), reason=f"needs graphviz (`dot` is not on PATH): {_apt('graphviz')}")
needs_bwrap = pytest.mark.skipif(
    not bwrap_usable(), reason=f"needs bubblewrap (`bwrap` is missing or unusable): {_apt('bubblewrap')}")
needs_userns = pytest.mark.skipif(
    not userns_usable(), reason="needs unprivileged user namespaces (disabled here: "
                                "sysctl kernel.unprivileged_userns_clone=1)")
needs_sandbox = pytest.mark.skipif(
    not (bwrap_usable() or userns_usable()),
    reason="needs a worker sandbox so user code sees /pfs: bubblewrap is missing "
           f"({_apt('bubblewrap')}) and unprivileged user namespaces are disabled")
def has_fuse() -> bool:
    import importlib.util
    return (os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
            and importlib.util.find_spec("pyfuse3") is not None)


needs_fuse = pytest.mark.skipif(
    not has_fuse(), reason="needs FUSE (/dev/fuse, `fusermount3` and the pyfuse3 module, which bootstrap "
                           f"builds when libfuse3's headers are there): "
                           f"{_apt('fuse3 libfuse3-dev pkg-config gcc python3-dev')}, then make test again")

# The sandbox "auto" picks here: every sandboxed test runs in it.
BEST_SANDBOX = "bwrap" if bwrap_usable() else "userns" if userns_usable() else "none"
# Tests that compare sandboxes run once per kind, each skipping on its own.
SANDBOXES = [pytest.param("bwrap", marks=needs_bwrap, id="bwrap"),
             pytest.param("userns", marks=needs_userns, id="userns")]


def path_without(names, bindir) -> str:
    """A PATH on which `names` (e.g. "bwrap", "dot") are not found and everything else is.

    Hides tools the way a machine without their packages lacks them: `bindir` gets a symlink
    to every other program of the current PATH (the first one of each name wins)."""
    os.makedirs(bindir, exist_ok=True)
    hidden = set(names)
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            link = os.path.join(bindir, entry.name)
            if entry.name in hidden or os.path.lexists(link):
                continue
            if os.access(entry.path, os.X_OK) and not entry.is_dir():
                os.symlink(entry.path, link)
    return str(bindir)


def skip_unless_leases(directory) -> None:
    """Skip, naming why, where pfs takes no read lease on files under `directory`
    (`pfs.core.leased_file`: only local file systems whose writes it sees; e.g. not the
    overlayfs of a container). pfs then copies files instead of reading them in place,
    which tests/core/test_leased_file.py checks everywhere."""
    from pfs.core.leased_file import LeasedFile
    probe = os.path.join(directory, ".lease-probe")
    with open(probe, "wb") as f:
        f.write(b"x")
    fd = os.open(probe, os.O_RDONLY)
    try:
        lf = LeasedFile.open(fd)
        if lf is None:
            pytest.skip(f"no read leases on the file system under {directory} "
                        "(pfs.core.leased_file.LOCAL_FILESYSTEMS); pfs copies files there instead")
        lf.close()
    finally:
        os.close(fd)
        os.unlink(probe)
