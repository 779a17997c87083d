"""Cron schedules (robfig ParseStandard semantics), tick names and Go durations."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfs.errors import InvalidArgument
from pps.cron import (
    NEVER,
    format_duration,
    format_tick,
    next_tick,
    parse_duration,
    parse_schedule,
    parse_tick,
)

UTC = timezone.utc


def t(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "spec,after,expected",
    [
        ("* * * * *", t(2024, 1, 1, 0, 0, 0), t(2024, 1, 1, 0, 1)),  # strictly after
        ("* * * * *", t(2024, 1, 1, 0, 0, 30), t(2024, 1, 1, 0, 1)),
        ("*/15 * * * *", t(2024, 1, 1, 0, 7), t(2024, 1, 1, 0, 15)),
        ("5/20 * * * *", t(2024, 1, 1, 0, 6), t(2024, 1, 1, 0, 25)),  # N/step = N-max/step
        ("0 9-17/4 * * *", t(2024, 1, 1, 10), t(2024, 1, 1, 13)),
        ("0 0 1,15 * *", t(2024, 1, 2), t(2024, 1, 15)),
        ("0 0 * JAN,jul *", t(2024, 2, 1), t(2024, 7, 1)),
        ("30 6 * * MON-FRI", t(2024, 1, 6, 12), t(2024, 1, 8, 6, 30)),  # Sat -> Mon
        ("0 0 * * 0", t(2024, 1, 1), t(2024, 1, 7)),  # Sunday = 0
        ("0 0 * * sun", t(2024, 1, 1), t(2024, 1, 7)),
        ("0 0 29 2 *", t(2024, 3, 1), t(2028, 2, 29)),
        ("@hourly", t(2024, 1, 1, 0, 59, 59), t(2024, 1, 1, 1)),
        ("@daily", t(2024, 1, 1, 12), t(2024, 1, 2)),
        ("@midnight", t(2024, 1, 1, 12), t(2024, 1, 2)),
        ("@weekly", t(2024, 1, 1), t(2024, 1, 7)),
        ("@monthly", t(2024, 1, 31), t(2024, 2, 1)),
        ("@yearly", t(2024, 6, 1), t(2025, 1, 1)),
        ("@annually", t(2024, 6, 1), t(2025, 1, 1)),
        ("@every 60s", t(2024, 1, 1, 0, 0, 0), t(2024, 1, 1, 0, 1)),
        ("@every 1h30m", t(2024, 1, 1), t(2024, 1, 1, 1, 30)),
        ("@every 10s", datetime(2024, 1, 1, 0, 0, 5, 700000, tzinfo=UTC), t(2024, 1, 1, 0, 0, 15)),
        ("@every 100ms", t(2024, 1, 1), t(2024, 1, 1, 0, 0, 1)),  # at least a second
        ("@never", t(2024, 1, 1), NEVER),
        ("0 0 30 2 *", t(2024, 1, 1), NEVER),  # can never fire
        ("CRON_TZ=America/New_York 0 9 * * *", t(2024, 1, 1, 15), t(2024, 1, 2, 14)),
    ],
)
def test_next_tick(spec, after, expected):
    assert next_tick(spec, after) == expected


def test_day_of_month_or_day_of_week():
    # both restricted: EITHER matches (the 13th, or any Friday)
    ticks, cur = [], t(2024, 9, 1)
    for _ in range(5):
        cur = next_tick("0 0 13 * 5", cur)
        ticks.append(cur.date().isoformat())
    assert ticks == ["2024-09-06", "2024-09-13", "2024-09-20", "2024-09-27", "2024-10-04"]
    # one is a star: BOTH must match (star matches everything) -> only Fridays
    assert next_tick("0 0 * * 5", t(2024, 9, 1)) == t(2024, 9, 6)
    # a `*/2` day-of-month is not a star: OR rule (odd days or Mondays)
    assert next_tick("0 0 */2 * 1", t(2024, 9, 1)) == t(2024, 9, 2)  # Monday the 2nd


def test_naive_after_is_utc():
    assert next_tick("@hourly", datetime(2024, 1, 1, 0, 30)) == t(2024, 1, 1, 1)


@pytest.mark.parametrize(
    "spec",
    ["", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
     "* * * * 7", "* * * * FOO", "5-1 * * * *", "*/0 * * * *", "1-2-3 * * * *",
     "*/2/3 * * * *", "@fortnightly", "@every", "@every 5x", "CRON_TZ=Nowhere/Land * * * * *"],
)
def test_invalid_specs(spec):
    with pytest.raises(InvalidArgument):
        parse_schedule(spec)


def test_tick_names():
    assert format_tick(t(2024, 1, 1)) == "2024-01-01T00:00:00Z"
    assert format_tick(datetime(2024, 1, 1, 1, 2, 3, 999999, tzinfo=UTC)) == "2024-01-01T01:02:03Z"
    assert parse_tick("/2024-01-01T00:00:00Z") == t(2024, 1, 1)
    assert parse_tick("2024-01-01T02:00:00+02:00") == t(2024, 1, 1)
    with pytest.raises(InvalidArgument):
        parse_tick("/not-a-time")


@pytest.mark.parametrize(
    "text,seconds",
    [("60s", 60), ("1h30m", 5400), ("1.5s", 1.5), ("0", 0), ("-2m", -120), ("+3s", 3),
     ("100ms", 0.1), ("1us", 1e-6), ("1µs", 1e-6), ("10ns", 1e-8), (".5s", 0.5), ("5.s", 5),
     ("2h45m30.5s", 9930.5)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "60", "1x", "1.2.3s", "--1s", ".s", "1h 2m", 60])
def test_parse_duration_errors(text):
    with pytest.raises(InvalidArgument):
        parse_duration(text)


@pytest.mark.parametrize(
    "seconds,text", [(60, "60s"), (5400, "5400s"), (1.5, "1.500s"), (0, "0s"), (-0.25, "-0.250s"),
                     (1e-6, "0.000001s"), (1e-9, "0.000000001s")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# ---- property: agrees with a brute-force minute scan -------------------------------------
def _field(lo: int, hi: int):
    single = st.integers(lo, hi).map(str)
    rng = st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(
        lambda ab: f"{min(ab)}-{max(ab)}")
    step = st.tuples(st.sampled_from(["*", str(lo)]), st.integers(1, 5)).map(lambda p: f"{p[0]}/{p[1]}")
    item = st.one_of(st.just("*"), single, rng, step)
    return st.lists(item, min_size=1, max_size=3).map(",".join)


def _matches(values: str, lo: int, hi: int, x: int) -> tuple[bool, bool]:
    """(x matches, field counts as a star) — an independent reading of robfig's rules."""
    ok, star = False, False
    for part in values.split(","):
        base, _, step = part.partition("/")
        step_n = int(step) if step else 1
        if base == "*":
            a, b = lo, hi
            star = star or step_n == 1
        elif "-" in base:
            a, b = map(int, base.split("-"))
        else:
            a = int(base)
            b = hi if step else a
        ok = ok or (a <= x <= b and (x - a) % step_n == 0)
    return ok, star


@given(_field(0, 59), _field(0, 23), _field(1, 31), _field(0, 6),
       st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
@settings(max_examples=60, deadline=None)
def test_matches_brute_force(minute, hour, dom, dow, after):
    spec = f"{minute} {hour} {dom} * {dow}"
    got = next_tick(spec, after)
    start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    # scan day by day, then minute by minute inside the first matching day
    day = start.replace(hour=0, minute=0)
    for _ in range(400):
        dom_ok, dom_star = _matches(dom, 1, 31, day.day)
        dow_ok, dow_star = _matches(dow, 0, 6, day.isoweekday() % 7)
        day_ok = (dom_ok and dow_ok) if (dom_star or dow_star) else (dom_ok or dow_ok)
        if day_ok:
            for m in range(24 * 60):
                cand = day + timedelta(minutes=m)
                if cand < start:
                    continue
                if _matches(hour, 0, 23, cand.hour)[0] and _matches(minute, 0, 59, cand.minute)[0]:
                    assert got == cand.replace(tzinfo=UTC)
                    return
        day += timedelta(days=1)
    raise AssertionError("no tick found by brute force")
