"""The sidecar's own storage metrics: the write queue, each WriteBatch, bytes on disk per
partition from RocksDB's properties, and retention's drops.

Storage exposes plain numbers (``WriteQueue.stats``, ``RocksStore.partition_properties``,
``Retention.dropped``) and a per-write callback; this module reads them at scrape time and turns
them into families, so storage never imports metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from sidecar.metrics.families import HistogramFamily, Overflows
from sidecar.storage.rocks.db import RocksStore
from sidecar.storage.rocks.retention import Retention
from sidecar.storage.rocks.write_queue import WriteDone, WriteQueue

WRITE_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WRITE_BYTES = tuple(float(1 << n) for n in range(10, 28, 2))  # 1 KiB .. 64 MiB, x4
WRITE_ITEMS = (1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0)
# (RocksDB property, family, help): each read per partition (column family) at scrape time.
PROPERTIES = (
    (
        "rocksdb.total-sst-files-size",
        "sidecar_storage_sst_files_bytes",
        "Bytes of the partition's SST files on disk (all versions still referenced)",
    ),
    (
        "rocksdb.live-sst-files-size",
        "sidecar_storage_live_sst_files_bytes",
        "Bytes of the SST files of the partition's current version",
    ),
    (
        "rocksdb.estimate-pending-compaction-bytes",
        "sidecar_storage_pending_compaction_bytes",
        "Bytes RocksDB estimates compaction must rewrite to bring the partition's levels in shape",
    ),
    (
        "rocksdb.cur-size-all-mem-tables",
        "sidecar_storage_memtable_bytes",
        "Bytes of the partition's memtables (written, not yet flushed to SST files)",
    ),
)


class StorageMetrics:
    """Registered as a source; also the write queue's ``on_write``."""

    def __init__(
        self, store: RocksStore, queue: WriteQueue, retention: Retention, overflows: Overflows
    ) -> None:
        self._store = store
        self._queue = queue
        self._retention = retention
        self.write_seconds = HistogramFamily(
            "sidecar_write_batch_duration_seconds",
            "Time to merge and write one WriteBatch (every signal's queued items) until the WAL holds it",
            (),
            WRITE_SECONDS,
            0,
            overflows,
        )
        self.write_bytes = HistogramFamily(
            "sidecar_write_batch_bytes", "Size of each WriteBatch written", (), WRITE_BYTES, 0, overflows
        )
        self.write_items = HistogramFamily(
            "sidecar_write_batch_items",
            "Items (spans, log records, events) per WriteBatch, per signal in it",
            ("signal",),
            WRITE_ITEMS,
            0,
            overflows,
        )

    def on_write(self, done: WriteDone) -> None:
        """On the writer thread, once per write: three bisections, no allocation per item."""
        self.write_seconds.observe_one((), done.seconds)
        self.write_bytes.observe_one((), float(done.bytes))
        for signal, count in done.items.items():
            self.write_items.observe_one((signal,), float(count))

    def collect(self) -> Iterator[Metric]:
        yield from self._queue_families()
        yield from self.write_seconds.collect()
        yield from self.write_bytes.collect()
        yield from self.write_items.collect()
        yield from self._disk_families()
        yield from self._retention_families()

    def _queue_families(self) -> Iterator[Metric]:
        size = Metric(
            "sidecar_write_queue_size", "Items (spans, log records, events) waiting for the writer", "gauge"
        )
        capacity = Metric(
            "sidecar_write_queue_capacity",
            "Items a signal's queue holds before refusing (ingest.max_queue_*)",
            "gauge",
        )
        refused = Metric(
            "sidecar_write_queue_refused",
            "Batches refused because the signal's write queue was full (backpressure: 503 / UNAVAILABLE)",
            "counter",
        )
        for stats in self._queue.stats():
            labels = {"signal": stats.signal}
            size.add_sample("sidecar_write_queue_size", labels, stats.queued)
            capacity.add_sample("sidecar_write_queue_capacity", labels, stats.capacity)
            refused.add_sample("sidecar_write_queue_refused_total", labels, stats.overloaded)
        yield from (size, capacity, refused)

    def _disk_families(self) -> Iterator[Metric]:
        found = self._store.partition_properties([prop for prop, _, _ in PROPERTIES])
        partitions: dict[str, int] = {signal.name: 0 for signal in self._store.signals}
        for signal, _, _ in found:
            partitions[signal] = partitions.get(signal, 0) + 1
        count = Metric("sidecar_storage_partitions", "Open partitions (column families) per signal", "gauge")
        for signal, n in sorted(partitions.items()):
            count.add_sample("sidecar_storage_partitions", {"signal": signal}, n)
        yield count
        for prop, name, documentation in PROPERTIES:
            metric = Metric(name, documentation, "gauge")
            for signal, partition, values in found:
                if prop in values:
                    metric.add_sample(name, {"signal": signal, "partition": partition}, values[prop])
            yield metric
        total = Metric(
            "sidecar_storage_data_dir_bytes",
            "Bytes of the files in the data directory (SST files of every partition, WAL, manifest)",
            "gauge",
        )
        with contextlib.suppress(OSError):  # the directory went away: say nothing, still answer
            total.add_sample("sidecar_storage_data_dir_bytes", {}, self._store.disk_usage())
        yield total

    def _retention_families(self) -> Iterator[Metric]:
        retention = self._retention
        dropped = Metric(
            "sidecar_retention_dropped_partitions",
            "Partitions dropped by retention, per signal",
            "counter",
        )
        for signal, n in sorted(retention.dropped.items()):
            dropped.add_sample("sidecar_retention_dropped_partitions_total", {"signal": signal}, n)
        checks = Metric("sidecar_retention_checks", "Retention checks run", "counter")
        checks.add_sample("sidecar_retention_checks_total", {}, retention.checks)
        failures = Metric(
            "sidecar_retention_failures",
            "Retention policies that failed in a check (retried at the next)",
            "counter",
        )
        failures.add_sample("sidecar_retention_failures_total", {}, retention.failures)
        yield from (dropped, checks, failures)
