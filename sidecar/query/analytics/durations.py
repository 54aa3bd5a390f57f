"""``POST /api/events/durations``: how long from one event to another of the same thing.

Events are paired by ``correlate_by`` (a property such as ``recording_id``, or ``user_id`` /
``session_id``): for each value, its first ``start_event`` is paired with the first ``end_event``
at or after it. Only events in ``[from, to)`` are read; a start without such an end is left out.
A pair counts in the bucket of its start. Percentiles interpolate linearly between closest ranks.
Correlated by ``user_id`` over whole UTC days, the rows come from the rollups' per-day (user,
time) rows of the two names (as funnels read them); otherwise from a scan of the column blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sidecar.query.analytics.frame import Scan, Source
from sidecar.query.analytics.request import BadRequest, buckets_of, check_object
from sidecar.query.analytics.rollup_reads import day_aligned, user_rows
from sidecar.query.analytics.timebuckets import Buckets, rfc3339

_KEYS = {"start_event", "end_event", "correlate_by", "interval", "from", "to", "timezone"}
_NO_END = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class DurationsRequest:
    start_event: str
    end_event: str
    correlate_by: str
    buckets: Buckets


def parse_durations(body: Any) -> DurationsRequest:
    body = check_object(body, "body", _KEYS, "{start_event, end_event, correlate_by, interval, from, to}")
    texts = []
    for key in ("start_event", "end_event", "correlate_by"):
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise BadRequest(key, "required: a name")
        texts.append(value)
    return DurationsRequest(texts[0], texts[1], texts[2], buckets_of(body))


Rows = tuple[np.ndarray, np.ndarray]  # (correlation ids, times) of the start or the end events


def _user_rows(source: Source, req: DurationsRequest) -> tuple[Rows, Rows, int] | None:
    """Start and end rows correlated by user from the rollups' per-day (user, time) rows, when
    the buckets are whole UTC days; None otherwise (then scan)."""
    buckets = req.buckets
    if req.correlate_by != "user_id" or not day_aligned(buckets):
        return None
    names = (req.start_event, req.end_event)
    out = [user_rows(source.rollups, source.code("n", name), buckets) for name in names]
    size = 1 + max(int(ids.max(initial=0)) for ids, _ in out)
    return out[0], out[1], size


def _scanned(source: Source, req: DurationsRequest) -> tuple[Rows, Rows, int]:
    """Start and end rows from a scan of the column blocks, correlated by any field or property."""
    buckets = req.buckets
    frame = Scan(source).load_steps(
        buckets.from_ns,
        buckets.to_ns,
        [(req.start_event, []), (req.end_event, [])],
        keep_all=False,
        breakdown=[req.correlate_by],
        require_user=False,
    )
    assert frame.matched is not None
    ids = frame.groups[0]
    is_start = ((frame.matched & 1) != 0) & (ids != 0)
    is_end = ((frame.matched & 2) != 0) & (ids != 0)
    size = len(frame.values[0].keys)
    return (ids[is_start], frame.ts[is_start]), (ids[is_end], frame.ts[is_end]), size


def stats(seconds: np.ndarray) -> dict[str, Any]:
    if not seconds.size:
        return {
            "count": 0,
            "avg_seconds": None,
            "p50_seconds": None,
            "p95_seconds": None,
            "p99_seconds": None,
        }
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99]).tolist()
    return {
        "count": int(seconds.size),
        "avg_seconds": float(seconds.mean()),
        "p50_seconds": p50,
        "p95_seconds": p95,
        "p99_seconds": p99,
    }


def run_durations(source: Source, req: DurationsRequest, use_rollups: bool = True) -> dict[str, Any]:
    buckets = req.buckets
    found = _user_rows(source, req) if use_rollups else None
    if found is None:
        found = _scanned(source, req)
    (start_ids, start_ts), (end_ids, end_ts), size = found
    first_start = np.full(size, _NO_END, dtype=np.int64)
    np.minimum.at(first_start, start_ids, start_ts)
    first_end = np.full(size, _NO_END, dtype=np.int64)
    after = end_ts >= first_start[end_ids]
    np.minimum.at(first_end, end_ids[after], end_ts[after])
    paired = (first_start != _NO_END) & (first_end != _NO_END)
    starts = first_start[paired]
    seconds = (first_end[paired] - starts) / 1e9
    bucket = buckets.index(starts) if starts.size else np.zeros(0, dtype=np.int64)
    labels = buckets.labels()
    points = [{"t": labels[i], **stats(seconds[bucket == i])} for i in range(len(buckets))]
    return {
        "interval": buckets.interval,
        "timezone": buckets.timezone,
        "from": rfc3339(buckets.from_ns),
        "to": rfc3339(buckets.to_ns),
        **stats(seconds),
        "points": points,
    }
