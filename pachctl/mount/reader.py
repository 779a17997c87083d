"""One open remote file, read by byte range.

A `RangeReader` keeps one GetFile stream open at the position the reads have reached. A
thread pulls the stream's messages ahead of the reads into a small queue (read-ahead), so
receiving the next megabyte overlaps handing the last one to the kernel. Where pachd is on
this machine, the stream is a pipe pachd writes into instead (`open_local`, see
local_stream): no thread, the pipe's buffer is the read-ahead, and the file system waits for
it to be readable on its own thread (`wait_fd`); if pachd turns that down, the reader goes
on by gRPC from the same offset. A read at another
offset cancels the stream and starts a new one there; reads a little behind the position
(the kernel's concurrent read-ahead requests arriving out of order) are served from the last
few messages kept, and reads a little ahead skip forward in the current stream. A small read
after a seek (random reads) is fetched by itself, through `range_call` (one request for exactly
that range) where pachd offers it, else by a stream cancelled once the bytes are here.

Invariants:
- Bytes returned for (offset, size) are exactly the file's bytes at that range (fewer only at
  the end of the file); the file is named by commit id, so they never change.
- Memory per reader is bounded: `AHEAD` queued messages plus `BEHIND` bytes kept, each
  message at most pachd's GetFile message size (1 MiB) (a pipe: local_stream's bounds).
- `close()` cancels the stream and joins the thread; a reader is used by one thread at a
  time (the file system holds the handle's lock around each call).
- Stream errors surface as `RemoteError` from the read that needed the bytes.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Callable, Optional

import grpc

from pachctl.mount.local_stream import LocalUnavailable
from pachctl.mount.remote import RemoteError, as_remote_error

AHEAD = 6                 # messages queued ahead of the reads
BEHIND = 4 * 1024 * 1024  # bytes kept behind the position
SKIP = 8 * 1024 * 1024    # a read up to this far ahead skips forward instead of restarting
SMALL = 256 * 1024        # a read this small after a seek is fetched by itself (no read-ahead)
_END = object()


class _Stream:
    """A GetFile call and the thread that pulls it into a bounded queue."""

    def __init__(self, call, offset: int):
        self.call = call
        self.offset = offset          # file offset of the next byte taken from the queue
        self.queue: queue.Queue = queue.Queue(maxsize=AHEAD)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._pull, name="mount-readahead", daemon=True)
        self.thread.start()

    def _pull(self) -> None:
        try:
            for msg in self.call:
                data = msg.value
                while not self.stopped.is_set():
                    try:
                        self.queue.put(data, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self.stopped.is_set():
                    return
            self._put_final(_END)
        except grpc.RpcError as e:
            if not self.stopped.is_set():
                self._put_final(e)
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            self._put_final(e)

    def _put_final(self, item) -> None:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def take(self, want: int = 0):
        """The next message's bytes, or None at the end of the file. (`want`: how many
        bytes the reader is after; a message comes whole.)"""
        item = self.queue.get()
        if item is _END:
            self.queue.put(_END)  # stays at the end
            return None
        if isinstance(item, BaseException):
            self.queue.put(item)
            raise item
        return item

    def can_give(self, n: int) -> bool:
        """Can `n` more bytes (or the rest of the file) be taken without waiting?"""
        have = 0
        for item in list(self.queue.queue):  # a snapshot: only the reader's thread takes from it
            if item is _END:
                return True
            if isinstance(item, BaseException):
                return False
            have += len(item)
            if have >= n:
                return True
        return have >= n

    def close(self) -> None:
        self.stopped.set()
        self.call.cancel()
        while self.thread.is_alive():  # empty the queue so a put waiting for room returns at once
            try:
                while True:
                    self.queue.get_nowait()
            except queue.Empty:
                pass
            self.thread.join(timeout=0.01)


class RangeReader:
    def __init__(self, open_call: Callable[[int], object], size: int, what: str = "file",
                 range_call: Optional[Callable[[int, int], Optional[bytes]]] = None,
                 open_local: Optional[Callable[[int], object]] = None):
        self._open_call = open_call
        self._range_call = range_call  # (offset, length) -> bytes, or None: not offered, stream
        self._open_local = open_local  # offset -> local_stream.PipeStream, or None: use gRPC
        self.size = size
        self.what = what
        self._stream: Optional[_Stream] = None
        self._cur = memoryview(b"")   # rest of the current message; starts at the stream offset
        self._behind: deque = deque()  # (offset, bytes) already passed, newest last
        self._behind_bytes = 0
        self.restarts = 0
        self._last_end = -1            # where the last read ended (-1: no read yet)

    # ---- the position ---------------------------------------------------------------------
    @property
    def position(self) -> int:
        return self._stream.offset if self._stream else -1

    def _start(self, offset: int) -> None:
        self._stop()
        self.restarts += 1
        s = None
        if self._open_local is not None:
            s = self._open_local(offset)
            if s is None:
                self._open_local = None
        self._stream = s if s is not None else _Stream(self._open_call(offset), offset)
        self._cur = memoryview(b"")

    def wait_fd(self, off: int) -> Optional[int]:
        """The pipe to wait on (readable) before a read at `off` can go on, when the current
        stream is a pipe that read continues; None: read on a worker thread instead."""
        s = self._stream
        if s is None or not hasattr(s, "waits_on_pipe") or off < s.offset or off > s.offset + SKIP:
            return None
        return s.fd if s.waits_on_pipe() else None

    def _stop(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._cur = memoryview(b"")

    def _keep(self, offset: int, data) -> None:
        if not data:
            return
        if self._behind:  # kept bytes are one contiguous range: a jump starts a new one
            last_off, last = self._behind[-1]
            if offset != last_off + len(last):
                self._behind.clear()
                self._behind_bytes = 0
        self._behind.append((offset, data))
        self._behind_bytes += len(data)
        while self._behind_bytes - len(self._behind[0][1]) >= BEHIND:
            _, old = self._behind.popleft()
            self._behind_bytes -= len(old)

    def _from_behind(self, off: int, end: int) -> Optional[bytes]:
        if not self._behind or off < self._behind[0][0]:
            return None
        last_off, last = self._behind[-1]
        if end > last_off + len(last):
            return None
        parts = []
        for o, d in self._behind:
            if o + len(d) <= off:
                continue
            if o >= end:
                break
            parts.append(d[max(0, off - o):end - o])
        got = b"".join(parts)
        return got if len(got) == end - off else None

    # ---- reading --------------------------------------------------------------------------
    def ready(self, off: int, size: int) -> bool:
        """Can `read(off, size)` be answered now without waiting for the network? (Then the
        file system answers it on its own thread, saving a hand-off to a worker thread.)"""
        if off >= self.size or size <= 0:
            return True
        end = min(off + size, self.size)
        if self._behind and self._behind[0][0] <= off and end <= self._behind[-1][0] + len(self._behind[-1][1]):
            return True
        s = self._stream
        if s is None or off < s.offset or off > s.offset + SKIP:
            return False
        have = s.offset + len(self._cur)
        return have >= end or s.can_give(end - have)

    def read(self, off: int, size: int) -> bytes:
        if off >= self.size or size <= 0:
            return b""
        end = min(off + size, self.size)
        got = self._from_behind(off, end)
        if got is not None:
            self._last_end = end
            return got
        s = self._stream
        head = b""
        if s is not None and self._behind and self._behind[0][0] <= off < s.offset:
            head = self._from_behind(off, s.offset) or b""  # the kept bytes end at s.offset
            off = s.offset
        elif s is None or off < s.offset or off > s.offset + SKIP:
            if off != self._last_end and size <= SMALL and (off, self._last_end) != (0, -1):
                return self._fetch(off, end)  # a small read after a seek: no stream kept open
            self._start(off)
        try:
            got = self._read_forward(off, end)
            if head:
                got = head + got
            self._last_end = end
            return got
        except grpc.RpcError as e:
            self._stop()
            raise as_remote_error(e, f"reading {self.what}") from None
        except RemoteError:
            self._stop()
            raise

    def _fetch(self, off: int, end: int) -> bytes:
        """Bytes [off, end) by a call of their own, cancelled once they are here (random reads:
        no read-ahead thread for a position that is not read on from)."""
        self._stop()
        self.restarts += 1
        if self._range_call is not None:
            data = self._range_call(off, end - off)
            if data is not None:
                self._keep(off, data)
                self._last_end = end
                return data
            self._range_call = None  # pachd has no ReadRange: stream from now on
        call = self._open_call(off)
        parts, have = [], off
        try:
            for msg in call:
                data = msg.value
                self._keep(have, data)  # the rest of the message serves reads just after
                parts.append(data[:end - have])
                have += len(data)
                if have >= end:
                    break
        except grpc.RpcError as e:
            raise as_remote_error(e, f"reading {self.what}") from None
        finally:
            call.cancel()
        self._last_end = end
        return b"".join(parts)

    def _next_piece(self, want: int) -> bool:
        s = self._stream
        try:
            data = s.take(want)
        except LocalUnavailable:  # pachd will not write into our pipe: gRPC from here on
            self._open_local = None
            offset = s.offset
            s.close()
            s = self._stream = _Stream(self._open_call(offset), offset)
            data = s.take(want)
        if data is None:
            return False
        self._cur = memoryview(data)
        return True

    def _read_forward(self, off: int, end: int) -> bytes:
        s = self._stream
        out = []
        while s.offset < end:
            if not self._cur:
                if not self._next_piece(end - s.offset):
                    break
                s = self._stream  # (a new one, if the pipe gave way to gRPC)
            piece = self._cur
            p_off = s.offset
            p_end = p_off + len(piece)
            if p_end <= off:  # wholly before the wanted range: skip forward
                self._keep(p_off, piece.tobytes())
                s.offset = p_end
                self._cur = memoryview(b"")
                continue
            lo = max(off, p_off) - p_off
            hi = min(end, p_end) - p_off
            if lo > 0:
                self._keep(p_off, piece[:lo].tobytes())
            if lo == 0 and hi == len(piece) and type(piece.obj) in (bytes, bytearray) and len(piece) == len(piece.obj):
                taken = piece.obj  # the whole piece as it came: no copy
            else:
                taken = piece[lo:hi].tobytes()
            out.append(taken)
            self._keep(p_off + lo, taken)
            s.offset = p_off + hi
            self._cur = piece[hi:]
        return out[0] if len(out) == 1 else b"".join(out)  # (one piece as it came: no copy)

    def close(self) -> None:
        self._stop()
        self._behind.clear()
        self._behind_bytes = 0
