"""Retention, durations, geo and the summary against brute forces over the raw events."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import Sidecar, http_request
from tests.e2e.test_trends import local_starts, ns, percentile, post

FROM = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
TO = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)


def generate(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    events = []
    lo, hi = ns(FROM - dt.timedelta(days=5)), ns(TO + dt.timedelta(days=1))
    for i in range(2500):
        t = lo + rnd.randrange(hi - lo)
        if t > ns(dt.datetime.now(dt.UTC)):
            continue
        name = rnd.choice(["signup", "login", "login", "upload_started", "transcription_started", "view"])
        props: dict[str, Any] = {}
        if name in ("upload_started", "transcription_started"):
            props["recording_id"] = f"r{rnd.randrange(150)}"
        if rnd.random() < 0.7:
            props["lat"] = round(rnd.uniform(49, 55), 3)
            props["lon"] = round(rnd.uniform(14, 24), 3) if rnd.random() < 0.95 else "east"
        event = {"name": name, "ts_ns": t, "id": f"r{seed}-{i}", "properties": props}
        if rnd.random() < 0.95:
            event["user_id"] = f"u{rnd.randrange(80)}"
        events.append(event)
    return events


def ask(sc: Sidecar, route: str, body: dict[str, Any], fmt: str | None = None) -> tuple[int, Any]:
    url = f"{sc.api_url}/api/events/{route}" + (f"?format={fmt}" if fmt else "")
    status, _, raw = http_request(
        "POST", url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    return status, (raw.decode() if fmt == "csv" else json.loads(raw))


@pytest.fixture(scope="module")
def loaded(module_sidecar_factory: SidecarFactory) -> Iterator[tuple[Sidecar, list[dict[str, Any]]]]:
    sc = module_sidecar_factory("cohorts")
    events = generate(5)
    post(sc, events)
    yield sc, events


def inside(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if ns(FROM) <= e["ts_ns"] < ns(TO)]


@pytest.mark.parametrize(("period", "tz"), [("day", "UTC"), ("week", "Europe/Warsaw"), ("month", "UTC")])
@pytest.mark.parametrize(("start", "back"), [("signup", "login"), ("login", "login")])
def test_retention_matches_the_brute_force(loaded: Any, period: str, tz: str, start: str, back: str) -> None:
    sc, events = loaded
    body = {"start_event": start, "return_event": back, "period": period, "periods": 4}
    body |= {"from": FROM.isoformat(), "to": TO.isoformat(), "timezone": tz}
    status, answer = ask(sc, "retention", body)
    assert status == 200, answer
    starts = local_starts(period, zoneinfo.ZoneInfo(tz), FROM, TO)

    def period_of(t: int) -> int:
        return max(i for i, s in enumerate(starts) if s <= t)

    first: dict[str, int] = {}
    for e in sorted(inside(events), key=lambda e: e["ts_ns"]):
        if e["name"] == start and "user_id" in e:
            first.setdefault(e["user_id"], e["ts_ns"])
    want = [{"size": 0, "returned": [set() for _ in range(4)]} for _ in starts]
    for t in first.values():
        want[period_of(t)]["size"] += 1
    for e in inside(events):
        user = e.get("user_id")
        if e["name"] == back and user in first and e["ts_ns"] >= first[user]:
            k = period_of(e["ts_ns"]) - period_of(first[user])
            if k < 4:
                want[period_of(first[user])]["returned"][k].add(user)
    got = [(c["size"], c["returned"]) for c in answer["cohorts"]]
    assert got == [(w["size"], [len(s) for s in w["returned"]]) for w in want]
    assert sum(c["size"] for c in answer["cohorts"]) > 0


def test_durations_pair_first_start_with_first_end_after_it(loaded: Any) -> None:
    sc, events = loaded
    body = {
        "start_event": "upload_started",
        "end_event": "transcription_started",
        "correlate_by": "recording_id",
    }
    body |= {"interval": "week", "from": FROM.isoformat(), "to": TO.isoformat()}
    status, answer = ask(sc, "durations", body)
    assert status == 200, answer
    rows = sorted(inside(events), key=lambda e: e["ts_ns"])
    first_start: dict[str, int] = {}
    for e in rows:
        if e["name"] == "upload_started":
            first_start.setdefault(e["properties"]["recording_id"], e["ts_ns"])
    pairs = []
    for rec, t in first_start.items():
        end = next(
            (
                e["ts_ns"]
                for e in rows
                if e["name"] == "transcription_started"
                and e["properties"]["recording_id"] == rec
                and e["ts_ns"] >= t
            ),
            None,
        )
        if end is not None:
            pairs.append((t, (end - t) / 1e9))
    seconds = [s for _, s in pairs]
    assert answer["count"] == len(pairs) > 10
    assert math.isclose(answer["avg_seconds"], sum(seconds) / len(seconds))
    for key, q in (("p50_seconds", 50), ("p95_seconds", 95), ("p99_seconds", 99)):
        assert math.isclose(answer[key], percentile(seconds, q))
    starts = local_starts("week", zoneinfo.ZoneInfo("UTC"), FROM, TO)
    per_week = Counter(max(i for i, s in enumerate(starts) if s <= t) for t, _ in pairs)
    assert [p["count"] for p in answer["points"]] == [per_week.get(i, 0) for i in range(len(starts))]
    status, text = ask(sc, "durations", body, "csv")
    assert status == 200 and text.startswith("t,count,avg_seconds,p50_seconds,p95_seconds,p99_seconds\r\n")


def test_geo_cells_by_south_west_corner(loaded: Any) -> None:
    sc, events = loaded
    body = {"event": None, "lat_property": "lat", "lon_property": "lon", "precision": 0.5}
    body |= {"from": FROM.isoformat(), "to": TO.isoformat()}
    status, answer = ask(sc, "geo", body)
    assert status == 200, answer
    cells: dict[tuple[float, float], list[Any]] = {}
    missing = 0
    for e in inside(events):
        lat, lon = e["properties"].get("lat"), e["properties"].get("lon")
        if not isinstance(lat, float) or not isinstance(lon, float):
            missing += 1
            continue
        key = (math.floor(lat / 0.5) * 0.5, math.floor(lon / 0.5) * 0.5)
        cells.setdefault(key, []).append(e.get("user_id"))
    want = {k: (len(v), len({u for u in v if u})) for k, v in cells.items()}
    got = {(c["lat"], c["lon"]): (c["count"], c["unique_users"]) for c in answer["cells"]}
    assert got == want and answer["missing"] == missing > 0


def test_summary_counts_names_and_users(loaded: Any) -> None:
    sc, events = loaded
    query = {"from": FROM.isoformat(), "to": str(ns(TO) // 10**9)}
    status, answer = sc.get_json("/api/events/summary", query)
    assert status == 200, answer
    rows = inside(events)
    assert answer["events"] == dict(sorted(Counter(e["name"] for e in rows).items()))
    assert answer["unique_users"] == len({e["user_id"] for e in rows if "user_id" in e})
    status, raw = sc.get("/api/events/summary", {**query, "format": "csv"})
    lines = raw.decode().split("\r\n")
    assert lines[0] == "name,value" and lines[1] == f"unique_users,{answer['unique_users']}"
    status, answer = sc.get_json("/api/events/summary")  # the last hour: nothing sent then
    assert status == 200 and answer["events"] == {} and answer["unique_users"] == 0
    status, answer = sc.get_json("/api/events/summary", {"from": "soon"})
    assert status == 400 and "'from'" in answer["error"]["message"]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("retention", {"return_event": "b"}, "start_event"),
        ("retention", {"start_event": "a", "return_event": "b", "period": "hour"}, "period"),
        ("retention", {"start_event": "a", "return_event": "b", "periods": 0}, "periods"),
        ("durations", {"start_event": "a", "end_event": "b"}, "correlate_by"),
        ("geo", {"precision": -1}, "precision"),
        ("geo", {"lat_property": 5}, "lat_property"),
    ],
)
def test_bad_requests_name_the_field(loaded: Any, route: str, body: dict[str, Any], field: str) -> None:
    sc, _ = loaded
    status, answer = ask(sc, route, {"from": FROM.isoformat(), "to": TO.isoformat(), **body})
    assert status == 400 and answer["error"]["message"].startswith(f"{field}: "), answer


def test_csv_of_retention_and_geo(loaded: Any) -> None:
    sc, _ = loaded
    body = {"start_event": "signup", "return_event": "login", "period": "week", "periods": 3}
    status, text = ask(sc, "retention", {**body, "from": FROM.isoformat(), "to": TO.isoformat()}, "csv")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert status == 200 and rows[0] == ["t", "size", "period", "returned"]
    assert len(rows) == 1 + 3 * 6  # six weekly cohorts, three periods each
    status, text = ask(sc, "geo", {"from": FROM.isoformat(), "to": TO.isoformat()}, "csv")
    assert status == 200 and text.startswith("lat,lon,count,unique_users\r\n")
