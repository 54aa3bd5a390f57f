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
