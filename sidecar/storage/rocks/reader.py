"""Reads for the query layer: trace by ID, candidate search over postings, registries, edges."""

from __future__ import annotations

import contextlib
import heapq
from array import array
from collections.abc import Iterator

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from rocksdict import ReadOptions

from sidecar.otlp.shadow import Chunk, RawTraceRequest
from sidecar.storage.api import (
    DERIVED_TAGS,
    DependencyLink,
    Operation,
    ServiceStats,
    StoredTrace,
    TraceQuery,
    TraceSummary,
    wants_error,
)
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.chunks import group_span_ids, trace_chunks
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.registry import SPAN_KINDS, Registry
from sidecar.storage.rocks.servicegraph import read_calls, read_peer_calls
from sidecar.storage.rocks.summary import NO_SERVICE, Summary, read_summaries

# Postings are ordered by arrival. A search by start time scans arrivals up to the window's end plus
# the longest delay ever seen between a span's start and its arrival (recorded per partition),
# plus this much for clocks that run ahead.
CLOCK_SKEW_NS = 60 * 1_000_000_000
_SUMMARY_BATCH = 64


def tag_terms(key: str, value: str) -> list[bytes]:
    """Every KeyValue encoding whose Jaeger string form equals ``value``."""
    if key.startswith("resource."):
        key = key[len("resource.") :]
    candidates = [AnyValue(string_value=value)]
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        candidates.append(AnyValue(bool_value=lowered == "true"))
    with contextlib.suppress(ValueError):
        candidates.append(AnyValue(int_value=int(value)))
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        candidates.append(AnyValue(double_value=number))
    return list(dict.fromkeys(keys.term(KeyValue(key=key, value=v).SerializeToString()) for v in candidates))


def _first(seen: set[bytes], span_id: bytes) -> bool:
    """True the first time ``span_id`` is seen."""
    if span_id in seen:
        return False
    seen.add(span_id)
    return True


def is_indexed_tag(key: str) -> bool:
    return key not in DERIVED_TAGS


class RocksReader:
    def __init__(self, store: RocksStore, registry: Registry) -> None:
        self._store = store
        self._registry = registry
        self._blob_cache: dict[bytes, bytes] = {}

    # -- trace by id ---------------------------------------------------------------------
    def get_trace(self, trace_id: bytes) -> StoredTrace | None:
        request = RawTraceRequest()
        groups: dict[tuple[bytes, bytes], object] = {}
        summary: TraceSummary | None = None
        stored: list[tuple[Partition, bytes]] = []
        for part in self._store.partitions(newest_first=False):
            value = part.data.get(keys.summary_key(trace_id))
            if value is not None:
                summary = self._to_summary(trace_id, Summary.decode(value))
            stored.extend((part, chunk) for chunk in trace_chunks(part, trace_id))
        if not stored:
            return None
        # The writer drops spans it already holds; a trace written in several chunks is still
        # checked, as Jaeger's span-ID de-dup adjuster does, for copies stored before it did.
        seen: set[bytes] | None = set() if len(stored) > 1 else None
        for part, chunk in stored:
            ids = group_span_ids(chunk) if seen is not None else None
            for index, group in enumerate(Chunk.FromString(chunk).groups):
                spans = group.spans
                if seen is not None and ids is not None:
                    spans = [raw for raw, sid in zip(spans, ids[index], strict=True) if _first(seen, sid)]
                ref = (group.resource_ref, group.scope_ref)
                scope_spans = groups.get(ref)
                if scope_spans is None:
                    rs = request.resource_spans.add(resource=self._blob(part, b"r", group.resource_ref))
                    scope_spans = groups[ref] = rs.scope_spans.add(
                        scope=self._blob(part, b"s", group.scope_ref)
                    )
                scope_spans.spans.extend(spans)  # type: ignore[attr-defined]
        return StoredTrace(summary, request.SerializeToString(), len(stored))

    def _blob(self, part: Partition, kind: bytes, ref: bytes) -> bytes:
        key = keys.BLOB + kind + ref
        data = self._blob_cache.get(key)
        if data is None:
            data = part.data.get(key)
            if data is None:
                for other in self._store.partitions():
                    data = other.data.get(key)
                    if data is not None:
                        break
            data = data or b""
            if len(self._blob_cache) > 4096:
                self._blob_cache.clear()
            self._blob_cache[key] = data
        return data

    # -- summaries -----------------------------------------------------------------------
    def _to_summary(self, trace_id: bytes, s: Summary) -> TraceSummary:
        names = self._registry.services
        ops = self._registry.operations
        return TraceSummary(
            trace_id=trace_id,
            root_service=names.get(s.root_service, "") if s.root_service != NO_SERVICE else "",
            root_name=s.root_name.decode("utf-8", "replace"),
            start_ns=s.start,
            end_ns=s.end,
            span_count=s.spans,
            error_count=s.errors,
            services=tuple(
                ServiceStats(names.get(sid, "?"), c[0], c[1])
                for sid, c in sorted(s.services.items(), key=lambda kv: names.get(kv[0], ""))
            ),
            min_span_ns=s.min_span,
            max_span_ns=s.max_span,
            operations=frozenset(ops[op][1] for op in s.operations if op in ops),
        )

    def get_summaries(self, trace_ids: list[bytes]) -> dict[bytes, Summary]:
        return read_summaries(self._store.partitions(), trace_ids)

    # -- search --------------------------------------------------------------------------
    def _scan(self, prefix: bytes, lo_ns: int, hi_ns: int) -> Iterator[tuple[int, bytes, Partition]]:
        """Posting values under ``prefix`` with ingest time in [lo_ns, hi_ns], newest first."""
        lo_day, hi_day = lo_ns // keys.DAY_NS, hi_ns // keys.DAY_NS
        start_key = prefix + keys.rev(min(hi_ns, keys.MAX_U64))
        end_key = prefix + keys.rev(max(lo_ns, 0))
        offset = len(prefix)
        for part in self._store.partitions():
            if part.day > hi_day or part.day < lo_day:
                continue
            ro = ReadOptions()
            ro.set_iterate_upper_bound(end_key + b"\x00")
            it = part.data.iter(ro)
            it.seek(start_key)
            try:
                while it.valid():
                    yield keys.unrev(it.key(), offset), it.value(), part
                    it.next()
            finally:
                del it

    def _max_lateness(self) -> int:
        longest = 0
        for part in self._store.partitions():
            stored = part.data.get(keys.LATENESS)
            if stored:
                longest = max(longest, keys.read_u64(stored))
        return longest

    def _streams(
        self, query: TraceQuery, service_ids: list[int]
    ) -> list[Iterator[tuple[int, bytes, Partition]]]:
        lo = query.start_ns - CLOCK_SKEW_NS
        hi = min(query.end_ns + CLOCK_SKEW_NS + self._max_lateness(), keys.MAX_U64)
        indexed = [(k, v) for k, v in query.tags if is_indexed_tag(k)]
        if indexed:
            key, value = indexed[0]
            return [
                self._scan(keys.attribute_posting_prefix(svc, term), lo, hi)
                for svc in service_ids
                for term in tag_terms(key, value)
            ]
        if query.operation is not None:
            ops = [
                op for svc in service_ids for op in self._registry.operation_ids_named(query.operation, svc)
            ]
            return [self._scan(keys.operation_posting_prefix(op), lo, hi) for op in ops]
        return [self._scan(keys.service_posting_prefix(svc), lo, hi) for svc in service_ids]

    def _passes(self, query: TraceQuery, s: Summary, op_ids: set[int] | None, service_id: int | None) -> bool:
        if s.start > query.end_ns or s.end < query.start_ns:
            return False
        duration = s.end - s.start
        if query.min_trace_duration_ns is not None and duration < query.min_trace_duration_ns:
            return False
        if query.max_trace_duration_ns is not None and duration > query.max_trace_duration_ns:
            return False
        if query.min_duration_ns is not None and s.max_span < query.min_duration_ns:
            return False
        if query.max_duration_ns is not None and s.min_span > query.max_duration_ns:
            return False
        if op_ids is not None and not (s.operations & op_ids):
            return False
        for key, value in query.tags:
            if key == "error":
                # Same-span rule: with a service, only that service's spans count.
                if service_id is None:
                    spans, errors = s.spans, s.errors
                else:
                    spans, errors = s.services.get(service_id, (0, 0))
                if (errors == 0) if wants_error(value) else (errors >= spans):
                    return False
        return True

    def find_candidates(self, query: TraceQuery) -> Iterator[tuple[int, TraceSummary]]:
        registry = self._registry
        if query.service is not None:
            sid = registry.service_ids.get(query.service)
            if sid is None:
                return
            service_ids = [sid]
        else:
            service_ids = sorted(registry.services)
        service_id = service_ids[0] if query.service is not None else None
        op_ids: set[int] | None = None
        if query.operation is not None:
            op_ids = {op for svc in service_ids for op in registry.operation_ids_named(query.operation, svc)}
            if not op_ids:
                return
        streams = self._streams(query, service_ids)
        merged = (
            heapq.merge(*streams, key=lambda item: -item[0])
            if len(streams) > 1
            else iter(streams[0])
            if streams
            else iter(())
        )
        seen: set[bytes] = set()
        try:
            tables: dict[tuple[int, int], bytes] = {}
            for ns, packed, part in merged:
                table = tables.get((part.day, ns))
                if table is None:
                    table = tables[(part.day, ns)] = part.data.get(keys.TRACE_TABLE + keys.rev(ns)) or b""
                slots = array("H")
                slots.frombytes(packed)
                fresh = [t for t in (table[i * 16 : i * 16 + 16] for i in slots) if t not in seen]
                seen.update(fresh)
                for i in range(0, len(fresh), _SUMMARY_BATCH):
                    batch = fresh[i : i + _SUMMARY_BATCH]
                    found = self.get_summaries(batch)
                    for tid in batch:
                        s = found.get(tid)
                        if s is not None and self._passes(query, s, op_ids, service_id):
                            yield ns, self._to_summary(tid, s)
        finally:
            for stream in streams:
                stream.close()  # type: ignore[attr-defined]

    # -- registries and dependencies -----------------------------------------------------
    def get_services(self) -> list[str]:
        return self._registry.service_names()

    def get_operations(self, service: str, span_kind: str | None = None) -> list[Operation]:
        sid = self._registry.service_ids.get(service)
        if sid is None:
            return []
        result: set[Operation] = set()
        for _op, name, kinds in self._registry.operations_of(sid):
            for kind_value, kind_name in enumerate(SPAN_KINDS):
                if kinds & (1 << kind_value) and (span_kind is None or span_kind == kind_name):
                    result.add(Operation(name, kind_name))
        return sorted(result, key=lambda o: (o.name, o.span_kind))

    def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        start_ns = max(0, end_ns - lookback_ns)
        totals = read_calls(self._store.partitions(), start_ns, end_ns)
        names = self._registry.services
        links = {(names.get(p, "?"), names.get(c, "?")): n for (p, c), n in sorted(totals.items())}
        # Calls to virtual peers (a database, a service that reports elsewhere) come after, one
        # link per (service, peer); a peer that is also a known service adds to that link.
        for (c, peer), n in sorted(read_peer_calls(self._store.partitions(), start_ns, end_ns).items()):
            edge = (names.get(c, "?"), peer)
            links[edge] = links.get(edge, 0) + n
        return [DependencyLink(parent, child, n) for (parent, child), n in links.items()]
