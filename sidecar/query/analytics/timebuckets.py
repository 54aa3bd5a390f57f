"""Calendar buckets in a time zone: the x axis of every analytics answer.

A day, week (ISO, from Monday) or month starts at local midnight in ``timezone``, so in
Europe/Warsaw the day of a DST change is 23 or 25 hours long, as a product person reading "per day"
expects. Minutes and hours are fixed lengths of absolute time aligned to the local clock (a
+05:30 zone's hours start at :30 UTC); an hour repeated when clocks go back is two buckets.
``total`` is one bucket for the whole range. Bounds are Unix nanoseconds; labels are RFC 3339 UTC.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

import numpy as np

from sidecar.query.params import parse_rfc3339_nano

INTERVALS = ("minute", "hour", "day", "week", "month", "total")
MAX_BUCKETS = 10_000
_NS = 10**9
_STEP = {"minute": 60, "hour": 3600}


class BadBuckets(ValueError):
    """A request field (``field``) that cannot make buckets; the message says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def zone(name: str | None) -> zoneinfo.ZoneInfo:
    text = name or "UTC"
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BadBuckets("timezone", f"not an IANA time zone name: {text[:64]!r}") from None


def parse_time(field: str, value: object) -> int:
    """RFC 3339 text, or Unix seconds (a number or numeric text), as Unix nanoseconds."""
    if isinstance(value, bool) or value is None:
        raise BadBuckets(field, "required: RFC 3339 text or Unix seconds")
    if isinstance(value, int | float):
        return round(value * _NS) if isinstance(value, float) else value * _NS
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(float(text) * _NS) if "." in text else int(text) * _NS
        except ValueError:
            pass
        try:
            return parse_rfc3339_nano(text)
        except ValueError:
            raise BadBuckets(field, f"not RFC 3339 nor Unix seconds: {text[:64]!r}") from None
    raise BadBuckets(field, "must be RFC 3339 text or Unix seconds")


def rfc3339(ns: int) -> str:
    seconds, frac = divmod(ns, _NS)
    text = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


@dataclass(frozen=True, slots=True)
class Buckets:
    """``starts[i]`` is bucket i's start (ns); bucket i covers ``[max(starts[i], from), starts[i+1])``
    and the last one ends at ``to_ns``. ``day_index`` maps a day bucket to its local calendar day."""

    interval: str
    timezone: str
    from_ns: int
    to_ns: int
    starts: np.ndarray  # int64, ascending

    def __len__(self) -> int:
        return len(self.starts)

    def labels(self) -> list[str]:
        return [rfc3339(int(s)) for s in self.starts]

    def index(self, ts: np.ndarray) -> np.ndarray:
        """The bucket of each time (ts must lie in [from, to))."""
        return np.searchsorted(self.starts, ts, side="right") - 1


def _local_floor(when: dt.datetime, interval: str) -> dt.datetime:
    if interval == "day":
        return when.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "week":
        day = when.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - dt.timedelta(days=day.weekday())
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_local(start: dt.datetime, interval: str) -> dt.datetime:
    if interval == "day":
        date = start.date() + dt.timedelta(days=1)
    elif interval == "week":
        date = start.date() + dt.timedelta(days=7)
    else:
        date = (start.date().replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return dt.datetime(date.year, date.month, date.day, tzinfo=start.tzinfo)


def _to_ns(when: dt.datetime) -> int:
    delta = when.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def make_buckets(interval: str, from_ns: int, to_ns: int, timezone: str | None) -> Buckets:
    """The buckets covering ``[from_ns, to_ns)``; BadBuckets names the field at fault."""
    if interval not in INTERVALS:
        raise BadBuckets("interval", f"must be one of {', '.join(INTERVALS)}, got {str(interval)[:32]!r}")
    tz = zone(timezone)
    if to_ns <= from_ns:
        raise BadBuckets("to", "must be after 'from'")
    name = timezone or "UTC"
    if interval == "total":
        return Buckets(interval, name, from_ns, to_ns, np.array([from_ns], dtype=np.int64))
    local = dt.datetime.fromtimestamp(from_ns // _NS, tz)
    if interval in _STEP:
        step = _STEP[interval]
        # Align to the local clock: the offset's seconds within a step shift every boundary.
        offset = int(local.utcoffset().total_seconds()) if local.utcoffset() else 0  # type: ignore[union-attr]
        first = ((from_ns // _NS + offset) // step * step - offset) * _NS
        count = -(-(to_ns - first) // (step * _NS))
        if count > MAX_BUCKETS:
            raise BadBuckets("interval", f"{count} buckets of a {interval}; the limit is {MAX_BUCKETS}")
        return Buckets(interval, name, from_ns, to_ns, first + np.arange(count, dtype=np.int64) * step * _NS)
    start = _local_floor(local, interval)
    starts: list[int] = []
    while True:
        ns = _to_ns(start)
        if ns >= to_ns:
            break
        starts.append(ns)
        if len(starts) > MAX_BUCKETS:
            raise BadBuckets("interval", f"more than {MAX_BUCKETS} buckets of a {interval}")
        start = _next_local(start, interval)
    return Buckets(interval, name, from_ns, to_ns, np.array(starts, dtype=np.int64))


def local_days(ts: np.ndarray, timezone: str | None) -> tuple[np.ndarray, int]:
    """(local calendar day number of each time, the day number of the first time's day) for the
    rolling-window measures; day numbers count from 1970-01-01 in local time."""
    tz = zone(timezone)
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    lo, hi = int(ts.min()), int(ts.max())
    day = _local_floor(dt.datetime.fromtimestamp(lo // _NS, tz), "day")
    bounds: list[int] = []
    numbers: list[int] = []
    epoch = dt.date(1970, 1, 1)
    while True:
        ns = _to_ns(day)
        bounds.append(ns)
        numbers.append((day.date() - epoch).days)
        if ns > hi:
            break
        day = _next_local(day, "day")
    idx = np.searchsorted(np.array(bounds, dtype=np.int64), ts, side="right") - 1
    return np.array(numbers, dtype=np.int64)[idx], numbers[0]
