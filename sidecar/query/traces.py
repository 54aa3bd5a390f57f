"""Trace queries on top of a SpanReader: the search plan's last step and trace assembly.

The reader's index and summaries narrow the candidates; this module checks what they cannot: a
trace matches only when one span satisfies the operation, every tag and the span-duration bounds
together, as in Jaeger's reference store. That check loads the trace, so it runs only when the
query has more than one span-level condition.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Iterable

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData

from sidecar.otlp.conventions import NO_SERVICE_NAME, UNKNOWN_SERVICE
from sidecar.storage.api import (
    DERIVED_TAGS,
    DependencyLink,
    Operation,
    SpanReader,
    StoredTrace,
    TraceQuery,
    TraceSummary,
    wants_error,
)

# Spans may claim to start this long after they arrived (a client clock ahead of ours; next to the
# service on the same host that is ~0). Larger values make "newest first" exact for worse clocks
# but make every search read all candidates that arrived in that window.
CLOCK_SKEW_NS = 250_000_000
_KINDS = {0: "", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


def any_value_text(value: AnyValue) -> str:
    """Jaeger's string form of an attribute value, used to compare against query tags."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        number = value.double_value
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which in ("array_value", "kvlist_value"):
        return json.dumps(plain_value(value), separators=(",", ":"))
    return ""


def plain_value(value: AnyValue) -> object:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [plain_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: plain_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which is None:
        return None
    return getattr(value, which)


def _find(attributes: Iterable[KeyValue], key: str) -> list[str]:
    return [any_value_text(kv.value) for kv in attributes if kv.key == key]


def _values_equal(found: str, wanted: str) -> bool:
    if found == wanted:
        return True
    try:
        return float(found) == float(wanted)
    except ValueError:
        return False


class _SpanContext:
    __slots__ = ("resource", "scope", "service")

    def __init__(self, service: str, resource: list[KeyValue], scope: object) -> None:
        self.service = service
        self.resource = resource
        self.scope = scope


def _tag_matches(span: Span, ctx: _SpanContext, key: str, wanted: str) -> bool:
    scope = ctx.scope
    if key == "error":
        return (span.status.code == 2) == wants_error(wanted)
    if key == "span.kind":
        return _KINDS.get(span.kind, "") == wanted.lower()
    if key in ("span.status", "otel.status_code"):
        return _STATUS.get(span.status.code, "") == wanted.lower()
    if key == "otel.status_description":
        return span.status.message == wanted
    if key in ("scope.name", "otel.scope.name", "otel.library.name"):
        return scope.name == wanted  # type: ignore[attr-defined]
    if key in ("scope.version", "otel.scope.version", "otel.library.version"):
        return scope.version == wanted  # type: ignore[attr-defined]
    if key == "w3c.tracestate":
        return span.trace_state == wanted
    if key.startswith("resource."):
        return any(_values_equal(v, wanted) for v in _find(ctx.resource, key[len("resource.") :]))
    candidates = _find(span.attributes, key)
    candidates += _find(scope.attributes, key)  # type: ignore[attr-defined]
    candidates += _find(ctx.resource, key)
    for event in span.events:
        candidates += _find(event.attributes, key)
    for link in span.links:
        candidates += _find(link.attributes, key)
    return any(_values_equal(v, wanted) for v in candidates)


def span_matches(span: Span, ctx: _SpanContext, query: TraceQuery) -> bool:
    if query.service is not None and ctx.service != query.service:
        return False
    if query.operation is not None and span.name != query.operation:
        return False
    duration = span.end_time_unix_nano - span.start_time_unix_nano
    if query.min_duration_ns is not None and duration < query.min_duration_ns:
        return False
    if query.max_duration_ns is not None and duration > query.max_duration_ns:
        return False
    return all(_tag_matches(span, ctx, k, v) for k, v in query.tags)


def service_of(resource_attributes: Iterable[KeyValue]) -> str:
    attrs = list(resource_attributes)
    for kv in attrs:
        if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
            return kv.value.string_value
    return UNKNOWN_SERVICE if attrs else NO_SERVICE_NAME


def trace_matches(traces_data: bytes, query: TraceQuery) -> bool:
    data = TracesData.FromString(traces_data)
    for rs in data.resource_spans:
        service = service_of(rs.resource.attributes)
        for ss in rs.scope_spans:
            ctx = _SpanContext(service, list(rs.resource.attributes), ss.scope)
            if any(span_matches(span, ctx, query) for span in ss.spans):
                return True
    return False


def needs_verification(query: TraceQuery) -> bool:
    """True when the index and summaries cannot decide the query alone."""
    span_level = len(query.tags) + (query.operation is not None)
    has_duration = query.min_duration_ns is not None or query.max_duration_ns is not None
    if has_duration:
        if span_level or query.service is not None:
            return True
        if query.min_duration_ns is not None and query.max_duration_ns is not None:
            return True
    if span_level >= 2:
        return True
    return any(k != "error" and k in DERIVED_TAGS for k, _ in query.tags)


class TraceQueryService:
    """Blocking query operations; the API runs them in a thread pool."""

    def __init__(self, reader: SpanReader) -> None:
        self._reader = reader

    def get_trace(self, trace_id: bytes) -> StoredTrace | None:
        return self._reader.get_trace(trace_id)

    def find_traces(
        self, query: TraceQuery, *, load: bool = False
    ) -> list[tuple[TraceSummary, StoredTrace | None]]:
        """The ``query.limit`` matching traces that started last, newest first.

        Candidates come by arrival; the scan stops once arrivals are older than the start of the
        ``limit``-th newest match so far (minus clock skew), because a trace cannot start after
        its spans arrived. Traces are loaded when asked for or when the index cannot decide.
        """
        if query.limit <= 0:
            return []
        verify = needs_verification(query)
        best: list[tuple[int, bytes, TraceSummary]] = []  # min-heap on start: the newest `limit`
        loaded: dict[bytes, StoredTrace] = {}
        candidates = self._reader.find_candidates(query)
        try:
            for arrived_ns, summary in candidates:
                if len(best) >= query.limit and arrived_ns + CLOCK_SKEW_NS < best[0][0]:
                    break
                if len(best) >= query.limit and summary.start_ns <= best[0][0]:
                    continue
                if verify:
                    stored = self._reader.get_trace(summary.trace_id)
                    if stored is None or not trace_matches(stored.traces_data, query):
                        continue
                    loaded[summary.trace_id] = stored
                entry = (summary.start_ns, summary.trace_id, summary)
                if len(best) < query.limit:
                    heapq.heappush(best, entry)
                else:
                    heapq.heappushpop(best, entry)
        finally:
            candidates.close()  # type: ignore[attr-defined]
        ordered = [summary for _, _, summary in sorted(best, reverse=True)]
        if not load:
            return [(s, None) for s in ordered]
        return [(s, loaded.get(s.trace_id) or self._reader.get_trace(s.trace_id)) for s in ordered]

    def get_services(self) -> list[str]:
        return self._reader.get_services()

    def get_operations(self, service: str, span_kind: str | None = None) -> list[Operation]:
        return self._reader.get_operations(service, span_kind)

    def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        return self._reader.get_dependencies(end_ns, lookback_ns)
