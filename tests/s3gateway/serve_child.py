"""A gateway in a child process, for measuring its memory: `python -m tests.s3gateway.serve_child DIR`.

Prints its port on the first line, then answers each stdin line: `rss` → "<peak KiB> <current KiB>",
`quit` → exits (stopping the gateway and closing the stores).
"""
from __future__ import annotations

import resource
import sys

from pfs.core import Pfs
from pfs.model import Branch, Repo
from pfs.s3gateway import S3Gateway
from pfs.storage import LocalChunkStore, MemoryMetadataStore


def current_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def main() -> None:
    chunks = LocalChunkStore(sys.argv[1])
    meta = MemoryMetadataStore()
    pfs = Pfs(meta, chunks)
    pfs.create_repo(Repo("default", "big"))
    pfs.create_branch(Branch(Repo("default", "big"), "master"))
    gw = S3Gateway(pfs, "127.0.0.1", 0).start()
    print(gw.port, flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "rss":
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, current_kib(), flush=True)
        elif cmd == "quit":
            break
    gw.stop()
    pfs.close()
    chunks.close()
    meta.close()


if __name__ == "__main__":
    main()
