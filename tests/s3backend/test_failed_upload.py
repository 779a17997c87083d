"""Nothing is committed when a chunk upload failed.

1. End to end: pachd (its own process, chunks in SeaweedFS behind a `FaultProxy`) lets a few
   pack PUTs through, then every PUT fails (503 SlowDown, or the connection drops as if the
   server died mid-upload). The put file fails with UNAVAILABLE and a message naming the
   bucket and what to check; the branch head does not move, no commit or commit set
   appears, the file is not there; once the proxy recovers the same put works, and every
   pack the chunk index names exists (the failed upload left only garbage).
2. In the core: a pack write fails while other packs of the same upload are in flight. The
   error reaches the ModifyFile caller as UNAVAILABLE with the store's message; the failed
   pack gets no chunk-index entry; the writer is quiescent when it raises and stays failed.
"""
from __future__ import annotations

import hashlib
import io
import random
import threading
import time

import grpc
import msgpack
import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from pfs.core import Pfs
from pfs.core.content import pack_key
from pfs.errors import StorageError
from pfs.model import Repo
from pfs.storage.rocks import RocksMetadataStore
from tests.s3backend.helpers import pack_refs_all_exist

pytestmark = pytest.mark.s3
MiB = 1 << 20


def _master(repo: pfs.Repo) -> pfs.Commit:
    return pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master"))


def _state(c: Client, repo: pfs.Repo) -> tuple:
    head = c.pfs.inspect_commit(commit=_master(repo)).commit.id
    commits = sorted(ci.commit.id for ci in c.pfs.list_commit(repo=repo))
    sets = sorted(cs.commit_set.id for cs in c.pfs.list_commit_set())
    files = sorted(fi.file.path for fi in c.pfs.walk_file(file=pfs.File(commit=_master(repo), path="/")))
    return head, commits, sets, files


@pytest.mark.parametrize("failure", ["503", "reset"])
def test_failed_chunk_upload_commits_nothing(failure, proxy, bucket, start_pachd, sdk, seaweed_server):
    p = start_pachd(f"s3://{bucket}/pfs", endpoint=proxy.url, AWS_MAX_ATTEMPTS="3",
                    PACHD_METADATA_SHIP_PERIOD="0", PACHD_GC_PERIOD="0",
                    PACHD_BUCKET_LEASE_PERIOD="3600")  # only pack PUTs fail here
    c = sdk(p)
    repo = pfs.Repo(name="precious")
    c.pfs.create_repo(repo=repo)
    c.pfs.put_file_from_bytes(commit=_master(repo), path="/before.txt", data=b"committed before")
    before = _state(c, repo)
    data = random.Random(40).randbytes(40 * MiB)  # 5 packs of 8 MiB

    # two more pack PUTs get through, then every PUT fails
    proxy.configure(fail_puts_after=proxy.puts_ok() + 2, put_failure=failure)
    with pytest.raises(grpc.RpcError) as ei:
        c.pfs.put_file_from_file(commit=_master(repo), path="/big.bin", file=io.BytesIO(data))
    err = ei.value
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    msg = err.details()
    assert "put of 'packs/" in msg and f"s3://{bucket}/pfs" in msg and proxy.url in msg, msg
    if failure == "503":
        assert "SlowDown" in msg and "HTTP 503" in msg and "3 attempts" in msg, msg
    else:
        assert "S3 server is running" in msg, msg
    failed_puts = proxy.stats()["injected"]["PUT"]
    assert failed_puts >= 3
    assert failed_puts % 3 == 0  # each failing pack: AWS_MAX_ATTEMPTS=3 tries, then given up
    assert _state(c, repo) == before  # head, commits, commit sets and files unchanged

    # the same in an open commit: it stays open and unchanged, and can still be finished
    open_c = c.pfs.start_commit(branch=pfs.Branch(repo=repo, name="master"))
    with pytest.raises(grpc.RpcError) as ei:
        c.pfs.put_file_from_file(commit=open_c, path="/big.bin", file=io.BytesIO(data[:20 * MiB]))
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    info = c.pfs.inspect_commit(commit=open_c)
    assert info.finished.year == 1970  # still open
    assert [f.file.path for f in c.pfs.walk_file(file=pfs.File(commit=open_c, path="/"))] == ["/", "/before.txt"]
    c.pfs.finish_commit(commit=open_c)
    c.pfs.wait_commit(open_c)

    # the server recovers: the same upload now works and reads back intact
    proxy.configure(fail_puts_after=None)
    c.pfs.put_file_from_file(commit=_master(repo), path="/big.bin", file=io.BytesIO(data))
    with c.pfs.pfs_file(pfs.File.from_uri("precious@master:/big.bin")) as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
    head = c.pfs.inspect_commit(commit=_master(repo))
    assert head.parent_commit.id == open_c.id
    assert len(list(c.pfs.list_commit(repo=repo))) == len(before[1]) + 2  # the open one, the put
    assert p.stop() == 0
    pack_refs_all_exist(p.root, seaweed_server, bucket, "pfs")


# ---- a pack write fails while others are in flight ----------------------------------------------
class GatedPuts:
    """Wraps a chunk store's put: the `fail_at`-th pack put waits until at least two later
    puts are running, then fails with a StorageError; those later puts hold until it has
    failed. Tracks how many puts are running."""

    def __init__(self, store, fail_at: int):
        self.store, self.real_put, self.fail_at = store, store.put, fail_at
        self.lock = threading.Condition()
        self.n = 0
        self.running = 0
        self.failed = threading.Event()
        self.failed_key = None
        self.keys_put: list[str] = []

    def put(self, key: str, data) -> None:
        with self.lock:
            i = self.n
            self.n += 1
            self.running += 1
            self.lock.notify_all()
        try:
            if i == self.fail_at:
                with self.lock:
                    self.lock.wait_for(lambda: self.running >= 3, timeout=20)
                    assert self.running >= 3, "the other packs never got in flight"
                self.failed_key = key
                self.failed.set()
                raise StorageError(f"put of {key!r} in {self.store!r} failed: injected by the test")
            if i > self.fail_at:
                self.failed.wait(20)
                time.sleep(0.05)  # still running when the failure is noticed
            self.real_put(key, data)
            with self.lock:
                self.keys_put.append(key)
        finally:
            with self.lock:
                self.running -= 1
                self.lock.notify_all()


def test_pack_failure_while_others_in_flight_core(seaweed_server, bucket, tmp_path):
    meta = RocksMetadataStore(tmp_path / "meta", sync=False)
    store = seaweed_server.store(bucket, "core")
    p = Pfs(meta, store)
    try:
        p.content.pack_target = 1 * MiB
        gate = GatedPuts(store, fail_at=2)
        store.put = gate.put
        p.create_repo(Repo("default", "r"))
        w = p.content.writer()
        w.begin()
        rng = random.Random(9)
        with pytest.raises(StorageError, match="injected by the test") as ei:
            for _ in range(24):
                w.feed(rng.randbytes(MiB))
            w.end()
            w.flush()
        # quiescent when it raised: none of the writer's pack writes is still running
        assert gate.running == 0
        # poisoned: every later call raises the same error; nothing can be flushed
        for call in (lambda: w.feed(b"x"), w.end, w.flush, w.begin):
            with pytest.raises(StorageError) as again:
                call()
            assert again.value is ei.value
        # no chunk-index entry for the failed pack; every indexed pack exists
        indexed = {pack_key(msgpack.unpackb(v)[0]) for _, v in meta.scan(prefix=b"K\x00")}
        assert gate.failed_key not in indexed
        assert not store.exists(gate.failed_key)
        assert indexed <= set(store.iterate("packs/"))
        assert indexed <= set(gate.keys_put)
    finally:
        store.put = gate.real_put
        p.close()
        meta.close()
        store.close()


def test_pack_failure_while_others_in_flight_reaches_modifyfile_as_unavailable(
        seaweed_server, bucket, tmp_path, monkeypatch):
    from pachd.server import Pachd
    for k, v in {"AWS_ACCESS_KEY_ID": seaweed_server.access_key, "AWS_SECRET_ACCESS_KEY": seaweed_server.secret_key,
                 "AWS_ENDPOINT_URL": seaweed_server.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PACHD_BUCKET_LEASE_PERIOD", "3600")  # only pack PUTs are counted by the gate:
    d = Pachd(tmp_path / "pachd", port=0, storage=f"s3://{bucket}/svc", host="127.0.0.1", enable_pps=False,
              ship_period=0).start()  # no lease renewals, no metadata shipments among them
    c = Client(host="localhost", port=d.port)
    gate = None
    try:
        d.pfs.content.pack_target = 1 * MiB
        repo = pfs.Repo(name="r")
        c.pfs.create_repo(repo=repo)
        c.pfs.put_file_from_bytes(commit=_master(repo), path="/ok", data=b"fine")
        before = _state(c, repo)
        gate = GatedPuts(d.chunks, fail_at=3)
        d.chunks.put = gate.put
        data = random.Random(11).randbytes(24 * MiB)
        with pytest.raises(grpc.RpcError) as ei:
            c.pfs.put_file_from_file(commit=_master(repo), path="/big", file=io.BytesIO(data))
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
        assert ei.value.details() == f"put of {gate.failed_key!r} in {d.chunks!r} failed: injected by the test"
        assert _state(c, repo) == before
        deadline = time.monotonic() + 10
        while gate.running and time.monotonic() < deadline:
            time.sleep(0.05)
        indexed = {pack_key(msgpack.unpackb(v)[0]) for _, v in d.meta.scan(prefix=b"K\x00")}
        assert gate.failed_key not in indexed
        assert indexed <= set(d.chunks.iterate("packs/"))
        d.chunks.put = gate.real_put  # the store recovers
        c.pfs.put_file_from_file(commit=_master(repo), path="/big", file=io.BytesIO(data))
        with c.pfs.pfs_file(pfs.File.from_uri("r@master:/big")) as f:
            assert f.read() == data
    finally:
        if gate is not None:
            d.chunks.put = gate.real_put
        c._channel.close()
        d.stop(grace=0.5)
