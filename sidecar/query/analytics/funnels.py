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

import dataclasses
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
from sidecar.query.analytics.rollup_reads import DAY_NS, day_aligned
from sidecar.query.analytics.timebuckets import Buckets, rfc3339
from sidecar.storage.rocks.events.rollups import month_end, month_start

MODES = ("ordered", "strict", "unordered")
MAX_STEPS = 32
OTHER = "$other"
_TOP_KEYS = {"steps", "window", "mode", "interval", "from", "to", "timezone", "breakdown", "breakdown_limit"}
_STEP_KEYS = {"event", "filters"}
_NO_TIME = -1
_INT64_MAX = 2**63 - 1
_STEP_BITS = (MAX_STEPS + 1).bit_length()  # a packed row's step + 1, 0..MAX_STEPS


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


def ordered_chains(
    group: np.ndarray, time: np.ndarray, step: np.ndarray, n: int, window: int, dense: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``chain(events, n, window, "ordered")`` for many groups at once, without a loop per event.

    ``group``, ``time`` and ``step`` are int64 arrays of one row per (event, step it passes), sorted
    by (group, time, step); rows of step -1 (no step) are ignored. Returns, per distinct group in
    ascending order, its level (0..n) and an (groups, n) array of the step times of the earliest
    chain that reached that level, -1 past the level. ``dense``: the groups are already 0, 1, 2, ...

    Level by level: a step-k row extends the chain stored at level k-1 by the last row before it
    (in the same group) that stored one there, if it comes at most ``window`` after that chain's
    start; it then stores a chain at level k. Following those links back from a group's first row
    at its top level gives the path. O(rows log rows) for the sorts and searches, plus
    O(groups * n) for the output.
    """
    group = np.asarray(group, dtype=np.int64)
    time = np.asarray(time, dtype=np.int64)
    step = np.asarray(step, dtype=np.int64)
    rows = group.size
    if rows == 0:
        return np.zeros(0, dtype=np.int64), np.full((0, n), _NO_TIME, dtype=np.int64)
    if dense:
        gid = group
    else:
        new = np.empty(rows, dtype=bool)
        new[0] = True
        np.not_equal(group[1:], group[:-1], out=new[1:])
        gid = np.cumsum(new) - 1
    n_groups = int(gid[-1]) + 1
    w = max(min(int(window), _INT64_MAX), -1)  # t - start >= 0, so any window < 0 is as -1
    # Each step's rows in their sorted order: a pass per step for a few steps, else one radix sort.
    if n <= 4:
        of_step = [np.flatnonzero(step == k) for k in range(n)]
    else:
        small = np.where((step >= 0) & (step < n), step, -1).astype(np.int8)
        by_step = np.argsort(small, kind="stable")
        edges = np.searchsorted(small[by_step], np.arange(n + 1, dtype=np.int8))
        of_step = [by_step[edges[k] : edges[k + 1]] for k in range(n)]
    level = np.zeros(n_groups, dtype=np.int64)
    # Per level k: the rows that stored a chain there (ascending), and for k > 0 the index, among
    # level k-1's rows, of the chain each one extended.
    stored: list[np.ndarray] = []
    links: list[np.ndarray] = []
    at = of_step[0]
    start = time[at]
    # A running count, in int32 where rows allow (half the memory traffic).
    before: np.ndarray[Any, np.dtype[np.signedinteger[Any]]] = np.empty(
        rows + 1, dtype=np.int32 if rows < 2**31 else np.int64
    )
    for k in range(n):
        if k:
            rows_k = of_step[k]
            prev = stored[-1]
            # The last row before each, at level k-1: a running count of level k-1's rows (both
            # sorted, so this is searchsorted(prev, rows_k) - 1 without the binary searches).
            before.fill(0)
            before[prev + 1] = 1
            np.cumsum(before, out=before)
            j = before[rows_k] - 1
            jc = np.maximum(j, 0)
            ok = gid[prev][jc] == gid[rows_k]
            ok &= j >= 0
            ok &= time[rows_k] - start[jc] <= w
            at, link = rows_k[ok], j[ok]
            start = start[link]
            links.append(link)
        if at.size == 0:
            break
        stored.append(at)
        level[gid[at]] = k + 1
    path = np.full((n_groups, n), _NO_TIME, dtype=np.int64)
    pointer = np.zeros(n_groups, dtype=np.int64)  # per group: its chain's index among level k's rows
    for k in range(len(stored) - 1, -1, -1):
        g = gid[stored[k]]
        first = np.empty(g.size, dtype=bool)
        first[0] = True
        np.not_equal(g[1:], g[:-1], out=first[1:])
        top = first & (level[g] == k + 1)
        pointer[g[top]] = np.flatnonzero(top)
        here = np.flatnonzero(level > k)
        path[here, k] = time[stored[k][pointer[here]]]
        if k:
            pointer[here] = links[k - 1][pointer[here]]
    return level, path


# -- the whole question -------------------------------------------------------------------------
def run_funnel(source: Source, req: FunnelRequest, use_rollups: bool = True) -> dict[str, Any]:
    """The answer; the rows come from the rollups when they can (see ``_rollup_frame``), else from
    a scan of the column blocks."""
    buckets = req.buckets
    n = len(req.steps)
    keep_all = req.mode == "strict" or bool(req.breakdown)
    found = _rollup_groups(source, req) if use_rollups else None
    if found is not None:
        groups, active = found
        entries = _bucket_entries(groups, active, req)
    else:
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
        groups = _groups(frame, bucket, n, req)
        if req.breakdown:
            entries = _entries(_per_user(groups), frame.active, frame, req)
        else:
            # The users with step events, and those without (strict: in the groups already).
            rest = frame.active if frame.active is not None and not keep_all else np.zeros(0, dtype=np.int64)
            pairs = np.unique(np.concatenate([groups.pairs, rest]))
            entries = _bucket_entries(groups, np.bincount(pairs >> 32, minlength=len(buckets)), req)
    return {
        "interval": buckets.interval,
        "timezone": buckets.timezone,
        "from": rfc3339(buckets.from_ns),
        "to": rfc3339(buckets.to_ns),
        "mode": req.mode,
        "window_seconds": req.window_ns / 10**9,
        "buckets": entries,
    }


def _rollup_groups(source: Source, req: FunnelRequest) -> tuple[Groups, np.ndarray] | None:
    """The chains from the rollups' per-day (user, time) rows of each step's event, and how many
    users were active in each bucket from the user sets: for ordered and unordered funnels without
    step filters or breakdown whose buckets are whole UTC days. None otherwise (then scan): a
    strict funnel needs every event of its users, which only the scan has.
    """
    buckets = req.buckets
    if (
        req.mode == "strict"
        or req.breakdown
        or any(s.filters or s.event is None for s in req.steps)
        or not day_aligned(buckets)
    ):
        return None
    days = range(buckets.from_ns // DAY_NS, buckets.to_ns // DAY_NS)
    if not days:
        return None
    of_day = buckets.index(np.array([d * DAY_NS for d in days], dtype=np.int64)).tolist()
    steps_of: dict[int, list[int]] = {}  # event code -> the steps it passes
    for k, step in enumerate(req.steps):
        assert step.event is not None
        code = source.code("n", step.event)
        if code is not None:
            steps_of.setdefault(code, []).append(k)
    groups = _day_groups(source, req, steps_of, days, of_day)
    return None if groups is None else (groups, _active_users(source, buckets, days, of_day))


def _day_groups(
    source: Source, req: FunnelRequest, steps_of: dict[int, list[int]], days: range, of_day: list[int]
) -> Groups | None:
    """The groups from the rows of ``days`` (in buckets ``of_day``): each row becomes one int64 key,
    (user, bucket, time, step) packed so that one unstable sort (several times faster than sorting
    rows by an index) orders them as the chains need. None when the key would not fit 63 bits."""
    first_day, first_bucket = days[0], of_day[0]
    bucket_of_day = np.array(of_day, dtype=np.int64) - first_bucket
    reads = [(source.rollups.rows(days.start, days.stop, code), ks) for code, ks in steps_of.items()]
    # An event named in several steps takes part as each.
    times = np.concatenate([np.zeros(0, dtype=np.int64), *(t for (_, t, _), ks in reads for _ in ks)])
    times -= first_day * DAY_NS
    unit, time_bits = _in_common_unit(times)
    step_bits = _STEP_BITS
    bucket_bits = int(bucket_of_day[-1]).bit_length()
    user_bits = max((int(u.max(initial=0)).bit_length() for (u, _, _), _ in reads), default=0)
    if user_bits + bucket_bits + time_bits + step_bits > 63:
        return None
    at_time, at_bucket = step_bits, step_bits + time_bits
    at_user = at_bucket + bucket_bits
    key = np.concatenate([np.zeros(0, dtype=np.int64), *(u for (u, _, _), ks in reads for _ in ks)])
    key <<= at_user
    times <<= at_time
    key |= times
    key |= np.concatenate(
        [
            np.zeros(0, dtype=np.int64),
            *(
                np.repeat(bucket_of_day << at_bucket | (k + 1), per_day)
                for (_, _, per_day), ks in reads
                for k in ks
            ),
        ]
    )
    key.sort()
    time = key >> at_time
    time &= (1 << time_bits) - 1
    time *= unit
    time += first_day * DAY_NS
    steps = key & ((1 << step_bits) - 1)
    steps -= 1
    groups = _chain_groups(key >> at_bucket, time, steps, None, len(req.steps), req)
    # Each group's key was user << bucket_bits | bucket (from the first bucket): as frame pairs.
    bucket = (groups.pairs & ((1 << bucket_bits) - 1)) + first_bucket
    return dataclasses.replace(groups, pairs=bucket << 32 | groups.pairs >> bucket_bits)


def _active_users(source: Source, buckets: Buckets, days: range, of_day: list[int]) -> np.ndarray:
    """Per bucket, the users with any event: a UTC month's user set where a bucket is one,
    else its days' user sets marked on one bitmap (no sort, no unique)."""
    active = np.zeros(len(buckets), dtype=np.int64)
    for b in range(len(buckets)):
        mine = [d for d, at in zip(days, of_day, strict=True) if at == b]
        whole = source.rollups.month_users(mine[0]) if mine and _is_utc_month(mine) else None
        if whole is not None:
            active[b] = whole.size
            continue
        sets = [source.rollups.day_users(d, 0) for d in mine]
        top = max((int(u.max()) for u in sets if u.size), default=0)
        mark = np.zeros(top + 1, dtype=bool)
        for who in sets:
            mark[who] = True
        active[b] = int(mark.sum())
    return active


def _is_utc_month(days: list[int]) -> bool:
    """Whether consecutive UTC ``days`` are exactly one calendar month, as the month user sets
    are keyed (the writer's own month arithmetic)."""
    return month_start(np.array(days[:1]))[0] == days[0] and month_end(days[0]) == days[0] + len(days)


@dataclass(frozen=True, slots=True)
class Groups:
    """One row per (bucket, user) with a step event: its ``pair`` (bucket << 32 | user), ``level``,
    the step times of its earliest chain at that level (``paths``, -1 past the level) and the
    frame row of its breakdown event."""

    pairs: np.ndarray
    level: np.ndarray
    paths: np.ndarray
    first_step: np.ndarray


def _groups(frame: Frame, bucket: np.ndarray, n: int, req: FunnelRequest) -> Groups:
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
    # Without a breakdown, rows equal in (user, time, step) are interchangeable: any order will do.
    order = _by_user_time_step(user, time, step, stable=bool(req.breakdown))
    index = index[order]
    pair = bucket[index].astype(np.int64) << 32 | user[order]  # as frame.active
    return _chain_groups(pair, time[order], step[order], index, n, req)


def _chain_groups(
    pair: np.ndarray, time: np.ndarray, step: np.ndarray, rows: np.ndarray | None, n: int, req: FunnelRequest
) -> Groups:
    """Groups from rows sorted by (user, time, step), whose ``pair`` is bucket << 32 | user (or
    any other key of (bucket, user) that rises with them); ``rows`` are their frame rows (None: no
    breakdown to find them for)."""
    total = pair.size
    if not total:
        empty = np.zeros(0, dtype=np.int64)
        return Groups(empty, empty, np.zeros((0, n), dtype=np.int64), empty)
    new = np.empty(total, dtype=bool)
    new[0] = True
    np.not_equal(pair[1:], pair[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    gid = np.cumsum(new) - 1
    first_step = np.zeros(0, dtype=np.int64)
    if rows is not None:  # the row of each user's first step-1 event, else of their first event
        first_step = rows[starts]
        zero = np.flatnonzero(step == 0)
        gz = gid[zero]
        lead = np.ones(zero.size, dtype=bool)
        lead[1:] = gz[1:] != gz[:-1]
        first_step[gz[lead]] = rows[zero[lead]]
    if req.mode == "ordered":
        level, paths = ordered_chains(gid, time, step, n, req.window_ns, dense=True)
    else:
        ends = [*starts[1:].tolist(), total]
        t_list, k_list = time.tolist(), step.tolist()
        found = [
            chain(list(zip(t_list[s:e], k_list[s:e], strict=True)), n, req.window_ns, req.mode)
            for s, e in zip(starts.tolist(), ends, strict=True)
        ]
        level = np.array([len(p) for p in found], dtype=np.int64)
        paths = np.array([[*p, *([-1] * (n - len(p)))] for p in found], dtype=np.int64).reshape(-1, n)
    return Groups(pair[starts], level, paths, first_step)


def _by_user_time_step(user: np.ndarray, time: np.ndarray, step: np.ndarray, stable: bool) -> np.ndarray:
    """The order of ``np.lexsort((step, time, user))`` from one sort of a packed int64 key when
    user, time (in the largest unit that divides every time difference, so whole milliseconds
    pack in 34 bits over 180 days) and step fit 63 bits; an unstable sort of such keys is several
    times faster than the lexsort. Sorting by user then time keeps each (bucket, user) together,
    since buckets follow time."""
    if not time.size:
        return np.zeros(0, dtype=np.int64)
    rel = time - int(time.min())
    _, time_bits = _in_common_unit(rel)
    user_bits = int(user.max()).bit_length()
    if user_bits + time_bits + _STEP_BITS > 63 or int(user.min()) < 0:
        return np.lexsort((step, time, user))
    key = user << (time_bits + _STEP_BITS) | rel << _STEP_BITS | (step + 1)
    return np.argsort(key, kind="stable" if stable else "quicksort")


def _in_common_unit(rel: np.ndarray) -> tuple[int, int]:
    """Divide ``rel`` (times from a start, >= 0; changed in place) by the largest unit that divides
    them all, so whole milliseconds pack in 34 bits over 180 days; returns (unit, bits needed)."""
    unit = max(int(np.gcd.reduce(rel)), 1) if rel.size else 1
    if unit > 1:
        rel //= unit
    return unit, int(rel.max(initial=0)).bit_length()


def _per_user(groups: Groups) -> dict[tuple[int, int], tuple[list[int], int]]:
    """(bucket, user) -> (chain step times, row of the user's breakdown event), for breakdowns."""
    pairs = groups.pairs
    keys = zip((pairs >> 32).tolist(), (pairs & 0xFFFFFFFF).tolist(), strict=True)
    paths = [row[:lv] for row, lv in zip(groups.paths.tolist(), groups.level.tolist(), strict=True)]
    return dict(zip(keys, zip(paths, groups.first_step.tolist(), strict=True), strict=True))


def _bucket_entries(groups: Groups, active: np.ndarray, req: FunnelRequest) -> list[dict[str, Any]]:
    """The answer's entries without a breakdown, from arrays: per bucket, users per level (level
    0: active users who reached no step) and per step the users, conversions and seconds."""
    n, labels = len(req.steps), req.buckets.labels()
    size = len(labels)
    bucket = groups.pairs >> 32
    counts = np.bincount(bucket * (n + 1) + groups.level, minlength=size * (n + 1)).reshape(size, n + 1)
    counts[:, 0] = active - counts[:, 1:].sum(axis=1)
    reached = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:]  # users at level >= k + 1
    seconds: list[list[tuple[float | None, float | None]]] = [[(None, None)] * size]
    for k in range(1, n):
        chosen = groups.level > k
        b, sec = bucket[chosen], (groups.paths[chosen, k] - groups.paths[chosen, 0]) / 1e9
        order = np.argsort(b.astype(np.uint16) if size <= 1 << 16 else b, kind="stable")  # radix
        b, sec = b[order], sec[order]
        edges = np.searchsorted(b, np.arange(size + 1))
        per: list[tuple[float | None, float | None]] = []
        for i in range(size):
            part = sec[edges[i] : edges[i + 1]]
            per.append((float(np.percentile(part, 50)), float(part.mean())) if part.size else (None, None))
        seconds.append(per)
    out = []
    for i, label in enumerate(labels):
        steps = []
        for k, step in enumerate(req.steps):
            users = int(reached[i, k])
            previous = int(reached[i, k - 1]) if k else users
            median, average = seconds[k][i]
            steps.append(
                {
                    "event": step.event,
                    "users": users,
                    "conversion_from_previous": users / previous if previous else None,
                    "conversion_from_first": users / int(reached[i, 0]) if reached[i, 0] else None,
                    "median_seconds": median,
                    "avg_seconds": average,
                }
            )
        levels = [{"level": k, "users": int(u)} for k, u in enumerate(counts[i])]
        out.append({"t": label, "levels": levels, "steps": steps})
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
