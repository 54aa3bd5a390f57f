"""``POST /api/events/retention``: of the users who first did X in a period, how many came back.

A user's cohort is the period (calendar, in ``timezone``) of their first ``start_event`` in
``[from, to)``. ``returned[k]`` counts the cohort's users with a ``return_event`` at or after that
first start, in cohort period + k; events at or after ``to`` are not read, so the periods after
it count 0. Every period of ``[from, to)`` is a cohort, empty ones included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sidecar.query.analytics.filters import Filter
from sidecar.query.analytics.frame import Scan, Source
from sidecar.query.analytics.request import BadRequest, buckets_of, check_object, filters_of
from sidecar.query.analytics.rollup_reads import day_aligned, user_rows
from sidecar.query.analytics.timebuckets import Buckets, rfc3339

PERIODS = ("day", "week", "month")
MAX_PERIODS = 400
_KEYS = {"start_event", "return_event", "period", "periods", "from", "to", "timezone", "filters"}


@dataclass(frozen=True, slots=True)
class RetentionRequest:
    start_event: str
    return_event: str
    periods: int
    buckets: Buckets
    filters: list[Filter]


def parse_retention(body: Any) -> RetentionRequest:
    body = check_object(body, "body", _KEYS, "{start_event, return_event, period, periods, from, to}")
    names = []
    for key in ("start_event", "return_event"):
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise BadRequest(key, "required: an event name")
        names.append(value)
    period = body.get("period", "week")
    if period not in PERIODS:
        raise BadRequest("period", f"must be one of {', '.join(PERIODS)}, got {str(period)[:40]!r}")
    periods = body.get("periods", 8)
    if isinstance(periods, bool) or not isinstance(periods, int) or not 1 <= periods <= MAX_PERIODS:
        raise BadRequest("periods", f"must be an integer from 1 to {MAX_PERIODS}")
    buckets = buckets_of({**body, "interval": period})
    return RetentionRequest(names[0], names[1], periods, buckets, filters_of(body.get("filters"), "filters"))


def _events_of(
    source: Source, req: RetentionRequest, name: str, use_rollups: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(users, times) of ``name``'s events with a user in the range: from the rollups' per-day
    rows when no filter applies and the periods are whole UTC days, else from a scan."""
    buckets = req.buckets
    filters = req.filters if name == req.start_event else []
    if use_rollups and not filters and day_aligned(buckets):
        return user_rows(source.rollups, source.code("n", name), buckets)
    frame = Scan(source).load(buckets.from_ns, buckets.to_ns, [name], filters)
    with_user = frame.user != 0
    return frame.user[with_user].astype(np.int64), frame.ts[with_user]


def run_retention(source: Source, req: RetentionRequest, use_rollups: bool = True) -> dict[str, Any]:
    buckets = req.buckets
    n = len(buckets)
    start_users, start_ts = _events_of(source, req, req.start_event, use_rollups)
    size = np.zeros(n, dtype=np.int64)
    returned = np.zeros((n, req.periods), dtype=np.int64)
    users, first = _first_per_user(start_users, start_ts)
    if users.size:
        cohort = buckets.index(first)
        size = np.bincount(cohort, minlength=n)
        r_user, r_ts = _events_of(source, req, req.return_event, use_rollups)
        # Each return event's cohort user by a table over user codes (not a search per event).
        top = max(int(users.max()), int(r_user.max(initial=0)))
        index_of = np.full(top + 1, -1, dtype=np.int64)
        index_of[users] = np.arange(users.size)
        at = index_of[r_user]
        known = at >= 0
        at, r_ts = at[known], r_ts[known]
        after = r_ts >= first[at]
        at, r_ts = at[after], r_ts[after]
        k = buckets.index(r_ts) - cohort[at]
        inside = k < req.periods
        # Distinct (user, period) pairs: marked on a bitmap (no sort of millions of pairs) unless
        # the bitmap would be larger than the sort's memory.
        codes = at[inside] * req.periods + k[inside]
        if users.size * req.periods <= max(16 * codes.size, 1 << 24):
            mark = np.zeros(users.size * req.periods, dtype=bool)
            mark[codes] = True
            pairs = np.flatnonzero(mark)
        else:
            pairs = np.unique(codes)
        who, offset = pairs // req.periods, pairs % req.periods
        np.add.at(returned, (cohort[who], offset), 1)
    labels = buckets.labels()
    return {
        "period": buckets.interval,
        "timezone": buckets.timezone,
        "from": rfc3339(buckets.from_ns),
        "to": rfc3339(buckets.to_ns),
        "cohorts": [
            {"t": labels[i], "size": int(size[i]), "returned": returned[i].tolist()} for i in range(n)
        ],
    }


def _first_per_user(user: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct users, each one's earliest time)."""
    if not user.size:
        return user, ts
    order = np.lexsort((ts, user))
    user, ts = user[order], ts[order]
    first = np.ones(user.size, dtype=bool)
    first[1:] = user[1:] != user[:-1]
    return user[first], ts[first]
