"""The write queue on a real RocksDB directory and a real writer thread, with small real signals."""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from rocksdict import WriteBatch

from sidecar.ingest.traces import prepare_traces
from sidecar.storage.api import Overloaded, StorageError, StoreClosed
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.reader import RocksReader
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.traces.writer import TraceWriter
from sidecar.storage.rocks.write_queue import WriteQueue
from tests.unit.test_storage import T1, request, span

Note = tuple[bytes, bytes]  # a key and value for the default column family


class Notes:
    """A signal whose items are key/value pairs; it records what each write gave it."""

    def __init__(self, store: RocksStore) -> None:
        self._handle = store.db.get_column_family_handle("default")
        self.merges: list[list[Note]] = []
        self.batches: list[WriteBatch] = []
        self.written = 0
        self.failed = 0

    def merge(self, items: list[Note], batch: WriteBatch, ns: int) -> None:
        self.merges.append(list(items))
        self.batches.append(batch)
        for key, value in items:
            batch.put(key, value, self._handle)

    def after_write(self) -> None:
        self.written += 1

    def write_failed(self) -> None:
        self.failed += 1


class Gate(Notes):
    """Holds the writer thread inside its merge until opened, so that a test can line up a queue."""

    def __init__(self, store: RocksStore) -> None:
        super().__init__(store)
        self.entered = threading.Event()
        self.opened = threading.Event()

    def merge(self, items: list[Note], batch: WriteBatch, ns: int) -> None:
        self.entered.set()
        assert self.opened.wait(10)
        super().merge(items, batch, ns)


class Broken(Notes):
    def merge(self, items: list[Note], batch: WriteBatch, ns: int) -> None:
        super().merge(items, batch, ns)
        raise RuntimeError("disk on fire")


class CountingLoop(asyncio.SelectorEventLoop):
    """A real event loop that counts the wake-ups other threads ask of it."""

    wakeups = 0

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any, context: Any = None) -> Any:
        self.wakeups += 1
        return super().call_soon_threadsafe(callback, *args, context=context)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RocksStore]:
    s = RocksStore(str(tmp_path / "db"), StoreOptions())
    yield s
    gc.collect()  # the signals' column-family handles must go before the database closes
    s.close()


@pytest.fixture
def queue(store: RocksStore) -> Iterator[WriteQueue]:
    q = WriteQueue(store)
    yield q
    q.close()
    assert not q.alive


def hold(queue: WriteQueue, gate: Gate) -> Future[None]:
    """Start the thread and park it in the gate's merge; what is queued next waits for one drain."""
    queue.start()
    held = queue.submit("gate", (b"gate", b"1"), 1)
    assert gate.entered.wait(10)
    return held


def test_one_batch_per_drain_and_one_wakeup_per_event_loop(store: RocksStore, queue: WriteQueue) -> None:
    gate, notes, more = Gate(store), Notes(store), Notes(store)
    queue.register("gate", gate, max_batch=100, max_queue=100, unit="notes")
    queue.register("notes", notes, max_batch=100, max_queue=100, unit="notes")
    queue.register("more", more, max_batch=100, max_queue=100, unit="notes")
    held = hold(queue, gate)

    async def callers() -> None:
        futures = [queue.submit_async("notes", (b"n%d" % i, b"v"), 1) for i in range(5)]
        futures.append(queue.submit_async("more", (b"m", b"v"), 1))
        gate.opened.set()
        await asyncio.gather(*futures)

    loop = CountingLoop()
    try:
        loop.run_until_complete(callers())
    finally:
        loop.close()
    held.result(10)
    assert notes.merges == [[(b"n%d" % i, b"v") for i in range(5)]]  # queue order, one merge
    assert more.merges == [[(b"m", b"v")]]
    assert notes.batches[0] is more.batches[0]  # both signals in the one WriteBatch of that drain
    assert (notes.written, more.written, gate.written) == (1, 1, 1)
    assert loop.wakeups == 1  # six callers on one loop, woken by one call
    assert store.db.get(b"n4") == b"v" and store.db.get(b"m") == b"v"


def test_limits_count_items_per_signal(store: RocksStore, queue: WriteQueue) -> None:
    gate, spans, logs = Gate(store), Notes(store), Notes(store)
    queue.register("gate", gate, max_batch=1, max_queue=1, unit="notes")
    queue.register("spans", spans, max_batch=100, max_queue=10, unit="spans")
    queue.register("logs", logs, max_batch=100, max_queue=3, unit="records")
    held = hold(queue, gate)
    waiting = [queue.submit("spans", (b"s1", b""), 6), queue.submit("spans", (b"s2", b""), 4)]
    with pytest.raises(Overloaded, match=r"write queue holds 10 spans \(limit 10\)"):
        queue.submit("spans", (b"s3", b""), 1)
    waiting.append(queue.submit("logs", (b"l1", b""), 3))  # the full trace queue takes no log room
    with pytest.raises(Overloaded, match=r"3 records \(limit 3\)"):
        queue.submit("logs", (b"l2", b""), 1)
    gate.opened.set()
    for future in [held, *waiting]:
        future.result(10)
    queue.submit("spans", (b"big", b""), 50).result(10)  # one item over the limit, alone in the queue
    assert store.db.get(b"s2") == b"" and store.db.get(b"big") == b""


def test_a_drain_takes_a_signal_up_to_its_batch_limit(store: RocksStore, queue: WriteQueue) -> None:
    gate, notes = Gate(store), Notes(store)
    queue.register("gate", gate, max_batch=1, max_queue=1, unit="notes")
    queue.register("notes", notes, max_batch=6, max_queue=100, unit="notes")
    held = hold(queue, gate)
    futures = [queue.submit("notes", (b"%d" % i, b""), 3) for i in range(5)]
    futures.append(queue.submit("notes", (b"lone", b""), 10))  # larger than a batch: written alone
    gate.opened.set()
    for future in [held, *futures]:
        future.result(10)
    assert [len(m) for m in notes.merges] == [2, 2, 1, 1]
    assert notes.written == 4


def test_a_failed_write_fails_all_its_callers_and_the_next_write_goes_through(
    store: RocksStore, queue: WriteQueue
) -> None:
    gate, notes, broken = Gate(store), Notes(store), Broken(store)
    queue.register("gate", gate, max_batch=1, max_queue=1, unit="notes")
    queue.register("notes", notes, max_batch=100, max_queue=100, unit="notes")
    queue.register("broken", broken, max_batch=100, max_queue=100, unit="notes")
    held = hold(queue, gate)
    lost = [queue.submit("notes", (b"lost", b"1"), 1), queue.submit("broken", (b"x", b"1"), 1)]
    gate.opened.set()
    held.result(10)
    for future in lost:
        with pytest.raises(RuntimeError, match="disk on fire"):
            future.result(10)
    assert (notes.failed, broken.failed, notes.written) == (1, 1, 0)
    assert store.db.get(b"lost") is None  # nothing of that batch was written
    queue.submit("notes", (b"kept", b"1"), 1).result(10)
    assert store.db.get(b"kept") == b"1" and notes.written == 1


def test_a_failed_write_forgets_the_trace_summaries_it_changed(store: RocksStore, queue: WriteQueue) -> None:
    """Otherwise the cached trace would list span 2 as stored, and its resend would be dropped."""
    registry = Registry(store.db)
    writer = TraceWriter(queue, registry, 1000, 1000, functools.partial(prepare_traces, well_formed=True))
    gate, broken = Gate(store), Broken(store)
    queue.register("gate", gate, max_batch=1, max_queue=1, unit="notes")
    queue.register("broken", broken, max_batch=1, max_queue=1, unit="notes")
    queue.start()
    gate.opened.set()
    writer.submit(prepare_traces(request("api", span(T1, 1, "GET /a", 0, 50, kind=2)))).result(10)
    gate.opened.clear()
    held = queue.submit("gate", (b"gate", b"1"), 1)
    assert gate.entered.wait(10)
    second = request("api", span(T1, 2, "q", 5, 10, 1))
    failed = writer.submit(prepare_traces(second))
    queue.submit("broken", (b"x", b"1"), 1)  # same drain as span 2: the whole batch fails
    gate.opened.set()
    held.result(10)
    with pytest.raises(RuntimeError):
        failed.result(10)
    writer.submit(prepare_traces(second)).result(10)  # the exporter's retry
    stored = RocksReader(store, registry).get_trace(T1)
    assert stored is not None and stored.summary is not None
    data = TracesData.FromString(stored.traces_data)
    assert sorted(s.name for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans) == [
        "GET /a",
        "q",
    ]
    assert stored.summary.span_count == 2


def test_close_writes_what_is_queued_then_refuses(store: RocksStore) -> None:
    queue, notes = WriteQueue(store), Notes(store)
    queue.register("notes", notes, max_batch=2, max_queue=100, unit="notes")
    futures = [queue.submit("notes", (b"%d" % i, b"v"), 1) for i in range(7)]  # queued before start
    queue.start()
    queue.close()
    assert not queue.alive
    assert all(f.done() and f.exception() is None for f in futures)
    assert store.db.get(b"6") == b"v"
    with pytest.raises(StoreClosed):
        queue.submit("notes", (b"late", b"v"), 1)
    queue.close()  # twice is fine


def test_close_without_start_refuses_what_was_queued(store: RocksStore) -> None:
    """Say, a start-up that failed before the thread ran: no caller waits forever."""
    queue = WriteQueue(store)
    queue.register("notes", Notes(store), max_batch=1, max_queue=1, unit="notes")
    queued = queue.submit("notes", (b"k", b"v"), 1)
    queue.close(timeout=0)
    with pytest.raises(StoreClosed):
        queued.result(0)
    assert not queue.alive and store.db.get(b"k") is None


def test_close_refuses_the_backlog_when_a_write_outlasts_the_timeout(store: RocksStore) -> None:
    """The store must not close under a running write: close() says so through ``alive``."""
    queue, gate, notes = WriteQueue(store), Gate(store), Notes(store)
    queue.register("gate", gate, max_batch=1, max_queue=1, unit="notes")
    queue.register("notes", notes, max_batch=100, max_queue=100, unit="notes")
    held = hold(queue, gate)
    backlog = [queue.submit("notes", (b"%d" % i, b"v"), 1) for i in range(3)]
    started = time.monotonic()
    queue.close(timeout=0.2)
    assert 0.3 < time.monotonic() - started < 5
    assert queue.alive  # still inside the gate's write
    for future in backlog:
        with pytest.raises(StoreClosed):
            future.result(0)
    gate.opened.set()
    held.result(10)
    queue.close()
    assert not queue.alive and notes.merges == []
    assert store.db.get(b"gate") == b"1" and store.db.get(b"0") is None


def test_the_store_refuses_to_close_while_the_writer_thread_runs(store: RocksStore) -> None:
    """RocksDB closed under a running write would crash the process: the store itself says no."""
    queue, gate = WriteQueue(store), Gate(store)
    queue.register("gate", gate, max_batch=1, max_queue=1, unit="notes")
    held = hold(queue, gate)
    with pytest.raises(StorageError, match="writer thread"):
        store.close()
    gate.opened.set()
    held.result(10)
    queue.close()
    assert not queue.alive
    assert store.db.get(b"gate") == b"1"  # still open: the refused close changed nothing
