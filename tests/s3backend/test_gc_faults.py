"""Garbage collection against a bucket that refuses writes (read-only, or gone): a clear error,
and nothing deleted -- no record claimed, no object removed."""
from __future__ import annotations

import random

import pytest

from pfs.core import Pfs
from pfs.core import keys
from pfs.core.gc import GarbageCollector
from pfs.errors import StorageError
from pfs.model import Repo
from pfs.storage.metadata import MemoryMetadataStore
from pfs.storage.s3 import S3ChunkStore
from tests.core.helpers import put_files

pytestmark = pytest.mark.s3
KiB = 1 << 10


def test_gc_on_a_bucket_that_refuses_writes_deletes_nothing(seaweed_server, proxy):
    bucket = seaweed_server.new_bucket()
    chunks = S3ChunkStore(bucket, "ro", endpoint_url=proxy.url, region=seaweed_server.region,
                          access_key=seaweed_server.access_key, secret_key=seaweed_server.secret_key,
                          max_attempts=2)
    meta = MemoryMetadataStore()
    p = Pfs(meta, chunks)
    try:
        r = Repo("default", "gone", "user")
        p.create_repo(r)
        put_files(p, r, "master", {f"/f{i}": random.Random(i).randbytes(100 * KiB) for i in range(5)})
        p.delete_repo(r)
        objects = sorted(chunks.iterate("packs/"))
        records = list(meta.scan(prefix=keys.PACK_RECORD_PREFIX))
        assert objects and records
        proxy.configure(fail_puts_after=0, put_failure="503")  # every PUT fails from now on
        with pytest.raises(StorageError) as e:
            GarbageCollector(p).run(orphans=True)
        assert "garbage collection cannot run, nothing was deleted" in e.value.message
        assert sorted(chunks.iterate("packs/")) == objects
        assert list(meta.scan(prefix=keys.PACK_RECORD_PREFIX)) == records
        proxy.configure(fail_puts_after=None)  # the bucket is back: the next run collects
        rep = GarbageCollector(p).run(orphans=True)
        assert rep.packs_deleted == len(objects) and list(chunks.iterate("packs/")) == []
    finally:
        p.close()
        chunks.close()
        meta.close()
