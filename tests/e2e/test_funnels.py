"""``POST /api/events/funnels`` against ClickHouse's windowFunnel, transcribed here from its C++ (the
default and ``strict_order`` modes), and a brute force of the unordered mode, per user and bucket.

The data has repeated and out-of-order steps, a start and a finish at the same instant, events of
no step between steps (which stop a strict funnel), users active across bucket edges, and a DST
change inside a month bucket.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.query.analytics.funnels import chain
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import Sidecar, http_request
from tests.e2e.test_trends import local_starts, ns, percentile, post

FROM = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)
TO = dt.datetime(2026, 11, 10, tzinfo=dt.UTC)
HOUR = 3600 * 10**9


def generate(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    events = []
    for u in range(120):
        t = ns(FROM - dt.timedelta(days=2)) + rnd.randrange(20 * 86_400) * 10**9
        for i in range(rnd.randrange(1, 30)):
            name = rnd.choice(["start_task", "finish_task", "view", "pay", "start_task"])
            t += rnd.choice([0, 0, 60, 600, 1800, 3000, 4000, 20_000, 90_000]) * 10**9
            plan = rnd.choice(["pro", "free", "free"])
            events.append(
                {
                    "name": name,
                    "ts_ns": t,
                    "id": f"f{seed}-{u}-{i}",
                    "user_id": f"u{u}",
                    "properties": {"plan": plan},
                }
            )
    return events


# -- the reference: ClickHouse's getEventLevel, followed line by line ---------------------------
def clickhouse_level(
    rows: list[tuple[int, int]], n: int, window: int, strict_order: bool
) -> tuple[int, list[int]]:
    """rows: (timestamp, event) with event 1..n for the condition met, 0 for none (strict only),
    stable-sorted by the pair as ClickHouse does. Returns (level, step times of the first chain
    that reached the level)."""
    rows = sorted(rows)
    ts: list[tuple[int, int] | None] = [None] * n
    path: list[list[int]] = [[] for _ in range(n)]
    first_path_at: dict[int, list[int]] = {}
    first_event = False
    for timestamp, event in rows:
        idx = event - 1
        if strict_order and idx == -1:
            if first_event:
                break
            continue
        if idx == -1:
            continue
        if idx == 0:
            ts[0] = (timestamp, timestamp)
            path[0] = [timestamp]
            first_event = True
        elif strict_order and first_event and ts[idx - 1] is None:
            break
        elif ts[idx - 1] is not None:
            first_ts = ts[idx - 1][0]
            if timestamp <= first_ts + window:
                ts[idx] = (first_ts, timestamp)
                path[idx] = [*path[idx - 1], timestamp]
        for level in range(n, 0, -1):
            if ts[level - 1] is not None:
                first_path_at.setdefault(level, path[level - 1])
                break
        if ts[n - 1] is not None:
            break
    level = max((k + 1 for k in range(n) if ts[k] is not None), default=0)
    return level, first_path_at.get(level, [])


def unordered_level(rows: list[tuple[int, int]], n: int, window: int) -> tuple[int, list[int]]:
    best: list[int] = []
    steps = sorted((t, e) for t, e in rows if e > 0)
    for start, _ in steps:
        inside = [(t, e) for t, e in steps if start <= t <= start + window]
        firsts: dict[int, int] = {}
        for t, e in inside:
            firsts.setdefault(e, t)
        if len(firsts) > len(best):
            best = sorted(firsts.values())
    return len(best), best


def reference(events: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    tz = zoneinfo.ZoneInfo(body.get("timezone", "UTC"))
    starts = (
        local_starts(body.get("interval", "day"), tz, FROM, TO)
        if body.get("interval") != "total"
        else [ns(FROM)]
    )
    bounds = [*starts[1:], ns(TO)]
    steps = body["steps"]
    n = len(steps)
    window = body["window_ns"]
    out = []
    for start, end in zip(starts, bounds, strict=True):
        users: dict[str, list[tuple[int, int]]] = {}
        for e in events:
            if not (max(start, ns(FROM)) <= e["ts_ns"] < end) or "user_id" not in e:
                continue
            hits = [k + 1 for k, s in enumerate(steps) if s["event"] == e["name"]]
            rows = users.setdefault(e["user_id"], [])
            rows.extend((e["ts_ns"], k) for k in hits)
            if not hits:
                rows.append((e["ts_ns"], 0))
        paths = []
        for rows in users.values():
            if body["mode"] == "unordered":
                paths.append(unordered_level(rows, n, window)[1])
            else:
                level, path = clickhouse_level(rows, n, window, body["mode"] == "strict")
                assert len(path) == level
                paths.append(path)
        levels = [sum(1 for p in paths if len(p) == k) for k in range(n + 1)]
        reached = [sum(levels[k:]) for k in range(1, n + 1)]
        step_out = []
        for k in range(n):
            secs = [(p[k] - p[0]) / 1e9 for p in paths if len(p) > k] if k else []
            step_out.append(
                {
                    "users": reached[k],
                    "conversion_from_previous": (reached[k] / (reached[k - 1] if k else reached[k]))
                    if (reached[k - 1] if k else reached[k])
                    else None,
                    "conversion_from_first": reached[k] / reached[0] if reached[0] else None,
                    "median_seconds": percentile(secs, 50) if secs else None,
                    "avg_seconds": sum(secs) / len(secs) if secs else None,
                }
            )
        out.append({"levels": levels, "steps": step_out})
    return out


def funnels(sc: Sidecar, body: dict[str, Any], fmt: str | None = None) -> tuple[int, Any]:
    url = f"{sc.api_url}/api/events/funnels" + (f"?format={fmt}" if fmt else "")
    status, _, raw = http_request(
        "POST", url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    return status, (raw.decode() if fmt == "csv" else json.loads(raw))


def close(a: Any, b: Any) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9))


@pytest.fixture(scope="module")
def loaded(module_sidecar_factory: SidecarFactory) -> Iterator[tuple[Sidecar, list[dict[str, Any]]]]:
    sc = module_sidecar_factory("funnels")
    events = generate(3)
    post(sc, events)
    yield sc, events


@pytest.mark.parametrize("mode", ["ordered", "strict", "unordered"])
@pytest.mark.parametrize(
    ("steps", "interval", "window", "tz"),
    [
        (["start_task", "finish_task"], "day", 3600, "UTC"),
        (["start_task", "finish_task"], "month", 3600, "Europe/Warsaw"),
        (["start_task", "finish_task", "pay"], "week", 7200, "UTC"),
        (["view", "view", "pay"], "total", 86_400, "UTC"),  # a repeated step
        (["finish_task", "start_task"], "week", 5000, "UTC"),  # out of their usual order
    ],
)
def test_levels_and_times_match_clickhouse(
    loaded: Any, mode: str, steps: list[str], interval: str, window: int, tz: str
) -> None:
    sc, events = loaded
    body = {
        "steps": [{"event": s} for s in steps],
        "window": f"{window}s",
        "mode": mode,
        "interval": interval,
        "from": FROM.isoformat(),
        "to": TO.isoformat(),
        "timezone": tz,
    }
    status, answer = funnels(sc, body)
    assert status == 200, answer
    want = reference(events, {**body, "window_ns": window * 10**9})
    assert len(answer["buckets"]) == len(want)
    assert sum(sum(e["levels"]) for e in want) > 0
    for got, ref in zip(answer["buckets"], want, strict=True):
        assert [lv["users"] for lv in got["levels"]] == ref["levels"], (got["t"], body)
        for g, r, name in zip(got["steps"], ref["steps"], steps, strict=True):
            assert g["event"] == name and g["users"] == r["users"]
            for key in ("conversion_from_previous", "conversion_from_first", "median_seconds", "avg_seconds"):
                assert close(g[key], r[key]), (got["t"], key, g, r)


def test_clickhouse_examples() -> None:
    """Cases from ClickHouse's docs and tests, as (time, step) with -1 for an event of no step."""
    w = 10
    assert len(chain([(0, 0), (0, 1)], 2, w, "ordered")) == 2  # same instant: level 2
    assert len(chain([(0, 0), (20, 1)], 2, w, "ordered")) == 1  # outside the window
    assert len(chain([(1, 0), (2, 1), (3, -1), (4, 2)], 3, w, "ordered")) == 3
    assert len(chain([(1, 0), (2, 1), (3, -1), (4, 2)], 3, w, "strict")) == 2  # A->B->D->C
    assert len(chain([(1, 0), (2, 2), (3, 1)], 3, w, "strict")) == 1  # C before B stops it
    assert len(chain([(1, 0), (2, 2), (3, 1)], 3, w, "ordered")) == 2
    # The latest start is the one extended: 0 at 1, 0 at 8, 1 at 15 (within 10 of 8), 2 at 18.
    assert chain([(1, 0), (8, 0), (15, 1), (18, 2)], 3, w, "ordered") == [8, 15, 18]
    assert chain([(1, 0), (8, 0), (15, 1), (19, 2)], 3, w, "ordered") == [8, 15]  # 19 > 8 + 10
    # Times come from the first chain that reached the level, not a later one.
    assert chain([(1, 0), (2, 1), (5, 0), (6, 1)], 2, w, "ordered") == [1, 2]
    assert len(chain([(1, 2), (2, 0), (3, 1)], 3, w, "unordered")) == 3


def test_breakdown_by_plan_adds_up(loaded: Any) -> None:
    sc, _ = loaded
    body = {
        "steps": [{"event": "start_task"}, {"event": "finish_task"}],
        "window": "1h",
        "interval": "week",
        "from": FROM.isoformat(),
        "to": TO.isoformat(),
    }
    _, whole = funnels(sc, body)
    status, split = funnels(sc, {**body, "breakdown": "plan", "breakdown_limit": 1})
    assert status == 200
    for entry in whole["buckets"]:
        parts = [e for e in split["buckets"] if e["t"] == entry["t"]]
        assert {next(iter(p["breakdown"].values())) for p in parts} <= {"free", "pro", "$other"}
        for level in range(3):
            assert sum(p["levels"][level]["users"] for p in parts) == entry["levels"][level]["users"]
    status, text = funnels(sc, {**body, "breakdown": "plan"}, "csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert status == 200 and list(rows[0])[:4] == ["t", "plan", "level", "event"]
    _, full = funnels(sc, {**body, "breakdown": "plan"})
    assert len(rows) == 3 * len(full["buckets"])  # levels 0, 1 and 2 of each entry


def test_filters_on_steps(loaded: Any) -> None:
    sc, events = loaded
    body = {
        "steps": [
            {"event": "start_task", "filters": [{"property": "plan", "op": "=", "value": "pro"}]},
            {"event": "finish_task"},
        ],
        "window": 3600,
        "interval": "total",
        "from": FROM.isoformat(),
        "to": TO.isoformat(),
    }
    status, answer = funnels(sc, body)
    assert status == 200
    pro = [e for e in events if e["name"] != "start_task" or e["properties"]["plan"] == "pro"]
    want = reference(
        pro,
        {
            **body,
            "steps": [{"event": "start_task"}, {"event": "finish_task"}],
            "mode": "ordered",
            "window_ns": HOUR,
        },
    )
    # Non-pro starts still make their users active (level 0), as any event does.
    got = [lv["users"] for lv in answer["buckets"][0]["levels"]]
    assert got[1:] == want[0]["levels"][1:]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": [{"event": "a"}]}, "steps"),
        ({"steps": "a,b"}, "steps"),
        ({"steps": [{"event": "a"}, {"name": "b"}]}, "steps[1].name"),
        ({"steps": [{"event": "a"}, {"event": "b"}], "window": "soon"}, "window"),
        ({"steps": [{"event": "a"}, {"event": "b"}], "window": 0}, "window"),
        ({"steps": [{"event": "a"}, {"event": "b"}], "mode": "loose"}, "mode"),
        (
            {"steps": [{"event": "a", "filters": [{"op": "="}]}, {"event": "b"}]},
            "steps[0].filters[0].property",
        ),
    ],
)
def test_bad_requests_name_the_field(loaded: Any, body: dict[str, Any], field: str) -> None:
    sc, _ = loaded
    status, answer = funnels(sc, {"from": FROM.isoformat(), "to": TO.isoformat(), **body})
    assert status == 400 and answer["error"]["message"].startswith(f"{field}: "), answer
