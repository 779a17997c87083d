"""The floor under the mount's figures: a trivial pyfuse3 file system that serves, from
memory, a tree of `dirs` directories of `per` one-byte files (attributes made in advance, no
network, no node table), or one file `/f` of `size` bytes opened with `keep_cache`, mounted
the way `pachctl mount` mounts (pyfuse3's default options, read-only, readdirplus). What
`find` or a re-read costs over it is what pyfuse3 and the kernel cost before the mount does
any work of its own.

    python -m bench.fuse_floor MOUNTPOINT DIRS PER     # serves until unmounted (fusermount3 -u)
    python -m bench.fuse_floor MOUNTPOINT file SIZE

Prints "mounted" once the kernel shows the mount.
"""
from __future__ import annotations

import errno
import stat
import sys

DIR0, FILE0 = 100, 1_000_000  # inode numbers: directories from DIR0, files from FILE0


def serve(mountpoint: str, dirs: int, per: int, file_size: int = -1) -> None:
    """The tree, or (file_size >= 0, dirs == per == 0) the one file."""
    import os

    import pyfuse3
    import trio

    block = os.urandom(1 << 20)

    def attr(ino: int, is_dir: bool):
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.st_mode = (stat.S_IFDIR | 0o555) if is_dir else (stat.S_IFREG | 0o444)
        a.st_nlink = 1
        a.st_size = 0 if is_dir else 1
        a.entry_timeout = a.attr_timeout = 3600.0
        return a

    children = {pyfuse3.ROOT_INODE: [(f"d{i:04d}".encode(), DIR0 + i) for i in range(dirs)]}
    attrs = {pyfuse3.ROOT_INODE: attr(pyfuse3.ROOT_INODE, True)}
    if file_size >= 0:
        children[pyfuse3.ROOT_INODE] = [(b"f", FILE0)]
        attrs[FILE0] = attr(FILE0, False)
        attrs[FILE0].st_size = file_size
    for i in range(dirs):
        attrs[DIR0 + i] = attr(DIR0 + i, True)
        children[DIR0 + i] = [(f"f{j:05d}".encode(), FILE0 + i * per + j) for j in range(per)]
        for _, ino in children[DIR0 + i]:
            attrs[ino] = attr(ino, False)

    class Floor(pyfuse3.Operations):
        async def getattr(self, inode, ctx=None):
            return attrs[inode]

        async def lookup(self, parent, name, ctx=None):
            for n, ino in children.get(parent, ()):
                if n == name:
                    return attrs[ino]
            raise pyfuse3.FUSEError(errno.ENOENT)

        async def opendir(self, inode, ctx):
            return inode

        async def readdir(self, fh, start_id, token):
            entries = children[fh]
            for k in range(start_id, len(entries)):
                name, ino = entries[k]
                if not pyfuse3.readdir_reply(token, name, attrs[ino], k + 1):
                    return

        async def forget(self, inode_list):
            pass

        async def open(self, inode, flags, ctx):
            return pyfuse3.FileInfo(fh=inode, keep_cache=True)

        async def read(self, fh, off, size):
            size = max(0, min(size, file_size - off))
            out = bytearray()
            while len(out) < size:  # the 1 MiB block over and over
                o = (off + len(out)) % len(block)
                out += block[o:o + size - len(out)]
            return bytes(out)

    opts = set(pyfuse3.default_options) | {"fsname=fusefloor", "ro"}
    pyfuse3.init(Floor(), mountpoint, opts)
    print("mounted", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)


if __name__ == "__main__":
    if sys.argv[2] == "file":
        serve(sys.argv[1], 0, 0, int(sys.argv[3]))
    else:
        serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
