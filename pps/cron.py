"""Cron schedules for cron inputs (robfig/cron `ParseStandard` semantics) and Go durations.

Invariants:
- `next_tick(spec, after)` is strictly after `after` and is returned as an aware UTC datetime,
  truncated to whole seconds (tick files are named with RFC3339 at second precision).
- 5-field specs: minute hour day-of-month month day-of-week. Each field is a comma list of
  `*`/`?`, `N`, `N-M`, with optional `/step`; `N/step` means `N-max/step`. Month and weekday
  names (JAN..DEC, SUN..SAT) are case-insensitive. Weekdays are 0-6 (Sunday = 0); `7` is out
  of range, as in robfig/cron v3.
- Day rule (robfig): if either day field starts with `*`/`?` (and has no step > 1), BOTH day
  fields must match; otherwise a day matches when EITHER day-of-month or day-of-week does.
- Descriptors @yearly @annually @monthly @weekly @daily @midnight @hourly, `@every <dur>`
  (next = `after` truncated to the second + the duration, at least 1s), and Pachyderm's
  `@never` (next tick = NEVER, year 9999). A spec that can never fire also yields NEVER.
- An optional `CRON_TZ=<zone>` / `TZ=<zone>` prefix evaluates the fields in that zone.
- Durations are Go `time.ParseDuration` strings ("60s", "1h30m", "1.5s", "-2m", "0");
  `parse_duration` returns float seconds and `format_duration` writes protojson's form ("60s").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pfs.errors import InvalidArgument

__all__ = [
    "NEVER",
    "Schedule",
    "parse_schedule",
    "next_tick",
    "format_tick",
    "parse_tick",
    "parse_duration",
    "format_duration",
]

NEVER = datetime(9999, 1, 1, tzinfo=timezone.utc)

# ---- Go durations -----------------------------------------------------------------------
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DUR_PART = re.compile(r"(\d*)(?:\.(\d*))?([a-zµμ]*)")


def parse_duration(text: str) -> float:
    """Go `time.ParseDuration` -> seconds. Raises InvalidArgument with Go-like messages."""
    if not isinstance(text, str):
        raise InvalidArgument(f"invalid duration {text!r}: must be a string like \"60s\" or \"1h30m\"")
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise InvalidArgument(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        mo = _DUR_PART.match(s, pos)
        if not mo or not (mo.group(1) or mo.group(2)):
            raise InvalidArgument(f'time: invalid duration "{text}"')
        unit = mo.group(3)
        if not unit:
            raise InvalidArgument(f'time: missing unit in duration "{text}"')
        if unit not in _UNITS:
            raise InvalidArgument(f'time: unknown unit "{unit}" in duration "{text}"')
        number = float((mo.group(1) or "0") + "." + (mo.group(2) or "0"))
        total += number * _UNITS[unit]
        pos = mo.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """protojson's Duration form: "60s", "1.500s" (0, 3, 6 or 9 fractional digits)."""
    nanos_total = round(seconds * 1e9)
    sign = "-" if nanos_total < 0 else ""
    whole, nanos = divmod(abs(nanos_total), 10**9)
    if nanos == 0:
        return f"{sign}{whole}s"
    frac = f"{nanos:09d}"
    for digits in (3, 6, 9):
        if frac[digits:].strip("0") == "":
            return f"{sign}{whole}.{frac[:digits]}s"
    return f"{sign}{whole}.{frac}s"  # pragma: no cover - unreachable


# ---- cron specs -------------------------------------------------------------------------
_MONTHS = {n: i + 1 for i, n in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())}
_BOUNDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 6, _DAYS)]
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _num(tok: str, names: dict, spec: str) -> int:
    if tok.lower() in names:
        return names[tok.lower()]
    if not tok.isdigit():
        raise InvalidArgument(f"failed to parse int from {tok}: invalid cron spec {spec!r}")
    return int(tok)


def _field(expr: str, lo: int, hi: int, names: dict, spec: str) -> tuple[frozenset, bool]:
    values: set[int] = set()
    star = False
    for part in expr.split(","):
        range_step = part.split("/")
        if len(range_step) > 2:
            raise InvalidArgument(f"too many slashes: {part}")
        low_high = range_step[0].split("-")
        extra = False
        if low_high[0] in ("*", "?"):
            start, end, extra = lo, hi, True
            if len(low_high) > 1:
                raise InvalidArgument(f"too many hyphens: {part}")
        else:
            if len(low_high) > 2:
                raise InvalidArgument(f"too many hyphens: {part}")
            start = _num(low_high[0], names, spec)
            end = _num(low_high[1], names, spec) if len(low_high) == 2 else start
        step = 1
        if len(range_step) == 2:
            if not range_step[1].isdigit():
                raise InvalidArgument(f"failed to parse int from {range_step[1]}: invalid cron spec {spec!r}")
            step = int(range_step[1])
            if len(low_high) == 1:
                end = hi  # "N/step" means "N-max/step"
            if step > 1:
                extra = False
        if start < lo:
            raise InvalidArgument(f"beginning of range ({start}) below minimum ({lo}): {part}")
        if end > hi:
            raise InvalidArgument(f"end of range ({end}) above maximum ({hi}): {part}")
        if start > end:
            raise InvalidArgument(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        if step == 0:
            raise InvalidArgument(f"step of range should be a positive number: {part}")
        values.update(range(start, end + 1, step))
        star = star or extra
    return frozenset(values), star


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. `every` (seconds) for @every, `never` for @never, else fields."""

    spec: str
    minute: frozenset = frozenset()
    hour: frozenset = frozenset()
    dom: frozenset = frozenset()
    month: frozenset = frozenset()
    dow: frozenset = frozenset()
    dom_star: bool = False
    dow_star: bool = False
    every: float | None = None
    never: bool = False
    tz: str = "UTC"

    def _day_ok(self, d: datetime) -> bool:
        dom_ok = d.day in self.dom
        dow_ok = (d.isoweekday() % 7) in self.dow
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def next(self, after: datetime) -> datetime:
        if after.tzinfo is None:
            after = after.replace(tzinfo=timezone.utc)
        if self.never:
            return NEVER
        if self.every is not None:
            base = after.astimezone(timezone.utc).replace(microsecond=0)
            return base + timedelta(seconds=self.every)
        zone = ZoneInfo(self.tz)
        t = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        limit = t.year + 5
        while t.year <= limit:
            if t.month not in self.month:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hour:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minute:
                t += timedelta(minutes=1)
                continue
            return t.replace(tzinfo=zone).astimezone(timezone.utc)
        return NEVER


def parse_schedule(spec: str) -> Schedule:
    """Parse a cron spec as Pachyderm does (robfig ParseStandard + @never)."""
    if not isinstance(spec, str):
        raise InvalidArgument(f"cron spec must be a string, got {spec!r}")
    text = spec.strip()
    tz = "UTC"
    if text.startswith(("CRON_TZ=", "TZ=")):
        head, _, text = text.partition(" ")
        tz = head.split("=", 1)[1]
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(f"provided bad location {tz}: unknown time zone {tz}") from None
        text = text.strip()
    if not text:
        raise InvalidArgument("empty spec string")
    if text == "@never":
        return Schedule(spec, never=True, tz=tz)
    if text.startswith("@every "):
        dur = parse_duration(text[len("@every "):].strip())
        if dur < 1:
            dur = 1.0  # robfig rounds sub-second delays up to one second
        return Schedule(spec, every=float(int(dur)), tz=tz)
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise InvalidArgument(f"unrecognized descriptor: {text}")
        text = _DESCRIPTORS[text]
    fields = text.split()
    if len(fields) != 5:
        raise InvalidArgument(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    parsed = [_field(f, lo, hi, names, spec) for f, (lo, hi, names) in zip(fields, _BOUNDS)]
    (mi, _), (ho, _), (dom, dom_star), (mo, _), (dow, dow_star) = parsed
    return Schedule(spec, mi, ho, dom, mo, dow, dom_star, dow_star, tz=tz)


def next_tick(spec: str, after: datetime) -> datetime:
    """The first tick strictly after `after` (aware UTC; NEVER if it never fires)."""
    return parse_schedule(spec).next(after)


def format_tick(t: datetime) -> str:
    """Tick file name: RFC3339 in UTC at second precision, e.g. `2024-01-01T00:00:00Z`."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_tick(name: str) -> datetime:
    """Inverse of format_tick (accepts a leading `/` and any RFC3339 offset)."""
    text = name.lstrip("/")
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid tick name {name!r}: not an RFC3339 time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)
