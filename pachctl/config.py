"""Pachyderm's client config file (`$PACH_CONFIG`, else `~/.pachyderm/config.json`).

Shape (the same file pachctl 2.x and pachyderm-sdk's `Client.from_config()` read)::

    {"user_id": "<32 hex>",
     "v2": {"active_context": "default",
            "contexts": {"default": {"pachd_address": "grpc://localhost:30650",
                                     "project": "default"}},
            "metrics": true}}

Invariants:
- Contexts only ever hold the fields of Pachyderm's `config.Context` message
  (`CONTEXT_FIELDS`); pachyderm-sdk builds `Context(**ctx)` and rejects anything else.
  Empty/zero fields are omitted, like Go's `omitempty`, and keys are written in proto order.
- Loading a missing file yields a fresh config (new user id, active context `default`) and
  writes it; every write goes to a temp file in the target directory, then `os.replace`.
- Addresses are stored qualified (`localhost:30650` -> `grpc://localhost:30650`).
- Environment: `PACH_CONTEXT` picks the context, `PACH_ENTERPRISE_CONTEXT` the enterprise
  context, `PACHD_ADDRESS` overrides the address; the project defaults to `default`.
- Errors are `ConfigError` (a ValueError) with pachctl's texts. No grpc imports.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

CONFIG_ENV = "PACH_CONFIG"
CONTEXT_ENV = "PACH_CONTEXT"
ENTERPRISE_CONTEXT_ENV = "PACH_ENTERPRISE_CONTEXT"
ADDRESS_ENV = "PACHD_ADDRESS"
DEFAULT_PORT = 30650
DEFAULT_ADDRESS = f"grpc://localhost:{DEFAULT_PORT}"
DEFAULT_PROJECT = "default"
DEFAULT_CONTEXT = "default"

# config.Context fields in proto order (the order Go writes them in).
CONTEXT_FIELDS = ("source", "pachd_address", "server_cas", "session_token",
                  "active_transaction", "cluster_name", "auth_info", "namespace",
                  "port_forwarders", "cluster_deployment_id", "enterprise_server", "project")
_V2_FIELDS = ("active_context", "active_enterprise_context", "contexts", "metrics",
              "max_shell_completions")


class ConfigError(ValueError):
    pass


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if CONFIG_ENV in env:
        return Path(env[CONFIG_ENV])
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".pachyderm" / "config.json"


# ---- addresses ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PachdAddress:
    host: str = "localhost"
    port: int = DEFAULT_PORT
    secured: bool = False
    unix_socket: str = ""

    @property
    def qualified(self) -> str:
        """`grpc://host:port`, `grpcs://host:port` or the unix socket URL."""
        if self.unix_socket and not self.secured:
            return self.unix_socket
        return f"{'grpcs' if self.secured else 'grpc'}://{self.target}"

    @property
    def target(self) -> str:
        """What `grpc.insecure_channel` / `grpc.secure_channel` want: `host:port`."""
        if self.unix_socket:
            return self.unix_socket
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(value: str) -> PachdAddress:
    """grpcutil.ParsePachdAddress: default scheme grpc://, port 30650; http(s) allowed."""
    if value == "":
        raise ConfigError("no pachd address specified")
    if "://" not in value:
        value = "grpc://" + value
    try:
        u = urlsplit(value)
        port = u.port
    except ValueError as e:
        raise ConfigError(f"could not parse pachd address: {e}") from None
    scheme = u.scheme.lower()
    if scheme == "unix":
        return PachdAddress(unix_socket=value)
    if scheme not in ("grpc", "grpcs", "http", "https"):
        raise ConfigError(f"unrecognized scheme in pachd address: {u.scheme}")
    if u.path:
        raise ConfigError("pachd address should not include a path")
    if u.username is not None or u.password is not None:
        raise ConfigError("pachd address should not include login credentials")
    if u.query:
        raise ConfigError("pachd address should not include a query string")
    if u.fragment:
        raise ConfigError("pachd address should not include a fragment")
    return PachdAddress(host=u.hostname or "", port=DEFAULT_PORT if port is None else port,
                        secured=scheme in ("grpcs", "https"))


def normalize_address(value: str) -> str:
    """`localhost:30650` -> `grpc://localhost:30650`; `https://h` -> `grpcs://h:30650`."""
    return parse_address(value).qualified


# ---- contexts ----------------------------------------------------------------------------
def clean_context(ctx: Mapping[str, Any], strict: bool = True) -> dict:
    """Known fields in proto order, empty values dropped (Go omitempty).

    strict: unknown fields are an error (`config set context`); else they are dropped.
    """
    unknown = sorted(set(ctx) - set(CONTEXT_FIELDS))
    if unknown and strict:
        raise ConfigError(f'malformed context: unknown field "{unknown[0]}"')
    return {k: ctx[k] for k in CONTEXT_FIELDS if k in ctx and ctx[k] not in (None, "", 0, False, {})}


def new_context(pachd_address: str = DEFAULT_ADDRESS, project: str = DEFAULT_PROJECT, **fields) -> dict:
    return clean_context({"pachd_address": pachd_address, "project": project, **fields})


class Config:
    """An in-memory config; `load()`/`save()` move it to and from disk."""

    def __init__(self, data: dict | None = None, path: Path | str | None = None):
        self.data: dict = data if data is not None else {}
        self.path = Path(path) if path is not None else None
        self._create_dir = False  # only the default ~/.pachyderm may be created on save
        self._fill_defaults()

    # -- persistence --
    @classmethod
    def load(cls, path: Path | str | None = None, *, env: Mapping[str, str] | None = None,
             write: bool = True) -> "Config":
        """Read the config, creating/repairing defaults; rewrites the file if it changed."""
        p = Path(path) if path is not None else config_path(env)
        create_dir = path is None and CONFIG_ENV not in (os.environ if env is None else env)
        try:
            raw = p.read_text()
        except FileNotFoundError:
            data = None
        except OSError as e:
            raise ConfigError(f'could not read config at "{p}": {e}') from None
        else:
            try:
                data = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as e:
                raise ConfigError(f'could not parse config json at "{p}": {e}') from None
            if not isinstance(data, dict):
                raise ConfigError(f'could not parse config json at "{p}": not an object')
        cfg = cls(data, p)
        cfg._create_dir = create_dir
        if write and (data is None or cfg._updated):
            cfg.save()
        return cfg

    def _fill_defaults(self) -> None:
        d = self.data
        self._updated = False
        if not d.get("user_id"):
            import uuid  # here: most commands never create a config (pachctl.lean_put counts milliseconds)
            d["user_id"] = uuid.uuid4().hex
            self._updated = True
        if not isinstance(d.get("v2"), dict):
            d["v2"] = {"active_context": DEFAULT_CONTEXT,
                       "contexts": {DEFAULT_CONTEXT: new_context()}, "metrics": True}
            d.pop("v1", None)
            self._updated = True
        v2 = d["v2"]
        if not isinstance(v2.get("contexts"), dict):
            v2["contexts"] = {}
            self._updated = True
        v2.setdefault("active_context", "")
        for name, ctx in v2["contexts"].items():
            addr = ctx.get("pachd_address") or ""
            if addr:
                try:
                    qualified = normalize_address(addr)
                except ConfigError as e:
                    raise ConfigError(f"could not parse pachd address for context '{name}': {e}") from None
                if qualified != addr:
                    ctx["pachd_address"] = qualified
                    self._updated = True

    def to_json(self) -> str:
        """Go's encoding/json (indent 2, HTML-escaped, trailing newline) in proto field order."""
        v2 = self.data["v2"]
        out_v2 = {k: v2[k] for k in _V2_FIELDS if k in v2 and v2[k] not in (None, "", 0, False)}
        out_v2["contexts"] = {n: clean_context(c, strict=False) for n, c in sorted(v2["contexts"].items())}
        if not out_v2["contexts"]:
            del out_v2["contexts"]
        out = {"user_id": self.data["user_id"], "v2": out_v2}
        text = json.dumps(out, indent=2, ensure_ascii=False)
        for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                        ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
            text = text.replace(ch, esc)
        return text + "\n"

    def save(self, path: Path | str | None = None) -> None:
        if path is None and self.path is None:
            self.path, self._create_dir = config_path(), CONFIG_ENV not in os.environ
        p = Path(path) if path is not None else self.path
        if not p.parent.is_dir():
            if not self._create_dir:
                raise ConfigError(f"cannot use config at {p}: could not stat parent directory")
            p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        text = self.to_json()
        import tempfile  # here, like uuid above
        fd, tmp = tempfile.mkstemp(prefix="pachyderm-config-", suffix=".json", dir=p.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.path = p

    # -- accessors --
    @property
    def user_id(self) -> str:
        return self.data["user_id"]

    @property
    def contexts(self) -> dict:
        return self.data["v2"]["contexts"]

    @property
    def active_context_name(self) -> str:
        return self.data["v2"].get("active_context", "")

    @property
    def active_enterprise_context_name(self) -> str:
        return self.data["v2"].get("active_enterprise_context", "")

    @property
    def metrics(self) -> bool:
        return bool(self.data["v2"].get("metrics", False))

    @metrics.setter
    def metrics(self, value: bool) -> None:
        self.data["v2"]["metrics"] = bool(value)

    def active_context(self, env: Mapping[str, str] | None = None,
                       error_on_no_active: bool = True) -> tuple[str, dict | None]:
        """(name, context); `PACH_CONTEXT` wins over the file's active context."""
        env = os.environ if env is None else env
        if CONTEXT_ENV in env:
            name = env[CONTEXT_ENV]
            if name not in self.contexts:
                raise ConfigError(f"pachctl config error: `{CONTEXT_ENV}` refers to a context "
                                  f"({json.dumps(name)}) that does not exist")
            return name, self.contexts[name]
        name = self.active_context_name
        if name in self.contexts:
            return name, self.contexts[name]
        if name == "":
            if error_on_no_active:
                raise ConfigError(
                    "pachctl config error: no active context configured.\n\nYou can fix your "
                    "config by setting the active context like so: pachctl config set "
                    "active-context <context>")
            return "", None
        raise ConfigError(
            f"pachctl config error: pachctl's active context is {json.dumps(name)}, but no "
            f"context named {json.dumps(name)} has been configured.\n\nYou can fix your config "
            "by setting the active context like so: pachctl config set active-context <context>")

    def active_enterprise_context(self, env: Mapping[str, str] | None = None) -> tuple[str, dict | None]:
        env = os.environ if env is None else env
        if ENTERPRISE_CONTEXT_ENV in env:
            name = env[ENTERPRISE_CONTEXT_ENV]
            if name not in self.contexts:
                raise ConfigError(f"pachctl config error: `{CONTEXT_ENV}` refers to a context "
                                  f"({json.dumps(name)}) that does not exist")
            return name, self.contexts[name]
        name = self.active_enterprise_context_name
        if name == "":
            return self.active_context(env)
        if name not in self.contexts:
            raise ConfigError(f"context does not exist: {name}")
        return name, self.contexts[name]

    def pachd_address(self, env: Mapping[str, str] | None = None) -> PachdAddress:
        """Effective address: `PACHD_ADDRESS`, else the active context's, else the default."""
        env = os.environ if env is None else env
        if env.get(ADDRESS_ENV):
            try:
                return parse_address(env[ADDRESS_ENV])
            except ConfigError as e:
                raise ConfigError(f"could not parse the active context's pachd address: {e}") from None
        _, ctx = self.active_context(env, error_on_no_active=False)
        ctx = ctx or {}
        if ctx.get("pachd_address"):
            return parse_address(ctx["pachd_address"])
        port = (ctx.get("port_forwarders") or {}).get("pachd", DEFAULT_PORT)
        return PachdAddress("localhost", int(port))

    def project(self, env: Mapping[str, str] | None = None) -> str:
        """The active context's project, `default` when unset."""
        _, ctx = self.active_context(env, error_on_no_active=False)
        return (ctx or {}).get("project") or DEFAULT_PROJECT

    def session_token(self, env: Mapping[str, str] | None = None) -> str:
        _, ctx = self.active_context(env, error_on_no_active=False)
        return (ctx or {}).get("session_token", "")

    # -- mutations (pachctl config ...) --
    def get_context(self, name: str) -> dict:
        if name not in self.contexts:
            raise ConfigError(f"context does not exist: {name}")
        return self.contexts[name]

    def set_context(self, name: str, context: Mapping[str, Any], overwrite: bool = False) -> None:
        if name in self.contexts and not overwrite:
            raise ConfigError(
                f"context '{name}' already exists, use `--overwrite` if you wish to replace it")
        ctx = clean_context(context)
        if ctx.get("pachd_address"):
            ctx["pachd_address"] = normalize_address(ctx["pachd_address"])
        self.contexts[name] = ctx

    def update_context(self, name: str | None = None, **changes: Any) -> str:
        """Apply only the given fields (None removes nothing; "" clears); returns the name."""
        if name is None:
            name = self.active_context_name
        ctx = self.get_context(name)
        remove_cdi = changes.pop("remove_cluster_deployment_id", False)
        merged = {**ctx, **{k: v for k, v in changes.items() if v is not None}}
        if remove_cdi:
            merged.pop("cluster_deployment_id", None)
        if merged.get("pachd_address"):
            merged["pachd_address"] = normalize_address(merged["pachd_address"])
        self.contexts[name] = clean_context(merged)
        return name

    def delete_context(self, name: str) -> None:
        self.get_context(name)
        if name == self.active_context_name:
            raise ConfigError("cannot delete an active context")
        del self.contexts[name]
        if name == self.active_enterprise_context_name:
            self.data["v2"].pop("active_enterprise_context", None)

    def set_active_context(self, name: str) -> None:
        self.get_context(name)
        self.data["v2"]["active_context"] = name

    def set_active_enterprise_context(self, name: str) -> None:
        self.get_context(name)
        self.data["v2"]["active_enterprise_context"] = name

    def list_contexts(self) -> list[tuple[str, bool, bool]]:
        """Sorted (name, is_active, is_active_enterprise) triples."""
        return [(n, n == self.active_context_name, n == self.active_enterprise_context_name)
                for n in sorted(self.contexts)]

    def list_context_lines(self) -> list[str]:
        """`config list context` body: `ACTIVE\\tNAME`, `*\\tname`, `E*\\tname`, `\\tname`."""
        lines = ["ACTIVE\tNAME"]
        for n, active, ent in self.list_contexts():
            lines.append(f"{('E' if ent else '') + ('*' if active else '')}\t{n}")
        return lines
