"""The chunk-store Protocol: a flat namespace of immutable-ish byte objects.

Invariants every implementation keeps (checked by tests/storage/test_chunkstore.py):
- Keys are `str`s like ``"packs/ab/abcdef..."``: non-empty '/'-separated segments, no
  leading/trailing '/', no empty segment, no segment starting with '.' (dot names are the
  store's own, e.g. temp files) and no NUL. `check_key` enforces this; a bad key is a
  programming error and raises `ValueError`.
- `put(key, data)` is atomic: a concurrent or later reader sees either the previous object or
  the whole new one, never a torn or partial object, even after a crash. It is idempotent:
  putting the same bytes twice is the same as once. Objects are small (≤ ~16 MiB).
- `get` / `get_range` of a missing key raise `pfs.errors.ObjectNotFound` naming the key and
  the store. `get_range(key, offset, length)` returns the bytes in
  ``[offset, offset + length)`` clipped at the end of the object (like `pread`): it is
  shorter than `length` only at the end, and empty when `offset >= size`.
- `delete` of a missing key is not an error.
- `iterate(prefix)` yields every key starting with `prefix`, in ascending string order
  (= UTF-8 byte order, S3's listing order), and never a store-internal name.
  `iterate_info(prefix)` yields the same keys as `ObjectInfo(key, size, mtime)`: the
  object's size in bytes and when it was last written (seconds since the epoch), which the
  garbage collector uses to tell an orphaned object from one being written right now.
- A key is never both an object and a "directory" prefix of another key (``a`` and ``a/b``):
  the content-addressed layout never needs it and a file-system store cannot hold it.
- Failures of the backing service surface as `pfs.errors.StorageError` with a message that
  says which store and what to check. All methods are safe to call from several threads.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Protocol, runtime_checkable

__all__ = ["ChunkStore", "ObjectInfo", "check_key", "check_range"]


class ObjectInfo(NamedTuple):
    key: str
    size: int
    mtime: float  # seconds since the epoch of the object's last write


@runtime_checkable
class ChunkStore(Protocol):
    """A key → bytes object store (local directory, S3, ...)."""

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, atomically replacing any previous object."""

    def get(self, key: str) -> bytes:
        """The whole object; `ObjectNotFound` if missing."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset+length)`` clipped at the object's end."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is fine."""

    def iterate(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with `prefix`, ascending."""

    def iterate_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """`iterate`, with each object's size and last-write time."""

    def close(self) -> None:
        """Release files, sockets and pools. Idempotent."""


def check_key(key: str) -> str:
    """Return `key` if it is a valid chunk-store key, else raise ValueError."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"chunk-store key must be a non-empty str, got {key!r}")
    if "\x00" in key:
        raise ValueError(f"chunk-store key {key!r} contains NUL")
    for seg in key.split("/"):
        if not seg:
            raise ValueError(f"chunk-store key {key!r} has an empty segment or a leading/trailing '/'")
        if seg.startswith("."):
            raise ValueError(f"chunk-store key {key!r} has a segment starting with '.'")
    return key


def check_range(offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise ValueError(f"get_range needs offset >= 0 and length >= 0, got {offset}, {length}")
