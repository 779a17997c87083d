"""Fixtures for the FUSE mount tests: a real pachd on a loopback port, real `pachctl mount`
processes on real FUSE.

- `pachd`, `client`, `env`: as in tests/cli (a fresh in-process pachd per test, an isolated
  HOME/config pointing at it).
- `mounter`: starts `pachctl mount` as a subprocess (`mounter.mount(dir, "-r", "images")`),
  waits until the kernel shows the mount, and in teardown unmounts every mount it made
  (`pachctl unmount`, then `fusermount3 -u -z` if that failed) and reaps every process, so
  no mount, thread or process outlives the test.
- `put(repo, files, branch="master")`: one commit with those files (path -> bytes).

Tests skip only where /dev/fuse is absent, and say so.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import client, env, pachd, subprocess_env  # noqa: F401

from pachctl.mount import unmount as um  # noqa: E402
from proto.pfs_v2 import pfs_pb2 as pfs  # noqa: E402
from google.protobuf import wrappers_pb2  # noqa: E402

from tests.tools import needs_fuse

pytestmark = needs_fuse


def fuse_available() -> bool:
    return os.path.exists("/dev/fuse")


def pachctl_argv(*args) -> list[str]:
    return [sys.executable, "-m", "pachctl", *[str(a) for a in args]]


class Mount:
    def __init__(self, proc: subprocess.Popen, path: Path, log: Path):
        self.proc, self.path, self.log = proc, path, log

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


class Mounter:
    def __init__(self, env: dict, tmp: Path):
        self.env = subprocess_env(env)
        self.tmp = tmp
        self.mounts: list[Mount] = []
        self.n = 0

    def start(self, mountpoint, *args, extra_env=None, cwd=None) -> Mount:
        """Start `pachctl mount` without waiting (for tests of failures)."""
        self.n += 1
        log = self.tmp / f"mount-{self.n}.log"
        e = dict(self.env)
        e.update(extra_env or {})
        with open(log, "wb") as out:
            proc = subprocess.Popen(pachctl_argv("mount", mountpoint, *args), env=e, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)
        m = Mount(proc, Path(cwd or ".") / mountpoint if cwd else Path(mountpoint), log)
        self.mounts.append(m)
        return m

    def mount(self, mountpoint, *args, extra_env=None, timeout: float = 30, cwd=None) -> Mount:
        (Path(cwd) / mountpoint if cwd else Path(mountpoint)).mkdir(parents=True, exist_ok=True)
        m = self.start(mountpoint, *args, extra_env=extra_env, cwd=cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "mounted " in m.stderr() and um.find(str(m.path)) is not None:
                return m
            if m.proc.poll() is not None:
                raise AssertionError(f"pachctl mount exited with {m.proc.returncode}: {m.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"pachctl mount did not come up in {timeout}s: {m.stderr()}")

    def pachctl(self, *args, timeout: float = 120, input=None) -> subprocess.CompletedProcess:
        return subprocess.run(pachctl_argv(*args), env=self.env, capture_output=True, text=True,
                              timeout=timeout, input=input)

    def unmount(self, m: Mount, timeout: float = 120) -> subprocess.CompletedProcess:
        r = self.pachctl("unmount", m.path, timeout=timeout)
        m.proc.wait(timeout=timeout)
        return r

    def cleanup(self) -> None:
        for m in self.mounts:
            if um.find(str(m.path)) is not None:
                try:
                    self.pachctl("unmount", m.path, timeout=60)
                except subprocess.TimeoutExpired:
                    pass
            if um.find(str(m.path)) is not None:
                tool = shutil.which("fusermount3") or "fusermount"
                subprocess.run([tool, "-u", "-z", str(m.path)], capture_output=True)
            try:
                m.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()


@pytest.fixture
def mounter(env, tmp_path):  # noqa: F811
    mt = Mounter(env, tmp_path)
    try:
        yield mt
    finally:
        mt.cleanup()


def repo_msg(name: str, project: str = "default") -> pfs.Repo:
    return pfs.Repo(name=name, type="user", project=pfs.Project(name=project))


@pytest.fixture
def put(client):  # noqa: F811
    def run(repo: str, files: dict, branch: str = "master", project: str = "default", deletes=()):
        r = repo_msg(repo, project)
        try:
            client.pfs.CreateRepo(pfs.CreateRepoRequest(repo=r))
        except Exception:  # noqa: BLE001 - exists already
            pass

        def reqs():
            yield pfs.ModifyFileRequest(set_commit=pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name=branch)))
            for p in deletes:
                yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=p))
            for path, data in files.items():
                yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path))  # overwrite, not append
                yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=wrappers_pb2.BytesValue(value=data)))
        client.pfs.ModifyFile(reqs())
        ci = client.pfs.InspectCommit(pfs.InspectCommitRequest(
            commit=pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name=branch))))
        return ci.commit.id
    return run


def get_file(client, repo: str, ref: str, path: str, project: str = "default") -> bytes:  # noqa: F811
    r = repo_msg(repo, project)
    c = pfs.Commit(repo=r, id=ref) if len(ref) == 32 else pfs.Commit(repo=r, branch=pfs.Branch(repo=r, name=ref))
    return b"".join(m.value for m in client.pfs.GetFile(pfs.GetFileRequest(file=pfs.File(commit=c, path=path))))
