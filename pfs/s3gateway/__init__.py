"""The S3 gateway: Pachyderm branches and commits served as S3 buckets, over the pfs core.

    gw = S3Gateway(pfs, host="0.0.0.0", port=30600, auth_token=None).start()
    ...                      # s3://master.images (branch master of repo images)
    gw.stop()

    # a pipeline worker's gateway: only the job's buckets, inputs pinned, output writable
    S3Gateway(pfs, "127.0.0.1", 0, buckets={
        "images": fixed_bucket("images", Repo("default", "images"), input_commit_id),
        "out": fixed_bucket("out", Repo("default", "edges"), output_commit_id, writable=True)})

Buckets are `[[commitID.]branch.]repo[.project]` (see names.py); keys are file paths;
every write (PutObject, CopyObject, DeleteObject(s), CompleteMultipartUpload) is one commit
on the branch; object version ids are commit ids. Operations live one family per module in
ops/ (lakeFS `pkg/gateway/operations` style); everything else answers NotImplemented.

Why the standard library's ThreadingHTTPServer: the core's API is synchronous and
thread-safe, request bodies must stream into a write session and response bodies out of a
chunk iterator, and the gateway must run inside pachd without another event loop. A
thread-per-connection HTTP/1.1 server does exactly that with no dependency, and the costs
that matter (chunking, hashing, storage I/O) release the GIL. An ASGI stack would add a
loop, a dependency and a sync/async bridge around every core call for no streaming gain.
What http.server lacks is added here: lazy `100 Continue` (after authentication),
Transfer-Encoding: chunked and aws-chunked request bodies, connection draining, and a stop()
that closes every connection and joins every thread.

Invariants of the package:
- Front end only: it imports the core (`pfs.core`, `pfs.model`, `pfs.errors`) and botocore
  (for signature checks), never grpc; it changes nothing in the core's data model except
  multipart-upload records under their own metadata prefix (see mpstore.py).
- Bodies are streamed both ways; no operation holds a whole object in memory.
- Every failure is an S3 `<Error>` with S3's status code; core errors are mapped in one
  place (errors.from_pfs).
- Writes never go to a pinned commit: pinned buckets and `versionId`s are read-only. The
  one exception is a fixed bucket made `writable` (`names.fixed_bucket`), served by a
  gateway started with `buckets=` for a pipeline job's `s3_out`: writes then land in the
  job's open output commit.
"""
from pfs.s3gateway.names import fixed_bucket
from pfs.s3gateway.server import S3Gateway

__all__ = ["S3Gateway", "fixed_bucket"]
