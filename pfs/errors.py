"""One error tree for everything pfs (and pps) raises.

Invariants:
- Every error a user can cause is a subclass of `PfsError` and carries a message written
  for a person who has never seen the code (Pachyderm's texts where clients match on them).
- Each class names its gRPC status code as a plain string (`code`); the mapping to real
  `grpc.StatusCode` values lives in exactly one place, the service layer. This module imports
  nothing from grpc, so the core stays transport-free.
"""
from __future__ import annotations


class PfsError(Exception):
    """Base of every user-facing error. `code` is a gRPC status code name."""

    code = "UNKNOWN"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


# ---- NOT_FOUND -------------------------------------------------------------------------
class NotFound(PfsError):
    code = "NOT_FOUND"


class ProjectNotFound(NotFound):
    pass


class RepoNotFound(NotFound):
    pass


class BranchNotFound(NotFound):
    pass


class CommitNotFound(NotFound):
    pass


class CommitSetNotFound(NotFound):
    pass


class FileNotFound(NotFound):
    pass


class ObjectNotFound(NotFound):
    """A storage object (chunk, pack) is missing: the store lost data or was pointed elsewhere."""


# ---- ALREADY_EXISTS --------------------------------------------------------------------
class AlreadyExists(PfsError):
    code = "ALREADY_EXISTS"


class ProjectExists(AlreadyExists):
    pass


class RepoExists(AlreadyExists):
    pass


class BranchExists(AlreadyExists):
    pass


# ---- INVALID_ARGUMENT ------------------------------------------------------------------
class InvalidArgument(PfsError):
    code = "INVALID_ARGUMENT"


class InvalidName(InvalidArgument):
    pass


class InvalidPath(InvalidArgument):
    pass


# ---- FAILED_PRECONDITION ---------------------------------------------------------------
class FailedPrecondition(PfsError):
    code = "FAILED_PRECONDITION"


class CommitFinished(FailedPrecondition):
    pass


class HasDependents(FailedPrecondition):
    """Deleting something that other objects still depend on (use force)."""


# ---- ABORTED / UNAVAILABLE / UNIMPLEMENTED ---------------------------------------------
class Conflict(PfsError):
    """A compare-and-swap lost a race; the caller may retry. Nothing was written."""

    code = "ABORTED"


class ReaderStalled(PfsError):
    """A local read into a client's pipe (pfs.service.local_read) ended because the reader
    took nothing for too long; the bytes before were delivered, and the client reads on from
    where it stopped with a new call."""

    code = "ABORTED"


class StorageError(PfsError):
    """The chunk store or metadata store cannot be reached or refused the request."""

    code = "UNAVAILABLE"


class DiskFull(StorageError):
    """A local disk pachd writes to (chunks, metadata) is full: nothing was written by the
    failed call, what is stored stays readable, and writes work again once space is freed."""

    code = "RESOURCE_EXHAUSTED"


class Unimplemented(PfsError):
    code = "UNIMPLEMENTED"


# ---- DATA_LOSS ---------------------------------------------------------------------------
class DataLoss(PfsError):
    """Stored bytes that something refers to are missing or do not match their hash. Never
    served silently: the read fails, naming the file where it can."""

    code = "DATA_LOSS"
