"""Write operations of the mount (a mixin of `fs.MountFS`), and committing a view.

Invariants:
- Every change to a read-only view (or to the mount's root) fails with EROFS before touching
  anything; names pfs cannot store (non-ASCII, globbing characters, `.`/`..`) fail with
  EINVAL when created, so a commit never fails on a name.
- Changes hold the view's gate while they run; `commit_view` closes the gate, so writes that
  arrive during a commit wait for it, and the commit uploads a consistent snapshot.
- Opening a remote file for writing copies it to a staged file first (streamed to disk);
  truncating it to zero, or creating a file, needs no copy. A failed write marks its staged
  file failed (see staging); truncating to zero makes it whole again.
- Staged files nothing refers to any more (removed, replaced, committed) are unlinked on a
  worker thread after the gate is left, never on the FUSE thread.
- Renaming never moves bytes: a staged file keeps its staged copy, a file or directory of
  the head becomes a copy of it (pachd copies it at commit).
"""
from __future__ import annotations

import errno
import logging
import os
import time
from typing import Optional

import pyfuse3
import trio

from pachctl.mount.nodes import K_DIR, K_FILE, K_LINK, K_ROOT, Node
from pachctl.mount.overlay import COPY, DIR, FILE, LINK, Change
from pachctl.mount.staging import LinkResolver, commit_plan, disk_error
from pachctl.mount.views import join
from pfs.ancestry import validate_path

log = logging.getLogger("pachctl.mount")


def _err(code: int) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(code)


class WriteOps:
    # ---- checks -----------------------------------------------------------------------------
    def _writable_parent(self, parent_inode: int):
        parent = self._node(parent_inode)
        if parent.kind == K_ROOT or parent.view is None or not parent.view.writable:
            raise _err(errno.EROFS)
        if not parent.is_dir:
            raise _err(errno.ENOTDIR)
        return parent

    @staticmethod
    def _check_name(path: str) -> None:
        try:
            validate_path(path)
        except ValueError:
            raise _err(errno.EINVAL) from None

    async def _underlying_exists(self, view, path: str) -> bool:
        under = view.overlay.underlying(path)
        if under is None:
            return False
        h = await self.head(view)
        return await self.stat_remote(view, under.commit or h.commit, under.src) is not None

    @staticmethod
    def _mark_failed(view, sf, err: int) -> None:
        """A write to `sf` failed (err) or, with 0, it was truncated to zero: whole again."""
        sf.failed = err
        j = getattr(view.overlay, "journal", None) if view is not None else None
        if j is not None:
            j.failed(sf, err) if err else j.whole(sf)

    def _drop_staged(self, staged_files) -> None:
        for sf in staged_files:
            self.staging.drop(sf)

    async def _drop_staged_off_loop(self, staged_files) -> None:
        """Unlink staged files nothing refers to any more, on a worker thread: freeing a big
        file's blocks takes about a second per GiB, and other requests must not wait for it."""
        if staged_files:
            await trio.to_thread.run_sync(self._drop_staged, staged_files)

    # ---- opening ------------------------------------------------------------------------------
    async def open_writable_view(self, node: Node, flags: int, wants_write: bool):
        from pachctl.mount.fs import FileHandle
        view = node.view
        ov = view.overlay
        r = ov.resolve(node.path)
        if r is None:
            raise _err(errno.ENOENT)
        truncate = wants_write and bool(flags & os.O_TRUNC)  # libfuse3 passes O_TRUNC to open
        if r.kind == "file":
            sf = r.change.staged
            try:
                fd = os.open(sf.path, os.O_RDWR if wants_write else os.O_RDONLY)
                if truncate:
                    async with self.gate(view):
                        os.ftruncate(fd, 0)
                        sf.dirty = True
                        if sf.failed:
                            self._mark_failed(view, sf, 0)
            except OSError as e:
                raise _err(e.errno or errno.EIO) from None
            return FileHandle(node, fd=fd, staged=sf)
        if r.kind != "remote":
            raise _err(errno.EISDIR if r.kind == "dir" else errno.EINVAL)
        head = await self.head(view)
        commit = r.commit or head.commit
        e = await self.stat_remote(view, commit, r.src)
        if e is None:
            raise _err(errno.ENOENT)
        if e.is_dir:
            raise _err(errno.EISDIR)
        if not wants_write:
            from pachctl.mount.reader import RangeReader
            reader = RangeReader(self._opener(view, commit, r.src), e.size, f"{view.repo}:{node.path}",
                                 self._ranger(view, commit, r.src))
            return FileHandle(node, reader=reader)
        async with self.gate(view):
            if truncate:  # overwritten: nothing of the old content is needed
                try:
                    sf = await trio.to_thread.run_sync(self.staging.new_file, view.name)
                except OSError as e:
                    raise _err(disk_error(e)) from None
            else:
                sf = await self._copy_up(view, commit, r.src, None)
            ov.put_file(node.path, sf)
        fd = os.open(sf.path, os.O_RDWR)
        return FileHandle(node, fd=fd, staged=sf)

    async def _copy_up(self, view, commit: str, src: str, limit):
        def download(fd: int):
            return self.remote.download(view, commit, src, fd, limit)
        try:
            return await self._run(self.staging.copy_up, view.name, download)
        except OSError as e:
            raise _err(disk_error(e)) from None

    def staged_released(self, h) -> None:
        """A handle on a staged file was closed: a clean, committed file is staged no more."""
        sf = h.staged
        if sf.nopen or sf.dirty or sf.failed or h.view is None or h.view.overlay is None:
            return
        ov = h.view.overlay
        c = ov.changes.get(h.node.path)
        if c is not None and c.kind == FILE and c.staged is sf:
            ov.delete(h.node.path, False)
            self.staging.drop(sf)

    # ---- creating -----------------------------------------------------------------------------
    async def create(self, parent_inode, name, mode, flags, ctx=None):
        from pachctl.mount.fs import FileHandle
        parent = self._writable_parent(parent_inode)
        view = parent.view
        path = join(parent.path, self._name(name))
        self._check_name(path)
        existing = await self.resolve(view, path)
        if existing is not None and existing.is_dir:
            raise _err(errno.EISDIR)
        async with self.gate(view):
            try:
                sf = await trio.to_thread.run_sync(self.staging.new_file, view.name)
            except OSError as e:
                raise _err(disk_error(e)) from None
            sf.mode = mode & 0o777
            view.overlay.put_file(path, sf)
        node = self._wnode(view, path, K_FILE)
        fd = os.open(sf.path, os.O_RDWR)
        fh = self._add_handle(FileHandle(node, fd=fd, staged=sf))
        a = await self.attr(node)
        node.nlookup += 1
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), a

    async def mkdir(self, parent_inode, name, mode, ctx=None):
        parent = self._writable_parent(parent_inode)
        view = parent.view
        path = join(parent.path, self._name(name))
        self._check_name(path)
        if await self.resolve(view, path) is not None:
            raise _err(errno.EEXIST)
        async with self.gate(view):
            hides = await self._underlying_exists(view, path)
            view.overlay.mkdir(path, hides)
        node = self._wnode(view, path, K_DIR)
        a = await self.attr(node)
        node.nlookup += 1
        return a

    async def symlink(self, parent_inode, name, target, ctx=None):
        parent = self._writable_parent(parent_inode)
        view = parent.view
        path = join(parent.path, self._name(name))
        self._check_name(path)
        if await self.resolve(view, path) is not None:
            raise _err(errno.EEXIST)
        async with self.gate(view):
            view.overlay.symlink(path, self._name(target))
        node = self._wnode(view, path, K_LINK)
        a = await self.attr(node)
        node.nlookup += 1
        return a

    async def link(self, inode, new_parent_inode, new_name, ctx=None):
        self._writable_parent(new_parent_inode)
        raise _err(errno.EPERM)  # pfs has no hard links

    async def mknod(self, parent_inode, name, mode, rdev, ctx=None):
        self._writable_parent(parent_inode)
        raise _err(errno.EPERM)  # only regular files, directories and symlinks

    # ---- removing -----------------------------------------------------------------------------
    async def unlink(self, parent_inode, name, ctx=None):
        parent = self._writable_parent(parent_inode)
        view = parent.view
        path = join(parent.path, self._name(name))
        node = await self.resolve(view, path)
        if node is None:
            raise _err(errno.ENOENT)
        if node.is_dir:
            raise _err(errno.EISDIR)
        async with self.gate(view):
            exists = await self._underlying_exists(view, path)
            gone = view.overlay.delete(path, exists)
        await self._drop_staged_off_loop(gone)

    async def rmdir(self, parent_inode, name, ctx=None):
        parent = self._writable_parent(parent_inode)
        view = parent.view
        path = join(parent.path, self._name(name))
        node = await self.resolve(view, path)
        if node is None:
            raise _err(errno.ENOENT)
        if not node.is_dir:
            raise _err(errno.ENOTDIR)
        if await self._has_entries(view, path):
            raise _err(errno.ENOTEMPTY)
        async with self.gate(view):
            exists = await self._underlying_exists(view, path)
            gone = view.overlay.delete(path, exists)
        await self._drop_staged_off_loop(gone)

    async def _has_entries(self, view, path: str) -> bool:
        from pachctl.mount.fs import DirHandle
        h = DirHandle(self._wnode(view, path, K_DIR))
        await self._plan_listing(h, view, path)
        if h.extra:
            return True
        listing = h.listing
        if listing is None:
            return False
        j = 0
        while True:
            if j >= len(listing.entries):
                if listing.complete:
                    return False
                await self._run(listing.more)
                continue
            if listing.entries[j].name not in h.hidden:
                return True
            j += 1

    # ---- renaming -----------------------------------------------------------------------------
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx=None):
        p_old = self._writable_parent(parent_inode_old)
        p_new = self._writable_parent(parent_inode_new)
        view = p_old.view
        if p_new.view is not view:
            raise _err(errno.EXDEV)
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise _err(errno.EINVAL)
        src = join(p_old.path, self._name(name_old))
        dst = join(p_new.path, self._name(name_new))
        if src == dst:
            return
        if dst.startswith(src + "/"):
            raise _err(errno.EINVAL)
        self._check_name(dst)
        s = await self.resolve(view, src)
        if s is None:
            raise _err(errno.ENOENT)
        d = await self.resolve(view, dst)
        if d is not None:
            if flags & pyfuse3.RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            if s.is_dir and not d.is_dir:
                raise _err(errno.ENOTDIR)
            if not s.is_dir and d.is_dir:
                raise _err(errno.EISDIR)
            if d.is_dir and await self._has_entries(view, dst):
                raise _err(errno.ENOTEMPTY)
        ov = view.overlay
        async with self.gate(view):
            r = ov.resolve(src)
            head = await self.head(view)
            if r.kind == "file":
                moved = Change(FILE, staged=r.change.staged)
            elif r.kind == "link":
                moved = Change(LINK, target=r.change.target)
            elif r.kind == "dir":
                there = r.src is not None and await self.stat_remote(view, r.commit or head.commit, r.src) is not None
                moved = Change(COPY, commit=r.commit or head.commit, src=r.src, is_dir=True) if there \
                    else Change(DIR, opaque=True)
            else:
                commit = r.commit or head.commit
                e = await self.stat_remote(view, commit, r.src)
                if e is None:
                    if not ov.has_changes_below(src):
                        raise _err(errno.ENOENT)
                    moved = Change(DIR, opaque=True)
                else:
                    moved = Change(COPY, commit=commit, src=r.src, is_dir=e.is_dir)
            exists = await self._underlying_exists(view, src)
            replaced = ov.rename(src, dst, moved, exists)
            self._moved_nodes(view, src, dst)
        await self._drop_staged_off_loop(replaced)

    def _moved_nodes(self, view, src: str, dst: str) -> None:
        prefix = src + "/"
        for node in self.table.nodes.values():
            if node.view is view and (node.path == src or node.path.startswith(prefix)):
                node.path = dst + node.path[len(src):]

    # ---- attributes ---------------------------------------------------------------------------
    async def setattr(self, inode, attr, fields, fh, ctx=None):
        node = self._node(inode)
        view = node.view
        changing = fields.update_size or fields.update_mode or fields.update_uid or fields.update_gid \
            or fields.update_mtime or fields.update_atime
        if changing and (view is None or not view.writable):
            raise _err(errno.EROFS)
        if fields.update_size:
            if node.is_dir:
                raise _err(errno.EISDIR)
            await self._truncate(node, attr.st_size)
        if (fields.update_mtime or fields.update_atime) and node.kind == K_FILE and view.overlay is not None:
            r = view.overlay.resolve(node.path)
            if r is not None and r.kind == "file":
                try:
                    os.utime(r.change.staged.path, ns=(attr.st_atime_ns, attr.st_mtime_ns))
                except OSError:
                    pass
        return await self.attr(node)

    async def _truncate(self, node: Node, size: int) -> None:
        view = node.view
        ov = view.overlay
        async with self.gate(view):
            r = ov.resolve(node.path)
            if r is None:
                raise _err(errno.ENOENT)
            if r.kind == "file":
                sf = r.change.staged
            elif r.kind == "remote":
                head = await self.head(view)
                commit = r.commit or head.commit
                if size == 0:
                    try:
                        sf = await trio.to_thread.run_sync(self.staging.new_file, view.name)
                    except OSError as e:
                        raise _err(disk_error(e)) from None
                else:
                    sf = await self._copy_up(view, commit, r.src, size)
                ov.put_file(node.path, sf)
            else:
                raise _err(errno.EINVAL)
            try:
                os.truncate(sf.path, size)
            except OSError as e:
                self._mark_failed(view, sf, e.errno or errno.EIO)
                raise _err(disk_error(e)) from None
            sf.dirty = True
            if size == 0 and sf.failed:
                self._mark_failed(view, sf, 0)

    # ---- writing ------------------------------------------------------------------------------
    async def write(self, fh, off, buf):
        h = self.files.get(fh)
        if h is None:
            raise _err(errno.EBADF)
        if h.staged is None:
            raise _err(errno.EBADF)
        sf = h.staged
        async with self.gate(h.view):
            try:
                n = os.pwrite(h.fd, buf, off)
            except OSError as e:
                self._mark_failed(h.view, sf, e.errno or errno.EIO)
                raise _err(disk_error(e)) from None
            sf.dirty = True
        return n

    # ---- committing ---------------------------------------------------------------------------
    async def commit_view(self, view, *, retries: int = 0, say=None, defer_drops: Optional[list] = None):
        """Commit the view's changes as one commit (None if nothing changed); writes to the view
        wait meanwhile. A failure raises and leaves every change staged.

        The staged files the commit made unnecessary are removed after the gate reopens, on a
        worker thread (unlinking a big file whose pages reached the disk takes about a second
        per GiB); with `defer_drops` (the commit at unmount) they are appended to it instead,
        and go with the session's directory."""
        if view.overlay is None or view.local_only:
            return None
        gate = self.gates[view.name]
        await gate.close()
        dropped: list = []
        try:
            plan = view.overlay.plan()
            failed = view.overlay.failed_files()
            if not plan:
                return _Nothing(failed)
            head = await self._head_for_commit(view, retries, say)
            links = LinkResolver(view.overlay, head.commit, os.path.join(self.mountpoint, view.name),
                                 self._remote_kind_blocking(view))
            from pachctl.transfer import is_loopback
            local = is_loopback(self.client)
            journal = view.overlay.journal
            if journal is not None:  # a recovery after a kill here can tell whether this landed
                journal.begin(head.commit)
            result = await trio.to_thread.run_sync(
                lambda: commit_plan(self.client, view, plan, links, local_pachd=local, retries=retries, say=say))
            result.skipped = [(p, f"a write to it failed ({os.strerror(sf.failed)})") for p, sf in failed] \
                + result.skipped
            dropped = view.overlay.committed()
            if journal is not None:
                journal.done(result.commit)
            self.forget_head(view)
            return result
        finally:
            await gate.open()
            if dropped:  # no longer in the overlay: nothing can reach them any more
                if defer_drops is not None:
                    defer_drops.extend(dropped)
                else:
                    await self._drop_staged_off_loop(dropped)

    async def _head_for_commit(self, view, retries: int, say):
        """The branch head, asked again (1, 2, 4... s apart) while pachd does not answer."""
        from pachctl.mount.remote import RemoteError
        from pachctl.mount.staging import PachdUnreachable
        for attempt in range(retries + 1):
            try:
                h = await trio.to_thread.run_sync(self.remote.head, view)
                self.heads[view.name] = (h, time.monotonic())
                return h
            except RemoteError as e:
                if e.errno != errno.EIO:
                    raise
                if attempt == retries:
                    raise PachdUnreachable(str(e)) from None
                wait = 2 ** attempt
                if say:
                    say(f"pachd did not answer ({e}); trying the commit to {view.repo}@{view.branch} again "
                        f"in {wait:g}s ({attempt + 1}/{retries})")
                await trio.sleep(wait)

    def _remote_kind_blocking(self, view):
        remote = self.remote

        def kind(commit, path):
            e = remote.inspect(view, commit, path)
            return None if e is None else (not e.is_dir)
        return kind


class _Nothing:
    """No commit was needed."""
    ops = 0
    commit = ""

    def __init__(self, failed):
        self.skipped = [(p, f"a write to it failed ({os.strerror(sf.failed)})") for p, sf in failed]
