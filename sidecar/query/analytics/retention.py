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


def run_retention(source: Source, req: RetentionRequest) -> dict[str, Any]:
    buckets = req.buckets
    n = len(buckets)
    scan = Scan(source)
    starts = scan.load(buckets.from_ns, buckets.to_ns, [req.start_event], req.filters)
    returns = scan.load(buckets.from_ns, buckets.to_ns, [req.return_event], [])
    size = np.zeros(n, dtype=np.int64)
    returned = np.zeros((n, req.periods), dtype=np.int64)
    has_user = starts.user != 0
    users, first = _first_per_user(starts.user[has_user], starts.ts[has_user])
    if users.size:
        cohort = buckets.index(first)
        size = np.bincount(cohort, minlength=n)
        r_user, r_ts = returns.user, returns.ts
        at = np.searchsorted(users, r_user)
        known = (at < users.size) & (users[np.minimum(at, users.size - 1)] == r_user)
        at, r_ts = at[known], r_ts[known]
        after = r_ts >= first[at]
        at, r_ts = at[after], r_ts[after]
        k = buckets.index(r_ts) - cohort[at]
        inside = k < req.periods
        pairs = np.unique(at[inside].astype(np.int64) * MAX_PERIODS + k[inside])
        who, offset = pairs // MAX_PERIODS, pairs % MAX_PERIODS
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
