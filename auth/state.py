"""The persisted auth state: one JSON file under pachd's root, replaced atomically.

Invariants:
- Tokens appear only as SHA-256 hex digests (Pachyderm's HashToken), each with its subject
  and expiry (Unix seconds, or null for never).
- Every change writes a complete new file (temp file, fsync, rename, fsync of the
  directory): after a crash the file holds the old or the new state, never half.
- The file is created with mode 0600: it grants access to the cluster.
- Format version 1; `groups` (group -> its members, both canonical subject names) and `oidc`
  (Pachyderm's OIDCConfig as a JSON object, or null) were added later and read as empty / null
  from a file without them.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class TokenRecord:
    subject: str
    expires: Optional[float] = None  # Unix seconds; None: never


@dataclass
class AuthState:
    active: bool = False
    tokens: dict[str, TokenRecord] = field(default_factory=dict)      # hash -> record
    bindings: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # resource key -> subject -> roles
    groups: dict[str, list[str]] = field(default_factory=dict)  # group:NAME -> member subjects
    oidc: Optional[dict] = None  # the OIDC identity provider (auth.oidc.OIDCSettings.to_json())

    def to_json(self) -> dict:
        return {"version": 1, "active": self.active,
                "tokens": {h: {"subject": t.subject, "expires": t.expires} for h, t in self.tokens.items()},
                "bindings": self.bindings, "groups": self.groups, "oidc": self.oidc}

    @classmethod
    def from_json(cls, d: dict) -> "AuthState":
        return cls(active=bool(d.get("active")),
                   tokens={h: TokenRecord(t["subject"], t.get("expires")) for h, t in d.get("tokens", {}).items()},
                   bindings={k: {s: list(r) for s, r in v.items()} for k, v in d.get("bindings", {}).items()},
                   groups={g: list(m) for g, m in d.get("groups", {}).items()},
                   oidc=dict(d["oidc"]) if d.get("oidc") else None)


class StateFile:
    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> AuthState:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return AuthState()
        try:
            return AuthState.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as e:
            raise RuntimeError(f"the auth state file {self.path} is unreadable ({e}); restore it from a "
                               "backup or remove it to start with auth off") from None

    def save(self, state: AuthState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state.to_json(), f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
