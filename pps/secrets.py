"""Secrets: Kubernetes Secret manifests that pipelines read (pps_v2 Create/Delete/Inspect/ListSecret).

Pachyderm keeps user secrets as Kubernetes Secrets labelled `secret-source=pachyderm-user`;
a pipeline's `transform.secrets` names one and either a key to put in an env var or a
directory to mount it at (one file per key). Here the store is a Protocol with two
implementations: `LocalSecrets` (a directory of pachd's, for local workers) and
`KubeSecrets` (real Secret objects, when pachd runs with the Kubernetes executor).

Invariants:
- A secret is a manifest as Kubernetes accepts it (JSON or YAML; `data` base64, `stringData`
  plain text). Its name must be a DNS-1123 subdomain; bad input is INVALID_ARGUMENT and
  stores nothing.
- Only name, type and creation time ever leave the store through the API (as in Pachyderm:
  SecretInfo has no data). Values reach only the worker processes that run user code.
  Nothing here logs a value, and errors name the secret and key, never a value.
- LocalSecrets: one file per secret, mode 0600, in a directory of mode 0700, written to a
  temporary file, fsynced and renamed (a crash leaves the old or the new secret). It lives
  under pachd's root and never in the metadata store or the object store. The values are
  encrypted at rest (AES-256-GCM, the secret's name as associated data, so a file renamed
  to another secret's name does not decrypt); name, type and creation time stay readable
  for listing. The key is 32 random bytes in its own file next to the directory (mode
  0600, created once, atomically); it is never logged or put in an error. Secrets written
  before encryption (a plain `data` map) are still read, and rewritten encrypted when the
  store opens.
- Error texts are Pachyderm's: it wraps the Kubernetes client's error
  (`failed to get secret: secrets "x" not found`).
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

import yaml

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pfs.errors import AlreadyExists, InvalidArgument, NotFound, PfsError

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
USER_LABELS = {"suite": "pachyderm", "secret-source": "pachyderm-user"}


@dataclass(frozen=True)
class SecretInfo:
    name: str
    type: str
    created: float


class SecretStore(Protocol):
    def create(self, manifest: dict) -> None: ...
    def delete(self, name: str) -> None: ...
    def inspect(self, name: str) -> SecretInfo: ...
    def list(self) -> list[SecretInfo]: ...
    def data(self, name: str) -> dict[str, bytes]: ...


class SecretError(PfsError):
    """A failure Pachyderm reports with code Unknown (its wrapped Kubernetes errors)."""
    code = "UNKNOWN"


def parse_manifest(raw: bytes) -> dict:
    """A Secret manifest from JSON or YAML bytes, checked; `data` decoded to bytes under
    `_values` (stringData merged in, as Kubernetes does)."""
    try:
        m = json.loads(raw)
    except ValueError:
        try:
            m = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise InvalidArgument(f"failed to unmarshal secret: not JSON or YAML ({e.__class__.__name__})") from None
    if not isinstance(m, dict):
        raise InvalidArgument("failed to unmarshal secret: expected a Kubernetes Secret object")
    if m.get("kind", "Secret") != "Secret":
        raise InvalidArgument(f"failed to unmarshal secret: kind is {m.get('kind')!r}, not 'Secret'")
    meta = m.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        raise InvalidArgument("failed to create secret: Secret \"\" is invalid: metadata.name: Required value: name or generateName is required")
    if len(name) > 253 or not _NAME.match(name):
        raise InvalidArgument(
            f'failed to create secret: Secret "{name}" is invalid: metadata.name: Invalid value: "{name}": '
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character")
    values: dict[str, bytes] = {}
    for k, v in (m.get("data") or {}).items():
        _check_key(name, k)
        try:
            values[k] = base64.b64decode(str(v or ""), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(f"failed to unmarshal secret: data[{k!r}] of secret {name} is not base64") from None
    for k, v in (m.get("stringData") or {}).items():
        _check_key(name, k)
        values[k] = str(v).encode()
    labels = dict(meta.get("labels") or {})
    labels.update(USER_LABELS)
    return {"name": name, "type": m.get("type") or "Opaque", "labels": labels,
            "annotations": dict(meta.get("annotations") or {}), "_values": values}


def _check_key(name: str, key: str) -> None:
    if not _KEY.match(str(key)) or len(str(key)) > 253:
        raise InvalidArgument(f'failed to create secret: Secret "{name}" is invalid: data[{key}]: Invalid value: '
                              "a valid config key must consist of alphanumeric characters, '-', '_' or '.'")


def not_found(verb: str, name: str) -> NotFound:
    e = NotFound(f'failed to {verb} secret: secrets "{name}" not found')
    e.code = "UNKNOWN"  # Pachyderm wraps the Kubernetes error without a gRPC status
    return e


def _write_new(path: Path, payload: bytes) -> None:
    """Create `path` holding `payload` (mode 0600), atomically: a temporary file, fsynced,
    then linked into place; FileExistsError if it is already there."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if it exists: no overwrite race
    finally:
        os.unlink(tmp)
    _fsync_dir(path.parent)


def _replace(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """The store's AES-256 key from `path` (created with mode 0600 when missing)."""
    try:
        _write_new(path, os.urandom(KEY_BYTES))
    except FileExistsError:
        pass
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)  # readable by others: tighten it before use
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise PfsError(f"the secrets key file {path} is damaged (it must hold {KEY_BYTES} bytes, it holds "
                       f"{len(key)}); restore it from a backup, or delete it and every secret under "
                       f"{path.parent} and create the secrets again")
    return key


class LocalSecrets:
    """Secrets as files under `root`, their values encrypted with the key at `key_path`
    (default: `<root>.key`, beside the directory). See the module invariants."""

    def __init__(self, root: Path | str, clock=time.time, key_path: Path | str | None = None):
        self.root = Path(root)
        self.clock = clock
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.key_path = Path(key_path) if key_path else self.root.with_name(self.root.name + ".key")
        self._aead = AESGCM(load_or_create_key(self.key_path))
        self._migrate_plain()

    def _seal(self, name: str, values: dict[str, bytes]) -> dict:
        plain = json.dumps({k: base64.b64encode(v).decode() for k, v in values.items()}).encode()
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plain, name.encode())
        return {"alg": "AES-256-GCM", "nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(ct).decode()}

    def _open(self, rec: dict) -> dict[str, bytes]:
        if "sealed" not in rec:  # written before encryption at rest
            return {k: base64.b64decode(v) for k, v in (rec.get("data") or {}).items()}
        sealed = rec["sealed"]
        try:
            plain = self._aead.decrypt(base64.b64decode(sealed["nonce"]),
                                       base64.b64decode(sealed["ciphertext"]), rec["name"].encode())
        except (InvalidTag, KeyError, ValueError, binascii.Error):
            raise SecretError(f"secret {rec.get('name')} cannot be decrypted with this pachd's key "
                              f"({self.key_path}): the key or the secret's file was replaced or damaged; "
                              "create the secret again") from None
        return {k: base64.b64decode(v) for k, v in json.loads(plain).items()}

    def _migrate_plain(self) -> None:
        """Rewrite secrets stored before encryption at rest with their values sealed."""
        for p in sorted(self.root.glob("*.json")):
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(rec, dict) or "sealed" in rec or "name" not in rec:
                continue
            values = self._open(rec)
            rec.pop("data", None)
            rec["sealed"] = self._seal(rec["name"], values)
            _replace(p, json.dumps(rec).encode())

    def _path(self, name: str) -> Path:
        if not _NAME.match(name or "") or len(name) > 253:
            raise not_found("get", name)
        return self.root / f"{name}.json"

    def create(self, manifest: dict) -> None:
        name = manifest["name"]
        path = self._path(name)
        rec = {k: v for k, v in manifest.items() if k != "_values"}
        rec["created"] = self.clock()
        rec["sealed"] = self._seal(name, manifest["_values"])
        try:
            _write_new(path, json.dumps(rec).encode())
        except FileExistsError:
            e = AlreadyExists(f'failed to create secret: secrets "{name}" already exists')
            e.code = "UNKNOWN"
            raise e from None

    def _read(self, name: str, verb: str) -> dict:
        try:
            return json.loads(self._path(name).read_text())
        except (FileNotFoundError, NotFound):
            raise not_found(verb, name) from None

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except (FileNotFoundError, NotFound):
            raise not_found("delete", name) from None

    def inspect(self, name: str) -> SecretInfo:
        rec = self._read(name, "get")
        return SecretInfo(rec["name"], rec.get("type") or "Opaque", rec.get("created", 0.0))

    def list(self) -> list[SecretInfo]:
        out = []
        for p in sorted(self.root.glob("*.json")):
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            out.append(SecretInfo(rec["name"], rec.get("type") or "Opaque", rec.get("created", 0.0)))
        return out

    def data(self, name: str) -> dict[str, bytes]:
        return self._open(self._read(name, "get"))


class KubeSecrets:
    """Secrets as Kubernetes Secret objects in pachd's namespace (`core`: a CoreV1Api)."""

    def __init__(self, core: Any, namespace: str):
        self.core = core
        self.namespace = namespace

    def _err(self, verb: str, name: str, e: Exception) -> PfsError:
        status = getattr(e, "status", None)
        if status == 404:
            return not_found(verb, name)
        if status == 409:
            err = AlreadyExists(f'failed to {verb} secret: secrets "{name}" already exists')
            err.code = "UNKNOWN"
            return err
        return SecretError(f"failed to {verb} secret {name}: Kubernetes answered {status or ''} {getattr(e, 'reason', e)}")

    def create(self, manifest: dict) -> None:
        body = {"apiVersion": "v1", "kind": "Secret", "type": manifest["type"],
                "metadata": {"name": manifest["name"], "labels": manifest["labels"],
                             "annotations": manifest["annotations"]},
                "data": {k: base64.b64encode(v).decode() for k, v in manifest["_values"].items()}}
        try:
            self.core.create_namespaced_secret(self.namespace, body)
        except Exception as e:  # noqa: BLE001 - the API client's errors, reported as Pachyderm does
            raise self._err("create", manifest["name"], e) from None

    def _get(self, name: str, verb: str) -> dict:
        try:
            obj = self.core.read_namespaced_secret(name, self.namespace, _preload_content=False)
        except Exception as e:  # noqa: BLE001
            raise self._err(verb, name, e) from None
        return json.loads(obj.data)

    def delete(self, name: str) -> None:
        try:
            self.core.delete_namespaced_secret(name, self.namespace)
        except Exception as e:  # noqa: BLE001
            raise self._err("delete", name, e) from None

    def inspect(self, name: str) -> SecretInfo:
        return _kube_info(self._get(name, "get"))

    def list(self) -> list[SecretInfo]:
        try:
            resp = self.core.list_namespaced_secret(self.namespace, label_selector="secret-source=pachyderm-user",
                                                    _preload_content=False)
        except Exception as e:  # noqa: BLE001
            raise SecretError(f"failed to list secrets: {getattr(e, 'reason', e)}") from None
        items = json.loads(resp.data).get("items") or []
        return [_kube_info(o) for o in items
                if ((o.get("metadata") or {}).get("labels") or {}).get("secret-source") == "pachyderm-user"]

    def data(self, name: str) -> dict[str, bytes]:
        obj = self._get(name, "get")
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def _kube_info(obj: dict) -> SecretInfo:
    meta = obj.get("metadata") or {}
    created = 0.0
    ts = meta.get("creationTimestamp")
    if ts:
        from datetime import datetime
        try:
            created = datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
        except ValueError:
            created = 0.0
    return SecretInfo(meta.get("name", ""), obj.get("type") or "Opaque", created)


def resolve(store: Optional[SecretStore], mounts) -> tuple[dict[str, str], dict[str, dict[str, bytes]]]:
    """For a transform's `secrets`: (env var -> value, mount path -> {file name: bytes}).
    A missing secret or key raises NotFound naming the secret and key (never a value)."""
    env: dict[str, str] = {}
    files: dict[str, dict[str, bytes]] = {}
    if not mounts:
        return env, files
    if store is None:
        raise NotFound("this pachd has no secret store, but the pipeline uses secrets")
    cache: dict[str, dict[str, bytes]] = {}
    for m in mounts:
        if m.name not in cache:
            cache[m.name] = store.data(m.name)
        data = cache[m.name]
        if m.env_var:
            if m.key not in data:
                raise NotFound(f'couldn\'t find key "{m.key}" in secret "{m.name}"')
            env[m.env_var] = data[m.key].decode("utf-8", errors="replace")
        if m.mount_path:
            files[m.mount_path] = dict(data)
    return env, files
