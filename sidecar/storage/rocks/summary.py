"""The per-trace summary record, kept current by the writer as spans arrive.

Search answers and trace-duration filters come from this small record, never from span data.
Services and operations are stored as registry ids to keep the record a few dozen bytes.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sidecar.storage.rocks.keys import SUMMARY

if TYPE_CHECKING:
    from sidecar.storage.rocks.db import Partition

# first_seen, start, end, spans, errors, min_span, max_span, root_has_parent, root_start, root_service
_HEAD = struct.Struct("<QQQIIQQBQIH")
_SERVICE = struct.Struct("<III")
_COUNT = struct.Struct("<H")
_OP = struct.Struct("<I")
NO_SERVICE = 0xFFFFFFFF


@functools.lru_cache(maxsize=256)
def _tail(services: int, operations: int) -> struct.Struct:
    return struct.Struct(f"<H{3 * services}IH{operations}I")


class Summary:
    """Mutable in the writer, decoded read-only by readers."""

    __slots__ = (
        "end",
        "errors",
        "first_seen",
        "max_span",
        "min_span",
        "operations",
        "root_has_parent",
        "root_name",
        "root_service",
        "root_start",
        "services",
        "span_ids",
        "spans",
        "start",
    )

    def __init__(self, first_seen: int) -> None:
        self.first_seen = first_seen
        self.start = (1 << 64) - 1
        self.end = 0
        self.spans = 0
        self.errors = 0
        self.min_span = (1 << 64) - 1
        self.max_span = 0
        self.root_has_parent = True
        self.root_start = (1 << 64) - 1
        self.root_service = NO_SERVICE
        self.root_name = b""
        self.services: dict[int, list[int]] = {}  # service id -> [spans, errors]
        self.operations: set[int] = set()
        # Writer-side only, never encoded: the ids of the trace's stored spans, so that a resent
        # span is recognised. Loaded from the chunks when the cache lacks the trace.
        self.span_ids = bytearray()  # 8 bytes a span, appended in place

    def add(
        self,
        service: int,
        spans: int,
        errors: int,
        start: int,
        end: int,
        min_span: int,
        max_span: int,
        root: tuple[bool, int, bytes] | None,
    ) -> None:
        self.spans += spans
        self.errors += errors
        if start < self.start:
            self.start = start
        if end > self.end:
            self.end = end
        if min_span < self.min_span:
            self.min_span = min_span
        if max_span > self.max_span:
            self.max_span = max_span
        counts = self.services.get(service)
        if counts is None:
            self.services[service] = [spans, errors]
        else:
            counts[0] += spans
            counts[1] += errors
        if root is not None and (
            root[0] < self.root_has_parent or (root[0] == self.root_has_parent and root[1] < self.root_start)
        ):
            self.root_has_parent, self.root_start, self.root_name = root
            self.root_service = service

    def encode(self) -> bytes:
        parts = [
            _HEAD.pack(
                self.first_seen,
                self.start,
                self.end,
                self.spans,
                self.errors,
                self.min_span,
                self.max_span,
                self.root_has_parent,
                self.root_start,
                self.root_service,
                len(self.root_name),
            ),
            self.root_name,
            _tail(len(self.services), len(self.operations)).pack(
                len(self.services),
                *[x for sid, c in self.services.items() for x in (sid, c[0], c[1])],
                len(self.operations),
                *self.operations,
            ),
        ]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Summary:
        (
            first_seen,
            start,
            end,
            spans,
            errors,
            min_span,
            max_span,
            has_parent,
            root_start,
            root_service,
            name_len,
        ) = _HEAD.unpack_from(data, 0)
        s = cls(first_seen)
        s.start, s.end, s.spans, s.errors = start, end, spans, errors
        s.min_span, s.max_span = min_span, max_span
        s.root_has_parent, s.root_start, s.root_service = bool(has_parent), root_start, root_service
        offset = _HEAD.size
        s.root_name = data[offset : offset + name_len]
        offset += name_len
        (count,) = _COUNT.unpack_from(data, offset)
        offset += _COUNT.size
        for _ in range(count):
            sid, n, e = _SERVICE.unpack_from(data, offset)
            s.services[sid] = [n, e]
            offset += _SERVICE.size
        (count,) = _COUNT.unpack_from(data, offset)
        offset += _COUNT.size
        s.operations = {_OP.unpack_from(data, offset + i * _OP.size)[0] for i in range(count)}
        return s


def read_summaries(partitions: Iterable[Partition], trace_ids: list[bytes]) -> dict[bytes, Summary]:
    """The summary of each trace from the first of ``partitions`` that has one (one multi-get each).

    The writer carries a trace's summary forward into the partition it writes, so newest-first
    partitions give the most complete record.
    """
    found: dict[bytes, Summary] = {}
    missing = trace_ids
    for part in partitions:
        if not missing:
            break
        values: list[bytes | None] = part.data.get([SUMMARY + t for t in missing]) or []
        still = []
        for tid, value in zip(missing, values, strict=True):
            if value is None:
                still.append(tid)
            else:
                found[tid] = Summary.decode(value)
        missing = still
    return found
