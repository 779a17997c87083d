"""Storage maintenance: `fsck`, `check storage`, `garbage-collect`, `extract` (backup).

- `fsck [--fix]` is Pachyderm's: streams the Fsck RPC and prints `Error: ...` per problem,
  `Fix applied: ...` per repair, and `No errors found.` when there were none. Unlike
  Pachyderm's (which always exits 0), it exits 1 when an error was found.
- `check storage [--read-chunk-data]` calls CheckStorage (Pachyderm's RPC; Pachyderm's pachctl
  has no command for it): every object a live commit needs must exist; with the flag every
  chunk is read and re-hashed. Damage is printed naming repo, commit and path; exit 1.
- `garbage-collect` runs one garbage collection now and prints what it reclaimed. Pachyderm has
  no such command (its collector only runs inside pachd); this one calls our maintenance_v1 API.
- `extract --output DEST` copies the whole installation (metadata checkpoint and every pack)
  to a directory or s3://bucket/prefix while pachd runs; `pachd restore` (offline) brings it
  back into an empty root. (Pachyderm 1.x had `pachctl extract`/`pachctl restore`.)
"""
from __future__ import annotations

import sys

import click

from pachctl.cli import CliError, command, get_app
from pachctl.pretty import size


def _maintenance():
    from proto.maintenance_v1 import maintenance_pb2_grpc
    c = get_app().client()
    return c._api(maintenance_pb2_grpc.APIStub)


@command(None, "fsck", help="Run a file system consistency check on pfs: the provenance relationships of "
                            "branches and commits and the parent/child links of commits.")
@click.option("-f", "--fix", is_flag=True, help="Attempt to fix as many issues as possible.")
@click.option("--zombie", default="", metavar="COMMIT", help="A single commit to check for zombie files "
              "(files in a pipeline's output commit that no datum of its job produced), e.g. edges@master.")
@click.option("--zombie-all", is_flag=True, help="Check all pipelines for zombie files: files corresponding to old "
              "inputs that were not properly deleted.")
def fsck(fix, zombie, zombie_all):
    from proto.pfs_v2 import pfs_pb2
    if zombie and zombie_all:
        raise CliError("give either --zombie COMMIT or --zombie-all, not both")
    if (zombie or zombie_all) and fix:
        raise CliError("--fix does not apply to zombie checks (zombie files are reported, never deleted)")
    req = pfs_pb2.FsckRequest(fix=fix)
    if zombie:
        from pachctl import pb
        from pachctl.refs import parse_commit
        req = pfs_pb2.FsckRequest(zombie_target=pb.commit(parse_commit(zombie, get_app().project(None))))
    elif zombie_all:
        req = pfs_pb2.FsckRequest(zombie_all=True)
    found = False
    for resp in get_app().client().pfs.Fsck(req, timeout=None):
        if resp.error:
            found = True
            sys.stdout.write(f"Error: {resp.error}\n")
        else:
            sys.stdout.write(f"Fix applied: {resp.fix}\n")
    if not found:
        sys.stdout.write("No errors found.\n")
        return
    sys.stdout.flush()
    raise SystemExit(1)


@command("check", "storage", help="Check that every object a commit needs is in the chunk store "
                                  "(exit 1, naming repo, commit and path, if not).")
@click.option("--read-chunk-data", is_flag=True,
              help="Also read every chunk and check it against its hash (reads all stored data once).")
def check_storage(read_chunk_data):
    import grpc

    try:
        resp, call = _with_call(read_chunk_data)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.DATA_LOSS:
            sys.stdout.write(e.details() + "\n")
            sys.stdout.flush()
            raise SystemExit(1)
        raise
    meta = dict(call.trailing_metadata() or ())
    verb = "read and re-hashed" if read_chunk_data else "found"
    sys.stdout.write(f"{resp.chunk_object_count} chunk(s) of {meta.get('files', '?')} file(s) in "
                     f"{meta.get('commits', '?')} commit(s) {verb}: storage OK\n")
    orphans = int(meta.get("orphans", "0"))
    if orphans:
        sys.stdout.write(f"{orphans} object(s) ({size(int(meta.get('orphan-bytes', '0')))}) belong to no commit "
                         "and no upload; garbage collection removes them\n")


def _with_call(read_chunk_data):
    from proto.pfs_v2 import pfs_pb2, pfs_pb2_grpc
    c = get_app().client()
    raw = pfs_pb2_grpc.APIStub(c.channel)
    return raw.CheckStorage.with_call(pfs_pb2.CheckStorageRequest(read_chunk_data=read_chunk_data),
                                      metadata=c.metadata or None)


@command(None, "garbage-collect",
         help="Delete now what no commit, branch, open commit, job or upload in progress refers to, and "
              "print what was reclaimed. pachd also does this every --gc-period seconds (default 60). "
              "Pachyderm has no such command.")
@click.option("--orphans", is_flag=True,
              help="Also list the chunk store for objects that nothing records (left by a crash); costs "
                   "LIST requests on S3.")
@click.option("--no-compaction", is_flag=True, help="Do not rewrite packs that are mostly garbage.")
def garbage_collect(orphans, no_compaction):
    from proto.maintenance_v1 import maintenance_pb2 as mpb
    r = _maintenance().GarbageCollect(mpb.GarbageCollectRequest(orphans=orphans, no_compaction=no_compaction),
                                      timeout=None)
    sys.stdout.write(f"reclaimed {r.objects_deleted} object(s), {size(max(r.bytes_reclaimed, 0))} in "
                     f"{r.seconds:.2f}s ({r.packs_deleted} pack(s) of {size(r.pack_bytes_deleted)}, "
                     f"{r.nodes_deleted} index node(s), {r.orphans_deleted} orphan(s); "
                     f"{r.packs_compacted} pack(s) compacted)\n")
    if r.leases_live:
        sys.stdout.write(f"{r.leases_live} upload(s) in progress: their data is kept until they finish or "
                         "their lease expires\n")
    if r.skipped:
        sys.stdout.write(f"nothing deleted: {r.skipped}\n")
    for d in r.damage:
        sys.stdout.write(f"damage: {d}\n")
    if r.damage:
        sys.stdout.flush()
        raise SystemExit(1)


@command(None, "extract",
         help="Back up the whole installation (repos, commits, pipelines, jobs and all data) to a new "
              "directory or s3://bucket/prefix while pachd runs. Restore it with `pachd restore --from "
              "SOURCE --root EMPTY_DIR` (and `--storage s3://...` to put the data in a bucket).")
@click.option("--output", "-o", "output", required=True, metavar="DEST",
              help="A directory (created; must be empty) or s3://bucket/prefix (must be empty).")
def extract(output):
    from proto.maintenance_v1 import maintenance_pb2 as mpb
    import os
    dest = output if output.startswith("s3://") else os.path.abspath(output)
    r = _maintenance().Backup(mpb.BackupRequest(destination=dest), timeout=None)
    sys.stdout.write(f"backed up {r.objects_copied} object(s) ({size(r.bytes_copied)}) and "
                     f"{r.metadata_files} metadata file(s) to {dest} in {r.seconds:.1f}s\n")
