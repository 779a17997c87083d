"""Server-side reference rules: ancestry syntax, object names and file paths.

Ancestry grammar (Pachyderm's `ancestry.Parse`), applied to the id part of a commit
reference (`repo@<ref>` where `<ref>` arrived as a commit id)::

    ref      := base [ sep suffix ]
    base     := everything before the first of '^', '~', '.'
    sep      := '^' | '~' | '.'
    suffix   := INT                 # Go strconv.Atoi: optional sign, decimal digits
              | sep*                # the same separator repeated (zero or more)

    master        -> ("master", back=0)
    master^       -> ("master", back=1)          # '~' is a synonym of '^'
    master^^^     -> ("master", back=3)
    master~3      -> ("master", back=3)
    master.1      -> ("master", from_start=1)    # the FIRST (oldest) commit of the branch
    master.-1     -> ("master", back=1)          # negated Atoi: one back
    master^-2     -> ("master", from_start=2)    # negative counts flip direction (Go quirk)
    master^~      -> InvalidArgument 'invalid ancestry syntax "master^~", cannot mix ^ and ~ characters'

Invariants:
- `parse_ancestry` returns exactly one of `back` / `from_start` as an int (the other is None);
  a reference without ancestry returns back=0. `back == 0` means "the base itself".
- `add_ancestry(base, n)` is the inverse used to print references: `foo~3`, `foo.3`.
- Names match `^[a-zA-Z0-9_-]+$`; projects additionally obey length / first-char rules.
- `clean_path` maps every path to the canonical absolute form (`""`->`/`, `a/`->`/a`);
  `validate_path` checks the path as the client sent it (before cleaning), so relative
  elements are caught instead of silently resolved.
- Every error raised here is a `pfs.errors.InvalidArgument` subclass carrying Pachyderm's text.
  This module imports nothing from grpc/protobuf.
"""
from __future__ import annotations

import posixpath
import re

from pfs.errors import InvalidArgument, InvalidName, InvalidPath

DEFAULT_PROJECT = "default"
PROJECT_NAME_LIMIT = 63 - 8 - len("-v99")  # 51: k8s name budget minus pipeline suffixes

_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_INVALID_CHAR = re.compile(r"[^a-zA-Z0-9_-]")
_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_PRINTABLE_ASCII = re.compile(r"^[ -~]+$")
_GLOB = re.compile(r"[*?\[\]{}!()@+^]")
_INT64_MAX = 2**63 - 1


# ---- Go formatting helpers ---------------------------------------------------------------
def go_quote(s: str) -> str:
    """Approximate Go's `%q` (strconv.Quote) for error texts."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append("\\x%02x" % ord(ch))
        elif ord(ch) <= 0xFFFF:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append("\\U%08x" % ord(ch))
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_atoi(s: str) -> int | None:
    """Go strconv.Atoi on a 64-bit platform: None where Go would return an error."""
    if not _GO_INT.match(s):
        return None
    n = int(s)
    if n > _INT64_MAX or n < -_INT64_MAX - 1:
        return None
    return n


# ---- ancestry ----------------------------------------------------------------------------
def parse_ancestry_raw(ref: str) -> tuple[str, int]:
    """Go's ancestry.Parse verbatim: (base, n) with n>0 = back, n<0 = from start."""
    idx = -1
    for i, ch in enumerate(ref):
        if ch in "^~.":
            idx = i
            break
    if idx == -1:
        return ref, 0
    sep = ref[idx]
    after = ref[idx + 1:]
    n = _go_atoi(after)
    if n is not None:
        return ref[:idx], (-n if sep == "." else n)
    for b in after.encode("utf-8"):  # Go walks bytes and prints the byte with %c
        if b != ord(sep):
            raise InvalidArgument(
                f"invalid ancestry syntax {go_quote(ref)}, cannot mix {sep} and {chr(b)} characters"
            )
    if sep == ".":
        # Go computes -1*len(s) - sepIndex here (an operator-precedence slip); kept verbatim
        # so `master..` resolves exactly as in Pachyderm.
        return ref[:idx], -len(ref) - idx
    return ref[:idx], len(ref) - idx


def parse_ancestry(ref: str) -> tuple[str, int | None, int | None]:
    """Split `ref` into (base, back, from_start); exactly one of back/from_start is an int."""
    base, n = parse_ancestry_raw(ref)
    if n < 0:
        return base, None, -n
    return base, n, None


def has_ancestry(ref: str) -> bool:
    """True if `ref` carries any ancestry suffix characters (`^`, `~`, `.`)."""
    return any(ch in "^~." for ch in ref)


def add_ancestry(base: str, ancestors: int) -> str:
    """Go's ancestry.Add: n>0 -> `base~n`, n<0 -> `base.<-n>`, 0 -> base."""
    if ancestors > 0:
        return f"{base}~{ancestors}"
    if ancestors < 0:
        return f"{base}.{-ancestors}"
    return base


# ---- names -------------------------------------------------------------------------------
def is_valid_name(name: str) -> bool:
    return bool(_VALID_NAME.match(name))


def validate_name(name: str) -> None:
    """Repo, branch, pipeline and trigger-branch names (ancestry.ValidateName)."""
    if not _VALID_NAME.match(name):
        raise InvalidName(
            f"name ({name}) invalid: only alphanumeric characters, underscores, and dashes are allowed"
        )


validate_repo_name = validate_name
validate_branch_name = validate_name
validate_pipeline_name = validate_name


def sanitize_name(name: str) -> str:
    """Replace every character ValidateName rejects with `_`."""
    return _INVALID_CHAR.sub("_", name)


def validate_project_name(name: str) -> None:
    """Project.ValidateName: `default` always valid; <=51 chars; name rules; alnum first."""
    if name == DEFAULT_PROJECT:
        return
    if len(name) > PROJECT_NAME_LIMIT:
        raise InvalidName(
            f"project name {go_quote(name)} is {len(name) - PROJECT_NAME_LIMIT} characters "
            f"longer than the {PROJECT_NAME_LIMIT} max"
        )
    validate_name(name)
    if not name[0].isalnum():
        raise InvalidName("project names must start with an alphanumeric character")


# ---- paths -------------------------------------------------------------------------------
def clean_path(p: str) -> str:
    """Canonical absolute form: "" -> "/", "abc" -> "/abc", "abc/" -> "/abc", "/" -> "/"."""
    c = posixpath.normpath(p) if p else "."
    if c == ".":
        return "/"
    return "/" + c.strip("/")


def validate_path(p: str) -> None:
    """storage.ValidateFilename on the path as sent: printable ASCII, no globs, no ./.."""
    if not _PRINTABLE_ASCII.match(p):
        raise InvalidPath(f"path ({p}) invalid: only printable ASCII characters allowed")
    m = _GLOB.search(p)
    if m:
        raise InvalidPath(
            f"path ({p}) invalid: globbing character ({m.group(0)}) not allowed in path"
        )
    for elem in p.split("/"):
        if elem in (".", ".."):
            raise InvalidPath(f"path ({p}) invalid: relative file paths are not allowed")


def glob_literal_prefix(pattern: str) -> str:
    """The part of a glob pattern before its first globbing character."""
    m = _GLOB.search(pattern)
    return pattern if m is None else pattern[: m.start()]


def is_glob(pattern: str) -> bool:
    return _GLOB.search(pattern) is not None
