"""Pachyderm's glob patterns (pachyderm/ohmyglob semantics), compiled to Python `re`.

Pachyderm matches PFS globs with ohmyglob: a glob is lexed, parsed into a small tree and
compiled to a regular expression that is run by a .NET-style engine (lookahead allowed).
This module re-implements that pipeline (our own code, same observable behaviour), including
the lexer quirks users can trip over.

Invariants:
- `compile_glob(p).regex` is anchored on the whole string (`\\A...\\Z`); the separator is `/`.
- Capture groups are numbered by opening parenthesis, left to right, nested allowed, and only
  extglob groups `(..)`, `@(..)`, `*(..)`, `+(..)`, `?(..)`, `!(..)`, `^(..)` capture; `{a,b}`
  alternation never does. `$0` is the whole match.
- `clean_glob` is Pachyderm's CleanPath: path.Clean, one leading `/`, no trailing `/`,
  `""` -> `/` (so `/*/` == `/*`: a trailing slash does NOT restrict a glob to directories).
- Candidate paths are files and directories; directories carry a trailing `/` that is trimmed
  before matching (`Glob.match_path`). The root `/` matches only the glob `/`.
- Every string the glob can match starts with `literal_prefix` (used to narrow index scans).
- `replace` follows ohmyglob's Replace: `$n`/`${n}` -> capture n (greedy digits), `$$` -> `$`,
  a malformed `$` stays literal, an out-of-range or unmatched group -> "", no match -> every
  group is "" (a template without `$` is returned unchanged).

Lexer facts kept on purpose (they are what Pachyderm does):
- `*(`, `+(`, `?(`, `@(`, `!(`, `^(` and a bare `(` open a capture; `**(` is `*` then `*(`.
- `!`, `^`, `@`, `+` not followed by `(` are literal text; so are `)`/`|` outside a capture and
  `,`/`}` outside braces. A text run is only broken by the characters of its innermost context
  kind (braces win over captures), exactly like ohmyglob's lexer.
- A bracket class holds ONE of: a list `[abc]`, a single range `[a-z]`, a POSIX class
  `[[:alpha:]]`; negation with `!` or `^`. `[a-z0-9]` is an error, as in ohmyglob.
- Unclosed `(` / `{` are closed implicitly at the end of the pattern.
- Negation `!(x|y)` matches a run of non-`/` characters that does not start with any
  alternative; when nothing that can consume text follows the last negation in the pattern,
  the alternatives are anchored to the end (so `!(foo)` matches `foobar` but not `foo`).

Decision: `[[:alpha:]]` gets real POSIX (ASCII) meaning. (Pachyderm hands `[[:alpha:]]` to a
.NET-style engine that does not implement POSIX classes; since PFS paths cannot contain `[`,
such a glob matches nothing there. We prefer the documented meaning.)
"""
from __future__ import annotations

import functools
import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterable, Union

from pfs.errors import InvalidArgument

__all__ = [
    "Glob",
    "clean_glob",
    "compile_glob",
    "matches_root",
    "glob_literal_prefix",
    "expand_template",
    "filter_paths",
]

# ---- lexer ------------------------------------------------------------------------------
_BASIC_BREAKERS = frozenset("?*[{(")
_EXT_BREAKERS = _BASIC_BREAKERS | frozenset("@!+^")
_CAPTURE_BREAKERS = _EXT_BREAKERS | frozenset(")|")
_TERMS_BREAKERS = _EXT_BREAKERS | frozenset("},")
_CAPTURE_STARTERS = frozenset("@!+^")
_CLOSE_BRACKET = frozenset("]")

_POSIX = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": " \\t\\n\\r\\f\\v",
    "blank": " \\t",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "xdigit": "0-9A-Fa-f",
    "word": "A-Za-z0-9_",
    "cntrl": "\\x00-\\x1f\\x7f",
    "print": "\\x20-\\x7e",
    "graph": "\\x21-\\x7e",
    "ascii": "\\x00-\\x7f",
}


class _Lexer:
    def __init__(self, src: str):
        self.s = src
        self.i = 0
        self.terms = 0
        self.capture = 0
        self.out: list[tuple[str, str]] = []

    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def tokens(self) -> list[tuple[str, str]]:
        while True:
            tok = self._item()
            if tok == "EOF":
                self.out.append(("EOF", ""))
                return self.out

    def _err(self, msg: str):
        raise InvalidArgument(f"invalid glob pattern {self.s!r}: {msg}")

    def _item(self) -> str | None:
        c = self._peek()
        if c == "":
            return "EOF"
        nxt = self._peek(1)
        push = self.out.append
        if c == "{":
            self.i += 1
            self.terms += 1
            push(("TermsOpen", c))
        elif c == "," and self.terms:
            self.i += 1
            push(("Sep", c))
        elif c == "}" and self.terms:
            self.i += 1
            self.terms -= 1
            push(("TermsClose", c))
        elif c == "|" and self.capture:
            self.i += 1
            push(("Sep", c))
        elif c == "[":
            self.i += 1
            push(("RangeOpen", c))
            self._range()
        elif c == "(":
            self.i += 1
            self.capture += 1
            push(("CaptureOpen", "@"))
        elif c in _CAPTURE_STARTERS:
            if nxt == "(":
                self.i += 2
                self.capture += 1
                push(("CaptureOpen", c))
            else:
                self._text(_BASIC_BREAKERS)
        elif c == ")" and self.capture:
            self.i += 1
            self.capture -= 1
            push(("CaptureClose", c))
        elif c == "?":
            if nxt == "(":
                self.i += 2
                self.capture += 1
                push(("CaptureOpen", "?"))
            else:
                self.i += 1
                push(("Single", c))
        elif c == "*":
            if nxt == "*" and self._peek(2) != "(":
                self.i += 2
                push(("Super", "**"))
            elif nxt == "(":
                self.i += 2
                self.capture += 1
                push(("CaptureOpen", "*"))
            else:
                self.i += 1
                push(("Any", c))
        else:
            if self.terms:
                breakers = _TERMS_BREAKERS
            elif self.capture:
                breakers = _CAPTURE_BREAKERS
            else:
                breakers = _EXT_BREAKERS
            self._text(breakers)
        return None

    def _text(self, breakers: frozenset) -> None:
        data: list[str] = []
        escaped = False
        while self.i < len(self.s):
            c = self.s[self.i]
            if not escaped:
                if c == "\\":
                    escaped = True
                    self.i += 1
                    continue
                if c in breakers:
                    break
            escaped = False
            data.append(c)
            self.i += 1
        if data:
            self.out.append(("Text", "".join(data)))

    def _range(self) -> None:
        want_hi = want_close = seen_not = False
        while True:
            c = self._peek()
            if c == "":
                self._err("unexpected end of input")
            if want_close:
                if c != "]":
                    self._err("expected close range character")
                self.i += 1
                self.out.append(("RangeClose", c))
                return
            if want_hi:
                self.i += 1
                self.out.append(("RangeHi", c))
                want_close = True
                continue
            if not seen_not and c in "!^":
                self.i += 1
                self.out.append(("Not", c))
                seen_not = True
                continue
            if c == "[" and self._peek(1) == ":":
                end = self.s.find(":]", self.i + 2)
                if end < 0:
                    self._err("unterminated POSIX class")
                self.out.append(("POSIX", self.s[self.i + 2:end]))  # may start with ^
                self.i = end + 2
                want_close = True
                continue
            if self._peek(1) == "-":
                self.i += 2
                self.out.append(("RangeLo", c))
                want_hi = True
                continue
            self._text(_CLOSE_BRACKET)
            want_close = True


# ---- parser -----------------------------------------------------------------------------
class _Node:
    __slots__ = ("kind", "value", "children", "parent")

    def __init__(self, kind: str, value=None, parent: "_Node | None" = None):
        self.kind, self.value, self.children, self.parent = kind, value, [], parent
        if parent is not None:
            parent.children.append(self)


def _parse(pattern: str) -> _Node:
    toks = _Lexer(pattern).tokens()
    root = _Node("Pattern")
    tree = root
    it = iter(toks)

    def bad(msg: str):
        raise InvalidArgument(f"invalid glob pattern {pattern!r}: {msg}")

    for kind, raw in it:
        if kind == "EOF":
            break
        if kind == "Text":
            _Node("Text", raw, tree)
        elif kind in ("Any", "Super", "Single"):
            _Node(kind, None, tree)
        elif kind in ("TermsOpen", "CaptureOpen"):
            holder = _Node("AnyOf" if kind == "TermsOpen" else "Capture", raw, tree)
            tree = _Node("Pattern", None, holder)
        elif kind == "Sep":
            if tree.parent is None:
                bad("unexpected separator")
            tree = _Node("Pattern", None, tree.parent)
        elif kind in ("TermsClose", "CaptureClose"):
            if tree.parent is None or tree.parent.parent is None:
                bad(f"unexpected {raw!r}")
            tree = tree.parent.parent
        elif kind == "RangeOpen":
            neg, lo, hi, chars, posix = False, "", "", "", None
            for kind2, raw2 in it:
                if kind2 == "Not":
                    neg = True
                elif kind2 == "RangeLo":
                    lo = raw2
                elif kind2 == "RangeHi":
                    hi = raw2
                    if hi < lo:
                        bad(f"hi character '{hi}' should be greater than lo '{lo}'")
                elif kind2 == "Text":
                    chars = raw2
                elif kind2 == "POSIX":
                    posix = raw2
                elif kind2 == "RangeClose":
                    break
                else:  # pragma: no cover - lexer never emits anything else here
                    bad("could not parse range")
            kinds = [bool(lo and hi), bool(chars), posix is not None]
            if sum(kinds) != 1:
                bad("could not parse range")
            if posix is not None:
                inner_neg = posix.startswith("^")  # [[:^alpha:]]
                name = posix[1:] if inner_neg else posix
                if name not in _POSIX:
                    bad(f"unknown POSIX class [:{posix}:]")
                _Node("Class", ("^" if neg != inner_neg else "") + _POSIX[name], tree)
            elif chars:
                _Node("Class", ("^" if neg else "") + re.escape(chars), tree)
            else:
                _Node("Class", ("^" if neg else "") + re.escape(lo) + "-" + re.escape(hi), tree)
    return root


# ---- compiler ---------------------------------------------------------------------------
# A compiled fragment is a list of str plus two markers: _NEG marks where a negation may need
# an end anchor, _BOUND follows every construct that consumes free text (text, *, **).
_NEG = object()
_BOUND = object()
_DOT = "[^/]"


def _compile(node: _Node) -> list:
    k = node.kind
    if k == "Pattern":
        out: list = []
        for ch in node.children:
            out.extend(_compile(ch))
        # only the last negation of a sub-pattern keeps its marker
        negs = [i for i, p in enumerate(out) if p is _NEG]
        for i in negs[:-1]:
            out[i] = ""
        return out
    if k in ("AnyOf", "Capture"):
        alts: list = []
        for i, ch in enumerate(node.children):
            if i:
                alts.append("|")
            alts.extend(_compile(ch))
        if k == "AnyOf":
            return ["(?:", *alts, ")"]
        q = node.value
        if q == "@":
            return ["(", *alts, ")"]
        if q in "*?+":
            return ["((?:", *alts, ")" + q + ")"]
        # negation: ! or ^
        return ["((?:(?!(?:", *alts, ")", _NEG, ")" + _DOT + "*))"]
    if k == "Any":
        return [_DOT + "*", _BOUND]
    if k == "Super":
        return [".*", _BOUND]
    if k == "Single":
        return [_DOT]
    if k == "Class":
        return ["[" + node.value + "]"]
    if k == "Text":
        return [re.escape(node.value), _BOUND]
    raise AssertionError(k)  # pragma: no cover


def _to_regex(parts: list) -> str:
    if _NEG in parts:
        first = parts.index(_NEG)
        anchor = "" if any(p is _BOUND for p in parts[first:]) else r"\Z"
        parts = [anchor if p is _NEG else p for p in parts]
    return r"\A" + "".join(p for p in parts if p is not _BOUND) + r"\Z"


# ---- public API -------------------------------------------------------------------------
def clean_glob(pattern: str) -> str:
    """Pachyderm's CleanPath for globs: `""`->`/`, `*`->`/*`, `/*/`->`/*`, `a/../b`->`/b`."""
    cleaned = posixpath.normpath("/" + pattern).strip("/")
    return "/" + cleaned


_LITERAL_STOP = frozenset("*?[]{}()!@+^\\|,")


def glob_literal_prefix(pattern: str) -> str:
    """The longest prefix of `pattern` free of glob syntax (every match starts with it)."""
    for i, c in enumerate(pattern):
        if c in _LITERAL_STOP:
            return pattern[:i]
    return pattern


@dataclass(frozen=True)
class Glob:
    """A compiled glob. `pattern` is kept exactly as given (clean it first for PFS use)."""

    pattern: str
    regex: re.Pattern = field(repr=False, compare=False)
    literal_prefix: str = field(compare=False)

    def match(self, path: str) -> re.Match | None:
        """Anchored regex match of the whole string `path` (no path semantics)."""
        return self.regex.match(path)

    def match_path(self, path: str) -> re.Match | None:
        """PFS candidate matching: `path` is a file or a directory ending in `/`; the root `/`
        matches only the glob `/`; otherwise one trailing `/` is trimmed before matching."""
        if path == "/":
            return self.regex.match("/") if self.pattern == "/" else None
        if path.endswith("/"):
            path = path[:-1]
        return self.regex.match(path)

    def captures(self, path: str) -> list[str] | None:
        """[$0, $1, ...] for a PFS path, or None if it does not match."""
        m = self.match_path(path)
        if m is None:
            return None
        return [m.group(0)] + [g or "" for g in m.groups()]

    def replace(self, match_or_path: Union[re.Match, str, None], template: str) -> str:
        """Expand `template` with the captures of a match (or of matching a PFS path)."""
        if isinstance(match_or_path, str):
            match_or_path = self.match_path(match_or_path)
        return expand_template(match_or_path, template)


def expand_template(match: re.Match | None, template: str) -> str:
    """ohmyglob's Replace: `$n`, `${n}`, `$$`; malformed `$` kept; missing groups -> ""."""
    if "$" not in template:
        return template
    groups: list[str] = []
    if match is not None:
        groups = [match.group(0)] + [g or "" for g in match.groups()]
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        if j + 1 < n and template[j + 1] == "$":
            out.append("$")
            i = j + 2
            continue
        k = j + 1
        brace = k < n and template[k] == "{"
        if brace:
            k += 1
        d = k
        while d < n and template[d].isdecimal():
            d += 1
        if d == k or (brace and (d >= n or template[d] != "}")):
            out.append("$")  # malformed: keep the dollar literally
            i = j + 1
            continue
        name = template[k:d]
        i = d + 1 if brace else d
        num = -1
        if name.isascii() and not (name[0] == "0" and len(name) > 1) and len(name) <= 9:
            num = int(name)
        if 0 <= num < len(groups):
            out.append(groups[num])
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> Glob:
    """Compile `pattern` as given (no cleaning). Raises InvalidArgument on a bad pattern."""
    regex = _to_regex(_compile(_parse(pattern)))
    try:
        compiled = re.compile(regex, re.DOTALL)
    except re.error as e:  # pragma: no cover - defensive; the compiler emits valid regexes
        raise InvalidArgument(f"invalid glob pattern {pattern!r}: {e}") from None
    return Glob(pattern, compiled, glob_literal_prefix(pattern))


def matches_root(glob: Union[str, Glob]) -> bool:
    """True iff the glob selects the repo root (only the glob `/` does)."""
    pattern = glob.pattern if isinstance(glob, Glob) else glob
    return clean_glob(pattern) == "/"


def filter_paths(pattern: str, paths: Iterable[str]) -> list[str]:
    """Convenience: the PFS paths (dirs end in `/`) the cleaned glob selects, sorted."""
    g = compile_glob(clean_glob(pattern))
    return sorted(p for p in paths if g.match_path(p) is not None)
