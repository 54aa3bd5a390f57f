"""Partitions per signal and their retention, on real RocksDB directories.

``data/store_969d561`` is a data directory written by the trace store of commit 969d561, before
partitions became per signal (two traces, arrived on 2024-03-01 and 2024-03-02; LOG and the older
OPTIONS file removed to keep it small). It must keep opening unchanged: never regenerate it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from sidecar.config.model import StorageConfig, TracesStorageConfig
from sidecar.query.traces import TraceQueryService
from sidecar.storage.api import TraceQuery
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.partitions import TRACES, Signal, Width
from sidecar.storage.rocks.reader import RocksReader
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.retention import MaxAge, Retention

FIXTURE = Path(__file__).parent / "data" / "store_969d561"
T1, T2 = bytes([1]) * 16, bytes([2]) * 16
MARCH_1 = (dt.date(2024, 3, 1) - dt.date(1970, 1, 1)).days


@pytest.fixture
def old_dir(tmp_path: Path) -> Iterator[str]:
    """A copy of the fixture: opening a directory writes to it (WAL, MANIFEST, OPTIONS)."""
    path = tmp_path / "data"
    shutil.copytree(FIXTURE, path)
    yield str(path)


def test_a_data_dir_written_before_signals_opens_and_reads_back(old_dir: str) -> None:
    store = RocksStore(old_dir, StoreOptions())
    registry = Registry(store.db)
    reader = RocksReader(store, registry)
    try:
        assert [p.name for p in store.partitions()] == ["t20240302", "t20240301"]
        assert [p.day for p in store.partitions(newest_first=False)] == [MARCH_1, MARCH_1 + 1]
        assert reader.get_services() == ["api", "web"]
        stored = reader.get_trace(T1)
        assert stored is not None and stored.summary is not None
        data = TracesData.FromString(stored.traces_data)
        names = sorted(s.name for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans)
        assert names == ["GET /api/cart", "GET /cart", "call api"]
        assert (stored.summary.root_service, stored.summary.span_count) == ("web", 3)
        found = TraceQueryService(reader).find_traces(TraceQuery(service="web", tags=(("user", "u2"),)))
        assert [s.trace_id for s, _ in found] == [T2]
        assert store.partition_for_write(MARCH_1 + 1) is store.partition(MARCH_1 + 1)  # no new family
        assert store.drop_before(MARCH_1 + 1) == ["t20240301"]
        assert reader.get_trace(T1) is None and reader.get_trace(T2) is not None
    finally:
        del reader
        store.close()


LOGS = Signal("logs", "l", Width.DAY)  # test rows: the real logs and events signals come with their issue
EVENTS = Signal("events", "e", Width.MONTH)


def day_of(year: int, month: int, day: int) -> int:
    return (dt.date(year, month, day) - dt.date(1970, 1, 1)).days


def test_month_periods_start_on_the_first_and_roll_over_the_year() -> None:
    assert Width.MONTH.start(day_of(2024, 2, 29)) == day_of(2024, 2, 1)
    assert Width.MONTH.next(day_of(2024, 2, 1)) == day_of(2024, 3, 1)
    assert Width.MONTH.next(day_of(2024, 12, 1)) == day_of(2025, 1, 1)
    assert Width.DAY.start(MARCH_1) == MARCH_1 and Width.DAY.next(MARCH_1) == MARCH_1 + 1


def test_partition_names_carry_the_signal_prefix_and_period_start() -> None:
    assert TRACES.partition_name(MARCH_1) == keys.partition_name(MARCH_1) == "t20240301"
    assert EVENTS.partition_name(day_of(2024, 3, 17)) == "e20240301"
    assert EVENTS.parse("e20240301") == MARCH_1
    assert EVENTS.parse("e20240317") is None  # not a month's first day: not an events partition
    assert TRACES.parse("e20240301") is None and LOGS.parse("t20240301") is None
    assert TRACES.parse("default") is None and TRACES.parse("t2024030") is None
    assert TRACES.parse("t20240230") is None  # no such date
    with pytest.raises(ValueError, match="prefix"):
        Signal("bad", "t1")


def test_a_store_refuses_signals_that_share_a_prefix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prefix"):
        RocksStore(str(tmp_path / "db"), StoreOptions(), signals=(TRACES, Signal("tables", "t")))
    store = RocksStore(str(tmp_path / "db"), StoreOptions())  # the failed open left no lock behind
    try:
        with pytest.raises(ValueError, match="metrics"):  # not one of the store's signals
            store.partition_for_write(MARCH_1, Signal("metrics", "m"))
    finally:
        store.close()


def put(store: RocksStore, signal: Signal, day: int) -> None:
    """One key in ``signal``'s partition for ``day``, named after both."""
    store.partition_for_write(day, signal).data[f"{signal.name}/{day}".encode()] = b"x"


def stored(store: RocksStore, signal: Signal) -> list[tuple[str, list[bytes]]]:
    """Each of the signal's partitions, oldest first, with its keys."""
    return [(p.name, list(p.data.keys())) for p in store.partitions(signal, newest_first=False)]


@pytest.fixture
def three(tmp_path: Path) -> Iterator[RocksStore]:
    """A store with traces, logs and events, written on 2024-02-27 .. 2024-03-02 (events: two months)."""
    store = RocksStore(str(tmp_path / "db"), StoreOptions(), signals=(TRACES, LOGS, EVENTS))
    for day in range(day_of(2024, 2, 27), day_of(2024, 3, 3)):
        for signal in (TRACES, LOGS, EVENTS):
            put(store, signal, day)
    yield store
    store.close()


def test_each_signal_has_its_own_partitions(three: RocksStore) -> None:
    days = ["20240302", "20240301", "20240229", "20240228", "20240227"]
    assert [p.name for p in three.partitions(LOGS)] == ["l" + d for d in days]
    assert [p.name for p in three.partitions()] == ["t" + d for d in days]
    assert stored(three, LOGS)[0] == ("l20240227", [f"logs/{day_of(2024, 2, 27)}".encode()])
    assert stored(three, EVENTS) == [
        ("e20240201", [f"events/{d}".encode() for d in range(day_of(2024, 2, 27), MARCH_1)]),
        ("e20240301", [f"events/{d}".encode() for d in (MARCH_1, MARCH_1 + 1)]),
    ]
    assert three.partition(day_of(2024, 3, 2), EVENTS) is three.partition(MARCH_1, EVENTS)
    assert three.partition(day_of(2024, 3, 20), EVENTS) is three.partition(MARCH_1, EVENTS)
    assert three.partition(day_of(2024, 3, 20), LOGS) is None  # reads never create a partition


def test_dropping_one_signals_old_partitions_leaves_the_others(three: RocksStore) -> None:
    before = {s.name: stored(three, s) for s in (LOGS, EVENTS)}
    assert three.drop_before(MARCH_1) == ["t20240227", "t20240228", "t20240229"]
    assert [p.name for p in three.partitions(newest_first=False)] == ["t20240301", "t20240302"]
    assert {s.name: stored(three, s) for s in (LOGS, EVENTS)} == before
    assert three.drop_before(day_of(2024, 2, 29), LOGS) == ["l20240227", "l20240228"]
    assert three.drop_before(day_of(2024, 2, 29), EVENTS) == []  # February still has a day to keep
    assert three.drop_before(MARCH_1, EVENTS) == ["e20240201"]  # a month goes whole, when all of it is old
    assert [p.name for p in three.partitions(EVENTS)] == ["e20240301"]
    assert [p.name for p in three.partitions()] == ["t20240302", "t20240301"]
    put(three, TRACES, day_of(2024, 2, 27))  # a late write re-creates its partition, then goes again
    assert three.drop_before(MARCH_1) == ["t20240227"]


def test_partitions_are_found_per_signal_on_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    store = RocksStore(path, StoreOptions(), signals=(TRACES, LOGS, EVENTS))
    for signal in (TRACES, LOGS, EVENTS):
        put(store, signal, MARCH_1)
    store.close()
    # Opened by a version that knows only traces: the others' families stay, untouched.
    store = RocksStore(path, StoreOptions())
    assert [p.name for p in store.partitions()] == ["t20240301"]
    assert store.drop_before(MARCH_1 + 400) == ["t20240301"]
    store.close()
    store = RocksStore(path, StoreOptions(), signals=(TRACES, LOGS, EVENTS))
    try:
        assert stored(store, TRACES) == []
        assert stored(store, LOGS) == [("l20240301", [f"logs/{MARCH_1}".encode()])]
        assert stored(store, EVENTS) == [("e20240301", [f"events/{MARCH_1}".encode()])]
    finally:
        store.close()


def test_dropping_after_close_is_a_no_op(tmp_path: Path) -> None:
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    put(store, TRACES, MARCH_1)
    store.close()
    assert store.drop_before(MARCH_1 + 10) == []


def at(day: int, seconds: int = 0) -> int:
    """A clock reading: ``seconds`` into UTC day ``day``."""
    return day * keys.DAY_NS + seconds * 1_000_000_000


def test_an_age_limit_keeps_a_day_at_least_its_retention_and_at_most_a_day_more(tmp_path: Path) -> None:
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    try:
        put(store, TRACES, MARCH_1)  # arrived any time on March 1
        clock = {"ns": at(MARCH_1 + 8) - 1}  # a moment before March 9: 7 days after March 1 ended
        retention = Retention(store, [MaxAge(TRACES, 7)], 60, clock=lambda: clock["ns"])
        assert retention.check() == []
        clock["ns"] = at(MARCH_1 + 8)
        assert retention.check() == ["t20240301"]
    finally:
        store.close()


def test_each_signal_ages_out_by_its_own_limit(three: RocksStore) -> None:
    now = at(day_of(2024, 3, 2), 3600)
    retention = Retention(three, [MaxAge(TRACES, 1), MaxAge(LOGS, 3), MaxAge(EVENTS, 400)], 60, lambda: now)
    assert retention.check() == ["t20240227", "t20240228", "t20240229", "l20240227"]
    assert [p.name for p in three.partitions(newest_first=False)] == ["t20240301", "t20240302"]
    assert three.partitions(LOGS, newest_first=False)[0].name == "l20240228"
    assert [p.name for p in three.partitions(EVENTS, newest_first=False)] == ["e20240201", "e20240301"]
    # February 2024 ends on March 1, 2024: 400 days later is April 5, 2025.
    assert Retention(three, [MaxAge(EVENTS, 400)], 60, lambda: at(day_of(2025, 4, 5)) - 1).check() == []
    assert Retention(three, [MaxAge(EVENTS, 400)], 60, lambda: at(day_of(2025, 4, 5))).check() == [
        "e20240201"
    ]
    assert three.partitions(LOGS)[-1].name == "l20240228"  # logs untouched


def test_the_config_sets_the_trace_age_and_the_interval(tmp_path: Path) -> None:
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    try:
        for day in (MARCH_1, MARCH_1 + 1):
            put(store, TRACES, day)
        storage = StorageConfig(traces=TracesStorageConfig(retention_days=3))
        retention = Retention.from_config(store, storage, clock=lambda: at(MARCH_1 + 4, 1))
        assert retention.check() == ["t20240301"]
    finally:
        store.close()


def test_later_policies_such_as_a_disk_budget_run_after_the_age_limits(three: RocksStore) -> None:
    calls: list[list[str]] = []

    def budget(store: RocksStore, now_ns: int) -> list[str]:
        """A stand-in for the disk budget: sees what the age limits left, drops the oldest log day."""
        calls.append([p.name for p in store.partitions()])
        return store.drop_before(store.partitions(LOGS, newest_first=False)[0].end_day, LOGS)

    retention = Retention(three, [MaxAge(TRACES, 2), budget], 60, lambda: at(MARCH_1 + 1))
    assert retention.check() == ["t20240227", "t20240228", "l20240227"]
    assert calls == [["t20240302", "t20240301", "t20240229"]]


def test_a_failing_policy_does_not_stop_the_others(
    three: RocksStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(store: RocksStore, now_ns: int) -> list[str]:
        raise RuntimeError("disk on fire")

    retention = Retention(three, [broken, MaxAge(LOGS, 3)], 60, lambda: at(day_of(2024, 3, 2)))
    assert retention.check() == ["l20240227"]
    assert "disk on fire" in caplog.text


def test_the_background_check_runs_until_stopped(tmp_path: Path) -> None:
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    clock = {"ns": at(MARCH_1 + 1)}
    put(store, TRACES, MARCH_1)

    async def main() -> None:
        retention = Retention(store, [MaxAge(TRACES, 7)], 0.01, lambda: clock["ns"])
        retention.start()
        await asyncio.sleep(0.05)
        assert [p.name for p in store.partitions()] == ["t20240301"]
        clock["ns"] = at(MARCH_1 + 30)  # the next checks see the partition's age
        for _ in range(500):
            if not store.partitions():
                break
            await asyncio.sleep(0.01)
        await retention.stop()
        await retention.stop()  # twice is fine

    asyncio.run(main())
    assert store.partitions() == []
    store.close()
