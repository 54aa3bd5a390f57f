"""Shadow schemas: wire-compatible views of OTLP messages for the hot ingest path.

Parsing ``ExportTraceServiceRequest`` with the official classes and re-serialising every span costs
more than the rest of ingest together. These messages share field numbers with OTLP but declare the
parts we never inspect as ``bytes``, so upb hands us the original encodings untouched: span bytes
for storage, KeyValue bytes as index terms, resource and scope bytes for de-duplication.
Fields we do not declare survive as unknown fields, so nothing a client sent is lost.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

_F = descriptor_pb2.FieldDescriptorProto
_PKG = "sidecar.shadow"

# (message, [(field, number, type, repeated, message type)])
_SCHEMA: list[tuple[str, list[tuple[str, int, int, bool, str | None]]]] = [
    ("Status", [("code", 3, _F.TYPE_INT32, False, None)]),  # Status{message=2, code=3}
    ("Event", [("attributes", 3, _F.TYPE_BYTES, True, None)]),  # Span.Event{time=1, name=2, attributes=3}
    (
        "Link",
        [("attributes", 4, _F.TYPE_BYTES, True, None)],
    ),  # Span.Link{trace_id=1, span_id=2, state=3, attrs=4}
    (
        "Span",
        [
            ("trace_id", 1, _F.TYPE_BYTES, False, None),
            ("span_id", 2, _F.TYPE_BYTES, False, None),
            ("parent_span_id", 4, _F.TYPE_BYTES, False, None),
            ("name", 5, _F.TYPE_BYTES, False, None),
            ("kind", 6, _F.TYPE_INT32, False, None),
            ("start_time_unix_nano", 7, _F.TYPE_FIXED64, False, None),
            ("end_time_unix_nano", 8, _F.TYPE_FIXED64, False, None),
            ("attributes", 9, _F.TYPE_BYTES, True, None),
            ("events", 11, _F.TYPE_MESSAGE, True, "Event"),
            ("links", 13, _F.TYPE_MESSAGE, True, "Link"),
            # Left encoded: most spans carry no status, and decoding a sub-message per span is slow.
            ("status", 15, _F.TYPE_BYTES, False, None),
        ],
    ),
    ("ScopeSpans", [("scope", 1, _F.TYPE_BYTES, False, None), ("spans", 2, _F.TYPE_MESSAGE, True, "Span")]),
    (
        "ResourceSpans",
        [
            ("resource", 1, _F.TYPE_BYTES, False, None),
            ("scope_spans", 2, _F.TYPE_MESSAGE, True, "ScopeSpans"),
        ],
    ),
    ("TraceRequest", [("resource_spans", 1, _F.TYPE_MESSAGE, True, "ResourceSpans")]),
    # The same request with every span left as its original bytes.
    ("RawScopeSpans", [("scope", 1, _F.TYPE_BYTES, False, None), ("spans", 2, _F.TYPE_BYTES, True, None)]),
    (
        "RawResourceSpans",
        [
            ("resource", 1, _F.TYPE_BYTES, False, None),
            ("scope_spans", 2, _F.TYPE_MESSAGE, True, "RawScopeSpans"),
        ],
    ),
    ("RawTraceRequest", [("resource_spans", 1, _F.TYPE_MESSAGE, True, "RawResourceSpans")]),
    # Resource{attributes=1}, InstrumentationScope{name=1, version=2, attributes=3}.
    ("Resource", [("attributes", 1, _F.TYPE_BYTES, True, None)]),
    (
        "Scope",
        [
            ("name", 1, _F.TYPE_STRING, False, None),
            ("version", 2, _F.TYPE_STRING, False, None),
            ("attributes", 3, _F.TYPE_BYTES, True, None),
        ],
    ),
    # Storage chunk: the spans of one trace from one write, resource and scope stored by reference.
    (
        "ChunkGroup",
        [
            ("resource_ref", 1, _F.TYPE_BYTES, False, None),
            ("scope_ref", 2, _F.TYPE_BYTES, False, None),
            ("spans", 3, _F.TYPE_BYTES, True, None),
        ],
    ),
    ("Chunk", [("groups", 1, _F.TYPE_MESSAGE, True, "ChunkGroup")]),
    # The same chunk read for span ids only: retried exports are recognised by (trace id, span id).
    ("IdSpan", [("span_id", 2, _F.TYPE_BYTES, False, None)]),
    ("IdGroup", [("spans", 3, _F.TYPE_MESSAGE, True, "IdSpan")]),
    ("IdChunk", [("groups", 1, _F.TYPE_MESSAGE, True, "IdGroup")]),
    # Logs: LogRecord{time=1, severity_number=2, body=5, attributes=6, trace_id=9, span_id=10,
    # observed_time=11, event_name=12}; the body (AnyValue) and attributes stay encoded.
    (
        "LogRecord",
        [
            ("time_unix_nano", 1, _F.TYPE_FIXED64, False, None),
            ("severity_number", 2, _F.TYPE_INT32, False, None),
            ("body", 5, _F.TYPE_BYTES, False, None),
            ("attributes", 6, _F.TYPE_BYTES, True, None),
            ("trace_id", 9, _F.TYPE_BYTES, False, None),
            ("span_id", 10, _F.TYPE_BYTES, False, None),
            ("observed_time_unix_nano", 11, _F.TYPE_FIXED64, False, None),
            ("event_name", 12, _F.TYPE_BYTES, False, None),
        ],
    ),
    (
        "ScopeLogs",
        [("scope", 1, _F.TYPE_BYTES, False, None), ("log_records", 2, _F.TYPE_MESSAGE, True, "LogRecord")],
    ),
    (
        "ResourceLogs",
        [
            ("resource", 1, _F.TYPE_BYTES, False, None),
            ("scope_logs", 2, _F.TYPE_MESSAGE, True, "ScopeLogs"),
        ],
    ),
    ("LogsRequest", [("resource_logs", 1, _F.TYPE_MESSAGE, True, "ResourceLogs")]),
    (
        "RawScopeLogs",
        [("scope", 1, _F.TYPE_BYTES, False, None), ("log_records", 2, _F.TYPE_BYTES, True, None)],
    ),
    (
        "RawResourceLogs",
        [
            ("resource", 1, _F.TYPE_BYTES, False, None),
            ("scope_logs", 2, _F.TYPE_MESSAGE, True, "RawScopeLogs"),
        ],
    ),
    ("RawLogsRequest", [("resource_logs", 1, _F.TYPE_MESSAGE, True, "RawResourceLogs")]),
    # Storage block: the records of one (resource, scope) from one write, with each record's time
    # (its own, else observed, else receive time) so a scan need not guess for records without one.
    (
        "LogBlock",
        [
            ("resource_ref", 1, _F.TYPE_BYTES, False, None),
            ("scope_ref", 2, _F.TYPE_BYTES, False, None),
            ("records", 3, _F.TYPE_BYTES, True, None),
            ("times", 4, _F.TYPE_FIXED64, True, None),
        ],
    ),
]


def _build() -> dict[str, type[Message]]:
    fdp = descriptor_pb2.FileDescriptorProto(name="sidecar_shadow.proto", package=_PKG, syntax="proto3")
    for name, fields in _SCHEMA:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            field = msg.field.add(
                name=fname,
                number=number,
                type=ftype,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_name:
                field.type_name = f".{_PKG}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{name}"))
        for name, _ in _SCHEMA
    }


_CLASSES = _build()
# Built at run time from _SCHEMA, so their fields are unknown to mypy.
TraceRequest: Any = _CLASSES["TraceRequest"]
RawTraceRequest: Any = _CLASSES["RawTraceRequest"]
RawResourceSpans: Any = _CLASSES["RawResourceSpans"]
ShadowResource: Any = _CLASSES["Resource"]
ShadowScope: Any = _CLASSES["Scope"]
Chunk: Any = _CLASSES["Chunk"]
ChunkGroup: Any = _CLASSES["ChunkGroup"]
IdChunk: Any = _CLASSES["IdChunk"]
ShadowStatus: Any = _CLASSES["Status"]
ShadowSpan: Any = _CLASSES["Span"]
LogsRequest: Any = _CLASSES["LogsRequest"]
RawLogsRequest: Any = _CLASSES["RawLogsRequest"]
ShadowLogRecord: Any = _CLASSES["LogRecord"]
LogBlock: Any = _CLASSES["LogBlock"]
