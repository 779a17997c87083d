"""`pachctl mount` and the mount server: repos as a FUSE file system (pyfuse3 over libfuse3).

A front end over pachd's gRPC API like the rest of pachctl; it never touches pachd's stores.

Modules, from the wire up:
- `remote`: the gRPC calls the mount makes (branch heads, paged listings, byte-range streams,
  the commit's ModifyFile), with errors mapped to errnos. Blocking; called from worker threads.
- `reader`: one open remote file read by byte range: a GetFile stream from an offset, read
  ahead on a thread for sequential reads, restarted at the new offset after a seek.
- `listing`: a directory's entries, fetched a page at a time and kept per finished commit.
- `overlay`: a writable view's changes (staged files, deletions, copies, new directories,
  symlinks) over the branch head, and the plan that turns them into one commit.
- `staging`: the staged files on local disk and the upload of a plan (`commit_plan`).
- `views`: what is mounted (`View`: repo, branch or commit, writable, datum paths), parsing of
  `--repos` arguments and their checks against pachd.
- `nodes`: inodes: stable numbers, lookup counts, what each one stands for.
- `fs`: the pyfuse3 `Operations`: resolves names through views and overlays to nodes.
- `session`: mounting, running, unmounting and committing (`pachctl mount`); `unmount`:
  finding our mounts and clearing them (`pachctl unmount`).
- `manager`: the mount server's state (what is mounted, datum mode); `server`: its HTTP + JSON
  API (Pachyderm's `mount-server`) over one dynamic `Session`.

Invariants (each module states its own as well):
- Nothing is read whole: listings come a page at a time, file bytes by byte range.
- Remote content is immutable per inode: a file's inode number is derived from its view, path
  and content hash, so the kernel page cache (`keep_cache`) can never serve stale bytes; a
  branch view re-resolves its head after `HEAD_TTL` seconds (a read-only one uses a head up to
  `HEAD_STALE` old while refreshing it behind the request), and its entries expire after
  `HEAD_TTL`, so opens after a new commit see it within a second.
- A writable view's changes live only in its staging directory on local disk until a commit;
  a commit is one ModifyFile stream per written repo (atomic in pachd: all or nothing), made
  while the view's writers wait; a failed commit leaves the staged changes as they were.
- Read-only views never write anything anywhere: every change is refused with EROFS.
"""
