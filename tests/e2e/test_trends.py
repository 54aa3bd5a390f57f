"""``POST /api/events/trends`` against a brute-force computation over the raw events, in plain Python.

The data crosses the Europe/Warsaw DST change of 2026-10-25 (a 25-hour day), has empty days, users
active across window edges, events at identical timestamps, events without a user, a property
that is a number in some events and text in others, and late events sent after a first query.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.query.analytics.filters import parse_filters
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import Sidecar, http_request

UTC = dt.UTC
FROM = dt.datetime(2026, 10, 20, tzinfo=UTC)
TO = dt.datetime(2026, 11, 10, tzinfo=UTC)
NAMES = ["view", "view", "view", "click", "click", "pay", "start_task", "finish_task"]
SCREENS = ["main", "main", "cart", "settings", 7, None]


def ns(when: dt.datetime) -> int:
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def generate(seed: int, count: int, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    span = ns(end) - ns(start)
    events: list[dict[str, Any]] = []
    for i in range(count):
        t = ns(start) + rnd.randrange(span)
        if rnd.random() < 0.05 and events:
            t = events[-1]["ts_ns"]  # identical timestamps
        if (
            dt.datetime(2026, 10, 30, tzinfo=UTC)
            <= dt.datetime.fromtimestamp(t / 1e9, UTC)
            < dt.datetime(2026, 11, 1, tzinfo=UTC)
        ):
            continue  # two silent days
        name = rnd.choice(NAMES)
        props: dict[str, Any] = {}
        screen = rnd.choice(SCREENS)
        if screen is not None:
            props["screen"] = screen
        if name == "pay":
            props["amount"] = (
                round(math.exp(rnd.gauss(3, 1)), 2) if rnd.random() < 0.9 else rnd.randrange(1, 50)
            )
        event = {"name": name, "ts_ns": t, "id": f"{seed}-{i}", "properties": props}
        if rnd.random() < 0.93:
            event["user_id"] = f"u{int(rnd.paretovariate(1.2)) % 60}"
        events.append(event)
    return events


def post(sc: Sidecar, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 400):
        lines = []
        for e in events[start : start + 400]:
            body = {"name": e["name"], "timestamp": e["ts_ns"] / 1e9, "id": e["id"], **e["properties"]}
            if "user_id" in e:
                body["user_id"] = e["user_id"]
            lines.append(json.dumps(body))
        status, _, answer = http_request(
            "POST",
            f"{sc.http_url}/v1/events",
            "\n".join(lines).encode(),
            {"Content-Type": "application/x-ndjson"},
        )
        assert status == 200 and json.loads(answer)["rejected"] == 0, answer


def trends(sc: Sidecar, body: dict[str, Any], fmt: str | None = None) -> tuple[int, Any]:
    url = f"{sc.api_url}/api/events/trends" + (f"?format={fmt}" if fmt else "")
    status, _, raw = http_request(
        "POST", url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    return status, (raw.decode() if fmt == "csv" else json.loads(raw))


# -- the brute force -------------------------------------------------------------------------
def local_starts(
    interval: str, tz: zoneinfo.ZoneInfo, start: dt.datetime = FROM, end: dt.datetime = TO
) -> list[int]:
    if interval == "total":
        return [ns(start)]
    local = start.astimezone(tz)
    if interval == "hour":
        first = local.replace(minute=0, second=0, microsecond=0)
        return list(range(ns(first), ns(end), 3600 * 10**9))
    day = local.date()
    if interval == "week":
        day -= dt.timedelta(days=day.weekday())
    if interval == "month":
        day = day.replace(day=1)
    starts = []
    while True:
        at = ns(dt.datetime(day.year, day.month, day.day, tzinfo=tz))
        if at >= ns(end):
            return starts
        starts.append(at)
        if interval == "day":
            day += dt.timedelta(days=1)
        elif interval == "week":
            day += dt.timedelta(days=7)
        else:
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    h = (len(ordered) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def value_key(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return int(value) if float(value).is_integer() else float(value)


def sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, float(value))
    return (3, value)


def measure(name: str, rows: list[dict[str, Any]], prop: str | None) -> Any:
    if name == "count":
        return len(rows)
    users = [e["user_id"] for e in rows if "user_id" in e]
    if name == "unique_users":
        return len(set(users))
    if name.startswith("per_user"):
        per = list(Counter(users).values())
        if not per:
            return None
        return sum(per) / len(per) if name == "per_user_avg" else percentile(per, float(name[-2:]))
    values = [
        float(e["properties"][prop])
        for e in rows
        if isinstance(e["properties"].get(prop), int | float) and not isinstance(e["properties"][prop], bool)
    ]
    if not values:
        return None
    if name == "sum":
        return sum(values)
    if name == "avg":
        return sum(values) / len(values)
    if name in ("min", "max"):
        return min(values) if name == "min" else max(values)
    return percentile(values, float(name[1:]))


def field(e: dict[str, Any], name: str) -> Any:
    own = {"event": "name", "user_id": "user_id"}
    return e.get(own[name]) if name in own else e["properties"].get(name)


def brute(events: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    tz = zoneinfo.ZoneInfo(body.get("timezone", "UTC"))
    starts = local_starts(body["interval"], tz)
    bounds = [*starts[1:], ns(TO)]
    out = []
    for s in body["series"]:
        filters = parse_filters(s.get("filters"), "f")
        chosen = [
            e
            for e in events
            if (s.get("event") is None or e["name"] == s["event"])
            and all(f.matches(field(e, f.prop)) for f in filters)
        ]
        inside = [e for e in chosen if ns(FROM) <= e["ts_ns"] < ns(TO)]
        names = body.get("breakdown") or []
        groups: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = [(None, chosen)]
        if names:

            def combo(e: dict[str, Any], names: list[str] = names) -> tuple[Any, ...]:
                return tuple(value_key(field(e, n)) for n in names)

            counts = Counter(combo(e) for e in inside)
            ranked = sorted(counts, key=lambda c: (-counts[c], [sort_key(v) for v in c]))
            top = ranked[: body.get("breakdown_limit", 10)]
            groups = [(dict(zip(names, c, strict=True)), [e for e in chosen if combo(e) == c]) for c in top]
            rest = [e for e in chosen if combo(e) not in top]
            if any(ns(FROM) <= e["ts_ns"] for e in rest):
                groups.append(({n: "$other" for n in names}, rest))
        for breakdown, rows in groups:
            points = []
            for start, end in zip(starts, bounds, strict=True):
                if s["measure"] in ("dau", "wau", "mau"):
                    window = {"dau": 1, "wau": 7, "mau": 30}[s["measure"]]
                    day = dt.datetime.fromtimestamp(start / 1e9, tz).date()
                    active = {
                        e["user_id"]
                        for e in rows
                        if "user_id" in e
                        and e["ts_ns"] < ns(TO)
                        and 0 <= (day - dt.datetime.fromtimestamp(e["ts_ns"] / 1e9, tz).date()).days < window
                    }
                    points.append(len(active))
                else:
                    picked = [e for e in rows if max(start, ns(FROM)) <= e["ts_ns"] < end]
                    points.append(measure(s["measure"], picked, s.get("property")))
            out.append({"breakdown": breakdown, "values": points, "t": starts})
    return out


def same(got: Any, want: Any) -> bool:
    if got is None or want is None:
        return got is want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def check(sc: Sidecar, events: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    body = {"from": FROM.isoformat(), "to": ns(TO) // 10**9, **body}
    status, answer = trends(sc, body)
    assert status == 200, answer
    want = brute(events, body)
    assert len(answer["series"]) == len(want), (body, [s["breakdown"] for s in answer["series"]], want)
    for got, ref in zip(answer["series"], want, strict=True):
        assert got["breakdown"] == ref["breakdown"], body
        assert [p["t"] for p in got["points"]] == [
            dt.datetime.fromtimestamp(t / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in ref["t"]
        ]
        values = [p["value"] for p in got["points"]]
        bad = [
            (i, g, w) for i, (g, w) in enumerate(zip(values, ref["values"], strict=True)) if not same(g, w)
        ]
        assert not bad, (body, got["breakdown"], bad[:5])
    return dict(answer)


MEASURES = ["count", "unique_users", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99"]
MEASURES += ["per_user_avg", "per_user_p50", "per_user_p90", "dau", "wau", "mau"]


@pytest.fixture(scope="module")
def loaded(module_sidecar_factory: SidecarFactory) -> Iterator[tuple[Sidecar, list[dict[str, Any]]]]:
    sc = module_sidecar_factory("trends")
    # Events from well before 'from' feed the rolling measures' first days.
    events = generate(1, 3000, FROM - dt.timedelta(days=35), TO)
    post(sc, events)
    yield sc, events


@pytest.mark.parametrize("tz", ["UTC", "Europe/Warsaw"])
@pytest.mark.parametrize("measure", MEASURES)
def test_every_measure_per_day_matches_the_brute_force(loaded: Any, measure: str, tz: str) -> None:
    sc, events = loaded
    event = "pay" if measure in ("sum", "avg", "min", "max", "p50", "p90", "p95", "p99") else None
    series = {"event": event, "measure": measure, "property": "amount" if event else None}
    check(sc, events, {"series": [series], "interval": "day", "timezone": tz})


@pytest.mark.parametrize("interval", ["hour", "week", "month", "total"])
def test_other_intervals(loaded: Any, interval: str) -> None:
    sc, events = loaded
    series = [
        {"event": "view", "measure": "count"},
        {"measure": "unique_users"},
        {"event": "pay", "measure": "p95", "property": "amount"},
    ]
    check(sc, events, {"series": series, "interval": interval, "timezone": "Europe/Warsaw"})


@pytest.mark.parametrize("measure", ["count", "unique_users", "p50", "wau"])
def test_breakdowns_rank_the_top_and_fold_the_rest(loaded: Any, measure: str) -> None:
    sc, events = loaded
    prop = "amount" if measure == "p50" else None
    for breakdown, limit in ((["screen"], 2), (["screen", "event"], 3), (["user_id"], 5), (["screen"], 100)):
        series = {"measure": measure, "property": prop}
        check(
            sc,
            events,
            {"series": [series], "interval": "day", "breakdown": breakdown, "breakdown_limit": limit},
        )


def test_filters_of_every_op(loaded: Any) -> None:
    sc, events = loaded
    cases = [
        {"property": "screen", "op": "=", "value": "main"},
        {"property": "screen", "op": "!=", "value": "main"},
        {"property": "screen", "op": "in", "value": ["cart", 7]},
        {"property": "screen", "op": "not_in", "value": ["cart", "7"]},
        {"property": "screen", "op": "contains", "value": "a"},
        {"property": "screen", "op": "regex", "value": "^(main|set)"},
        {"property": "amount", "op": ">", "value": 20},
        {"property": "amount", "op": "<=", "value": "10.5"},
        {"property": "screen", "op": "exists"},
        {"property": "screen", "op": "not_exists"},
        {"property": "event", "op": "in", "value": ["pay", "click"]},
        {"property": "user_id", "op": "regex", "value": "^u[0-3]$"},
        {"property": "user_id", "op": "not_exists"},
    ]
    for f in cases:
        check(sc, events, {"series": [{"measure": "count", "filters": [f]}], "interval": "week"})
    both = [cases[0], cases[11]]
    check(sc, events, {"series": [{"measure": "unique_users", "filters": both}], "interval": "day"})


def test_late_events_count_after_a_first_query(loaded: Any) -> None:
    sc, events = loaded
    body = {"series": [{"measure": "count"}, {"measure": "dau"}], "interval": "day"}
    check(sc, events, body)
    late = generate(2, 200, FROM, FROM + dt.timedelta(days=3))
    post(sc, late)
    events.extend(late)
    check(sc, events, body)


def test_csv_has_one_row_per_point(loaded: Any) -> None:
    sc, _ = loaded
    body = {
        "series": [{"event": "pay", "measure": "count"}],
        "interval": "week",
        "from": FROM.isoformat(),
        "to": TO.isoformat(),
        "breakdown": ["screen"],
        "breakdown_limit": 2,
    }
    status, text = trends(sc, body, "csv")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == ["t", "event", "measure", "property", "screen", "value"]
    status, answer = trends(sc, body)
    flat = [(p["t"], s["breakdown"]["screen"], p["value"]) for s in answer["series"] for p in s["points"]]
    assert [(r["t"], r["screen"], int(r["value"])) for r in rows] == [(t, str(v), n) for t, v, n in flat]
    assert text.endswith("\r\n") and "\r\n" in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "series"),
        ({"series": []}, "series"),
        ({"series": [{"measure": "median"}]}, "series[0].measure"),
        ({"series": [{"measure": "sum"}]}, "series[0].property"),
        ({"series": [{"measure": "dau"}], "interval": "week"}, "interval"),
        ({"series": [{"measure": "count"}], "interval": "fortnight"}, "interval"),
        ({"series": [{"measure": "count"}], "timezone": "Mars/Olympus"}, "timezone"),
        ({"series": [{"measure": "count"}], "from": "yesterday"}, "from"),
        ({"series": [{"measure": "count"}], "to": "2026-10-01T00:00:00Z"}, "to"),
        (
            {"series": [{"measure": "count", "filters": [{"property": "a", "op": "~"}]}]},
            "series[0].filters[0].op",
        ),
        (
            {"series": [{"measure": "count", "filters": [{"property": "a", "op": "in", "value": "x"}]}]},
            "series[0].filters[0].value",
        ),
        (
            {"series": [{"measure": "count", "filters": [{"property": "a", "op": ">", "value": "x"}]}]},
            "series[0].filters[0].value",
        ),
        (
            {
                "series": [
                    {"measure": "count", "filters": [{"property": "a", "op": "regex", "value": "(?<=a)"}]}
                ]
            },
            "series[0].filters[0].value",
        ),
        ({"series": [{"measure": "count"}], "breakdown": ["a", "b", "c", "d"]}, "breakdown"),
        ({"series": [{"measure": "count"}], "breakdown_limit": 0}, "breakdown_limit"),
        ({"series": [{"measure": "count"}], "intervall": "day"}, "intervall"),
        (
            {"series": [{"measure": "count"}], "interval": "minute", "from": "2020-01-01T00:00:00Z"},
            "interval",
        ),
    ],
)
def test_bad_requests_name_the_field(loaded: Any, body: dict[str, Any], field: str) -> None:
    sc, _ = loaded
    body = {"from": FROM.isoformat(), "to": TO.isoformat(), "interval": "day", **body}
    status, answer = trends(sc, body)
    assert status == 400, answer
    assert answer["error"]["message"].startswith(f"{field}: "), answer


def test_bodies_that_are_not_json_and_wrong_formats(loaded: Any) -> None:
    sc, _ = loaded
    status, _, raw = http_request(
        "POST", f"{sc.api_url}/api/events/trends", b"{nope", {"Content-Type": "application/json"}
    )
    assert status == 400 and json.loads(raw)["error"]["message"].startswith("body: not JSON")
    status, answer = trends(sc, {"series": [{"measure": "count"}]}, "xml")
    assert "format" in answer["error"]["message"]
    assert status == 400
    status, _, raw = http_request("GET", f"{sc.api_url}/api/events/trends")
    assert status == 405


def test_empty_days_and_an_unknown_event(loaded: Any) -> None:
    sc, events = loaded
    answer = check(
        sc, events, {"series": [{"event": "nobody-sends-this", "measure": "count"}], "interval": "day"}
    )
    assert {p["value"] for p in answer["series"][0]["points"]} == {0}
    answer = check(
        sc,
        events,
        {"series": [{"event": "nobody-sends-this", "measure": "avg", "property": "x"}], "interval": "day"},
    )
    assert {p["value"] for p in answer["series"][0]["points"]} == {None}
    silent = defaultdict(int)
    answer = check(sc, events, {"series": [{"measure": "count"}, {"measure": "wau"}], "interval": "day"})
    for count, wau in zip(answer["series"][0]["points"], answer["series"][1]["points"], strict=True):
        silent[(count["value"] == 0, wau["value"] > 0)] += 1
    assert silent[(True, True)] == 2  # the two silent days: no events, yet WAU from the days before
