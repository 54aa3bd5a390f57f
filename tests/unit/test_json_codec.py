"""OTLP-JSON decoding/encoding, focused on the places where ``json_format`` alone gets it wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sidecar.otlp.json_codec import OtlpJsonError, decode_json_request, encode_json

TRACE_HEX = "5B8EFFF798038103D269B633813FC60C"
SPAN_HEX = "EEE19B7EC3C1B174"


def _body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _traces(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> bytes:
    rs: dict[str, Any] = {"scopeSpans": [{"scope": {"name": "lib"}, "spans": list(spans)}]}
    if resource is not None:
        rs["resource"] = resource
    return _body({"resourceSpans": [rs]})


def _spans(req: ExportTraceServiceRequest) -> list[Span]:
    return [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_hex_ids_decode_to_exact_bytes() -> None:
    body = _traces(
        {
            "traceId": TRACE_HEX,
            "spanId": SPAN_HEX.lower(),
            "parentSpanId": "eee19b7ec3c1b173",
            "links": [{"traceId": TRACE_HEX.lower(), "spanId": "0102030405060708"}],
        }
    )
    (span,) = _spans(decode_json_request(body, ExportTraceServiceRequest))
    assert span.trace_id == bytes.fromhex(TRACE_HEX)
    assert len(span.trace_id) == 16
    assert span.span_id == bytes.fromhex(SPAN_HEX)
    assert span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
    assert span.links[0].trace_id == bytes.fromhex(TRACE_HEX)
    assert span.links[0].span_id == bytes.fromhex("0102030405060708")


def test_snake_case_keys_accepted() -> None:
    body = _body(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": TRACE_HEX,
                                    "span_id": SPAN_HEX,
                                    "parent_span_id": SPAN_HEX,
                                    "start_time_unix_nano": "5",
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    (span,) = _spans(decode_json_request(body, ExportTraceServiceRequest))
    assert span.trace_id == bytes.fromhex(TRACE_HEX)
    assert span.parent_span_id == bytes.fromhex(SPAN_HEX)
    assert span.start_time_unix_nano == 5


def test_empty_ids_decode_as_absent() -> None:
    """An empty ID is an absent one (the Collector reads it so); span validation rejects the span."""
    good = {"traceId": TRACE_HEX, "spanId": SPAN_HEX, "name": "good"}
    empty = {"traceId": "", "spanId": "", "parentSpanId": "", "name": "empty"}
    spans = _spans(decode_json_request(_traces(good, empty), ExportTraceServiceRequest))
    assert [s.name for s in spans] == ["good", "empty"]
    assert spans[1].trace_id == b"" and spans[1].span_id == b"" and spans[1].parent_span_id == b""


@pytest.mark.parametrize(
    ("span", "message"),
    [
        (
            {"traceId": "abc"},
            "spans[1].traceId: 'abc' has 3 characters; a trace ID is 32 hex digits",
        ),
        (
            {"traceId": "not-hex-at-all-but-32-characters"},
            "spans[1].traceId: 'not-hex-at-all-but-32-characters' is not hex; a trace ID is 32 hex digits",
        ),
        ({"trace_id": TRACE_HEX[:30]}, "spans[1].trace_id: '5b8efff798038103d269b633813fc6' has 30"),
        ({"spanId": "zz"}, "spans[1].spanId: 'zz' has 2 characters; a span ID is 16 hex digits"),
        ({"parentSpanId": "5b 8e 5b 8e 5b 8"}, "spans[1].parentSpanId: '5b 8e 5b 8e 5b 8' is not hex"),
        (
            {"links": [{"traceId": TRACE_HEX, "spanId": "x" * 100}]},
            "spans[1].links[0].spanId: '" + "x" * 40 + "...' has 100 characters",
        ),
    ],
)
def test_bad_ids_fail_the_request_naming_the_field(span: dict[str, object], message: str) -> None:
    """As in the Collector: an ID that is not exactly 32 / 16 hex digits is undecodable (400)."""
    good = {"traceId": TRACE_HEX, "spanId": SPAN_HEX, "name": "good"}
    with pytest.raises(OtlpJsonError) as info:
        decode_json_request(_traces(good, {"name": "bad", **span}), ExportTraceServiceRequest)
    assert message.lower() in str(info.value).lower()


def test_unknown_fields_ignored() -> None:
    body = _body(
        {
            "futureTopLevel": {"x": [1, 2]},
            "resourceSpans": [
                {
                    "someNewField": 1,
                    "scopeSpans": [{"spans": [{"name": "s", "brandNew": {"deep": True}}]}],
                }
            ],
        }
    )
    (span,) = _spans(decode_json_request(body, ExportTraceServiceRequest))
    assert span.name == "s"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (2, Span.SPAN_KIND_SERVER),
        ("2", Span.SPAN_KIND_SERVER),
        ("SPAN_KIND_SERVER", Span.SPAN_KIND_SERVER),
        ("server", Span.SPAN_KIND_SERVER),
        ("SERVER", Span.SPAN_KIND_SERVER),
        ("Client", Span.SPAN_KIND_CLIENT),
        ("span_kind_consumer", Span.SPAN_KIND_CONSUMER),
        ("no-such-kind", Span.SPAN_KIND_UNSPECIFIED),
    ],
)
def test_span_kind_enum_forms(kind: Any, expected: int) -> None:
    (span,) = _spans(decode_json_request(_traces({"kind": kind}), ExportTraceServiceRequest))
    assert span.kind == expected


@pytest.mark.parametrize("code", [2, "STATUS_CODE_ERROR", "error", "ERROR"])
def test_status_code_enum_forms(code: Any) -> None:
    (span,) = _spans(decode_json_request(_traces({"status": {"code": code}}), ExportTraceServiceRequest))
    assert span.status.code == Status.STATUS_CODE_ERROR


def test_int64_as_string_or_number() -> None:
    big = 2**63 - 1
    span = {
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "attributes": [
            {"key": "s", "value": {"intValue": str(big)}},
            {"key": "n", "value": {"intValue": -42}},
            {"key": "f", "value": {"intValue": 7.0}},
        ],
    }
    (decoded,) = _spans(decode_json_request(_traces(span), ExportTraceServiceRequest))
    assert decoded.start_time_unix_nano == 1544712660000000000
    assert decoded.end_time_unix_nano == 1544712661000000000
    assert [a.value.int_value for a in decoded.attributes] == [big, -42, 7]


def test_any_value_variants_and_empty_message() -> None:
    attrs = [
        {"key": "b64", "value": {"bytesValue": "AQID"}},
        {"key": "arr", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"doubleValue": "NaN"}]}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}},
        {"key": "empty", "value": {}},
    ]
    body = _traces({"attributes": attrs}, resource={})
    req = decode_json_request(body, ExportTraceServiceRequest)
    assert req.resource_spans[0].HasField("resource")
    (span,) = _spans(req)
    assert span.attributes[0].value.bytes_value == b"\x01\x02\x03"
    assert span.attributes[1].value.array_value.values[0].string_value == "a"
    assert span.attributes[2].value.kvlist_value.values[0].value.bool_value is True
    assert span.attributes[3].value.WhichOneof("value") is None


def test_null_means_unset() -> None:
    (span,) = _spans(decode_json_request(_traces({"name": None, "status": None}), ExportTraceServiceRequest))
    assert span.name == "" and not span.HasField("status")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'"x"', "expected a JSON object"),
        (b'{"resourceSpans": {}}', "resourceSpans: expected array"),
        (b'{"resourceSpans": [1]}', "resourceSpans[0]: expected object"),
        (
            b'{"resourceSpans": [{"resource": {"attributes": [{"key": 5}]}}]}',
            ".attributes[0].key: expected string",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": true}]}]}]}',
            "spans[0].kind: expected integer",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 12}]}]}]}',
            "spans[0].traceId: expected a trace ID as a string of 32 hex digits",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"flags": -1}]}]}]}',
            "flags: integer -1 out of range",
        ),
    ],
)
def test_errors_name_the_path(body: bytes, fragment: str) -> None:
    with pytest.raises(OtlpJsonError) as info:
        decode_json_request(body, ExportTraceServiceRequest)
    assert fragment in str(info.value)


def test_wrong_type_error_has_full_path() -> None:
    spans = [{}, {}, {}, {"startTimeUnixNano": "soon"}]
    with pytest.raises(OtlpJsonError) as info:
        decode_json_request(_traces(*spans), ExportTraceServiceRequest)
    assert str(info.value) == "resourceSpans[0].scopeSpans[0].spans[3].startTimeUnixNano: expected integer"
    assert isinstance(info.value, ValueError)


def test_logs_request() -> None:
    body = _body(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "timeUnixNano": "1544712660300000000",
                                    "severityNumber": "SEVERITY_NUMBER_INFO",
                                    "severityText": "Information",
                                    "traceId": TRACE_HEX,
                                    "spanId": "",
                                    "body": {"stringValue": "hello"},
                                    "eventName": "app.started",
                                },
                                {"severityNumber": "warn", "span_id": SPAN_HEX},
                                {"severityNumber": 17},
                            ]
                        }
                    ]
                }
            ]
        }
    )
    req = decode_json_request(body, ExportLogsServiceRequest)
    records = req.resource_logs[0].scope_logs[0].log_records
    assert records[0].trace_id == bytes.fromhex(TRACE_HEX)
    assert records[0].span_id == b""
    assert records[0].severity_number == SeverityNumber.SEVERITY_NUMBER_INFO
    assert records[0].body.string_value == "hello"
    assert records[0].event_name == "app.started"
    assert records[1].severity_number == SeverityNumber.SEVERITY_NUMBER_WARN
    assert records[1].span_id == bytes.fromhex(SPAN_HEX)
    assert records[2].severity_number == SeverityNumber.SEVERITY_NUMBER_ERROR


def test_metrics_request_with_exemplar_ids() -> None:
    point = {
        "startTimeUnixNano": "1",
        "timeUnixNano": "2",
        "count": "3",
        "sum": 4.5,
        "bucketCounts": ["1", 2],
        "explicitBounds": [1, "2.5"],
        "exemplars": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX, "asDouble": 1.0}],
    }
    body = _body(
        {
            "resourceMetrics": [
                {
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {
                                    "name": "latency",
                                    "histogram": {"aggregationTemporality": 2, "dataPoints": [point]},
                                },
                                {
                                    "name": "requests",
                                    "sum": {
                                        "aggregationTemporality": "cumulative",
                                        "isMonotonic": True,
                                        "dataPoints": [{"asInt": "9007199254740993"}],
                                    },
                                },
                            ]
                        }
                    ]
                }
            ]
        }
    )
    req = decode_json_request(body, ExportMetricsServiceRequest)
    hist, total = req.resource_metrics[0].scope_metrics[0].metrics
    dp = hist.histogram.data_points[0]
    assert list(dp.bucket_counts) == [1, 2]
    assert list(dp.explicit_bounds) == [1.0, 2.5]
    assert dp.HasField("sum") and dp.sum == 4.5
    assert dp.exemplars[0].trace_id == bytes.fromhex(TRACE_HEX)
    assert dp.exemplars[0].span_id == bytes.fromhex(SPAN_HEX)
    assert total.sum.aggregation_temporality == 2
    assert total.sum.data_points[0].as_int == 9007199254740993


def test_repeated_scalar_error_path() -> None:
    metric = {"histogram": {"dataPoints": [{"bucketCounts": ["1", "x"]}]}}
    body = _body({"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]})
    with pytest.raises(OtlpJsonError, match=r"dataPoints\[0\]\.bucketCounts\[1\]: expected integer"):
        decode_json_request(body, ExportMetricsServiceRequest)


def test_encode_json_hex_ids_integer_enums_string_int64() -> None:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex(TRACE_HEX)
    span.span_id = bytes.fromhex(SPAN_HEX)
    span.parent_span_id = bytes.fromhex("0000000000000001")
    span.kind = Span.SPAN_KIND_CLIENT
    span.status.code = Status.STATUS_CODE_ERROR
    span.start_time_unix_nano = 1544712660000000000
    span.dropped_attributes_count = 3
    link = span.links.add(trace_id=bytes(16), span_id=bytes.fromhex("0102030405060708"))
    link.attributes.add(key="b").value.bytes_value = b"\x01\x02\x03"

    out = encode_json(req)
    enc = out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert enc["traceId"] == TRACE_HEX.lower()
    assert enc["spanId"] == SPAN_HEX.lower()
    assert enc["parentSpanId"] == "0000000000000001"
    assert enc["kind"] == 3
    assert enc["status"] == {"code": 2}
    assert enc["startTimeUnixNano"] == "1544712660000000000"
    assert enc["droppedAttributesCount"] == 3
    assert enc["links"][0]["traceId"] == "0" * 32
    assert enc["links"][0]["spanId"] == "0102030405060708"
    assert enc["links"][0]["attributes"][0]["value"] == {"bytesValue": "AQID"}  # other bytes stay base64


def test_round_trip_traces_and_logs() -> None:
    body = _traces(
        {
            "traceId": TRACE_HEX,
            "spanId": SPAN_HEX,
            "name": "op",
            "kind": "server",
            "startTimeUnixNano": 10,
            "endTimeUnixNano": "20",
            "events": [{"timeUnixNano": "15", "name": "e"}],
        },
        resource={"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
    )
    req = decode_json_request(body, ExportTraceServiceRequest)
    again = decode_json_request(json.dumps(encode_json(req)).encode(), ExportTraceServiceRequest)
    assert again == req

    logs = ExportLogsServiceRequest()
    rec = logs.resource_logs.add().scope_logs.add().log_records.add()
    rec.trace_id = bytes.fromhex(TRACE_HEX)
    rec.span_id = bytes.fromhex(SPAN_HEX)
    rec.severity_number = SeverityNumber.SEVERITY_NUMBER_INFO
    enc = encode_json(logs)["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert enc["traceId"] == TRACE_HEX.lower() and enc["severityNumber"] == 9
    assert decode_json_request(json.dumps(encode_json(logs)).encode(), ExportLogsServiceRequest) == logs
