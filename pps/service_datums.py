"""Datums of an input spec without a pipeline: ListDatum(input) and the streamed CreateDatum.

Invariants:
- Both enumerate what a pipeline with that input would process now (each pfs input at its
  branch head, or its `commit`), with the same datum ids as a job would have; nothing is
  stored and no job is made. Datum state is UNKNOWN (nothing ran).
- CreateDatum is a conversation: the first message must be `start` (with the input); pachd
  answers with at most `number` datums (0: DEFAULT_BATCH), then waits for a `continue`
  message asking for the next `number`. The stream ends when every datum has been sent, or
  when the client stops asking. Bad input (no start, a second start, an invalid input)
  is INVALID_ARGUMENT; a missing repo/branch is NOT_FOUND with pfs's texts.
"""
from __future__ import annotations

from pfs.errors import InvalidArgument

DEFAULT_BATCH = 100


def datums_of_input(servicer, input_msg):
    if not input_msg.ListFields():
        raise InvalidArgument("the input is empty: give a pfs, cross, union, join, group or cron input")
    return servicer._input_datums(input_msg)


def create_datum(servicer, request_iterator):
    first = next(request_iterator, None)
    if first is None:
        return
    if first.WhichOneof("body") != "start":
        raise InvalidArgument("the first CreateDatum message must be 'start' (with the input)")
    if not first.start.HasField("input"):
        raise InvalidArgument("CreateDatum's start message has no input")
    batch = first.start.number if first.start.number > 0 else DEFAULT_BATCH
    it = iter(datums_of_input(servicer, first.start.input))
    while True:
        for _ in range(batch):
            info = next(it, None)
            if info is None:
                return
            yield info
        nxt = next(request_iterator, None)
        if nxt is None:
            return
        if nxt.WhichOneof("body") != "continue":
            raise InvalidArgument("after 'start', CreateDatum takes only 'continue' messages")
        asked = getattr(nxt, "continue").number  # `continue` is a Python keyword
        batch = asked if asked > 0 else DEFAULT_BATCH
