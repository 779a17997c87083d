"""Backup and restore of a whole installation (`pachctl extract`, `pachd restore`).

A backup is a directory or bucket prefix laid out like a chunk store: `packs/...` (every pack
object) and `meta/...` (one metadata generation in the shipping layout, see pachd.shipping,
with the root files that go with it: the auth state `auth.json`, tokens as hashes only, and
the `cluster-id`). A restored pachd has the same auth state and cluster id as the original.
So the same `restore` reads a backup and a bucket that pachd shipped to.

Invariants:
- The destination must be empty: a backup never mixes with another.
- The metadata checkpoint is taken first, with garbage collection held off (the collector's
  lock) until every pack has been copied: every pack the checkpoint refers to still exists
  when it is copied. Writers go on meanwhile; what they write after the checkpoint is not in
  the backup (packs written meanwhile may be copied; they are orphans there).
- `meta/LATEST` is written by the metadata step before the packs are copied, so a backup
  interrupted half-way is recognised by its missing `meta/BACKUP-COMPLETE` marker, which is
  written last; `restore` refuses a backup without it (a shipped bucket has no marker and is
  always restorable: its packs were written before the metadata that refers to them).
- Restore is offline (`pachd restore --from SRC --root EMPTY [--storage s3://...]`): the
  metadata goes into `<root>/meta` (which must not exist), packs into `--storage` or
  `<root>/chunks`; objects already there are skipped, so an interrupted restore can rerun.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pachd import shipping
from pfs.errors import InvalidArgument, StorageError

log = logging.getLogger("pachd.backup")
COMPLETE = shipping.PREFIX + "BACKUP-COMPLETE"


@dataclass
class BackupResult:
    objects_copied: int = 0
    bytes_copied: int = 0
    metadata_files: int = 0
    seconds: float = 0.0


def _open(url: str):
    from pfs.storage import open_chunkstore
    if not url.startswith("s3://"):
        Path(url).expanduser().mkdir(parents=True, exist_ok=True)
        url = str(Path(url).expanduser())
    return open_chunkstore(url)


def _copy_packs(src, dst, r: BackupResult, skip_existing: bool = False) -> None:
    for info in src.iterate_info("packs/"):
        if skip_existing and dst.exists(info.key):
            continue
        data = src.get(info.key)  # one pack at a time: at most the pack size in memory
        dst.put(info.key, data)
        r.objects_copied += 1
        r.bytes_copied += len(data)


def backup(pachd, destination: str) -> BackupResult:
    t0 = time.monotonic()
    dst = _open(destination)
    try:
        if next(iter(dst.iterate("")), None) is not None:
            raise InvalidArgument(f"backup destination {destination} is not empty; give a new directory or prefix")
        r = BackupResult()
        with pachd.gc._lock:  # no pack is deleted until the copy is done
            s = shipping.MetadataShipper(pachd.meta, dst, period=0, tmp_root=pachd.root, root=pachd.root,
                                         cluster_id=pachd.cluster_id).ship_now()
            r.metadata_files = s.files_uploaded
            _copy_packs(pachd.chunks, dst, r)
        dst.put(COMPLETE, str(time.time()).encode())
    finally:
        dst.close()
    r.seconds = time.monotonic() - t0
    log.info("backup to %s: %d objects, %d bytes, %d metadata files in %.1fs", destination,
             r.objects_copied, r.bytes_copied, r.metadata_files, r.seconds)
    return r


def restore(source: str, root: Path, storage: str | None = None) -> BackupResult:
    t0 = time.monotonic()
    root = Path(root).expanduser().absolute()
    meta_dir = root / "meta"
    if meta_dir.exists() and any(meta_dir.iterdir()):
        raise InvalidArgument(f"{meta_dir} already holds a metadata store; restore into an empty --root")
    src = _open(source)
    try:
        if shipping.latest(src) is None:
            raise InvalidArgument(f"{source} holds no backup (no {shipping.LATEST})")
        if not src.exists(COMPLETE):
            if not source.startswith("s3://"):
                raise InvalidArgument(f"the backup in {source} is incomplete (the backup that made it did not "
                                      "finish): make a new one")
            log.info("%s has no backup marker: restoring it as a bucket pachd shipped its metadata to", source)
        r = BackupResult()
        root.mkdir(parents=True, exist_ok=True)
        from pfs.storage import LocalChunkStore, open_chunkstore
        dst = open_chunkstore(storage) if storage else LocalChunkStore(root / "chunks")
        try:
            _copy_packs(src, dst, r, skip_existing=True)  # data first: metadata refers to it
        finally:
            dst.close()
        if meta_dir.exists():
            meta_dir.rmdir()
        shipping.restore(src, meta_dir, root)
        r.metadata_files = sum(1 for _ in meta_dir.iterdir())
    finally:
        src.close()
    r.seconds = time.monotonic() - t0
    return r


def restore_main(argv) -> int:
    ap = argparse.ArgumentParser(
        prog="pachd restore",
        description="Restore a backup made by `pachctl extract` (or a bucket pachd shipped its metadata to) "
                    "into an empty data directory. pachd must not be running on that directory.")
    ap.add_argument("--from", dest="source", required=True, help="the backup: a directory or s3://bucket/prefix")
    ap.add_argument("--root", required=True, help="the new, empty data directory (pachd --root)")
    ap.add_argument("--storage", default=None,
                    help="put the data in this bucket (s3://bucket/prefix) instead of <root>/chunks")
    args = ap.parse_args(argv)
    try:
        r = restore(args.source, Path(args.root), args.storage)
    except (InvalidArgument, StorageError) as e:
        print(f"pachd restore: {e.message}", file=sys.stderr)
        return 1
    print(f"restored {r.objects_copied} object(s) ({r.bytes_copied} bytes) and {r.metadata_files} metadata "
          f"file(s) into {args.root} in {r.seconds:.1f}s; start it with: pachd --root {args.root}"
          + (f" --storage {args.storage}" if args.storage else ""))
    return 0
