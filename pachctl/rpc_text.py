"""The text pachctl prints for a failed call, from its status code name and message.

No grpc import: the full CLI (pachctl.client.describe_rpc_error) and the lean `put file`
path (pachctl.lean_put, which gets the status from pachd as text) share this one function,
so both print the same words for the same failure.
"""
from __future__ import annotations

from typing import Optional


def describe_status(code: Optional[str], details: str, address: Optional[str] = None) -> str:
    """Pachyderm's ScrubGRPC: the status message only. `code` is the status code's name
    (`NOT_FOUND`), `address` pachd's qualified address (`grpc://localhost:30650`) if known."""
    details = details or ""
    if code == "UNAVAILABLE" and address is not None and (
            "connect" in details.lower() or "unavailable" in details.lower() or not details):
        return f"could not connect to pachd at {address}: {details or 'unavailable'}"
    if code == "DEADLINE_EXCEEDED" and not details:
        return "context deadline exceeded"
    return details.strip() or (code.lower().replace("_", " ") if code else "unknown error")
