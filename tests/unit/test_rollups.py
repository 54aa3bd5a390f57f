"""Rollups answer exactly what a scan of the column blocks answers, on a real store: counts per
hour in any whole-hour zone, distinct users, DAU/WAU/MAU and value measures per UTC day, after
deltas were merged (more writes than MAX_DELTAS per day) and after late events."""

from __future__ import annotations

import datetime as dt
import gc
import math
import random
import zoneinfo
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from sidecar.cli.main import main
from sidecar.ingest.events import Event
from sidecar.query.analytics.durations import _user_rows, parse_durations, run_durations
from sidecar.query.analytics.funnels import _rollup_groups, parse_funnel, run_funnel
from sidecar.query.analytics.retention import parse_retention, run_retention
from sidecar.query.analytics.rollup_reads import RollupReads
from sidecar.query.analytics.trends import parse_trends, run_trends
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.events import rollups
from sidecar.storage.rocks.events.columns import EventColumns
from sidecar.storage.rocks.events.merge import EventBatch
from sidecar.storage.rocks.events.rebuild import rebuild
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.events.writer import EventWriter
from sidecar.storage.rocks.partitions import EVENTS
from sidecar.storage.rocks.write_queue import WriteQueue

DAY0 = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)  # Europe/Warsaw changes to summer time on 3-29


def ns(days: float) -> int:
    return int((DAY0 + dt.timedelta(days=days)).timestamp() * 1e9)


@pytest.fixture(scope="module")
def columns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventColumns]:
    store = RocksStore(str(tmp_path_factory.mktemp("rollups") / "db"), StoreOptions())
    registry = EventRegistry(store.db)
    queue = WriteQueue(store)
    writer = EventWriter(queue, registry, 100_000, 1_000_000)
    queue.start()
    rnd = random.Random(4)
    batches = []
    for b in range(40):  # more writes per day than MAX_DELTAS: deltas get merged
        events = []
        for i in range(150):
            day = rnd.uniform(0, 20) if b < 36 else rnd.uniform(0, 2)  # the last writes are late
            name = rnd.choice(["view", "view", "click", "pay"])
            props: dict[str, Any] = {"amount": round(rnd.lognormvariate(3, 1), 2)} if name == "pay" else {}
            user = f"u{rnd.randrange(300)}" if rnd.random() < 0.9 else None
            events.append(Event(name, ns(day), user, None, None, f"{b}-{i}", props))
        batches.append(events)
    for events in batches:
        writer.submit(EventBatch(events)).result(10)
    yield EventColumns(store, registry)
    queue.close()
    del writer, queue
    gc.collect()
    store.close()


def ask(columns: EventColumns, body: dict[str, Any], use_rollups: bool) -> dict[str, Any]:
    return run_trends(columns, parse_trends(body), use_rollups=use_rollups)


def same(a: Any, b: Any) -> bool:
    """Equal, floats up to summation order (the rollups add a day's values in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


@pytest.mark.parametrize(
    ("measure", "event", "prop"),
    [
        ("count", None, None),
        ("count", "pay", None),
        ("unique_users", None, None),
        ("unique_users", "view", None),
        ("dau", None, None),
        ("wau", "click", None),
        ("mau", None, None),
        ("sum", "pay", "amount"),
        ("p95", "pay", "amount"),
        ("min", "pay", "amount"),
        ("avg", "nobody", "amount"),
    ],
)
@pytest.mark.parametrize("interval", ["day", "week", "month", "total"])
def test_rollups_answer_as_the_scan_does(
    columns: EventColumns, measure: str, event: Any, prop: Any, interval: str
) -> None:
    if measure in ("dau", "wau", "mau") and interval != "day":
        return
    body = {
        "series": [{"event": event, "measure": measure, "property": prop}],
        "interval": interval,
        "from": DAY0.isoformat(),
        "to": (DAY0 + dt.timedelta(days=21)).isoformat(),
    }
    req = parse_trends(body)
    reads = RollupReads(columns.rollups, lambda name: columns.code("n", name))
    assert reads.values(measure, event, prop, req.buckets) is not None  # the rollups answered
    assert same(ask(columns, body, True), ask(columns, body, False))


def test_hourly_counts_in_a_whole_hour_zone_and_a_half_hour_zone(columns: EventColumns) -> None:
    for tz, from_rollups in (("Europe/Warsaw", True), ("Asia/Kolkata", False)):
        body = {
            "series": [{"measure": "count"}, {"event": "view", "measure": "count"}],
            "interval": "day",
            "timezone": tz,
            "from": "2026-03-19T23:00:00Z",
            "to": "2026-04-08T22:00:00Z",
        }
        req = parse_trends(body)
        reads = RollupReads(columns.rollups, lambda name: columns.code("n", name))
        assert (reads.values("count", None, None, req.buckets) is not None) is from_rollups
        assert same(ask(columns, body, True), ask(columns, body, False))


def test_deltas_were_merged_and_users_stored_once_per_day(columns: EventColumns) -> None:
    store = columns._store  # a look inside the layout
    part = store.partition(ns(1) // rollups.DAY_NS, rollups.EVENTS)
    assert part is not None
    day = ns(1) // rollups.DAY_NS
    deltas = list(part.items(rollups.USERS + day.to_bytes(4, "big") + (0).to_bytes(4, "big")))
    assert 1 <= len(deltas) <= rollups.MAX_DELTAS
    users = columns.rollups.day_users(day, 0)
    assert len(set(users.tolist())) == users.size  # each user once


@pytest.mark.parametrize("period", ["day", "week"])
def test_retention_from_rollups_is_the_scans(columns: EventColumns, period: str) -> None:
    body = {
        "start_event": "view",
        "return_event": "pay",
        "period": period,
        "periods": 4,
        "from": DAY0.isoformat(),
        "to": (DAY0 + dt.timedelta(days=21)).isoformat(),
    }
    req = parse_retention(body)
    fast, slow = run_retention(columns, req, use_rollups=True), run_retention(columns, req, use_rollups=False)
    assert fast == slow and sum(c["size"] for c in fast["cohorts"]) > 0


def test_rebuild_recomputes_what_the_writer_kept(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Rollups dropped and rebuilt from the column blocks answer as before; the CLI refuses a data
    directory a server holds, and says how many events it rolled up."""
    path = tmp_path / "db"
    store = RocksStore(str(path), StoreOptions())
    registry = EventRegistry(store.db)
    queue = WriteQueue(store)
    writer = EventWriter(queue, registry, 100_000, 1_000_000)
    queue.start()
    rnd = random.Random(9)
    for b in range(20):
        events = [
            Event(
                rnd.choice(["a", "b"]),
                ns(rnd.uniform(0, 5)),
                f"u{rnd.randrange(40)}",
                None,
                None,
                f"{b}-{i}",
                {"n": rnd.randrange(100)} if rnd.random() < 0.5 else {"n": "text"},
            )
            for i in range(50)
        ]
        writer.submit(EventBatch(events)).result(10)
    body = {
        "series": [
            {"measure": "count"},
            {"event": "a", "measure": "dau"},
            {"event": "b", "measure": "p90", "property": "n"},
        ],
        "interval": "day",
        "from": DAY0.isoformat(),
        "to": (DAY0 + dt.timedelta(days=6)).isoformat(),
    }
    before = ask(EventColumns(store, registry), body, True)
    assert main(["events", "rebuild-rollups", "--data-dir", str(path)]) == 1  # the store is open
    assert "stop the server first" in capsys.readouterr().err
    queue.close()
    del writer, queue
    gc.collect()
    store.close()
    assert main(["events", "rebuild-rollups", "--data-dir", str(path)]) == 0
    assert "rollups rebuilt from 1,000 events" in capsys.readouterr().out
    store = RocksStore(str(path), StoreOptions())
    try:
        registry = EventRegistry(store.db)
        assert same(ask(EventColumns(store, registry), body, True), before)
        assert same(ask(EventColumns(store, registry), body, False), before)
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["ordered", "unordered"])
@pytest.mark.parametrize("interval", ["day", "week", "total", "month"])
def test_funnels_from_rollups_are_the_scans(columns: EventColumns, mode: str, interval: str) -> None:
    """Month buckets run from March 1 to May 1: whole UTC months, whose active users come from the
    month user sets."""
    whole_months = interval == "month"
    body = {
        "steps": [{"event": "view"}, {"event": "click"}, {"event": "view"}, {"event": "pay"}],
        "window": "3d",
        "mode": mode,
        "interval": interval,
        "from": "2026-03-01T00:00:00Z" if whole_months else DAY0.isoformat(),
        "to": "2026-05-01T00:00:00Z" if whole_months else (DAY0 + dt.timedelta(days=21)).isoformat(),
    }
    req = parse_funnel(body)
    assert _rollup_groups(columns, req) is not None
    fast, slow = run_funnel(columns, req, use_rollups=True), run_funnel(columns, req, use_rollups=False)
    assert same(fast, slow)
    assert any(lv["users"] for entry in fast["buckets"] for lv in entry["levels"][2:])


@pytest.mark.parametrize("interval", ["day", "week", "total"])
@pytest.mark.parametrize(
    ("start", "end"), [("view", "pay"), ("click", "view"), ("view", "view"), ("pay", "nobody")]
)
def test_durations_by_user_from_rollups_are_the_scans(
    columns: EventColumns, interval: str, start: str, end: str
) -> None:
    body = {
        "start_event": start,
        "end_event": end,
        "correlate_by": "user_id",
        "interval": interval,
        "from": DAY0.isoformat(),
        "to": (DAY0 + dt.timedelta(days=21)).isoformat(),
    }
    req = parse_durations(body)
    assert _user_rows(columns, req) is not None  # the rollups answered
    fast, slow = run_durations(columns, req), run_durations(columns, req, use_rollups=False)
    assert same(fast, slow)
    assert (fast["count"] > 0) == (end != "nobody")


def test_month_user_sets_are_the_union_of_their_days(columns: EventColumns) -> None:
    for month, end in ((ns(-19), ns(12)), (ns(12), ns(42))):  # March, April
        first, last = month // rollups.DAY_NS, end // rollups.DAY_NS
        whole = columns.rollups.month_users(first)
        assert whole is not None and whole.size == np.unique(whole).size
        days = [columns.rollups.day_users(d, 0) for d in range(first, last)]
        assert set(whole.tolist()) == set(np.concatenate(days).tolist())


def test_month_sets_seeded_from_day_sets_written_before_them(tmp_path: Any) -> None:
    """A month whose earlier events were rolled up before month sets existed: read as the union of
    its days until the next write, whose month delta carries the days' users too."""
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    registry = EventRegistry(store.db)
    queue = WriteQueue(store)
    writer = EventWriter(queue, registry, 100_000, 1_000_000)
    queue.start()
    reads = rollups.Rollups(store)
    month = ns(-19) // rollups.DAY_NS  # March 1

    def send(writer: EventWriter, users: list[str], day: float) -> None:
        events = [Event("view", ns(day), u, None, None, f"{u}-{day}", {}) for u in users]
        writer.submit(EventBatch(events)).result(10)

    try:
        send(writer, ["a", "b"], 0)
        send(writer, ["c"], 1)
        for part in store.partitions(EVENTS):  # as an older version left them: no RU keys
            for key, _ in list(part.items(rollups.MONTH_USERS)):
                part.data.delete(key)
        assert reads.month_users(month) is None
        queue.close()
        queue = WriteQueue(store)  # a restarted writer, whose caches know nothing
        writer = EventWriter(queue, registry, 100_000, 1_000_000)
        queue.start()
        send(writer, ["d", "a"], 2)
        whole = reads.month_users(month)
        codes = [EventColumns(store, registry).code("u", u) for u in "abcd"]
        assert whole is not None and sorted(whole.tolist()) == sorted(c for c in codes if c is not None)
        assert None not in codes
    finally:
        queue.close()
        del writer, queue
        gc.collect()
        store.close()


def test_a_late_event_changes_a_funnel_whose_rows_were_cached(tmp_path: Any) -> None:
    """The parsed rows a funnel read are cached; an event that lands later in one of those days
    is in the next answer, which stays the scan's."""
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    registry = EventRegistry(store.db)
    queue = WriteQueue(store)
    writer = EventWriter(queue, registry, 100_000, 1_000_000)
    queue.start()
    body = {
        "steps": [{"event": "start"}, {"event": "finish"}],
        "window": "1h",
        "interval": "day",
        "from": DAY0.isoformat(),
        "to": (DAY0 + dt.timedelta(days=3)).isoformat(),
    }
    try:
        first = [Event("start", ns(1 + i / 1000), f"u{i}", None, None, f"s{i}", {}) for i in range(5)]
        first.append(Event("finish", ns(1) + 10**9, "u0", None, None, "f0", {}))
        writer.submit(EventBatch(first)).result(10)
        columns = EventColumns(store, registry)
        req = parse_funnel(body)
        before = run_funnel(columns, req)
        assert run_funnel(columns, req) == before  # the second read is the cached one
        late = [Event("finish", ns(1 + 2 / 1000) + 10**9, "u2", None, None, "late", {})]
        writer.submit(EventBatch(late)).result(10)
        after = run_funnel(columns, req)
        assert after != before and same(after, run_funnel(columns, req, use_rollups=False))
        assert [lv["users"] for lv in before["buckets"][1]["levels"]] == [0, 4, 1]
        assert [lv["users"] for lv in after["buckets"][1]["levels"]] == [0, 3, 2]
    finally:
        queue.close()
        del writer, queue
        gc.collect()
        store.close()


def test_rows_cache_keeps_nothing_read_across_a_write() -> None:
    cache = rollups.RowsCache(max_rows=10)
    rows = np.arange(4, dtype=np.int64)
    seen = cache.generation((1, 2))
    cache.changed((1, 2))  # a write landed while the rows were read
    cache.put((1, 2), seen, rows, rows)
    assert cache.get((1, 2)) is None
    cache.put((1, 2), cache.generation((1, 2)), rows, rows)
    assert cache.get((1, 2)) is not None
    for day in range(3, 6):  # 12 rows more: the least recently used go
        cache.put((day, 2), 0, rows.copy(), rows.copy())
    assert cache.get((1, 2)) is None and cache.get((5, 2)) is not None


@pytest.mark.parametrize(("event", "limit"), [(None, 10), (None, 2), ("pay", 10), ("nobody", 10)])
def test_counts_by_event_name_from_rollups_are_the_scans(
    columns: EventColumns, event: Any, limit: int
) -> None:
    body = {
        "series": [{"event": event, "measure": "count"}],
        "interval": "day",
        "breakdown": ["event"],
        "breakdown_limit": limit,
        "from": DAY0.isoformat(),
        "to": (DAY0 + dt.timedelta(days=21)).isoformat(),
    }
    assert same(ask(columns, body, True), ask(columns, body, False))


def test_configured_dimensions_answer_breakdowns_and_survive_a_rebuild(tmp_path: Any) -> None:
    """Counts split by a configured property (a string, a number, absent) answer a breakdown by it
    as the scan does; the rebuild recomputes them for the dimensions it is given."""
    path = tmp_path / "db"
    dims = ("screen", "tier")
    store = RocksStore(str(path), StoreOptions())
    registry = EventRegistry(store.db)
    queue = WriteQueue(store)
    writer = EventWriter(queue, registry, 100_000, 1_000_000, dims)
    queue.start()
    rnd = random.Random(11)
    for b in range(12):
        events = []
        for i in range(80):
            props: dict[str, Any] = {}
            if rnd.random() < 0.8:
                props["screen"] = rnd.choice(["main", "cart", "settings", 7, 7.0, True])
            props["tier"] = rnd.choice([1, 2, 3])
            events.append(
                Event(rnd.choice(["a", "b"]), ns(rnd.uniform(0, 4)), None, None, None, f"{b}-{i}", props)
            )
        writer.submit(EventBatch(events)).result(10)
    source = EventColumns(store, registry, dims)
    bodies = [
        {"series": [{"event": e, "measure": "count"}], "breakdown": [d], "breakdown_limit": limit}
        for e in (None, "a")
        for d in dims
        for limit in (2, 10)
    ]
    window = {"interval": "day", "from": DAY0.isoformat(), "to": (DAY0 + dt.timedelta(days=5)).isoformat()}
    answers = []
    for body in bodies:
        fast, slow = ask(source, body | window, True), ask(source, body | window, False)
        assert same(fast, slow), body
        answers.append(fast)
    queue.close()
    del writer, queue
    gc.collect()
    store.close()
    store = RocksStore(str(path), StoreOptions())
    try:
        assert rebuild(store, dims) == 12 * 80
        source = EventColumns(store, EventRegistry(store.db), dims)
        assert [ask(source, body | window, True) for body in bodies] == answers
    finally:
        store.close()


@pytest.mark.parametrize(
    ("measure", "interval"),
    [
        ("unique_users", "day"),
        ("unique_users", "week"),
        ("unique_users", "total"),
        ("dau", "day"),
        ("wau", "day"),
        ("mau", "day"),
    ],
)
@pytest.mark.parametrize("tz", ["Europe/Warsaw", "America/New_York"])
def test_distinct_users_in_a_zone_whose_days_are_not_utc_days(
    columns: EventColumns, measure: str, interval: str, tz: str
) -> None:
    """Local days across a DST change come from the UTC days' hour bits, exactly as the scan says."""
    start = dt.datetime(2026, 3, 20, tzinfo=zoneinfo.ZoneInfo(tz))
    body = {
        "series": [{"measure": measure}],
        "interval": interval,
        "timezone": tz,
        "from": start.isoformat(),
        "to": (start + dt.timedelta(days=19)).isoformat(),
    }
    req = parse_trends(body)
    reads = RollupReads(columns.rollups, lambda name: columns.code("n", name))
    assert reads.values(measure, None, None, req.buckets) is not None  # the rollups answered
    assert ask(columns, body, True) == ask(columns, body, False)


def test_merging_the_newest_deltas_keeps_them_few_without_rewriting_the_day() -> None:
    """The merge policy over 5000 writes of one (day, name), as RollupWriter._append applies it:
    never more than MAX_DELTAS deltas, every row kept, and bytes rewritten growing like n log n
    (merging all deltas at once rewrote n²/(2·MAX_DELTAS) rows' worth: ~780k writes' worth here)."""
    deltas: list[tuple[bytes, bytes]] = []  # newest first, as the keys sort
    rewritten = 0
    for write in range(5000):
        data = write.to_bytes(4, "big") * 25  # 100 bytes a write
        if len(deltas) + 1 > rollups.MAX_DELTAS:
            taken = rollups.newest_to_merge(iter(deltas), len(data))
            assert len(taken) >= 2 and taken == deltas[: len(taken)]
            data = b"".join(value for _, value in taken) + data
            rewritten += len(data)
            deltas = deltas[len(taken) :]
        deltas.insert(0, (b"k%d" % write, data))
        assert len(deltas) <= rollups.MAX_DELTAS
    assert sum(len(v) for _, v in deltas) == 5000 * 100
    assert rewritten < 5000 * 100 * 12, rewritten  # each row rewritten about log(n) times, not n/32
