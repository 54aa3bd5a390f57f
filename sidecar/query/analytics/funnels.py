"""``POST /api/events/funnels``: how many users got how far through a list of steps, per bucket.

A user's events in a bucket (only events with a user id count) are ordered by time and, at equal
times, by step, so a start and a finish at the same instant reach level 2; an event that passes
several steps (the same event name twice in a funnel, say) takes part as each of them, as in
ClickHouse. Then, per mode:

* ``ordered`` (default) is ClickHouse ``windowFunnel(window)``: a step-1 event starts a chain; an
  event of step k+1 extends the latest chain that reached step k if it comes at most ``window``
  after that chain's step-1 event. The level is the longest chain.
* ``strict`` is ``windowFunnel(window, 'strict_order')``: as ordered, but once a chain has started,
  an event of the user that passes no step (any event of theirs in the bucket), or one whose
  previous step has not been reached, ends the search.
* ``unordered``: the level is the largest number of distinct steps passed by events within one
  window that starts at one of them.

Level 0 counts the users with any event in the bucket who reached no step. Per step: the users
who reached it, the conversion from the previous and from the first step, and the median
(interpolated) and average seconds from step 1, taken from the earliest chain that gave each user
their level (for ``unordered``: the k-th distinct step of that window, from its first event).
With a breakdown, a user is counted under the value on their first step-1 event in the bucket
(their first event if none), and the ``breakdown_limit`` values with the most users reaching step
1 get entries of their own; the rest share ``$other``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sidecar.query.analytics.filters import Filter
from sidecar.query.analytics.frame import Frame, Scan, Source, display
from sidecar.query.analytics.request import (
    BadRequest,
    breakdown_of,
    buckets_of,
    check_object,
    event_of,
    filters_of,
    seconds_of,
)
from sidecar.query.analytics.timebuckets import Buckets, rfc3339

MODES = ("ordered", "strict", "unordered")
MAX_STEPS = 32
OTHER = "$other"
_TOP_KEYS = {"steps", "window", "mode", "interval", "from", "to", "timezone", "breakdown", "breakdown_limit"}
_STEP_KEYS = {"event", "filters"}
_NO_TIME = -1


@dataclass(frozen=True, slots=True)
class Step:
    event: str | None
    filters: list[Filter]


@dataclass(frozen=True, slots=True)
class FunnelRequest:
    steps: list[Step]
    window_ns: int
    mode: str
    buckets: Buckets
    breakdown: list[str]
    breakdown_limit: int


def parse_funnel(body: Any) -> FunnelRequest:
    body = check_object(body, "body", _TOP_KEYS, "{steps, window, mode, interval, from, to, ...}")
    raw = body.get("steps")
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_STEPS:
        raise BadRequest("steps", f"required: a list of 2 to {MAX_STEPS} {{event, filters}} steps")
    steps = []
    for i, item in enumerate(raw):
        item = check_object(item, f"steps[{i}]", _STEP_KEYS, "{event, filters}")
        steps.append(
            Step(
                event_of(item.get("event"), f"steps[{i}].event"),
                filters_of(item.get("filters"), f"steps[{i}].filters"),
            )
        )
    window = seconds_of(body.get("window", "1d"), "window")
    mode = body.get("mode", "ordered")
    if mode not in MODES:
        raise BadRequest("mode", f"must be one of {', '.join(MODES)}, got {str(mode)[:40]!r}")
    buckets = buckets_of(body)
    names, limit = breakdown_of(body)
    return FunnelRequest(steps, window, mode, buckets, names, limit)


# -- one user's events --------------------------------------------------------------------------
def chain(events: Sequence[tuple[int, int]], n: int, window: int, mode: str) -> list[int]:
    """The step times of the earliest chain that reached the user's level (its length is the
    level) from ``(time, step)`` sorted by time then step; step -1 is an event of no step."""
    if mode == "unordered":
        return _unordered(events, n, window)
    strict = mode == "strict"
    first: list[int] = [_NO_TIME] * n  # per level: the step-1 time of the latest chain there
    paths: list[list[int]] = [[] for _ in range(n)]
    best: list[int] = []
    started = False
    for t, k in events:
        if k < 0:
            if strict and started:
                break
            continue
        if k == 0:
            first[0], paths[0], started = t, [t], True
            if not best:
                best = paths[0]
        elif first[k - 1] == _NO_TIME:
            if strict and started:
                break
        elif t <= first[k - 1] + window:
            first[k], paths[k] = first[k - 1], [*paths[k - 1], t]
            if len(best) < k + 1:
                best = paths[k]
                if k + 1 == n:
                    break
    return best


def _unordered(events: Sequence[tuple[int, int]], n: int, window: int) -> list[int]:
    best: list[int] = []
    steps_only = [(t, k) for t, k in events if k >= 0]
    for i, (start, _) in enumerate(steps_only):
        seen: dict[int, int] = {}
        for t, k in steps_only[i:]:
            if t > start + window:
                break
            seen.setdefault(k, t)
        if len(seen) > len(best):
            best = sorted(seen.values())
            if len(best) == n:
                break
    return best


# -- the whole question -------------------------------------------------------------------------
def run_funnel(source: Source, req: FunnelRequest) -> dict[str, Any]:
    buckets = req.buckets
    n = len(req.steps)
    keep_all = req.mode == "strict" or bool(req.breakdown)
    frame = Scan(source).load_steps(
        buckets.from_ns,
        buckets.to_ns,
        [(s.event, s.filters) for s in req.steps],
        keep_all,
        req.breakdown,
        active=None if keep_all else buckets,
    )
    assert frame.matched is not None
    bucket = buckets.index(frame.ts) if len(frame) else np.zeros(0, dtype=np.int64)
    per_user = _per_user(frame, bucket, n, req)
    entries = _entries(per_user, frame.active, frame, req)
    return {
        "interval": buckets.interval,
        "timezone": buckets.timezone,
        "from": rfc3339(buckets.from_ns),
        "to": rfc3339(buckets.to_ns),
        "mode": req.mode,
        "window_seconds": req.window_ns / 10**9,
        "buckets": entries,
    }


def _per_user(
    frame: Frame, bucket: np.ndarray, n: int, req: FunnelRequest
) -> dict[tuple[int, int], tuple[list[int], int]]:
    """(bucket, user) -> (chain step times, row of the user's breakdown event)."""
    assert frame.matched is not None
    rows_k: list[np.ndarray] = []
    rows_i: list[np.ndarray] = []
    for k in range(n):
        hit = np.nonzero(frame.matched & np.uint32(1 << k))[0]
        rows_i.append(hit)
        rows_k.append(np.full(hit.size, k, dtype=np.int64))
    other = np.nonzero(frame.matched == 0)[0]
    rows_i.append(other)
    rows_k.append(np.full(other.size, -1, dtype=np.int64))
    index = np.concatenate(rows_i)
    step = np.concatenate(rows_k)
    time = frame.ts[index]
    user = frame.user[index].astype(np.int64)
    b = bucket[index]
    order = np.lexsort((step, time, user, b))
    out: dict[tuple[int, int], tuple[list[int], int]] = {}
    b_list, u_list, t_list, k_list, i_list = (a[order].tolist() for a in (b, user, time, step, index))
    start = 0
    total = len(order)
    while start < total:
        key = (b_list[start], u_list[start])
        end = start
        while end < total and (b_list[end], u_list[end]) == key:
            end += 1
        events = list(zip(t_list[start:end], k_list[start:end], strict=True))
        path = chain(events, n, req.window_ns, req.mode)
        first_step = next((i_list[j] for j in range(start, end) if k_list[j] == 0), i_list[start])
        out[key] = (path, first_step)
        start = end
    return out


def _entries(
    per_user: dict[tuple[int, int], tuple[list[int], int]],
    active: np.ndarray | None,
    frame: Frame,
    req: FunnelRequest,
) -> list[dict[str, Any]]:
    n = len(req.steps)
    labels = req.buckets.labels()
    group_of: dict[tuple[int, int], tuple[Any, ...]] = {}
    if req.breakdown:
        for key, (_, row) in per_user.items():
            group_of[key] = tuple(
                frame.values[d].keys[int(frame.groups[d][row])] for d in range(len(req.breakdown))
            )
    # Users who were active but passed no step (kept apart when the scan did not keep their rows).
    if active is not None:
        for pair in active.tolist():
            key = (pair >> 32, pair & 0xFFFFFFFF)
            per_user.setdefault(key, ([], -1))
    groups: list[tuple[Any, ...] | None] = [None]
    if req.breakdown:
        reached: dict[tuple[Any, ...], int] = {}
        for key, (path, _) in per_user.items():
            if path:
                reached[group_of[key]] = reached.get(group_of[key], 0) + 1
        ranked = sorted(reached, key=lambda g: (-reached[g], [_rank(v) for v in g]))
        top = ranked[: req.breakdown_limit]
        keep = set(top)
        for key in per_user:
            if group_of.get(key) not in keep:
                group_of[key] = (OTHER,)
        groups = [*top, *([(OTHER,)] if any(g == (OTHER,) for g in group_of.values()) else [])]
    by_cell: dict[tuple[int, tuple[Any, ...] | None], list[list[int]]] = {}
    for key, (path, _) in per_user.items():
        by_cell.setdefault((key[0], group_of.get(key)), []).append(path)
    out = []
    for i, label in enumerate(labels):
        for group in groups:
            entry: dict[str, Any] = {"t": label}
            if group is not None:
                entry["breakdown"] = {
                    name: (OTHER if group == (OTHER,) else display(group[d]))
                    for d, name in enumerate(req.breakdown)
                }
            entry.update(_summary(by_cell.get((i, group), []), n, req.steps))
            out.append(entry)
    return out


def _rank(key: tuple[str, Any] | None) -> tuple[int, Any]:
    return (0, 0) if key is None else ({"b": 1, "n": 2, "s": 3}[key[0]], key[1])


def _summary(paths: list[list[int]], n: int, steps: list[Step]) -> dict[str, Any]:
    levels = [0] * (n + 1)
    for path in paths:
        levels[len(path)] += 1
    reached = [sum(levels[k:]) for k in range(1, n + 1)]
    out_steps = []
    for k, step in enumerate(steps):
        users = reached[k]
        seconds = [(p[k] - p[0]) / 10**9 for p in paths if len(p) > k] if k else []
        previous = reached[k - 1] if k else users
        out_steps.append(
            {
                "event": step.event,
                "users": users,
                "conversion_from_previous": users / previous if previous else None,
                "conversion_from_first": users / reached[0] if reached[0] else None,
                "median_seconds": float(np.percentile(seconds, 50)) if seconds else None,
                "avg_seconds": sum(seconds) / len(seconds) if seconds else None,
            }
        )
    return {"levels": [{"level": k, "users": u} for k, u in enumerate(levels)], "steps": out_steps}
