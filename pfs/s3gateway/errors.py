"""S3 errors: one exception type, a catalogue of codes → HTTP status, and the PfsError mapping.

Invariants:
- Every error the gateway answers is an `S3Error` rendered as S3's `<Error>` XML document
  (no body for HEAD), with the status S3 itself uses for that code.
- Core errors (`pfs.errors.PfsError`) are translated in exactly one place, `from_pfs`, so an
  operation module never chooses status codes for core failures.
"""
from __future__ import annotations

from typing import Optional

from pfs import errors as pe

# code -> (HTTP status, default message)
CODES: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, "The presigned URL's authorization parameters are malformed."),
    "BadDigest": (400, "The Content-MD5 or checksum you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty."),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the Content-Length HTTP header."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The access key ID you provided does not match the auth token of this cluster."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidPart": (400, "One or more of the specified parts could not be found, or its entity tag did not match."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order."),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "KeyTooLongError": (400, "Your key is too long."),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate against our published schema."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "NoSuchBucket": (404, "The specified bucket does not exist."),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (404, "The specified multipart upload does not exist."),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NotImplemented": (501, "A header or operation you provided implies functionality that is not implemented."),
    "OperationAborted": (409, "A conflicting operation is in progress against this resource. Please try again."),
    "PreconditionFailed": (412, "At least one of the preconditions you specified did not hold."),
    "RequestTimeTooSkewed": (403, "The difference between the request time and the server's time is too large."),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the signature you provided. "
                                   "Check your key and signing method."),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does not match what was computed."),
}


class S3Error(Exception):
    """An S3 error response. `extra` adds elements to the XML (e.g. BucketName, Key)."""

    def __init__(self, code: str, message: str = "", status: Optional[int] = None,
                 headers: Optional[dict] = None, **extra: str):
        default_status, default_msg = CODES.get(code, (400, code))
        self.code = code
        self.message = message or default_msg
        self.status = status or default_status
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(f"{code}: {self.message}")


def not_implemented(what: str) -> S3Error:
    return S3Error("NotImplemented", f"{what} is not implemented by the Pachyderm S3 gateway.")


def read_only(bucket: str, why: str) -> S3Error:
    return S3Error("MethodNotAllowed", f"bucket {bucket} is read-only: {why}")


def from_pfs(e: pe.PfsError, *, key: str = "", bucket: str = "", version: bool = False) -> S3Error:
    """Translate a core error into the S3 error a client expects."""
    msg = e.message
    if isinstance(e, (pe.RepoNotFound, pe.BranchNotFound, pe.ProjectNotFound)):
        return S3Error("NoSuchBucket", msg, BucketName=bucket)
    if isinstance(e, pe.FileNotFound):
        return S3Error("NoSuchKey", msg, Key=key)
    if isinstance(e, pe.CommitNotFound):
        return S3Error("NoSuchVersion", msg, Key=key) if version else S3Error("NoSuchBucket", msg, BucketName=bucket)
    if isinstance(e, pe.ObjectNotFound):
        return S3Error("InternalError", f"stored content is missing: {msg}")
    if isinstance(e, pe.NotFound):
        return S3Error("NoSuchKey", msg, Key=key)
    if isinstance(e, pe.AlreadyExists):
        return S3Error("BucketAlreadyExists", msg, BucketName=bucket)
    if isinstance(e, pe.InvalidName):
        return S3Error("InvalidBucketName", msg, BucketName=bucket)
    if isinstance(e, pe.InvalidArgument):
        return S3Error("InvalidArgument", msg)
    if isinstance(e, pe.Conflict):
        return S3Error("OperationAborted", msg)
    if isinstance(e, pe.FailedPrecondition):
        return S3Error("InvalidRequest", msg, status=409)
    if isinstance(e, pe.StorageError):
        return S3Error("ServiceUnavailable", msg, headers={"Retry-After": "1"})
    if isinstance(e, pe.Unimplemented):
        return S3Error("NotImplemented", msg)
    return S3Error("InternalError", msg)
