"""Formatting primitives that make pachctl output byte-identical to Pachyderm 2.x.

Invariants:
- `size` is docker/go-units BytesSize (base 1024, Go `%.4g` + unit, no space).
- `human_duration` is go-units HumanDuration on Go's int64-nanosecond Duration; `ago`
  appends " ago"; `timestamp` is RFC3339 UTC without fractional seconds.
- `TabWriter` = Go text/tabwriter (minwidth 0, padding 1, pad ' ', left aligned; ANSI colour
  codes have zero width) + Pachyderm's header reprint every 50 lines with per-chunk widths.
- Colour is off unless explicitly enabled, or auto-detected: stdout a TTY, NO_COLOR unset,
  TERM != dumb (fatih/color's rules).
- `GoTabWriter(out, minwidth=20, padding=3)` is the writer `pachctl version` uses.
- The `--raw`/`-o` encoders live in `pachctl.encode` (re-exported here).
Pure: no grpc/protobuf imports.
"""
from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

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


# ---- --raw / --output encoders live in pachctl.encode; re-exported for existing callers ----
from pachctl.encode import (  # noqa: E402,F401
    Encoder,
    encode_json,
    encode_json_list,
    encode_yaml,
    encode_yaml_list,
    json_number,
    validate_output_flags,
    yaml_less,
    yaml_number,
)
