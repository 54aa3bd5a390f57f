"""The dedupe filter (storage/rocks/events/ids.py) on a real RocksDB directory: it may only spare
reads, never change which events are duplicates, also after a restart on a filled month."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rocksdict import WriteBatch

from sidecar.core._event_merge import BloomFilter
from sidecar.ingest.events import Event
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.events import ids as ids_module
from sidecar.storage.rocks.events.ids import IdFilter
from sidecar.storage.rocks.events.merge import EventBatch, EventMerge
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.partitions import EVENTS

T0 = 1_714_640_000 * 10**9  # 2024-05-02


def write(store: RocksStore, merge: EventMerge, ids: list[str], ns: int) -> EventBatch:
    item = EventBatch([Event("paid", T0 + i, user_id="u", id=ident) for i, ident in enumerate(ids)])
    batch = WriteBatch(raw_mode=True)
    merge.merge([item], batch, ns)
    store.db.write(batch)
    merge.after_write()
    return item


def test_bloom_filter_never_forgets_and_rarely_imagines() -> None:
    added = [os.urandom(16) for _ in range(20_000)]
    bloom = BloomFilter(len(added))
    bloom.add(added)
    assert bloom.maybe(added) == added
    strangers = [os.urandom(16) for _ in range(20_000)]
    assert len(bloom.maybe(strangers)) < 0.03 * len(strangers)
    with pytest.raises(TypeError):
        bloom.add(["text"])  # type: ignore[list-item]


def test_duplicates_are_found_before_during_and_after_the_scan_of_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ids_module, "SCAN_STEP", 7)  # the scan of the stored ids takes many writes
    monkeypatch.setattr(ids_module, "FIRST_CAPACITY", 16)  # and the filter grows by stages
    path = str(tmp_path / "db")
    store = RocksStore(path, StoreOptions())
    merge = EventMerge(store, EventRegistry(store.db))
    first = [f"order-{i}" for i in range(50)]
    assert write(store, merge, first, 1).duplicates == 0
    assert write(store, merge, [*first[:10], "new-1"], 2).duplicates == 10  # the filter, filled as written
    del merge
    store.close()

    store = RocksStore(path, StoreOptions())  # a restart: the month's filter is filled from disk
    merge = EventMerge(store, EventRegistry(store.db))
    try:
        for round_ in range(12):  # 51 stored ids at 7 per write: the scan ends within 8 writes
            fresh = [f"fresh-{round_}-{i}" for i in range(5)]
            old = [first[(round_ * 4 + j) % 50] for j in range(4)]
            item = write(store, merge, fresh + old + ["new-1"], 10 + round_)
            assert item.duplicates == 5, round_
            assert len(item.stored) == 5
        filters = IdFilter(store)  # a filter alone: every key asked while it scans, few after
        month = store.partitions(EVENTS)[0].day
        asked = [b"I" + f"absent-{i}".encode() for i in range(200)] + [b"Iorder-3"]
        assert filters.candidates(month, asked) == asked  # 7 of 111 stored ids scanned
        for _ in range(20):
            got = filters.candidates(month, asked)
        assert b"Iorder-3" in got and len(got) < 20
    finally:
        del merge
        store.close()
