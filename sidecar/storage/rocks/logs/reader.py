"""Reading log records back: a trace's logs by one index read, and a newest-first filtered scan.

The scan reads block headers only (``H`` keys, small) and opens a block only when its
service, time range, severities and token filter say it may hold a match; see merge.py for the
layout. Order: newest write first, and within a block newest record time first.

A page cursor is (day, block suffix, position in the block's newest-first order) of the last record
returned. Blocks are never rewritten and a later write sorts before every earlier one, so continuing
strictly after the cursor gives each match once while new records arrive (they land before it).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from sidecar.ingest.traces import _service_name
from sidecar.otlp.anyvalue import attributes_dict, body_text
from sidecar.otlp.shadow import LogBlock
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.events.reader import prop_matches
from sidecar.storage.rocks.key_registry import KeyRegistry
from sidecar.storage.rocks.logs.merge import (
    BLOB,
    BLOCK,
    FILTER,
    HEADER,
    MAX_SERVICE_BYTES,
    PLAIN_BODIES,
    RANGE,
    TRACE_INDEX,
    attribute_keys,
    decode_block,
    decode_header,
    decode_range,
    may_contain,
    needle_trigrams,
    service_group,
)
from sidecar.storage.rocks.partitions import LOGS


class TextPattern(Protocol):
    """A compiled pattern (the API compiles with RE2, see query/regex.py)."""

    def search(self, text: str, /) -> object | None: ...


_SUFFIX = 10  # rev(8) | seq(2)
MAX_SEVERITY = 24  # SeverityNumber FATAL4
_CURSOR = struct.Struct(">i10sH")  # day | block suffix | position


class BadCursor(ValueError):
    """A cursor this reader did not make."""


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Every filter of a log query; a record matches when it passes all that are set."""

    service: str | None = None
    severity_min: int = 0
    text: str | None = None  # case-insensitive substring of the body
    regex: TextPattern | None = None  # searched in the body
    trace_id: str | None = None  # hex
    span_id: str | None = None
    attrs: list[tuple[str, str]] = field(default_factory=list)
    from_ns: int | None = None
    to_ns: int | None = None

    def matches(self, e: LogEntry) -> bool:
        """The per-record checks a block header cannot answer."""
        return (
            (self.service is None or e.service == self.service)  # headers hold a cut name
            and e.severity_number >= self.severity_min
            and (not self.text or self.text.lower() in e.body.lower())
            and (self.regex is None or self.regex.search(e.body) is not None)
            and (self.trace_id is None or e.trace_id == self.trace_id)
            and (self.span_id is None or e.span_id == self.span_id)
            and all(prop_matches(e.attributes.get(k), v) for k, v in self.attrs)
        )


@dataclass(frozen=True, slots=True)
class LogPage:
    entries: list[LogEntry]
    next_cursor: bytes | None  # None when the walk is over


# The only characters whose str.lower() holds ASCII letters: U+0130 (to "i" + a dot) and U+212A
# (Kelvin sign, to "k"), in UTF-8. Without them, ASCII letters lowercased byte by byte (binary
# fields and other text untouched) are exactly those of str.lower(), so an ASCII needle absent from
# bytes.lower() is absent from every body's str.lower().
_LOWERS_TO_ASCII = (b"\xc4\xb0", b"\xe2\x84\xaa")


def _lowers_as_bytes(data: bytes) -> bool:
    return not any(seq in data for seq in _LOWERS_TO_ASCII)


def _id_hex(raw: bytes) -> str:
    """An ID as hex; an all-zero one is no ID (OTLP's rule), so it reads as absent."""
    return raw.hex() if raw.strip(b"\x00") else ""


def _header_terms(query: LogFilter) -> tuple[bytes | None, int]:
    """The service name as headers store it (cut to MAX_SERVICE_BYTES) and the severity bit mask."""
    wanted = None if query.service is None else query.service.encode("utf-8", "replace")[:MAX_SERVICE_BYTES]
    every = (1 << (MAX_SEVERITY + 1)) - 1  # severity bits only: the header's flags sit above them
    return wanted, every & ~((1 << query.severity_min) - 1)


def encode_cursor(day: int, suffix: bytes, position: int) -> bytes:
    return _CURSOR.pack(day, suffix, position)


def decode_cursor(cursor: bytes) -> tuple[int, bytes, int]:
    if len(cursor) != _CURSOR.size:
        raise BadCursor("not a cursor this API gave (use next_cursor)")
    day, suffix, position = _CURSOR.unpack(cursor)
    return day, suffix, position


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


class LogReader:
    def __init__(self, store: RocksStore, keys_seen: KeyRegistry | None = None) -> None:
        """``keys_seen``: the attribute-key registry the log writer fills (loaded here if None)."""
        self._store = store
        self._keys = keys_seen or attribute_keys(store.db)
        self._services: dict[bytes, str] = {}
        self._scopes: dict[bytes, str] = {}
        self.last_scan = BlockStats(0, 0)

    # -- queries -----------------------------------------------------------------------------
    def attribute_keys(self, service: str | None) -> list[str]:
        """The attribute keys records of ``service`` (None: of any service) have carried, sorted."""
        return self._keys.keys_of(None if service is None else [service_group(service)])

    def get_trace_logs(self, trace_id: bytes) -> list[LogEntry]:
        """Every stored record of one trace, oldest first: one ``X | trace_id`` read per partition."""
        found: list[LogEntry] = []
        for part in self._store.partitions(LOGS):
            for key, value in part.items(TRACE_INDEX + trace_id):
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
        query = LogFilter(service, severity_min, text, from_ns=from_ns, to_ns=to_ns)
        return self.page(query, limit).entries

    def page(self, query: LogFilter, limit: int = 100, cursor: bytes | None = None) -> LogPage:
        """Up to ``limit`` matches strictly after ``cursor``; ``next_cursor`` is set when more may follow."""
        out: list[LogEntry] = []
        last: bytes | None = None
        matches = self._matches(query, cursor)
        try:
            for day, suffix, position, entry in matches:
                out.append(entry)
                if len(out) >= limit:
                    last = encode_cursor(day, suffix, position)
                    break
        finally:
            matches.close()  # records last_scan now
        return LogPage(out, last)

    def mark(self) -> tuple[int, bytes]:
        """The newest stored block (day, suffix): a live tail shows only what is written after it."""
        for part in self._store.partitions(LOGS):
            for key, _ in part.items(HEADER):
                return part.day, key[1:]
        return -(2**31), b""

    def since(self, query: LogFilter, mark: tuple[int, bytes]) -> tuple[list[LogEntry], tuple[int, bytes]]:
        """Matches in blocks written after ``mark``, oldest first, and the new mark. Headers rule out
        blocks of other services or severities before any block is opened, as in a search."""
        newest = mark
        found: list[LogEntry] = []
        wanted, severity_mask = _header_terms(query)
        for part in self._store.partitions(LOGS):
            if part.day < mark[0]:
                break
            for key, header in part.items(HEADER):
                suffix = key[1:]
                if part.day == mark[0] and suffix >= mark[1]:
                    break
                if newest == mark:
                    newest = (part.day, suffix)
                _, _, mask, name = decode_header(header)
                if (wanted is not None and name != wanted) or not mask & severity_mask:
                    continue
                block = self._block(part, suffix)
                if block is None:
                    continue
                for entry in self._entries(part, block, range(len(block.times))):
                    if self._in_time(query, entry) and query.matches(entry):
                        found.append(entry)
        found.sort(key=lambda e: e.time_ns)
        return found, newest

    @staticmethod
    def _in_time(query: LogFilter, e: LogEntry) -> bool:
        end = query.to_ns if query.to_ns is not None else keys.MAX_U64 + 1  # exclusive
        return (query.from_ns or 0) <= e.time_ns < end

    def _matches(
        self, query: LogFilter, cursor: bytes | None
    ) -> Generator[tuple[int, bytes, int, LogEntry], None, None]:
        wanted, severity_mask = _header_terms(query)
        grams = needle_trigrams(query.text.lower() if query.text else "")
        # An ASCII needle is looked for in the bytes of blocks whose bodies are all plain strings
        # (verbatim there), in C, before a record is decoded: a search for a request ID, whose hex
        # trigrams every block holds, then costs a memory scan per block, not a decode per line.
        needle = query.text.lower().encode() if query.text and query.text.isascii() else None
        low = query.from_ns or 0
        high = (query.to_ns if query.to_ns is not None else keys.MAX_U64 + 1) - 1  # 'to' is exclusive
        after = decode_cursor(cursor) if cursor is not None else None
        headers = opened = 0
        try:
            for part in self._store.partitions(LOGS):
                if after is not None and part.day > after[0]:
                    continue  # pages before the cursor's day were walked already
                stored_range = part.data.get(RANGE)
                if stored_range is not None:
                    first, last = decode_range(stored_range)
                    if last < low or first > high:
                        continue  # no record of this day is in the time range
                for suffix, header in self._candidates(part, query.trace_id):
                    skip_to = 0
                    if after is not None and part.day == after[0]:
                        if suffix < after[1]:
                            continue
                        if suffix == after[1]:
                            skip_to = after[2] + 1
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
                        bloom = part.data.get(FILTER + suffix)
                        if bloom is not None and not may_contain(bloom, grams):
                            continue
                    data = part.data.get(BLOCK + suffix)
                    if data is None:
                        continue
                    raw = decode_block(data)
                    plain = needle if mask & PLAIN_BODIES else None
                    if plain is not None and _lowers_as_bytes(raw) and plain not in raw.lower():
                        continue
                    block = LogBlock.FromString(raw)
                    opened += 1
                    order = sorted(range(len(block.times)), key=block.times.__getitem__, reverse=True)
                    for position in range(skip_to, len(order)):
                        i = order[position]
                        if not low <= block.times[i] <= high:
                            continue
                        if plain is not None:
                            record = block.records[i]
                            if _lowers_as_bytes(record) and plain not in record.lower():
                                continue
                        entry = self._entries(part, block, (i,))[0]
                        if query.matches(entry):
                            yield part.day, suffix, position, entry
        finally:
            self.last_scan = BlockStats(headers, opened)

    def _candidates(self, part: Partition, trace_id: str | None) -> Iterator[tuple[bytes, bytes]]:
        """(block suffix, header) newest write first: every block, or with a trace ID only the blocks
        its index names (same key order, so cursors mean the same either way)."""
        if trace_id is None:
            for key, header in part.items(HEADER):
                yield key[1:], header
            return
        for key, _ in part.items(TRACE_INDEX + bytes.fromhex(trace_id)):
            suffix = key[-_SUFFIX:]
            stored = part.data.get(HEADER + suffix)
            if stored is not None:
                yield suffix, stored

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
                    _id_hex(record.trace_id),
                    _id_hex(record.span_id),
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
