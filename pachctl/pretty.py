"""Formatting primitives that make pachctl output byte-identical to Pachyderm 2.x.

Invariants:
- `size` is docker/go-units BytesSize (base 1024, Go `%.4g` + unit, no space).
- `human_duration` is go-units HumanDuration on Go's int64-nanosecond Duration; `ago`
  appends " ago"; `timestamp` is RFC3339 UTC without fractional seconds.
- `TabWriter` = Go text/tabwriter (minwidth 0, padding 1, pad ' ', left aligned; ANSI colour
  codes have zero width) + Pachyderm's header reprint every 50 lines with per-chunk widths.
- Colour is off unless explicitly enabled, or auto-detected: stdout a TTY, NO_COLOR unset,
  TERM != dumb (fatih/color's rules).
- `encode_json`/`encode_yaml` take already-converted dicts (proto field names, int64 as
  strings) and reproduce protojson (2-space indent, no trailing newline, objects concatenated)
  and yaml.v3 (indent 2, sorted keys, `---` between documents) output.
Pure: no grpc/protobuf imports.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable, TextIO

import yaml

# ---- sizes -------------------------------------------------------------------------------
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def size(n: int | float) -> str:
    """go-units BytesSize: 0B, 26B, 1KiB, 57.27KiB, 1000B, 1024KiB, 10.96MiB."""
    x = float(n)
    i = 0
    while x >= 1024.0 and i < len(_BINARY_UNITS) - 1:
        x /= 1024.0
        i += 1
    return "%.4g%s" % (x, _BINARY_UNITS[i])


def size_upper_bound(n: int | float) -> str:
    """Size of a repo/commit whose details were not computed: `≤ 57.27KiB`."""
    return "\u2264 " + size(n)


# ---- durations and times -----------------------------------------------------------------
_NS_SECOND = 10**9
_NS_MINUTE = 60 * _NS_SECOND
_NS_HOUR = 60 * _NS_MINUTE


def _to_ns(d: float | int | timedelta) -> int:
    if isinstance(d, timedelta):
        return (d.days * 86400 + d.seconds) * _NS_SECOND + d.microseconds * 1000
    return int(round(d * _NS_SECOND))


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def human_duration(d: float | int | timedelta) -> str:
    """go-units HumanDuration; `d` in seconds (float) or a timedelta."""
    ns = _to_ns(d)
    seconds = _trunc_div(ns, _NS_SECOND)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = ns // _NS_MINUTE
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours_f = ns // _NS_HOUR + (ns % _NS_HOUR) / _NS_HOUR
    hours = int(hours_f + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(hours_f) // 24 // 365} years"


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def _is_zero(ts: datetime) -> bool:
    return ts.year == 1 and ts.month == 1 and ts.day == 1 and ts.hour == 0 and \
        ts.minute == 0 and ts.second == 0 and ts.microsecond == 0


def since(ts: datetime | None, now: datetime | None = None) -> str:
    """HumanDuration(now - ts); "" for Go's zero time, "-" for a missing timestamp."""
    if ts is None:
        return "-"
    if _is_zero(ts):
        return ""
    now = _utc(now) if now is not None else datetime.now(timezone.utc)
    return human_duration(now - _utc(ts))


def ago(ts: datetime | None, now: datetime | None = None) -> str:
    """`<HumanDuration> ago`; `-` when ts is None; "" for Go's zero time."""
    s = since(ts, now)
    return s if s in ("", "-") else s + " ago"


def time_difference(start: datetime, end: datetime) -> str:
    """HumanDuration(end - start), e.g. a job's DURATION column."""
    return human_duration(_utc(end) - _utc(start))


def _rfc3339(ts: datetime) -> str:
    off = ts.utcoffset() or timedelta(0)
    base = f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    if off == timedelta(0):
        return base + "Z"
    sign = "+" if off > timedelta(0) else "-"
    mins = abs(int(off.total_seconds())) // 60
    return f"{base}{sign}{mins // 60:02d}:{mins % 60:02d}"


def timestamp(ts: datetime | None) -> str:
    """RFC3339 in UTC without fractional seconds (`2024-05-01T12:34:56Z`); `-` for None."""
    if ts is None:
        return "-"
    return _rfc3339(_utc(ts).astimezone(timezone.utc))


def local_timestamp(ts: datetime | None, tz: Any = None) -> str:
    """RFC3339 in the local zone (list branch CREATED); `Z` when the offset is zero."""
    if ts is None:
        return "-"
    return _rfc3339(_utc(ts).astimezone(tz))


def when(ts: datetime | None, full_timestamps: bool, now: datetime | None = None) -> str:
    """The usual CREATED/STARTED cell: RFC3339 with --full-timestamps, else `N ago`."""
    return timestamp(ts) if full_timestamps else ago(ts, now)


# ---- colour ------------------------------------------------------------------------------
_COLOR_OVERRIDE: bool | None = None
FG = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36,
      "hired": 91, "higreen": 92, "hiyellow": 93}


def set_color(enabled: bool | None) -> None:
    """Force colour on/off (`--no-color` -> False); None restores auto-detection."""
    global _COLOR_OVERRIDE
    _COLOR_OVERRIDE = enabled


def color_enabled(stream: TextIO | None = None, env: dict | None = None) -> bool:
    if _COLOR_OVERRIDE is not None:
        return _COLOR_OVERRIDE
    env = os.environ if env is None else env
    if env.get("NO_COLOR", "") != "" or env.get("TERM") == "dumb":
        return False
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def colorize(s: str, color: str, enabled: bool | None = None) -> str:
    """fatih/color: `ESC[<n>m` + s + `ESC[0m`, or s unchanged when colour is off."""
    if not (color_enabled() if enabled is None else enabled):
        return s
    return f"\x1b[{FG[color]}m{s}\x1b[0m"


def progress_bar(done: int, failed: int, total: int, *, width: int = 8,
                 color: bool | None = None) -> str:
    """8 cells of ▇: green=done, yellow=pending, red=failed; failures force a red last cell."""
    green, red = done, failed
    yellow = total - done - failed
    tot = green + yellow + red
    cells = []
    for i in range(width):
        if i == width - 1 and red != 0:
            cells.append(colorize("\u2587", "red", color))
        elif i * tot < green * width:
            cells.append(colorize("\u2587", "green", color))
        elif i * tot < (green + yellow) * width:
            cells.append(colorize("\u2587", "yellow", color))
        elif i * tot < (green + yellow + red) * width:
            cells.append(colorize("\u2587", "red", color))
        else:
            cells.append(" ")
    return "".join(cells)


# ---- tab writer --------------------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def display_width(s: str) -> int:
    """Rune count with ANSI escape sequences ignored (juju/ansiterm's measure)."""
    return len(_ANSI.sub("", s))


class GoTabWriter:
    """Go text/tabwriter (flags=0): cells are tab-terminated; the last cell of a line is
    never padded; a column block is a run of consecutive lines having that column."""

    def __init__(self, out: TextIO, minwidth: int = 0, padding: int = 1, padchar: str = " "):
        self.out, self.minwidth, self.padding, self.padchar = out, minwidth, padding, padchar
        self._lines: list[list[str]] = []  # completed lines
        self._cells: list[str] = []        # terminated cells of the current line
        self._cell = ""                    # text of the current (unterminated) cell

    def write(self, text: str) -> int:
        for piece in re.split(r"([\t\v\n\f])", text):
            if piece in ("\t", "\v"):
                self._cells.append(self._cell)
                self._cell = ""
            elif piece in ("\n", "\f"):
                self._cells.append(self._cell)
                self._lines.append(self._cells)
                ncells = len(self._cells)
                self._cells, self._cell = [], ""
                if piece == "\f" or ncells == 1:
                    self._flush_lines(final="")
            else:
                self._cell += piece
        return len(text)

    def flush(self) -> None:
        tail = self._cells + ([self._cell] if self._cell else [])
        self._cells, self._cell = [], ""
        self._flush_lines(final=tail)

    def _flush_lines(self, final) -> None:
        lines = self._lines + [final if final else []]
        self._lines = []
        buf: list[str] = []
        self._format(lines, 0, len(lines), [], buf)
        self.out.write("".join(buf))

    def _format(self, lines, line0: int, line1: int, widths: list[int], buf: list[str]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            self._write_lines(lines, line0, this, widths, buf)
            line0 = this
            width = self.minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, display_width(lines[this][column]) + self.padding)
                this += 1
            widths.append(width)
            self._format(lines, line0, this, widths, buf)
            widths.pop()
            line0 = this
        self._write_lines(lines, line0, line1, widths, buf)

    def _write_lines(self, lines, line0: int, line1: int, widths: list[int], buf: list[str]) -> None:
        for i in range(line0, line1):
            for j, cell in enumerate(lines[i]):
                buf.append(cell)
                if j < len(widths):
                    buf.append(self.padchar * (widths[j] - display_width(cell)))
            if i + 1 < len(lines):
                buf.append("\n")


class TabWriter:
    """Pachyderm's tabwriter: prints `header` first and, whenever 50 lines (header included)
    have gone out, flushes, reprints the header and starts a new width chunk."""

    TERM_HEIGHT = 50

    def __init__(self, out: TextIO, header: str, *, term_height: int = TERM_HEIGHT):
        if not header.endswith("\n"):
            raise ValueError("header must end in a new line")
        self._w = GoTabWriter(out)
        self.header = header
        self.term_height = term_height
        self._w.write(header)
        self.lines = 1

    def write(self, text: str) -> int:
        if self.lines >= self.term_height:
            self.flush()
            self._w.write(self.header)
            self.lines += 1
        self.lines += text.count("\n")
        return self._w.write(text)

    def write_row(self, *cells: Any, trailing_tab: bool = True) -> None:
        """One line from cells; `trailing_tab` pads the last column like `\\t\\n` rows do."""
        self.write("\t".join(str(c) for c in cells) + ("\t\n" if trailing_tab else "\n"))

    def flush(self) -> None:
        self.lines = 0
        self._w.flush()


# ---- --raw / --output encoders -----------------------------------------------------------
def validate_output_flags(raw: bool, output: str | None, *, alternative: str = "") -> str | None:
    """The encoding to use ('json'/'yaml') with --raw, None for pretty output.

    `alternative` names another flag allowing -o (list pipeline: `--spec`).
    """
    output = output or ""
    if output and not raw:
        alt = f" or {alternative}" if alternative else ""
        raise ValueError(f"cannot set --output (-o) without --raw{alt}")
    if not raw:
        return None
    fmt = output.lower() or "json"
    if fmt not in ("json", "yaml"):
        raise ValueError(f'unrecognized encoding: {json.dumps(fmt)} (must be "yaml" or "json")')
    return fmt


def _shortest(x: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |x| and the decimal-point position."""
    tup = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, tup.digits))
    return digits, len(digits) + tup.exponent


def _go_float(x: float, fmt: str) -> str:
    """strconv.FormatFloat(x, fmt, -1, 64) for fmt 'e', 'f' or 'g'."""
    if x == 0:
        return "0e+00" if fmt == "e" else "0"
    sign = "-" if x < 0 else ""
    digits, dp = _shortest(x)
    exp = dp - 1
    if fmt == "g":  # shortest %g switches to %e for exp < -4 || exp >= 6
        fmt = "e" if exp < -4 or exp >= 6 else "f"
    if fmt == "e":
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def json_number(x: int | float) -> str:
    """protojson number text: ints verbatim; floats shortest ('e' outside [1e-6, 1e21)).

    float32 proto fields arrive already shortened by json_format (ToShortestFloat).
    """
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return '"NaN"'
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    a = abs(x)
    s = _go_float(x, "e" if a != 0 and (a < 1e-6 or a >= 1e21) else "f")
    return re.sub(r"e-0(\d)$", r"e-\1", s)


def yaml_number(x: int | float) -> str:
    """yaml.v3 on json.Unmarshal's float64: strconv.FormatFloat(f, 'g', -1, 64)."""
    text = json_number(x)
    if text.startswith('"'):
        return {'"NaN"': ".nan", '"Infinity"': ".inf"}.get(text, "-.inf")
    return _go_float(float(text), "g")


def _json_value(v: Any, indent: str, level: int) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    pad, inner = indent * level, indent * (level + 1)
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_json_value(val, indent, level + 1)}"
                 for k, val in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        items = [inner + _json_value(val, indent, level + 1) for val in v]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def encode_json(obj: Any, indent: int = 2) -> str:
    """One protojson-style document, no trailing newline."""
    return _json_value(obj, " " * indent, 0)


def encode_json_list(objs: Iterable[Any]) -> str:
    """pachctl list output with --raw: objects concatenated without any separator."""
    return "".join(encode_json(o) for o in objs)


# yaml.v3 scalar resolution: strings that would read back as another type get double quotes.
_V3_SPECIAL = {"", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False",
               "FALSE", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf",
               "+.INF", "-.inf", "-.Inf", "-.INF", "<<"}
_V3_OLD_BOOL = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
                "n", "N", "no", "No", "NO", "off", "Off", "OFF"}
_V3_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_V3_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_V3_TIMESTAMP = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"([Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
    r"| [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?)?$")
_GO_INT_BASE0 = re.compile(r"^[+-]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]*|0[bB][01]+|[1-9][0-9]*)$")


def _v3_resolves_to_non_string(s: str) -> bool:
    """True if yaml.v3 would resolve the plain scalar `s` to a non-string tag."""
    if s in _V3_SPECIAL or s in _V3_OLD_BOOL or _V3_BASE60.match(s):
        return True
    if s[0] == ".":
        return _V3_FLOAT.match(s) is not None
    if s[0] in "+-0123456789":
        if _V3_TIMESTAMP.match(s):
            return True
        plain = s.replace("_", "")
        return bool(_GO_INT_BASE0.match(plain) or _V3_FLOAT.match(plain))
    return False


def yaml_less(a: str, b: str) -> bool:
    """yaml.v3's map-key order (keyList.Less): letters, then digit runs numerically."""
    digits = False
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            digits = ca.isdigit()
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return al if digits else bl
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdigit():
            an = an * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdigit():
            bn = bn * 10 + int(b[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


class _YamlV3Dumper(yaml.SafeDumper):
    """PyYAML configured to emit what yaml.v3 (SetIndent(2)) emits."""

    yaml_implicit_resolvers: dict = {}  # every scalar we emit is tagged str; we pick styles

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # v3 indents sequences inside mappings


_STR_TAG = "tag:yaml.org,2002:str"


def _rep_str(dumper, s):
    if "\n" in s:
        style = "|"
    elif _v3_resolves_to_non_string(s):
        style = '"'
    else:
        style = None
    return dumper.represent_scalar(_STR_TAG, s, style=style)


def _rep_dict(dumper, d):
    from functools import cmp_to_key

    keyed = [(str(k), v) for k, v in d.items()]
    keyed.sort(key=cmp_to_key(lambda x, y: -1 if yaml_less(x[0], y[0])
                               else (1 if yaml_less(y[0], x[0]) else 0)))
    return dumper.represent_mapping("tag:yaml.org,2002:map", keyed)


_YamlV3Dumper.add_representer(str, _rep_str)
_YamlV3Dumper.add_representer(dict, _rep_dict)
_YamlV3Dumper.add_representer(type(None), lambda d, _: d.represent_scalar(_STR_TAG, "null"))
_YamlV3Dumper.add_representer(bool, lambda d, v: d.represent_scalar(_STR_TAG, "true" if v else "false"))
_YamlV3Dumper.add_representer(int, lambda d, v: d.represent_scalar(_STR_TAG, yaml_number(v)))
_YamlV3Dumper.add_representer(float, lambda d, v: d.represent_scalar(_STR_TAG, yaml_number(v)))
_YamlV3Dumper.add_representer(tuple, lambda d, v: d.represent_list(list(v)))


def encode_yaml(obj: Any) -> str:
    """One yaml.v3 document (newline terminated, no `---`)."""
    return yaml.dump(obj, Dumper=_YamlV3Dumper, default_flow_style=False, allow_unicode=True,
                     width=float("inf"), indent=2, sort_keys=False)


def encode_yaml_list(objs: Iterable[Any]) -> str:
    """Several documents from one yaml.v3 Encoder: separated by `---`."""
    return "---\n".join(encode_yaml(o) for o in objs)


class Encoder:
    """Streams `--raw` output: JSON objects back to back, YAML documents split by `---`."""

    def __init__(self, out: TextIO, fmt: str = "json"):
        if fmt not in ("json", "yaml"):
            raise ValueError(f'unrecognized encoding: {json.dumps(fmt)} (must be "yaml" or "json")')
        self.out, self.fmt, self._count = out, fmt, 0

    def encode(self, obj: Any) -> None:
        if self.fmt == "json":
            self.out.write(encode_json(obj))
        else:
            self.out.write(("---\n" if self._count else "") + encode_yaml(obj))
        self._count += 1
