"""OTLP spans -> the Jaeger v1 UI JSON served by ``/api/traces`` (CONTRACTS §2.3, §2.4).

Follows the Collector-contrib translator Jaeger itself uses (tag order, references, logs) and the
field shapes of Jaeger's ``uimodel`` JSON, so Grafana and the Jaeger UI render our traces unchanged.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from sidecar.query.params import format_trace_id_jaeger
from sidecar.storage.rocks.logs.reader import LogEntry

__all__ = ["span_kind_name", "traces_to_jaeger"]

from sidecar.otlp.conventions import NO_SERVICE_NAME, UNKNOWN_SERVICE

_JS_MAX_SAFE_INT = 2**53 - 1  # the UI parses JSON numbers as doubles

_KIND_NAMES: dict[int, str] = {
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}

Tag = dict[str, Any]
SpanLogs = Mapping[str, Sequence[LogEntry]]  # span ID (16 hex digits) -> that span's log records
_Process = tuple[str, list[Tag], str]  # serviceName, tags, identity key for de-duplication


def span_kind_name(kind: int) -> str:
    """Jaeger's lowercase span kind name; "" for UNSPECIFIED and unknown values."""
    return _KIND_NAMES.get(kind, "")


def traces_to_jaeger(
    resource_spans: Iterable[ResourceSpans], span_logs: SpanLogs | None = None
) -> list[dict[str, Any]]:
    """Group the spans by trace ID and return one Jaeger trace object per trace.

    ``span_logs`` (span ID hex -> OTLP log records of that span) adds each record to its span's
    ``logs`` after the span events, then that span's logs are sorted by timestamp (stable, so an
    event stays before a record of the same microsecond). Records of span IDs that are not in the
    trace are left out: Jaeger's model has nowhere to put them. Spans without records, and every
    span when ``span_logs`` is None, render exactly as without it.

    Traces appear in order of first appearance. Spans in a trace are sorted by start time (µs), then
    span ID, and process IDs ``p1``, ``p2``... follow that order, so repeated queries render
    identically. Spans whose trace ID is not 16 bytes cannot be expressed in Jaeger's model and are
    skipped (ingest validation should have rejected them).
    """
    grouped: dict[bytes, list[tuple[Span, _Process, list[Tag]]]] = {}
    for rs in resource_spans:
        process = _process(rs.resource)
        for ss in rs.scope_spans:
            scope_tags = _scope_tags(ss.scope)
            for span in ss.spans:
                if len(span.trace_id) == 16:
                    grouped.setdefault(span.trace_id, []).append((span, process, scope_tags))
    return [_trace(trace_id, entries, span_logs) for trace_id, entries in grouped.items()]


def _trace(
    trace_id: bytes, entries: list[tuple[Span, _Process, list[Tag]]], span_logs: SpanLogs | None = None
) -> dict[str, Any]:
    # Sort first so process IDs follow display order (p1 = earliest span's service) and do not depend
    # on the order storage returned the data in.
    entries.sort(key=lambda e: (e[0].start_time_unix_nano // 1000, _span_id(e[0].span_id)))
    process_ids: dict[str, str] = {}
    processes: dict[str, dict[str, Any]] = {}
    spans: list[dict[str, Any]] = []
    for span, (service, tags, key), scope_tags in entries:
        pid = process_ids.get(key)
        if pid is None:
            pid = process_ids[key] = f"p{len(process_ids) + 1}"
            # Copies: the same resource feeds many traces, and callers may adjust one of them.
            processes[pid] = {"serviceName": service, "tags": [dict(t) for t in tags]}
        out = _span(span, scope_tags, pid)
        records = span_logs.get(out["spanID"]) if span_logs else None
        if records:
            logs = out["logs"]
            logs.extend(_record_log(r) for r in records)
            logs.sort(key=lambda log: log["timestamp"])  # Jaeger's adjuster orders a span's logs by time
        spans.append(out)
    return {
        "traceID": format_trace_id_jaeger(trace_id),
        "spans": spans,
        "processes": processes,
        "warnings": None,
    }


def _process(resource: Resource) -> _Process:
    attrs = resource.attributes
    if not attrs:
        service = NO_SERVICE_NAME
    else:
        found = next((kv.value for kv in attrs if kv.key == "service.name"), None)
        service = UNKNOWN_SERVICE if found is None else _as_text(found)
    tags = [_tag(kv.key, kv.value) for kv in attrs if kv.key != "service.name"]
    key = json.dumps([service, tags], separators=(",", ":"), sort_keys=True)
    return service, tags, key


def _scope_tags(scope: InstrumentationScope) -> list[Tag]:
    tags: list[Tag] = []
    if scope.name:
        tags.append({"key": "otel.scope.name", "type": "string", "value": scope.name})
    if scope.version:
        tags.append({"key": "otel.scope.version", "type": "string", "value": scope.version})
    return tags


def _span(span: Span, scope_tags: list[Tag], pid: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceID": format_trace_id_jaeger(span.trace_id),
        "spanID": _span_id(span.span_id),
    }
    flags = span.flags & 0xFF  # W3C trace flags; the higher OTLP bits (remote parent) have no Jaeger meaning
    if flags:
        out["flags"] = flags
    start = span.start_time_unix_nano
    out["operationName"] = span.name
    out["references"] = _references(span)
    out["startTime"] = start // 1000
    out["duration"] = max(span.end_time_unix_nano - start, 0) // 1000
    out["tags"] = _span_tags(span, scope_tags)
    out["logs"] = [_log(event) for event in span.events]
    out["processID"] = pid
    out["warnings"] = None
    return out


def _references(span: Span) -> list[dict[str, str]]:
    refs: list[dict[str, str]] = []
    parent = span.parent_span_id
    if parent:
        # First, because clients take the parent from the first CHILD_OF reference.
        refs.append(_ref("CHILD_OF", span.trace_id, parent))
    for link in span.links:
        ref_type = "FOLLOWS_FROM"
        for kv in link.attributes:
            if kv.key == "opentracing.ref_type":
                if kv.value.string_value == "child_of":
                    ref_type = "CHILD_OF"
                break
        if parent and link.span_id == parent and link.trace_id == span.trace_id:
            refs[0]["refType"] = ref_type  # the link describes the parent relation more precisely
            continue
        refs.append(_ref(ref_type, link.trace_id, link.span_id))
    return refs


def _ref(ref_type: str, trace_id: bytes, span_id: bytes) -> dict[str, str]:
    # Links may point at malformed IDs; pad rather than fail the whole trace.
    tid = trace_id.rjust(16, b"\0")[-16:]
    return {"refType": ref_type, "traceID": format_trace_id_jaeger(tid), "spanID": _span_id(span_id)}


def _span_id(span_id: bytes) -> str:
    return span_id.rjust(8, b"\0")[-8:].hex()


def _span_tags(span: Span, scope_tags: list[Tag]) -> list[Tag]:
    tags = [dict(t) for t in scope_tags]  # per-span copies, as above
    tags.extend(_tag(kv.key, kv.value) for kv in span.attributes)
    kind = span_kind_name(span.kind)
    if kind:
        tags.append({"key": "span.kind", "type": "string", "value": kind})
    code = span.status.code
    if code == Status.STATUS_CODE_OK:
        tags.append({"key": "otel.status_code", "type": "string", "value": "OK"})
    elif code == Status.STATUS_CODE_ERROR:
        tags.append({"key": "otel.status_code", "type": "string", "value": "ERROR"})
        tags.append({"key": "error", "type": "bool", "value": True})
    if span.status.message:
        tags.append({"key": "otel.status_description", "type": "string", "value": span.status.message})
    if span.trace_state:
        tags.append({"key": "w3c.tracestate", "type": "string", "value": span.trace_state})
    return tags


def _log(event: Span.Event) -> dict[str, Any]:
    fields: list[Tag] = []
    # An explicit "event" attribute wins over the name; Jaeger shows the name as the "event" field.
    if event.name and not any(kv.key == "event" for kv in event.attributes):
        fields.append({"key": "event", "type": "string", "value": event.name})
    fields.extend(_tag(kv.key, kv.value) for kv in event.attributes)
    return {"timestamp": event.time_unix_nano // 1000, "fields": fields}


_SEVERITY_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


def _severity_name(number: int) -> str:
    """The OTLP short name of a severity number: INFO for 9, INFO2 for 10... "" when unset or unknown."""
    if not 1 <= number <= 24:
        return ""
    base, step = divmod(number - 1, 4)
    return _SEVERITY_NAMES[base] + (str(step + 1) if step else "")


def _record_log(record: LogEntry) -> dict[str, Any]:
    """An OTLP log record as a Jaeger span log: ``event`` = body, ``level`` = severity, then attributes."""
    fields: list[Tag] = []
    event = record.body or record.event_name
    if event and "event" not in record.attributes:
        fields.append({"key": "event", "type": "string", "value": event})
    level = record.severity_text or _severity_name(record.severity_number)
    if level and "level" not in record.attributes:
        fields.append({"key": "level", "type": "string", "value": level})
    fields.extend(_plain_tag(key, value) for key, value in record.attributes.items())
    return {"timestamp": record.time_ns // 1000, "fields": fields}


def _plain_tag(key: str, value: Any) -> Tag:
    """A decoded attribute value (str, bool, int, float, list, dict, None) typed as :func:`_tag` does."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        safe = -_JS_MAX_SAFE_INT <= value <= _JS_MAX_SAFE_INT
        return {"key": key, "type": "int64", "value": value if safe else str(value)}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": _float(value)}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    if value is None:
        return {"key": key, "type": "string", "value": ""}
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)
    return {"key": key, "type": "string", "value": text}


def _tag(key: str, value: AnyValue) -> Tag:
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"key": key, "type": "string", "value": value.string_value}
    if which == "int_value":
        n = value.int_value
        safe = -_JS_MAX_SAFE_INT <= n <= _JS_MAX_SAFE_INT
        return {"key": key, "type": "int64", "value": n if safe else str(n)}
    if which == "double_value":
        return {"key": key, "type": "float64", "value": _float(value.double_value)}
    if which == "bool_value":
        return {"key": key, "type": "bool", "value": value.bool_value}
    if which == "bytes_value":
        return {"key": key, "type": "binary", "value": base64.b64encode(value.bytes_value).decode("ascii")}
    if which in ("array_value", "kvlist_value"):
        return {"key": key, "type": "string", "value": _json_text(value)}
    return {"key": key, "type": "string", "value": ""}


def _float(x: float) -> float | str:
    # JSON has no NaN/Infinity; spell them as Go's strconv does rather than emit invalid JSON.
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")


def _json_text(value: AnyValue) -> str:
    # Compact, keys sorted: what Go's json.Marshal produces for the translator's AsString().
    return json.dumps(_plain(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _plain(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return _float(value.double_value)
    if which == "bool_value":
        return value.bool_value
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if which == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    return None


def _as_text(value: AnyValue) -> str:
    if value.WhichOneof("value") == "string_value":
        return value.string_value
    plain = _plain(value)
    if plain is None:
        return ""
    return plain if isinstance(plain, str) else json.dumps(plain, separators=(",", ":"), sort_keys=True)
