"""Encodings of the garbage collector's records: pack records, lease headers, framed nodes.

Invariants:
- Every write of a pack record, a lease header or an index node carries a fresh random
  nonce, so its stored value changes on EVERY write, even when the content is the same.
  The collector deletes an object only with a compare-and-swap against the value it saw
  in its snapshot: any write after the snapshot (a node re-written by an upload, a pack
  re-leased by a dedup hit) makes that delete fail, and the object stays.
- Index node values are `FRAME` + nonce + the encoded node; a value written before garbage
  collection existed (no frame) is read as it is. A node's hash is over the encoded node
  only, never the frame.
- Pack states: LIVE (written or being written), DELETING (phase 1 done: the collector owns
  it; its blob is removed next, then the record). A DELETING record is never leased again.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import msgpack

FRAME = b"\x00"  # an encoded node (a msgpack array) never starts with a NUL byte
NONCE = 8
LIVE, DELETING = 0, 1


def nonce() -> bytes:
    return os.urandom(NONCE)


def frame_node(data: bytes) -> bytes:
    return FRAME + nonce() + data


def unframe_node(raw: bytes) -> bytes:
    return raw[1 + NONCE:] if raw[:1] == FRAME else raw


@dataclass(frozen=True)
class PackRecord:
    size: int  # bytes in the object; -1 if unknown (adopted from an older data directory)
    state: int
    created: float

    def encode(self) -> bytes:
        return msgpack.packb([self.size, nonce(), self.state, self.created])

    @staticmethod
    def decode(raw: bytes) -> "PackRecord":
        size, _nonce, state, created = msgpack.unpackb(raw)
        return PackRecord(size, state, created)


@dataclass(frozen=True)
class LeaseHeader:
    expires: float  # seconds since the epoch; renewed every ttl/3 while its writer lives
    released: bool  # the writer is done (published or gave up): protects nothing any more
    owner: str  # what took it, for people reading `pachctl garbage-collect` output and logs

    def encode(self) -> bytes:
        return msgpack.packb([self.expires, self.released, nonce(), self.owner])

    @staticmethod
    def decode(raw: bytes) -> "LeaseHeader":
        expires, released, _nonce, owner = msgpack.unpackb(raw)
        return LeaseHeader(expires, released, owner)

    def alive(self, now: float) -> bool:
        return not self.released and self.expires >= now
