"""The floor under the mount's write figure (M6): a trivial pyfuse3 file system whose one
directory takes new files and writes every WRITE request straight into a local file with
one pwrite, mounted with pyfuse3's default options as `pachctl mount` mounts. What copying a
file into it costs is what pyfuse3 and the kernel cost before the mount does any work of its
own (no overlay, no gate, no journal, no commit).

    python -m bench.fuse_write_floor MOUNTPOINT STAGING_DIR   # serves until fusermount3 -u

Prints "mounted" once the kernel shows the mount. Files land in STAGING_DIR under their own
names; nothing else (rename, unlink, mkdir) is served.
"""
from __future__ import annotations

import errno
import os
import stat
import sys

FILE0 = 1000  # inode numbers of created files


def serve(mountpoint: str, staging: str) -> None:
    import pyfuse3
    import trio

    files: dict[int, tuple[str, int]] = {}  # inode -> (name, fd)
    names: dict[str, int] = {}

    def attr(ino: int):
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.entry_timeout = a.attr_timeout = 1.0
        if ino == pyfuse3.ROOT_INODE:
            a.st_mode, a.st_nlink, a.st_size = stat.S_IFDIR | 0o755, 2, 0
        else:
            a.st_mode, a.st_nlink = stat.S_IFREG | 0o644, 1
            a.st_size = os.fstat(files[ino][1]).st_size
        a.st_uid, a.st_gid = os.getuid(), os.getgid()
        return a

    class WriteFloor(pyfuse3.Operations):
        async def getattr(self, inode, ctx=None):
            if inode != pyfuse3.ROOT_INODE and inode not in files:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return attr(inode)

        async def lookup(self, parent, name, ctx=None):
            ino = names.get(name.decode())
            if parent != pyfuse3.ROOT_INODE or ino is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return attr(ino)

        async def create(self, parent, name, mode, flags, ctx):
            n = name.decode()
            fd = os.open(os.path.join(staging, n), os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
            ino = FILE0 + len(files)
            files[ino], names[n] = (n, fd), ino
            return pyfuse3.FileInfo(fh=ino), attr(ino)

        async def open(self, inode, flags, ctx):
            return pyfuse3.FileInfo(fh=inode)

        async def write(self, fh, off, buf):
            return os.pwrite(files[fh][1], buf, off)

        async def setattr(self, inode, a, fields, fh, ctx):
            if fields.update_size:
                os.ftruncate(files[inode][1], a.st_size)
            return attr(inode)

        async def forget(self, inode_list):
            pass

    opts = set(pyfuse3.default_options) | {"fsname=writefloor"}
    pyfuse3.init(WriteFloor(), mountpoint, opts)
    print("mounted", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)
        for _, fd in files.values():
            os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
