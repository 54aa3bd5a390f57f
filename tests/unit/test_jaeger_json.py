"""OTLP -> Jaeger v1 UI JSON, checked field by field against the contract's mapping table."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from sidecar.query.jaeger_json import span_kind_name, traces_to_jaeger

TRACE = bytes.fromhex("83a9efd15c1c98a977e0711cc93ee28b")
OTHER_TRACE = bytes(8) + bytes.fromhex("00000000000000ff")
ROOT = bytes.fromhex("909541b92cf05311")
CHILD = bytes.fromhex("e127af99e3b3e074")
LINKED = bytes.fromhex("0102030405060708")
T0 = 1706678909209712345  # ns
BIG = 2**53 + 1


def _kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def _resource(service: str | None, *extra: KeyValue) -> ResourceSpans:
    rs = ResourceSpans()
    if service is not None:
        rs.resource.attributes.append(_kv("service.name", string_value=service))
    rs.resource.attributes.extend(extra)
    return rs


def _two_service_trace() -> list[ResourceSpans]:
    front = _resource("frontend", _kv("host.name", string_value="web-1"))
    scope = front.scope_spans.add()
    scope.scope.name = "io.opentelemetry.flask"
    scope.scope.version = "0.48b0"
    root = scope.spans.add(
        trace_id=TRACE,
        span_id=ROOT,
        name="GET /checkout",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 5_000_000,
        trace_state="vendor=1",
        flags=0x101,
    )
    root.attributes.extend(
        [
            _kv("http.status_code", int_value=500),
            _kv("big", int_value=BIG),
            _kv("neg.big", int_value=-BIG),
            _kv("ratio", double_value=0.25),
            _kv("ok", bool_value=False),
            _kv("raw", bytes_value=b"\x01\x02\x03"),
            _kv("list", array_value={"values": [AnyValue(string_value="a"), AnyValue(int_value=1)]}),
            _kv("map", kvlist_value={"values": [_kv("k", string_value="v")]}),
            KeyValue(key="empty"),
        ]
    )
    root.status.code = Status.STATUS_CODE_OK
    event = root.events.add(time_unix_nano=T0 + 1_000_000, name="retry")
    event.attributes.append(_kv("attempt", int_value=2))
    root.events.add(time_unix_nano=T0 + 2_000_000, name="ignored-name").attributes.append(
        _kv("event", string_value="explicit")
    )

    back = _resource("backend")
    child = back.scope_spans.add().spans.add(
        trace_id=TRACE,
        span_id=CHILD,
        parent_span_id=ROOT,
        name="SELECT orders",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0 + 1_000,
        end_time_unix_nano=T0 + 3_001_999,
    )
    child.status.code = Status.STATUS_CODE_ERROR
    child.status.message = "deadlock"
    child.links.add(trace_id=OTHER_TRACE, span_id=LINKED)
    child.links.add(
        trace_id=TRACE, span_id=LINKED, attributes=[_kv("opentracing.ref_type", string_value="child_of")]
    )
    # Child created before the parent in the input: output must still be sorted by start time.
    return [back, front]


def test_two_service_trace_exact_shape() -> None:
    (trace,) = traces_to_jaeger(_two_service_trace())
    tid = "83a9efd15c1c98a977e0711cc93ee28b"
    assert trace["traceID"] == tid
    assert trace["warnings"] is None
    # Process IDs follow the sorted spans, not the input order: p1 = root's service.
    assert trace["processes"] == {
        "p1": {"serviceName": "frontend", "tags": [{"key": "host.name", "type": "string", "value": "web-1"}]},
        "p2": {"serviceName": "backend", "tags": []},
    }
    root, child = trace["spans"]
    assert root == {
        "traceID": tid,
        "spanID": "909541b92cf05311",
        "flags": 1,
        "operationName": "GET /checkout",
        "references": [],
        "startTime": 1706678909209712,
        "duration": 5000,
        "tags": [
            {"key": "otel.scope.name", "type": "string", "value": "io.opentelemetry.flask"},
            {"key": "otel.scope.version", "type": "string", "value": "0.48b0"},
            {"key": "http.status_code", "type": "int64", "value": 500},
            {"key": "big", "type": "int64", "value": str(BIG)},
            {"key": "neg.big", "type": "int64", "value": str(-BIG)},
            {"key": "ratio", "type": "float64", "value": 0.25},
            {"key": "ok", "type": "bool", "value": False},
            {"key": "raw", "type": "binary", "value": "AQID"},
            {"key": "list", "type": "string", "value": '["a",1]'},
            {"key": "map", "type": "string", "value": '{"k":"v"}'},
            {"key": "empty", "type": "string", "value": ""},
            {"key": "span.kind", "type": "string", "value": "server"},
            {"key": "otel.status_code", "type": "string", "value": "OK"},
            {"key": "w3c.tracestate", "type": "string", "value": "vendor=1"},
        ],
        "logs": [
            {
                "timestamp": 1706678909210712,
                "fields": [
                    {"key": "event", "type": "string", "value": "retry"},
                    {"key": "attempt", "type": "int64", "value": 2},
                ],
            },
            {
                "timestamp": 1706678909211712,
                "fields": [{"key": "event", "type": "string", "value": "explicit"}],
            },
        ],
        "processID": "p1",
        "warnings": None,
    }
    assert child == {
        "traceID": tid,
        "spanID": "e127af99e3b3e074",
        "operationName": "SELECT orders",
        "references": [
            {"refType": "CHILD_OF", "traceID": tid, "spanID": "909541b92cf05311"},
            {"refType": "FOLLOWS_FROM", "traceID": "00000000000000ff", "spanID": "0102030405060708"},
            {"refType": "CHILD_OF", "traceID": tid, "spanID": "0102030405060708"},
        ],
        "startTime": 1706678909209713,
        "duration": 3000,
        "tags": [
            {"key": "span.kind", "type": "string", "value": "client"},
            {"key": "otel.status_code", "type": "string", "value": "ERROR"},
            {"key": "error", "type": "bool", "value": True},
            {"key": "otel.status_description", "type": "string", "value": "deadlock"},
        ],
        "logs": [],
        "processID": "p2",
        "warnings": None,
    }
    json.dumps(trace, allow_nan=False)  # must be valid JSON as is


def test_link_to_parent_overrides_parent_ref_type() -> None:
    rs = _resource("svc")
    span = rs.scope_spans.add().spans.add(trace_id=TRACE, span_id=CHILD, parent_span_id=ROOT)
    span.links.add(trace_id=TRACE, span_id=ROOT)  # no ref_type attribute -> FOLLOWS_FROM
    (trace,) = traces_to_jaeger([rs])
    assert trace["spans"][0]["references"] == [
        {
            "refType": "FOLLOWS_FROM",
            "traceID": "83a9efd15c1c98a977e0711cc93ee28b",
            "spanID": "909541b92cf05311",
        }
    ]


def test_grouping_processes_and_service_names() -> None:
    low = bytes(8) + bytes.fromhex("0000000000000abc")
    a1 = _resource("a", _kv("v", int_value=1))
    a1.scope_spans.add().spans.add(trace_id=TRACE, span_id=ROOT, start_time_unix_nano=20_000)
    a2 = _resource("a", _kv("v", int_value=1))  # same process in a second ResourceSpans -> same pid
    a2.scope_spans.add().spans.add(trace_id=TRACE, span_id=CHILD, start_time_unix_nano=10_000)
    bare = ResourceSpans()
    bare.scope_spans.add().spans.add(trace_id=low, span_id=ROOT)
    nameless = _resource(None, _kv("host.name", string_value="h"))
    nameless.scope_spans.add().spans.add(trace_id=low, span_id=CHILD)
    broken = _resource("x")
    broken.scope_spans.add().spans.add(trace_id=b"", span_id=LINKED)  # unrepresentable: skipped

    first, second = traces_to_jaeger([a1, a2, bare, nameless, broken])
    assert first["traceID"] == "83a9efd15c1c98a977e0711cc93ee28b"
    assert list(first["processes"]) == ["p1"]
    assert [s["spanID"] for s in first["spans"]] == [CHILD.hex(), ROOT.hex()]  # sorted by start
    assert {s["processID"] for s in first["spans"]} == {"p1"}

    assert second["traceID"] == "0000000000000abc"
    assert second["spans"][0]["traceID"] == "0000000000000abc"
    assert second["processes"] == {
        "p1": {"serviceName": "OTLPResourceNoServiceName", "tags": []},
        "p2": {
            "serviceName": "unknown_service",
            "tags": [{"key": "host.name", "type": "string", "value": "h"}],
        },
    }


def test_ties_sorted_by_span_id_and_negative_duration_clamped() -> None:
    rs = _resource("svc")
    spans = rs.scope_spans.add().spans
    spans.add(trace_id=TRACE, span_id=CHILD, start_time_unix_nano=5_000, end_time_unix_nano=1_000)
    spans.add(trace_id=TRACE, span_id=ROOT, start_time_unix_nano=5_000)
    (trace,) = traces_to_jaeger([rs])
    assert [s["spanID"] for s in trace["spans"]] == [ROOT.hex(), CHILD.hex()]
    assert all(s["duration"] == 0 for s in trace["spans"])
    assert "flags" not in trace["spans"][0]
    assert traces_to_jaeger([]) == []


def test_non_finite_double_stays_valid_json() -> None:
    rs = _resource("svc")
    span = rs.scope_spans.add().spans.add(trace_id=TRACE, span_id=ROOT)
    span.attributes.append(_kv("nan", double_value=float("nan")))
    (trace,) = traces_to_jaeger([rs])
    json.dumps(trace, allow_nan=False)


def test_span_kind_name() -> None:
    assert span_kind_name(Span.SPAN_KIND_SERVER) == "server"
    assert span_kind_name(Span.SPAN_KIND_CLIENT) == "client"
    assert span_kind_name(Span.SPAN_KIND_PRODUCER) == "producer"
    assert span_kind_name(Span.SPAN_KIND_CONSUMER) == "consumer"
    assert span_kind_name(Span.SPAN_KIND_INTERNAL) == "internal"
    assert span_kind_name(Span.SPAN_KIND_UNSPECIFIED) == ""
    assert span_kind_name(99) == ""
