"""Reading log records back: a trace's logs by one index read, and a newest-first filtered scan.

The scan reads block headers only (``H`` keys, small) and opens a block only when its
service, time range, severities and token filter say it may hold a match; see merge.py for the
layout. Order: newest write first, and within a block newest record time first.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from rocksdict import ReadOptions

from sidecar.ingest.traces import _service_name
from sidecar.otlp.anyvalue import attributes_dict, body_text
from sidecar.otlp.shadow import LogBlock
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.logs.merge import (
    BLOB,
    BLOCK,
    FILTER,
    HEADER,
    MAX_SERVICE_BYTES,
    RANGE,
    TRACE_INDEX,
    decode_block,
    decode_header,
    decode_range,
    may_contain,
    needle_trigrams,
)
from sidecar.storage.rocks.partitions import LOGS

_SUFFIX = 10  # rev(8) | seq(2)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One stored record, decoded for a reader."""

    time_ns: int  # the record's time, else its observed time, else when it was received
    observed_ns: int
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, Any]
    trace_id: str  # hex, "" when none
    span_id: str
    service: str
    scope: str
    event_name: str


@dataclass(frozen=True, slots=True)
class BlockStats:
    """What a scan did, so tests and benchmarks can see blocks being skipped."""

    headers: int
    opened: int


def _iterate(part: Partition, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    ro = ReadOptions()
    ro.set_iterate_upper_bound(keys.prefix_end(prefix))
    it = part.data.iter(ro)
    try:
        it.seek(prefix)
        while it.valid():
            yield it.key(), it.value()
            it.next()
    finally:
        del it  # an open iterator would keep the store from closing


class LogReader:
    def __init__(self, store: RocksStore) -> None:
        self._store = store
        self._services: dict[bytes, str] = {}
        self._scopes: dict[bytes, str] = {}
        self.last_scan = BlockStats(0, 0)

    # -- queries -----------------------------------------------------------------------------
    def get_trace_logs(self, trace_id: bytes) -> list[LogEntry]:
        """Every stored record of one trace, oldest first: one ``X | trace_id`` read per partition."""
        found: list[LogEntry] = []
        for part in self._store.partitions(LOGS):
            for key, value in _iterate(part, TRACE_INDEX + trace_id):
                block = self._block(part, key[-_SUFFIX:])
                if block is not None:
                    found += self._entries(part, block, array("H", value))
        found.sort(key=lambda e: e.time_ns)
        return found

    def scan(
        self,
        service: str | None = None,
        severity_min: int = 0,
        text: str | None = None,
        from_ns: int | None = None,
        to_ns: int | None = None,
        limit: int = 100,
    ) -> list[LogEntry]:
        """Records matching every given filter (``text``: case-insensitive substring of the body)."""
        wanted = None if service is None else service.encode("utf-8", "replace")[:MAX_SERVICE_BYTES]
        severity_mask = ~((1 << severity_min) - 1) if severity_min > 0 else -1
        needle = text.lower() if text else ""
        grams = needle_trigrams(needle)
        low, high = from_ns or 0, to_ns if to_ns is not None else keys.MAX_U64
        out: list[LogEntry] = []
        headers = opened = 0
        for part in self._store.partitions(LOGS):
            stored_range = part.data.get(RANGE)
            if stored_range is not None:
                first, last = decode_range(stored_range)
                if last < low or first > high:
                    continue  # no record of this day is in the time range
            for key, header in _iterate(part, HEADER):
                headers += 1
                first, last, mask, name = decode_header(header)
                if (
                    (wanted is not None and name != wanted)
                    or last < low
                    or first > high
                    or not mask & severity_mask
                ):
                    continue
                if grams:
                    bloom = part.data.get(FILTER + key[1:])
                    if bloom is not None and not may_contain(bloom, grams):
                        continue
                block = self._block(part, key[1:])
                if block is None:
                    continue
                opened += 1
                chosen = [
                    i
                    for i in sorted(range(len(block.times)), key=block.times.__getitem__, reverse=True)
                    if low <= block.times[i] <= high
                ]
                for entry in self._entries(part, block, chosen):
                    if entry.severity_number < severity_min or (needle and needle not in entry.body.lower()):
                        continue
                    out.append(entry)
                    if len(out) >= limit:
                        self.last_scan = BlockStats(headers, opened)
                        return out
        self.last_scan = BlockStats(headers, opened)
        return out

    # -- blocks ------------------------------------------------------------------------------
    def _block(self, part: Partition, suffix: bytes) -> Any:
        data = part.data.get(BLOCK + suffix)
        return None if data is None else LogBlock.FromString(decode_block(data))

    def _entries(self, part: Partition, block: Any, indexes: Any) -> list[LogEntry]:
        service = self._service(part, block.resource_ref)
        scope = self._scope(part, block.scope_ref)
        entries = []
        for i in indexes:
            record = LogRecord.FromString(block.records[i])
            entries.append(
                LogEntry(
                    block.times[i],
                    record.observed_time_unix_nano,
                    record.severity_number,
                    record.severity_text,
                    body_text(record.body),
                    attributes_dict(record.attributes),
                    record.trace_id.hex(),
                    record.span_id.hex(),
                    service,
                    scope,
                    record.event_name,
                )
            )
        return entries

    def _service(self, part: Partition, ref: bytes) -> str:
        name = self._services.get(ref)
        if name is None:
            encoded = part.data.get(BLOB + b"r" + ref) or b""
            attrs = [kv.SerializeToString() for kv in Resource.FromString(encoded).attributes]
            name = self._services[ref] = _service_name(attrs)
        return name

    def _scope(self, part: Partition, ref: bytes) -> str:
        name = self._scopes.get(ref)
        if name is None:
            name = self._scopes[ref] = InstrumentationScope.FromString(
                part.data.get(BLOB + b"s" + ref) or b""
            ).name
        return name
