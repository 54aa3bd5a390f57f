"""Trends answered from rollups (storage/rocks/events/rollups.py) instead of a scan, when they can be.

A series can when it has no filters and the request no breakdown, and its buckets are made of
whole rollup periods: whole UTC hours for ``count`` (so any zone with whole-hour offsets, which is
nearly all of them), whole UTC days for the distinct-user and value measures (so UTC, or any
zone whose days are UTC days over the range). The answers are the scan's, exactly: the rollups are
written with the events and hold every one of them. Anything else returns None and is scanned.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import numpy as np

from sidecar.query.analytics.measures import ROLLING, VALUE_MEASURES, value_points
from sidecar.query.analytics.timebuckets import Buckets, make_buckets

HOUR_NS = 3600 * 10**9
DAY_NS = 86_400 * 10**9
_LONGEST = max(ROLLING.values())  # the MAU window: one sweep from this far back serves DAU and WAU


class RollupSource(Protocol):
    """What these reads need of the store (storage's Rollups)."""

    def counts_by_name(self, first_hour: int, end_hour: int) -> dict[int, np.ndarray]: ...
    def dimension_counts(
        self, first_hour: int, end_hour: int, dim: str
    ) -> dict[tuple[int, bytes], np.ndarray]: ...
    def day_users(self, day: int, name: int) -> np.ndarray: ...
    def month_users(self, month: int) -> np.ndarray | None: ...
    def rows(self, first_day: int, end_day: int, name: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def day_hours(self, day: int) -> tuple[np.ndarray, np.ndarray]: ...
    def day_values(self, day: int, name: int, prop: str) -> np.ndarray: ...


def user_rows(rollups: RollupSource, code: int | None, buckets: Buckets) -> tuple[np.ndarray, np.ndarray]:
    """(users, times) of the events of name ``code`` that have a user, on the UTC days of
    ``buckets`` (whole days), from the per-day rows; empty for a name never stored (None)."""
    if code is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    users, times, _ = rollups.rows(buckets.from_ns // DAY_NS, buckets.to_ns // DAY_NS, code)
    return users, times


def day_aligned(buckets: Buckets) -> bool:
    """Whether every bucket is made of whole UTC days (UTC, or a zone whose days are UTC's)."""
    return _aligned(buckets, DAY_NS)


def _aligned(buckets: Buckets, unit: int) -> bool:
    return (
        buckets.from_ns % unit == 0
        and buckets.to_ns % unit == 0
        and bool(np.all(buckets.starts[1:] % unit == 0))
    )


class RollupReads:
    """One request's reads: each day's user set is read once, whichever series asks for it."""

    def __init__(self, rollups: RollupSource, name_code: Any) -> None:
        self._rollups = rollups
        self._name_code = name_code  # event name -> registry code or None
        self._users: dict[tuple[int, int], np.ndarray] = {}
        self._counts: dict[tuple[int, int], dict[int, np.ndarray]] = {}
        self._masks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._sweeps: dict[tuple[Any, ...], dict[int, list[int]]] = {}
        self._values: dict[tuple[int, str, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def values(self, measure: str, event: str | None, prop: str | None, buckets: Buckets) -> list[Any] | None:
        """The series' points, or None when rollups cannot answer it (then scan)."""
        if event is None:
            name = 0
        else:
            code = self._name_code(event)
            name = -1 if code is None else code  # a name never stored: all zeros / nulls
        n = len(buckets)
        if measure == "count":
            if not _aligned(buckets, HOUR_NS):
                return None
            first, end = buckets.from_ns // HOUR_NS, buckets.to_ns // HOUR_NS
            by_name = self._hourly(first, end)
            hourly = np.zeros(end - first, dtype=np.int64)
            for code, counts in by_name.items():
                if name == 0 or code == name:
                    hourly += counts
            index = buckets.index(np.arange(first, end, dtype=np.int64) * HOUR_NS)
            return np.bincount(index, weights=hourly, minlength=n).astype(np.int64).tolist()
        if not _aligned(buckets, DAY_NS):
            if name == 0 and _aligned(buckets, HOUR_NS) and (measure == "unique_users" or measure in ROLLING):
                return self._zoned(measure, buckets)
            return None
        first_day, end_day = buckets.from_ns // DAY_NS, buckets.to_ns // DAY_NS
        if measure == "unique_users":
            out = []
            for i in range(n):
                start = max(int(buckets.starts[i]), buckets.from_ns) // DAY_NS
                stop = int(buckets.starts[i + 1]) // DAY_NS if i + 1 < n else end_day
                out.append(self._distinct(name, start, stop))
            return out
        if measure in ROLLING:
            return self._rolling(name, first_day, end_day, ROLLING[measure])
        if measure in VALUE_MEASURES and event is not None and prop is not None:
            values, days = self._day_values(name, prop, first_day, end_day)
            return value_points(measure, buckets.index(days * DAY_NS), values, n)
        return None

    def _day_values(
        self, name: int, prop: str, first_day: int, end_day: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(values, their UTC days) of ``prop`` on ``name``'s events; read once per request
        (p50, p95 and p99 of one property are three series over the same values)."""
        key = (name, prop, first_day, end_day)
        found = self._values.get(key)
        if found is None:
            parts: list[np.ndarray] = [np.zeros(0)]
            owners: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
            for day in range(first_day, end_day):
                values = self._rollups.day_values(day, name, prop) if name > 0 else np.zeros(0)
                parts.append(values)
                owners.append(np.full(values.size, day, dtype=np.int64))
            found = self._values[key] = (np.concatenate(parts), np.concatenate(owners))
        return found

    def counts_by_event(
        self, event: str | None, buckets: Buckets, texts: dict[int, str]
    ) -> list[tuple[str, list[int]]] | None:
        """Per event name (all names, or only ``event``), its count per bucket: a count broken
        down by ``event``. None when the buckets are not whole UTC hours."""
        if not _aligned(buckets, HOUR_NS):
            return None
        first, end = buckets.from_ns // HOUR_NS, buckets.to_ns // HOUR_NS
        index = buckets.index(np.arange(first, end, dtype=np.int64) * HOUR_NS)
        wanted = None if event is None else self._name_code(event)
        out = []
        for code, hourly in self._hourly(first, end).items():
            if (event is None or code == wanted) and hourly.any():
                counts = np.bincount(index, weights=hourly, minlength=len(buckets)).astype(np.int64)
                out.append((texts.get(code, ""), counts.tolist()))
        return out

    def counts_by_value(
        self, event: str | None, dim: str, buckets: Buckets
    ) -> list[tuple[Any, list[int]]] | None:
        """Per value of the configured dimension ``dim`` (None: absent), the events of ``event``
        (None: any) per bucket: a count broken down by ``dim``. None off whole UTC hours."""
        if not _aligned(buckets, HOUR_NS):
            return None
        first, end = buckets.from_ns // HOUR_NS, buckets.to_ns // HOUR_NS
        index = buckets.index(np.arange(first, end, dtype=np.int64) * HOUR_NS)
        wanted = None if event is None else self._name_code(event)
        hourly_by_value: dict[bytes, np.ndarray] = {}
        for (code, value), hourly in self._rollups.dimension_counts(first, end, dim).items():
            if event is None or code == wanted:
                hourly_by_value[value] = hourly_by_value.get(value, 0) + hourly
        out = []
        for value, hourly in hourly_by_value.items():
            if hourly.any():
                counts = np.bincount(index, weights=hourly, minlength=len(buckets)).astype(np.int64)
                out.append((json.loads(value), counts.tolist()))
        return out

    def _hourly(self, first: int, end: int) -> dict[int, np.ndarray]:
        """Counts per name and hour, read once per request whichever series ask."""
        found = self._counts.get((first, end))
        if found is None:
            found = self._counts[(first, end)] = self._rollups.counts_by_name(first, end)
        return found

    def _day(self, name: int, day: int) -> np.ndarray:
        key = (name, day)
        found = self._users.get(key)
        if found is None:
            found = self._users[key] = (
                self._rollups.day_users(day, name) if name >= 0 else np.zeros(0, dtype=np.int64)
            )
        return found

    def _distinct(self, name: int, start: int, stop: int) -> int:
        days = [self._day(name, d) for d in range(start, stop)]
        days = [d for d in days if d.size]
        if not days:
            return 0
        if len(days) == 1:
            return int(days[0].size)
        mark = np.zeros(int(max(d.max() for d in days)) + 1, dtype=bool)
        for users in days:
            mark[users] = True
        return int(mark.sum())

    def _zoned(self, measure: str, buckets: Buckets) -> list[int]:
        """Distinct users of any event per bucket, or DAU/WAU/MAU, in a zone whose days are
        whole UTC hours but not UTC days: each local day's users from the UTC days' hour bits."""
        if measure in ROLLING:  # local days, from far enough back for the longest window
            key = ("zoned", buckets.timezone, buckets.from_ns, buckets.to_ns)
            sweeps = self._sweeps.get(key)
            if sweeps is None:
                days = make_buckets(
                    "day", buckets.from_ns - (_LONGEST + 1) * DAY_NS, buckets.to_ns, buckets.timezone
                ).starts
                first = int(np.searchsorted(days, buckets.starts[0]))
                edges = [*days.tolist(), buckets.to_ns]
                sets = [self._between(edges[i], edges[i + 1]) for i in range(len(days))]
                sweeps = self._sweeps[key] = self._sweep(sets[first - _LONGEST + 1 :])
            return sweeps[ROLLING[measure]]
        edges = [max(int(buckets.starts[0]), buckets.from_ns), *buckets.starts[1:].tolist(), buckets.to_ns]
        return [int(self._between(edges[i], edges[i + 1]).size) for i in range(len(buckets))]

    def _between(self, start: int, end: int) -> np.ndarray:
        """Users with any event in ``[start, end)`` (whole UTC hours): per UTC day touched, those
        whose hour bits meet the hours inside the range."""
        found = []
        for day in range(start // DAY_NS, (end - 1) // DAY_NS + 1):
            users, masks = self._hours_of(day)
            lo = max(start - day * DAY_NS, 0) // HOUR_NS
            hi = min(end - day * DAY_NS, DAY_NS) // HOUR_NS
            wanted = np.uint32(((1 << hi) - 1) & ~((1 << lo) - 1))
            found.append(users[(masks & wanted) != 0])
        if len(found) == 1:
            return found[0]
        return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)

    def _hours_of(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        key = (-1, day)
        found = self._masks.get(key)
        if found is None:
            found = self._masks[key] = self._rollups.day_hours(day)
        return found

    def _rolling(self, name: int, first_day: int, end_day: int, window: int) -> list[int]:
        """Users active in the ``window`` UTC days ending with each day; one sweep serves all the
        windows of a request (DAU, WAU and MAU together read and walk the days once)."""
        key = ("utc", name, first_day, end_day)
        sweeps = self._sweeps.get(key)
        if sweeps is None:
            days = [self._day(name, d) for d in range(first_day - _LONGEST + 1, end_day)]
            sweeps = self._sweeps[key] = self._sweep(days)
        return sweeps[window]

    @staticmethod
    def _sweep(days: list[np.ndarray]) -> dict[int, list[int]]:
        """Per rolling window (1, 7, 30 days), for each day from the 30th on, the users active in
        the window ending with it: a sweep that remembers each user's last active day, so each
        (day, user) pair is touched once. ``days`` holds each day's distinct users."""
        top = max((int(d.max()) for d in days if d.size), default=0)
        last = np.full(top + 1, -1, dtype=np.int64)
        per_day = np.zeros(len(days), dtype=np.int64)  # users whose last active day is this one
        out: dict[int, list[int]] = {w: [] for w in ROLLING.values()}
        for i, users in enumerate(days):
            before = last[users]
            moved = before[before >= 0]
            if moved.size:  # bincount, not subtract.at: numpy's ufunc.at is ten times slower
                per_day[: i + 1] -= np.bincount(moved, minlength=i + 1)
            per_day[i] += users.size
            last[users] = i
            if i >= _LONGEST - 1:
                for window, found in out.items():
                    found.append(int(per_day[i - window + 1 : i + 1].sum()))
        return out
