"""How a write mount's commit reaches pachd (pachctl.mount.staging): with pachd on this machine
the staged files' descriptors are handed to pachd's local socket and pachd reads them itself;
where that is not there it falls back to file:// URLs, then to streaming over gRPC. Every
route gives the same commit; a refused route commits nothing before the next one is tried; a
failed upload keeps the staged files. Real pachd (in-process, loopback), real FUSE for the
end-to-end test."""
from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest

from pachctl.mount import staging as st
from pachctl.mount.overlay import Overlay
from pachctl.mount.views import View
from tests.mount.test_write import commits, tree
from tests.tools import needs_fuse

BIG = 3 * 1024 * 1024 + 17  # more than one gRPC chunk (staging.CHUNK), not a multiple of it


def _staged_plan(tmp_path: Path, name: str):
    """A Staging with a big, a small and an empty staged file, a symlink to one of them and a
    delete, as the overlay would plan them; returns (staging, overlay, plan, expected tree)."""
    staging = st.Staging(str(tmp_path / "staging" / name))
    ov = Overlay()
    files = {"/big.bin": os.urandom(BIG), "/dir/small.txt": b"small\n", "/empty": b""}
    for path, data in files.items():
        sf = staging.new_file(name)
        with open(sf.path, "wb") as f:
            f.write(data)
        ov.put_file(path, sf)
    ov.symlink("/link", "dir/small.txt")
    ov.delete("/old", True)
    want = dict(files)
    want["/link"] = files["/dir/small.txt"]
    return staging, ov, ov.plan(), want


def _commit(client, repo: str, ov: Overlay, plan: list, **kw) -> st.CommitResult:
    view = View(name=repo, repo=repo, branch="master", writable=True)
    links = st.LinkResolver(ov, None, f"/nonexistent-mount/{repo}", lambda c, p: None)
    return st.commit_plan(client, view, plan, links, **kw)


def _repo_with_old(put, repo: str) -> None:
    put(repo, {"/old": b"to be deleted", "/kept": b"k"})


def test_descriptor_route_gives_the_same_commit_as_grpc(pachd, client, put, tmp_path):
    _repo_with_old(put, "byfd")
    _repo_with_old(put, "bygrpc")
    staging, ov, plan, want = _staged_plan(tmp_path, "s1")
    used = pachd.local_reads.used
    r_fd = _commit(client, "byfd", ov, plan, local_pachd=True)
    assert r_fd.route == st.FD
    assert pachd.local_reads.used == used + 4  # big, small, empty, and the link's target: pachd read our descriptors
    r_raw = _commit(client, "bygrpc", ov, plan, local_pachd=False)
    assert r_raw.route == st.RAW
    assert pachd.local_reads.used == used + 4
    want["/kept"] = b"k"
    assert tree(client, "byfd") == tree(client, "bygrpc") == want
    assert r_fd.ops == r_raw.ops == len(plan)
    for sf in (c.staged for c in ov.changes.values() if c.kind == "file"):
        assert os.path.exists(sf.path)  # committing never removes staged files (the caller does)
    staging.remove_all()


def test_falls_back_to_file_urls_when_pachds_socket_is_absent(pachd, client, put, tmp_path):
    _repo_with_old(put, "r")
    before = commits(client, "r")
    staging, ov, plan, want = _staged_plan(tmp_path, "s2")
    pachd.local_reads.stop()
    pachd.local_reads.name = ""  # as a pachd whose local reads are off: its Socket call says so
    r = _commit(client, "r", ov, plan, local_pachd=True)
    assert r.route == st.URL
    want["/kept"] = b"k"
    assert tree(client, "r") == want
    assert len(commits(client, "r")) == len(before) + 1
    staging.remove_all()


def test_a_refused_handle_commits_nothing_then_the_next_route_commits_once(
        pachd, client, put, tmp_path, monkeypatch):
    _repo_with_old(put, "r")
    before = commits(client, "r")
    staging, ov, plan, want = _staged_plan(tmp_path, "s3")
    real_url = st.LocalHandles.url

    def stale_url(self, local):  # pachd will not know this handle (as after its 60 s expiry)
        u = real_url(self, local)
        return None if u is None else "pachd-local-fd:" + "0" * 32
    monkeypatch.setattr(st.LocalHandles, "url", stale_url)
    r = _commit(client, "r", ov, plan, local_pachd=True)
    assert r.route == st.URL
    want["/kept"] = b"k"
    assert tree(client, "r") == want
    assert len(commits(client, "r")) == len(before) + 1  # the refused attempt left nothing behind
    deadline = time.monotonic() + 10
    while pachd.local_reads._handles and time.monotonic() < deadline:
        time.sleep(0.05)  # pachd drops handles when their connections close
    assert not pachd.local_reads._handles
    staging.remove_all()


def test_a_failed_upload_keeps_the_staged_files_and_leaves_no_handles(pachd, client, put, tmp_path):
    staging, ov, plan, _ = _staged_plan(tmp_path, "s4")
    with pytest.raises(grpc.RpcError) as e:
        _commit(client, "missing", ov, plan, local_pachd=True)  # no such repo
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    for c in ov.changes.values():
        if c.kind == "file":
            assert os.path.exists(c.staged.path)
    assert BIG == os.path.getsize(ov.changes["/big.bin"].staged.path)
    deadline = time.monotonic() + 10
    while pachd.local_reads._handles and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pachd.local_reads._handles
    staging.remove_all()


@needs_fuse
def test_a_mounts_commit_hands_pachd_its_descriptors(mounter, pachd, client, put, tmp_path):
    put("r", {"/f": b"1"})
    put("r2", {"/f": b"1"})
    data = os.urandom(BIG)
    used = pachd.local_reads.used
    m = mounter.mount(tmp_path / "mnt", "-r", "r+w")
    (m.path / "r/big.bin").write_bytes(data)
    (m.path / "r/f").write_bytes(b"2")
    mounter.unmount(m)
    assert m.proc.returncode == 0, m.stderr()
    assert pachd.local_reads.used == used + 2
    # the same changes with local uploads off (PACHCTL_LOCAL_UPLOAD=0): streamed, same result
    m2 = mounter.mount(tmp_path / "mnt2", "-r", "r2+w", extra_env={"PACHCTL_LOCAL_UPLOAD": "0"})
    (m2.path / "r2/big.bin").write_bytes(data)
    (m2.path / "r2/f").write_bytes(b"2")
    mounter.unmount(m2)
    assert m2.proc.returncode == 0, m2.stderr()
    assert pachd.local_reads.used == used + 2
    assert tree(client, "r") == tree(client, "r2") == {"/f": b"2", "/big.bin": data}
