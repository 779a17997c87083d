"""S3 operations, one module per family, and the router that picks one for a request.

  buckets.py   ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation,
               Get/PutBucketVersioning
  listing.py   ListObjects (v1), ListObjectsV2
  versions.py  ListObjectVersions
  objects.py   GetObject, HeadObject
  writes.py    PutObject, CopyObject, DeleteObject, DeleteObjects
  multipart.py Create/Complete/AbortMultipartUpload, UploadPart(Copy), ListParts,
               ListMultipartUploads

Invariants: routing depends only on the method, whether a bucket and a key are present,
sub-resource query parameters and `x-amz-copy-source`; anything not listed answers
NotImplemented (a known S3 sub-resource) or MethodNotAllowed (an unknown method). Every
operation is a function `(Ctx) -> Response` that raises S3Error or PfsError on failure.
"""
from __future__ import annotations

from typing import Callable

from pfs.s3gateway.errors import S3Error, not_implemented
from pfs.s3gateway.ops import buckets, listing, multipart, objects, versions, writes
from pfs.s3gateway.ops.common import Ctx
from pfs.s3gateway.request import Response

Op = Callable[[Ctx], Response]

# S3 sub-resources we recognise but do not serve.
UNSUPPORTED = {
    "accelerate", "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering",
    "inventory", "legal-hold", "lifecycle", "logging", "metrics", "notification", "object-lock",
    "ownershipControls", "policy", "policyStatus", "publicAccessBlock", "replication",
    "requestPayment", "restore", "retention", "select", "tagging", "torrent", "website",
}


def route(method: str, bucket: str, key: str, query: dict, headers) -> tuple[str, Op]:
    """(operation name, function) for a request."""
    sub = UNSUPPORTED.intersection(query)
    if method not in ("GET", "HEAD", "PUT", "POST", "DELETE"):
        raise S3Error("MethodNotAllowed", f"method {method} is not supported")
    if not bucket:
        if method == "GET":
            return "ListBuckets", buckets.list_buckets
        raise S3Error("MethodNotAllowed", f"{method} / is not an S3 operation")
    if sub:
        raise not_implemented(f"the ?{sorted(sub)[0]} sub-resource")
    if not key:
        if method == "GET":
            if "location" in query:
                return "GetBucketLocation", buckets.get_location
            if "versioning" in query:
                return "GetBucketVersioning", buckets.get_versioning
            if "versions" in query:
                return "ListObjectVersions", versions.list_versions
            if "uploads" in query:
                return "ListMultipartUploads", multipart.list_uploads
            if query.get("list-type") == "2":
                return "ListObjectsV2", listing.list_v2
            return "ListObjects", listing.list_v1
        if method == "HEAD":
            return "HeadBucket", buckets.head_bucket
        if method == "PUT":
            if "versioning" in query:
                return "PutBucketVersioning", buckets.put_versioning
            return "CreateBucket", buckets.create_bucket
        if method == "DELETE":
            return "DeleteBucket", buckets.delete_bucket
        if "delete" in query:
            return "DeleteObjects", writes.delete_objects
        raise not_implemented("POST on a bucket without ?delete")
    if method == "GET":
        if "uploadId" in query:
            return "ListParts", multipart.list_parts
        return "GetObject", objects.get_object
    if method == "HEAD":
        return "HeadObject", objects.head_object
    if method == "PUT":
        copy = headers.get("x-amz-copy-source")
        if "uploadId" in query or "partNumber" in query:
            return ("UploadPartCopy", multipart.upload_part_copy) if copy else ("UploadPart", multipart.upload_part)
        return ("CopyObject", writes.copy_object) if copy else ("PutObject", writes.put_object)
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload", multipart.create
        if "uploadId" in query:
            return "CompleteMultipartUpload", multipart.complete
        raise not_implemented("POST on an object (browser form uploads)")
    if "uploadId" in query:
        return "AbortMultipartUpload", multipart.abort
    return "DeleteObject", writes.delete_object


__all__ = ["route", "Ctx", "UNSUPPORTED"]
