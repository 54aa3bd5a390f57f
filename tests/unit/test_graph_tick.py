"""The trace writer's tick, on a real RocksDB directory: when halves wait and no write has ended
waits for a tick, a write of no spans ends them and stores the virtual edges; otherwise nothing."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from sidecar.ingest.traces import prepare_traces
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.reader import RocksReader
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.traces.writer import TraceWriter
from sidecar.storage.rocks.write_queue import WriteDone, WriteQueue
from tests.unit.test_storage import request, span

CLIENT = 3
T1 = b"\x01" * 16
HOUR_NS = 3_600 * 10**9


def edges(reader: RocksReader) -> list[tuple[str, str, int]]:
    links = reader.get_dependencies(time.time_ns() + HOUR_NS, 2 * HOUR_NS)
    return [(d.parent, d.child, d.call_count) for d in links]


def test_tick_stores_a_virtual_edge_once_its_wait_is_over(tmp_path: Path) -> None:
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    registry = Registry(store.db)
    queue = WriteQueue(store)
    writes: list[WriteDone] = []
    queue.on_write = writes.append
    reprepare = functools.partial(prepare_traces, well_formed=True)
    writer = TraceWriter(queue, registry, 10_000, 100_000, reprepare=reprepare, graph_wait_s=0.3)
    queue.start()
    reader = RocksReader(store, registry)

    try:
        assert writer.tick_s == 0.3  # min(wait_s, TICK_S)
        assert writer.expire_waiting() is None  # nothing waits: no write queued
        charge = span(T1, 1, "charge", 0, 5, kind=CLIENT, peer__service="payments")
        writer.submit(prepare_traces(request("shop", charge))).result(10)
        assert writer.expire_waiting() is None  # a write just ended waits; this one is not over
        assert edges(reader) == []

        time.sleep(0.35)
        done = writer.expire_waiting()
        assert done is not None
        done.result(10)
        assert edges(reader) == [("shop", "payments", 1)]
        assert [w.items for w in writes] == [{"traces": 1}, {"traces": 0}]
        assert writes[1].bytes > 0

        time.sleep(0.35)
        assert writer.expire_waiting() is None  # nothing waits any more
        assert edges(reader) == [("shop", "payments", 1)]
        assert len(writes) == 2
    finally:
        queue.close()
        assert not queue.alive
        del queue, writer, reader
        store.close()
