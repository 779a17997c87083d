"""Metadata shipping: the metadata store, copied to the bucket, so that the bucket alone is enough.

With `pachd --storage s3://bucket/prefix`, every project, repo, branch, commit (with its
provenance and file index), pipeline and job lives in RocksDB under `--root`. The shipper
copies consistent RocksDB checkpoints into the same bucket and prefix as the packs; a pachd
started with an empty `--root` on that bucket downloads the newest one before it opens the
store (`restore`), so losing pachd's disk loses at most the writes of the last shipping
period.

Layout (keys in the chunk store, next to `packs/`):
  meta/sst/<name>.<size>.<blake3 prefix>   RocksDB table files: immutable, shared by generations
  meta/gen/<generation>/<name>             a generation's small mutable files (CURRENT, MANIFEST-*,
                                           OPTIONS-*, the write-ahead log)
  meta/gen/<generation>.json               which files make up that generation
  meta/gen/<generation>/root/<name>        files of pachd's --root that are not in RocksDB:
                                           `auth.json` (auth state, tokens as hashes only) and
                                           `cluster-id`
  meta/LATEST                              the newest complete generation (the same JSON)
  meta/OWNER                               the pachd using this prefix (pachd.bucket_lease)

Invariants:
- A generation's files are all uploaded before `meta/LATEST` names it (a single PUT, atomic on
  S3): a restore sees a complete old or a complete new generation, never half of one.
- A table file is uploaded once under a name that includes its size and content hash; files
  are never rewritten in place. Generations older than the newest `KEEP` are deleted after
  LATEST moved on, then the table files no kept generation names.
- The root files (`ROOT_FILES`) travel in every generation with the checkpoint, so a restore
  brings back the auth state and the cluster id that go with that metadata; a change to one
  of them alone (e.g. a new robot token) is shipped like a database change.
- Shipping happens every `period` seconds when the database or a root file changed since the last shipment
  (`pachd --metadata-ship-period`, env PACHD_METADATA_SHIP_PERIOD, default 2), on demand
  (`ship_now`: the garbage collector calls it after claiming packs and before removing them,
  so a restored pachd never refers to a removed pack), and at a clean shutdown.
- RPO: a write acknowledged at time t is in the bucket once the first shipment that starts
  after t finishes: at most `period` + the duration of one shipment (logged; typically well
  under a second for a metadata store of a few hundred MiB after the first one), and 0 after
  a clean shutdown. Packs are written to the bucket before the write is acknowledged, so a
  restored commit's data is always there.
- One pachd ships to a bucket prefix at a time (as one pachd owns a root).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import blake3

from pfs.errors import ObjectNotFound, StorageError

log = logging.getLogger("pachd.shipping")
PREFIX = "meta/"
LATEST = PREFIX + "LATEST"
KEEP = 3
ROOT_FILES = ("auth.json", "cluster-id")  # under pachd's --root; small (KiBs)
DEFAULT_PERIOD = 2.0
_READ = 8 * 1024 * 1024


@dataclass
class Shipment:
    generation: int = 0
    files_uploaded: int = 0
    bytes_uploaded: int = 0
    seconds: float = 0.0


def _is_table(name: str) -> bool:
    return name.endswith(".sst") or name.endswith(".blob")


def _hash_file(path: Path) -> str:
    h = blake3.blake3()
    with open(path, "rb") as f:
        while True:
            b = f.read(_READ)
            if not b:
                break
            h.update(b)
    return h.hexdigest()[:32]


def _gen_key(generation: int) -> str:
    return f"{PREFIX}gen/{generation:012d}"


def latest(chunks) -> Optional[dict]:
    """The newest complete generation in the bucket, or None."""
    try:
        return json.loads(chunks.get(LATEST))
    except ObjectNotFound:
        return None


class MetadataShipper:
    def __init__(self, meta, chunks, period: float = DEFAULT_PERIOD, tmp_root: Optional[Path] = None,
                 root: Optional[Path] = None, cluster_id: str = ""):
        """`root`: pachd's --root, whose ROOT_FILES are shipped with every generation;
        `cluster_id` is recorded in every generation's document."""
        self.meta = meta
        self.root = Path(root) if root else None
        self.cluster_id = cluster_id
        self._shipped_root: Optional[dict] = None
        self.chunks = chunks
        self.period = float(period)
        self.tmp_root = Path(tmp_root) if tmp_root else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._hashes: dict[tuple, str] = {}  # (name, inode, size) -> uploaded key
        self._shipped_seq: Optional[int] = None
        if self.tmp_root is not None:  # checkpoints left by a crash mid-shipment
            for left in self.tmp_root.glob("ship-*"):
                shutil.rmtree(left, ignore_errors=True)
        cur = latest(chunks)
        self.generation = int(cur["generation"]) if cur else 0
        self.last: Optional[Shipment] = None
        self.halted: Optional[str] = None

    def halt(self, reason: str) -> None:
        """Never ship again (another pachd now owns the bucket prefix)."""
        self.halted = reason
        self._stop.set()

    # ---- one shipment -------------------------------------------------------------------
    def ship_now(self) -> Shipment:
        with self._lock:
            return self._ship()

    def _root_files(self) -> dict[str, bytes]:
        out = {}
        if self.root is not None:
            for name in ROOT_FILES:
                try:
                    out[name] = (self.root / name).read_bytes()
                except FileNotFoundError:
                    continue
        return out

    def changed(self) -> bool:
        """Anything to ship: the database or a root file changed since the last shipment."""
        return self.meta.sequence() != self._shipped_seq or self._root_files() != self._shipped_root

    def _ship(self) -> Shipment:
        if self.halted:
            raise StorageError(f"metadata is no longer shipped: {self.halted}")
        t0 = time.monotonic()
        started = time.time()  # everything acknowledged before this is in the generation
        seq = self.meta.sequence()
        root_files = self._root_files()  # before the checkpoint: never older than the metadata
        work = Path(tempfile.mkdtemp(prefix="ship-", dir=self.tmp_root))
        shutil.rmtree(work)  # RocksDB creates the checkpoint directory itself
        try:
            self.meta.checkpoint(work)
            s = Shipment(generation=self.generation + 1)
            files: dict[str, str] = {}
            for entry in sorted(os.scandir(work), key=lambda e: e.name):
                if not entry.is_file():
                    continue
                st = entry.stat()
                if _is_table(entry.name):
                    ident = (entry.name, st.st_ino, st.st_size)
                    key = self._hashes.get(ident)
                    if key is None:
                        key = f"{PREFIX}sst/{entry.name}.{st.st_size}.{_hash_file(Path(entry.path))}"
                        if not self.chunks.exists(key):
                            self._upload(Path(entry.path), key, s)
                        self._hashes[ident] = key
                else:
                    key = f"{_gen_key(s.generation)}/{entry.name}"
                    self._upload(Path(entry.path), key, s)
                files[entry.name] = key
            shipped_root = {}
            for name, data in root_files.items():
                key = f"{_gen_key(s.generation)}/root/{name}"
                self.chunks.put(key, data)
                s.files_uploaded += 1
                s.bytes_uploaded += len(data)
                shipped_root[name] = key
            doc = json.dumps({"generation": s.generation, "started": started, "created": time.time(), "sequence": seq,
                              "files": files, "root_files": shipped_root, "cluster_id": self.cluster_id},
                             sort_keys=True).encode()
            self.chunks.put(_gen_key(s.generation) + ".json", doc)
            self.chunks.put(LATEST, doc)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.generation = s.generation
        self._shipped_seq = seq
        self._shipped_root = root_files
        s.seconds = time.monotonic() - t0
        self.last = s
        log.debug("metadata generation %d shipped: %d files, %d bytes in %.2fs", s.generation,
                  s.files_uploaded, s.bytes_uploaded, s.seconds)
        if s.generation % 10 == 0:
            self._prune()
        return s

    def _upload(self, path: Path, key: str, s: Shipment) -> None:
        data = path.read_bytes()  # a table file is at most RocksDB's target file size (64 MiB)
        self.chunks.put(key, data)
        s.files_uploaded += 1
        s.bytes_uploaded += len(data)

    def _prune(self) -> None:
        """Delete generations older than the newest KEEP, then unreferenced table files."""
        gens = []
        for key in self.chunks.iterate(PREFIX + "gen/"):
            if key.endswith(".json"):
                try:
                    gens.append(int(key[len(PREFIX + "gen/"):-len(".json")]))
                except ValueError:
                    continue
        gens.sort()
        keep = set(gens[-KEEP:]) | {self.generation}
        referenced: set[str] = set()
        for g in keep:
            try:
                doc = json.loads(self.chunks.get(_gen_key(g) + ".json"))
                referenced |= set(doc["files"].values()) | set(doc.get("root_files", {}).values())
            except ObjectNotFound:
                continue
        for key in list(self.chunks.iterate(PREFIX + "gen/")):
            rest = key[len(PREFIX + "gen/"):]
            try:
                g = int(rest.split("/", 1)[0].split(".", 1)[0])
            except ValueError:
                continue
            if g not in keep and key not in referenced:
                self.chunks.delete(key)
        for key in list(self.chunks.iterate(PREFIX + "sst/")):
            if key not in referenced:
                self.chunks.delete(key)

    # ---- the background loop ----------------------------------------------------------------
    def start(self) -> None:
        if self.period <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="metadata-shipper", daemon=True)
        self._thread.start()
        log.info("metadata shipped to the bucket every %gs (generation %d)", self.period, self.generation)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                with self._lock:
                    if self.changed():
                        s = self._ship()
                        if s.seconds > self.period:
                            log.warning("shipping metadata took %.1fs (longer than the %gs period)",
                                        s.seconds, self.period)
            except StorageError as e:
                log.error("shipping metadata to the bucket failed (will retry): %s", e.message)
            except Exception:  # noqa: BLE001 - the loop must survive a bad round
                log.exception("shipping metadata to the bucket failed (will retry)")

    def stop(self, final: bool = True) -> None:
        """Stop the loop; with `final`, ship what changed since the last shipment."""
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join()
        if final and not self.halted:
            try:
                with self._lock:
                    if self.changed():
                        self._ship()
            except Exception as e:  # noqa: BLE001 - shutting down: say so, do not hang
                log.error("final metadata shipment failed: %s", e)


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` (mode 0600: auth.json grants access to the cluster)."""
    tmp = path.with_name(path.name + ".restoring")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def restore(chunks, meta_dir: Path, root: Optional[Path] = None) -> Optional[int]:
    """Download the newest generation into `meta_dir` (which must not exist yet) and its root
    files into `root` (replacing what is there: they belong with that metadata); returns its
    generation, or None if the bucket holds none. `meta_dir` appears complete or not at all,
    and only after the root files are in place (a crash before leaves `meta_dir` missing, so
    the restore runs again)."""
    doc = latest(chunks)
    if doc is None:
        return None
    meta_dir = Path(meta_dir)
    tmp = meta_dir.with_name(meta_dir.name + ".restoring")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, key in doc["files"].items():
            try:
                data = chunks.get(key)
            except ObjectNotFound:
                raise StorageError(f"metadata generation {doc['generation']} in the bucket is incomplete: "
                                   f"{key} is missing; cannot restore") from None
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if root is not None:
            for name, key in doc.get("root_files", {}).items():
                if name not in ROOT_FILES:
                    continue  # only the files pachd ships; never a path from the bucket
                _write_atomically(Path(root) / name, chunks.get(key))
        os.rename(tmp, meta_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("metadata restored from the bucket: generation %d (shipped %s)", doc["generation"],
             time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(doc.get("created", 0))))
    return int(doc["generation"])
