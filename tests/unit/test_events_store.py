"""The events store on a real RocksDB directory and a real writer thread: dedupe across a month
boundary, codes forgotten when a write fails, and cursors across monthly partitions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rocksdict import WriteBatch

from sidecar.ingest.events import Event
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.events.columns import scan_blocks
from sidecar.storage.rocks.events.merge import EventBatch
from sidecar.storage.rocks.events.reader import EventReader
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.events.writer import EventWriter
from sidecar.storage.rocks.partitions import EVENTS
from sidecar.storage.rocks.write_queue import WriteQueue


def ns(text: str) -> int:
    when = dt.datetime.fromisoformat(text)
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


class Boom:
    """A signal whose merge fails: the whole drain's write fails with it."""

    def merge(self, items: list[Any], batch: WriteBatch, ns: int) -> None:
        raise RuntimeError("boom")

    def after_write(self) -> None: ...

    def write_failed(self) -> None: ...


class Events:
    def __init__(self, path: Path) -> None:
        self.store = RocksStore(str(path), StoreOptions())
        self.registry = EventRegistry(self.store.db)
        self.queue = WriteQueue(self.store)
        self.queue.register("boom", Boom(), max_batch=10, max_queue=10, unit="booms")
        self.writer = EventWriter(self.queue, self.registry, 1000, 10_000)
        self.reader = EventReader(self.store, self.registry)

    def put(self, *events: Event) -> EventBatch:
        batch = EventBatch(list(events))
        self.writer.submit(batch).result(10)
        return batch

    def close(self) -> None:
        self.queue.close()
        self.store.close()


@pytest.fixture
def events(tmp_path: Path) -> Iterator[Events]:
    opened = Events(tmp_path / "db")
    opened.queue.start()
    yield opened
    opened.close()


def test_a_retry_stamped_in_the_next_month_is_still_a_duplicate(events: Events) -> None:
    first = Event("pay", ns("2024-01-31T23:59:59.500+00:00"), user_id="1", id="order-1")
    assert events.put(first).duplicates == 0
    retry = Event("pay", ns("2024-02-01T00:00:00.500+00:00"), user_id="1", id="order-1")
    assert events.put(retry).duplicates == 1
    assert [p.name for p in events.store.partitions(EVENTS)] == ["e20240101"]


def test_a_failed_write_forgets_the_codes_it_made(tmp_path: Path) -> None:
    opened = Events(tmp_path / "db")
    failing = opened.writer.submit(
        EventBatch(
            [Event("signup", ns("2024-03-01T10:00:00+00:00"), user_id="u9", properties={"plan": "pro"})]
        )
    )
    boom = opened.queue.submit("boom", None, 1)
    opened.queue.start()  # both were queued first: one drain, one write, which fails
    with pytest.raises(RuntimeError):
        failing.result(10)
    with pytest.raises(RuntimeError):
        boom.result(10)
    assert opened.registry.codes["n"] == {} and opened.registry.codes["u"] == {}
    assert not any(opened.registry.keys.keys.values())
    try:
        opened.put(Event("login", ns("2024-03-01T11:00:00+00:00"), user_id="u1", properties={"via": "sso"}))
        on_disk = EventRegistry(opened.store.db)  # what a restart would load
        assert on_disk.codes["n"] == {"login": 1} and on_disk.codes["u"] == {"u1": 1}
        assert on_disk.keys_of(1) == ["via"] and on_disk.keys_of(None) == ["via"]
        (event,) = EventReader(opened.store, on_disk).list_events().events
        assert (event.name, event.user_id) == ("login", "u1")
    finally:
        opened.close()


def test_cursors_walk_across_months_in_both_orders(events: Events) -> None:
    times = [ns(f"2024-{m:02d}-{d:02d}T12:00:00+00:00") for m in (1, 2, 3) for d in (1, 15, 28)]
    events.put(*(Event("view", t, user_id=str(i % 2), id=f"v{i}") for i, t in enumerate(times)))
    for order, expected in (("asc", times), ("desc", times[::-1])):
        all_filters: list[dict[str, Any]] = [{}, {"name": "view"}]
        for filters in all_filters:
            seen: list[int] = []
            cursor = None
            while True:
                page = events.reader.list_events(order=order, limit=2, after_cursor=cursor, **filters)
                seen += [e.ts_ns for e in page.events]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == expected, (order, filters)
    odd = events.reader.list_events(user_id="1", order="asc", from_ns=times[2], to_ns=times[7])
    assert [e.ts_ns for e in odd.events] == [times[3], times[5]]


def test_column_blocks_hold_exactly_the_stored_events(events: Events) -> None:
    """Each write's stored events (not its duplicates) again as columns, per month, in time order."""
    t = ns("2024-03-31T23:00:00+00:00")
    first = [
        Event("pay", t + 5, "u1", "s1", id="a", properties={"amount": 9.5, "screen": "cart"}),
        Event("view", t + 1, user_id="u2", properties={"screen": "main", "vip": True, "n": 3}),
        Event("view", t + 3, service="web", properties={"amount": "n/a", "n": 4}),
        Event("pay", ns("2024-04-01T00:30:00+00:00"), user_id="u1", properties={"amount": 1}),
    ]
    events.put(*first)
    events.put(Event("pay", t + 9, user_id="u9", id="a"))  # a duplicate: in no block
    march, april = sorted(events.store.partitions(EVENTS), key=lambda p: p.day)
    wanted = ["name", "user", "service", "session", "p.amount", "p.screen", "p.vip", "p.n", "p.absent"]
    (block,) = scan_blocks(march, wanted)
    reg = events.registry
    assert (block.min_ts, block.max_ts, block.rows) == (t + 1, t + 5, 3)
    cols = block.columns
    assert cols["ts"].values.tolist() == [t + 1, t + 3, t + 5]
    assert [reg.text("n", c) for c in cols["name"].values] == ["view", "view", "pay"]
    assert [reg.text("u", c) for c in cols["user"].values] == ["u2", None, "u1"]
    assert [reg.text("s", c) for c in cols["service"].values] == [None, "web", None]

    def decoded(name: str) -> list[Any]:
        col = cols[name]
        if col.entries is None:
            return [None if v != v else v for v in col.values.tolist()]  # NaN: absent
        return [col.entries[c - 1] if c else None for c in col.values.tolist()]

    assert decoded("session") == [None, None, "s1"]
    assert cols["p.amount"].kind == "d" and decoded("p.amount") == [None, "n/a", 9.5]  # mixed: a dict
    assert cols["p.n"].kind == "n" and decoded("p.n") == [3.0, 4.0, None]
    assert decoded("p.vip") == [True, None, None] and decoded("p.screen") == ["main", None, "cart"]
    assert "p.absent" not in cols
    (block,) = scan_blocks(april, ["p.amount"])
    assert block.rows == 1 and block.columns["p.amount"].values.tolist() == [1.0]
    assert list(scan_blocks(march, ["name"], from_ns=t + 6)) == []  # skipped by its time range
    assert len(list(scan_blocks(march, ["name"], from_ns=t + 5, to_ns=t + 6))) == 1


def test_an_integer_past_float64_is_stored_exactly_not_a_failed_write(events: Events) -> None:
    """JSON integers have no size limit; one no float64 holds once failed the whole write (its
    column and numeric rollup converted it to float). Its column is now a dictionary, holding it
    exactly, and a float64-sized neighbour of the same write still rolls up."""
    t = ns("2024-05-02T10:00:00+00:00")
    huge = 10**400
    batch = events.put(
        Event("buy", t, user_id="u1", properties={"qty": huge}),
        Event("buy", t + 1, user_id="u2", properties={"qty": 2}),
    )
    assert len(batch.stored) == 2
    (block,) = scan_blocks(events.store.partitions(EVENTS)[0], ["p.qty"])
    column = block.columns["p.qty"]
    assert column.kind == "d" and column.entries == [huge, 2]
    assert [e.properties["qty"] for e in events.reader.list_events(order="asc").events] == [huge, 2]
