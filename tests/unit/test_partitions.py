"""Partitions per signal and their retention, on real RocksDB directories.

``data/store_969d561`` is a data directory written by the trace store of commit 969d561, before
partitions became per signal (two traces, arrived on 2024-03-01 and 2024-03-02; LOG and the older
OPTIONS file removed to keep it small). It must keep opening unchanged: never regenerate it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from sidecar.query.traces import TraceQueryService
from sidecar.storage.api import TraceQuery
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.reader import RocksReader
from sidecar.storage.rocks.registry import Registry

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
