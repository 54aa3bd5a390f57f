"""``POST /api/events/trends``: one value per bucket per series, exact, from the column blocks.

A series counts, counts distinct users, or measures a numeric property of the events it selects;
a breakdown splits it by up to three properties into the top ``breakdown_limit`` combinations by
event count over the range (ties by value, ascending) and one ``$other`` series for the rest.
Percentiles interpolate linearly between closest ranks (ClickHouse ``quantilesExactInclusive``,
PostgreSQL ``percentile_cont``). ``dau``/``wau``/``mau`` count the users active in the 1, 7 and 30
local calendar days ending with each day, reading before ``from`` as far as they need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sidecar.query.analytics.filters import Filter
from sidecar.query.analytics.frame import Frame, Scan, Source, ValueIds, display
from sidecar.query.analytics.measures import (
    MEASURES,
    PER_USER,
    ROLLING,
    VALUE_MEASURES,
    grouped,
    value_points,
)
from sidecar.query.analytics.request import (
    BadRequest,
    breakdown_of,
    buckets_of,
    check_object,
    event_of,
    filters_of,
)
from sidecar.query.analytics.rollup_reads import RollupReads
from sidecar.query.analytics.timebuckets import Buckets, local_days, rfc3339

MAX_SERIES = 20
OTHER = "$other"
_DAY_NS = 86_400 * 10**9
_TOP_KEYS = {"series", "interval", "from", "to", "timezone", "breakdown", "breakdown_limit", "approximate"}
_SERIES_KEYS = {"event", "measure", "property", "filters"}
_KIND_ORDER = {"b": 1, "n": 2, "s": 3}


@dataclass(frozen=True, slots=True)
class Series:
    event: str | None
    measure: str
    property: str | None
    filters: list[Filter] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TrendsRequest:
    series: list[Series]
    buckets: Buckets
    breakdown: list[str]
    breakdown_limit: int


def parse_trends(body: Any) -> TrendsRequest:
    """The request from its decoded JSON body; BadRequest names the field at fault."""
    body = check_object(body, "body", _TOP_KEYS, "{series, interval, from, to, ...}")
    raw_series = body.get("series")
    if not isinstance(raw_series, list) or not raw_series:
        raise BadRequest("series", "required: a non-empty list of {event, measure, property, filters}")
    if len(raw_series) > MAX_SERIES:
        raise BadRequest("series", f"{len(raw_series)} series; the limit is {MAX_SERIES}")
    buckets = buckets_of(body)
    series = [_series(item, f"series[{i}]", buckets.interval) for i, item in enumerate(raw_series)]
    names, limit = breakdown_of(body)
    if not isinstance(body.get("approximate", False), bool):
        raise BadRequest("approximate", "must be true or false")
    return TrendsRequest(series, buckets, names, limit)


def _series(item: Any, path: str, interval: str) -> Series:
    item = check_object(item, path, _SERIES_KEYS, "{event, measure, property, filters}")
    event = event_of(item.get("event"), f"{path}.event")
    measure = item.get("measure", "count")
    if measure not in MEASURES:
        got = str(measure)[:40]
        raise BadRequest(f"{path}.measure", f"must be one of {', '.join(MEASURES)}, got {got!r}")
    if measure in ROLLING and interval != "day":
        raise BadRequest("interval", f"'{measure}' is a per-day measure: use interval 'day'")
    prop = item.get("property")
    if measure in VALUE_MEASURES:
        if not isinstance(prop, str) or not prop:
            raise BadRequest(f"{path}.property", f"'{measure}' needs the numeric property to measure")
    elif prop is not None and not isinstance(prop, str):
        raise BadRequest(f"{path}.property", "must be a property name")
    return Series(event, measure, prop, filters_of(item.get("filters"), f"{path}.filters"))


# -- computing ----------------------------------------------------------------------------------
def run_trends(source: Source, req: TrendsRequest, use_rollups: bool = True) -> dict[str, Any]:
    """The answer; a series without filters or breakdown comes from the rollups when its buckets
    allow (rollup_reads.py), else every series is computed from a scan of the column blocks."""
    buckets = req.buckets
    out_series: list[dict[str, Any]] = []
    reads = RollupReads(source.rollups, lambda name: source.code("n", name)) if use_rollups else None
    for s in req.series:
        if reads is not None and not s.filters and not req.breakdown:
            points = reads.values(s.measure, s.event, s.property, buckets)
            if points is not None:
                out_series.append(_series_json(s, None, buckets, points))
                continue
        if reads is not None and not s.filters and s.measure == "count" and len(req.breakdown) == 1:
            dim = req.breakdown[0]
            per_value: list[tuple[Any, list[int]]] | None = None
            if dim == "event":
                per_value = reads.counts_by_event(s.event, buckets, source.texts("n"))
            elif dim in source.dimensions:
                per_value = reads.counts_by_value(s.event, dim, buckets)
            if per_value is not None:
                out_series += _by_value(s, dim, per_value, buckets, req.breakdown_limit)
                continue
        lookback = 0
        if s.measure in ROLLING:
            lookback = (ROLLING[s.measure] + 1) * _DAY_NS  # whole local days, DST included
        frame = Scan(source).load(
            buckets.from_ns - lookback,
            buckets.to_ns,
            None if s.event is None else [s.event],
            s.filters,
            s.property if s.measure in VALUE_MEASURES else None,
            req.breakdown,
        )
        for breakdown, rows in _split(frame, buckets.from_ns, req.breakdown, req.breakdown_limit):
            out_series.append(_series_json(s, breakdown, buckets, _values(s.measure, rows, buckets)))
    return {
        "interval": buckets.interval,
        "timezone": buckets.timezone,
        "from": rfc3339(buckets.from_ns),
        "to": rfc3339(buckets.to_ns),
        "series": out_series,
    }


def _sort_key(key: tuple[str, Any] | None) -> tuple[int, Any]:
    return (0, 0) if key is None else (_KIND_ORDER[key[0]], key[1])


def _split(
    frame: Frame, from_ns: int, names: list[str], limit: int
) -> list[tuple[dict[str, Any] | None, Frame]]:
    """(breakdown, rows) per output series: the top ``limit`` combinations, then ``$other``."""
    if not names:
        return [(None, frame)]
    in_range = frame.ts >= from_ns
    combos, inverse = np.unique(np.stack(frame.groups, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse[in_range], minlength=len(combos))
    values: list[ValueIds] = frame.values

    def combo_keys(i: int) -> list[tuple[str, Any] | None]:
        return [values[d].keys[int(combos[i, d])] for d in range(len(names))]

    ranked = sorted(
        (i for i in range(len(combos)) if counts[i] > 0),
        key=lambda i: (-int(counts[i]), [_sort_key(k) for k in combo_keys(i)]),
    )
    top = ranked[:limit]
    out: list[tuple[dict[str, Any] | None, Frame]] = []
    for i in top:
        keys = combo_keys(i)
        out.append(({n: display(k) for n, k in zip(names, keys, strict=True)}, frame.take(inverse == i)))
    rest = ~np.isin(inverse, np.array(top, dtype=inverse.dtype))
    if (rest & in_range).any():
        out.append(({n: OTHER for n in names}, frame.take(rest)))
    return out


def _by_value(
    s: Series, dim: str, per_value: list[tuple[Any, list[int]]], buckets: Buckets, limit: int
) -> list[dict[str, Any]]:
    """A count broken down by one property from the rollups, ranked as ``_split`` ranks any
    breakdown: by events in the range, most first, ties by value; past ``limit``, one
    ``$other`` series of the rest."""
    ranked = sorted(per_value, key=lambda item: (-sum(item[1]), _sort_key(_value_key(item[0]))))
    out = [_series_json(s, {dim: value}, buckets, counts) for value, counts in ranked[:limit]]
    rest = ranked[limit:]
    if rest:
        summed = np.sum([counts for _, counts in rest], axis=0).astype(np.int64).tolist()
        out.append(_series_json(s, {dim: OTHER}, buckets, summed))
    return out


def _value_key(value: Any) -> tuple[str, Any] | None:
    """The scan's key of a property value (frame.py), for the same tie order."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", float(value))
    return ("s", value)


def _series_json(
    s: Series, breakdown: dict[str, Any] | None, buckets: Buckets, values: list[Any]
) -> dict[str, Any]:
    points = [{"t": t, "value": v} for t, v in zip(buckets.labels(), values, strict=True)]
    return {
        "event": s.event,
        "measure": s.measure,
        "property": s.property,
        "breakdown": breakdown,
        "exact": True,
        "points": points,
    }


def _values(measure: str, rows: Frame, buckets: Buckets) -> list[Any]:
    n = len(buckets)
    if measure in ROLLING:
        return _rolling(rows, buckets, ROLLING[measure])
    inside = rows.take(rows.ts >= buckets.from_ns)
    idx = buckets.index(inside.ts)
    if measure == "count":
        return np.bincount(idx, minlength=n).tolist()
    users = inside.user
    has_user = users != 0
    if measure == "unique_users" or measure in PER_USER:
        pairs, per_pair = np.unique(
            idx[has_user].astype(np.int64) * (1 << 32) + users[has_user].astype(np.int64), return_counts=True
        )
        pair_bucket = pairs >> 32
        if measure == "unique_users":
            return np.bincount(pair_bucket, minlength=n).tolist()
        return grouped(pair_bucket, per_pair.astype(np.float64), n, PER_USER[measure], average=True)
    assert inside.measure is not None
    valid = ~np.isnan(inside.measure)
    return value_points(measure, idx[valid], inside.measure[valid], n)


def _rolling(rows: Frame, buckets: Buckets, window: int) -> list[Any]:
    """Distinct users active in the ``window`` local days ending with each day bucket."""
    n = len(buckets)
    has_user = rows.user != 0
    days, _ = local_days(rows.ts[has_user], buckets.timezone)
    bucket_days, _ = local_days(buckets.starts, buckets.timezone)
    if not days.size:
        return [0] * n
    user = rows.user[has_user].astype(np.int64)
    pairs = np.unique(user * (1 << 32) + (days - days.min()))
    p_user, p_day = pairs >> 32, (pairs & 0xFFFFFFFF) + days.min()
    # A user active on day a counts on days a .. a+window-1, up to (not into) their next active day.
    nxt = np.empty_like(p_day)
    nxt[:-1] = np.where(p_user[1:] == p_user[:-1], p_day[1:], np.iinfo(np.int64).max)
    nxt[-1:] = np.iinfo(np.int64).max
    end = np.minimum(p_day + window, nxt)  # exclusive
    lo = int(min(p_day.min(), bucket_days.min()))
    hi = int(max(end.max(), bucket_days.max() + 1))
    diff = np.zeros(hi - lo + 1, dtype=np.int64)
    np.add.at(diff, p_day - lo, 1)
    np.add.at(diff, end - lo, -1)
    active = np.cumsum(diff)
    return active[bucket_days - lo].tolist()
