"""Ingest end to end: real OTel SDK exporters and hand-written OTLP requests in, Jaeger JSON out.

Each test sends its own trace(s) to the module's sidecar and reads them back through the query API
the way Grafana and the Jaeger UI do (``/api/traces/{id}``), so the checks cover the whole path:
OTLP decoding, validation, storage, and the OTLP -> Jaeger mapping of CONTRACTS §2.3/§2.4.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.trace import SpanKind, StatusCode

from tests.e2e.harness import (
    JSON,
    PROTOBUF,
    Sidecar,
    deflate_body,
    find_tag,
    gzip_body,
    jaeger_id,
    make_request,
    make_span,
    merge_requests,
    new_span_id,
    new_trace_id,
    spans_by_name,
    tag_map,
    to_otlp_json,
)

MS = 1_000_000


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def only_process(trace_json: dict[str, Any]) -> dict[str, Any]:
    processes = trace_json["processes"]
    assert len(processes) == 1, processes
    (pid, process), *_ = processes.items()
    assert all(span["processID"] == pid for span in trace_json["spans"])
    return process


# ---------------------------------------------------------------------------------------------
# OTel SDK exporters


@pytest.mark.parametrize(
    ("protocol", "batch", "compression"),
    [
        pytest.param("grpc", False, None, id="grpc-simple"),
        pytest.param("grpc", False, grpc.Compression.Gzip, id="grpc-gzip"),
        pytest.param("http", True, None, id="http-protobuf-batch"),
        pytest.param("http", True, HttpCompression.Gzip, id="http-protobuf-gzip"),
        pytest.param("http", False, HttpCompression.Deflate, id="http-protobuf-deflate"),
    ],
)
def test_sdk_exporter_roundtrip(
    sidecar: Sidecar, sdk: Any, protocol: str, batch: bool, compression: Any
) -> None:
    service = unique(f"sdk-{protocol}")
    pipeline = sdk(
        sidecar,
        service,
        protocol,
        batch=batch,
        compression=compression,
        resource_attrs={"deployment.environment": "e2e", "host.cores": 2},
    )
    tracer = pipeline.tracer
    t0 = time.time_ns() - 5_000 * MS + 123  # odd nanoseconds: µs conversion must truncate
    root = tracer.start_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        start_time=t0,
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "sampling.ratio": 0.25,
            "cache.hit": False,
            "labels": ["a", "b"],
        },
    )
    ctx = trace.set_span_in_context(root)
    child = tracer.start_span("SELECT orders", context=ctx, kind=SpanKind.CLIENT, start_time=t0 + 1 * MS)
    child.set_attribute("db.system", "postgresql")
    child.add_event("retry", {"attempt": 2}, timestamp=t0 + 2 * MS + 999)
    child.set_status(StatusCode.ERROR, "connection reset")
    child.end(end_time=t0 + 4_500_000)
    internal = tracer.start_span("render", context=ctx, start_time=t0 + 5 * MS)
    internal.set_status(StatusCode.OK)
    internal.end(end_time=t0 + 7_250_000)
    root.end(end_time=t0 + 12_345_678)
    pipeline.flush()

    pipeline.exporter.assert_all_succeeded(expected_spans=3)
    trace_id = root.get_span_context().trace_id.to_bytes(16, "big")
    root_sid = f"{root.get_span_context().span_id:016x}"

    got = sidecar.jaeger_trace(jaeger_id(trace_id))
    assert got["traceID"] == jaeger_id(trace_id)
    assert len(got["spans"]) == 3
    spans = spans_by_name(got)
    assert all(s["traceID"] == jaeger_id(trace_id) for s in got["spans"])

    process = only_process(got)
    assert process["serviceName"] == service
    ptags = tag_map(process["tags"])
    assert ptags["deployment.environment"] == ("string", "e2e")
    assert ptags["host.cores"] == ("int64", 2)
    assert ptags["telemetry.sdk.language"] == ("string", "python")
    assert "service.name" not in ptags

    r = spans["GET /checkout"]
    assert r["spanID"] == root_sid
    assert r["references"] == []
    assert r["startTime"] == t0 // 1000
    assert r["duration"] == 12_345_678 // 1000
    # The Python SDK sends only the OTLP "has is_remote" bits (0x100), which have no Jaeger meaning.
    assert r.get("flags", 0) == 0
    rtags = tag_map(r["tags"])
    assert rtags["span.kind"] == ("string", "server")
    assert rtags["http.request.method"] == ("string", "GET")
    assert rtags["http.response.status_code"] == ("int64", 200)
    assert rtags["sampling.ratio"] == ("float64", 0.25)
    assert rtags["cache.hit"] == ("bool", False)
    assert rtags["labels"] == ("string", '["a","b"]')
    assert rtags["otel.scope.name"] == ("string", "e2e.instrumentation")
    assert rtags["otel.scope.version"] == ("string", "2.3.4")
    assert "error" not in rtags and "otel.status_code" not in rtags  # status UNSET
    assert r["logs"] == []

    c = spans["SELECT orders"]
    assert c["references"] == [{"refType": "CHILD_OF", "traceID": jaeger_id(trace_id), "spanID": root_sid}]
    assert c["startTime"] == (t0 + 1 * MS) // 1000
    assert c["duration"] == (4_500_000 - 1 * MS) // 1000
    ctags = tag_map(c["tags"])
    assert ctags["span.kind"] == ("string", "client")
    assert ctags["error"] == ("bool", True)
    assert ctags["otel.status_code"] == ("string", "ERROR")
    assert ctags["otel.status_description"] == ("string", "connection reset")
    assert ctags["db.system"] == ("string", "postgresql")
    assert c["logs"] == [
        {
            "timestamp": (t0 + 2 * MS + 999) // 1000,
            "fields": [
                {"key": "event", "type": "string", "value": "retry"},
                {"key": "attempt", "type": "int64", "value": 2},
            ],
        }
    ]

    i = spans["render"]
    assert i["references"][0]["spanID"] == root_sid
    itags = tag_map(i["tags"])
    assert itags["span.kind"] == ("string", "internal")
    assert itags["otel.status_code"] == ("string", "OK")
    assert "error" not in itags
    assert i["duration"] == 2250

    # The service is known and its trace is found by a search, not only by ID.
    status, services = sidecar.get_json("/api/services")
    assert status == 200 and service in services["data"]
    assert sidecar.search_ids(service=service) == [jaeger_id(trace_id)]
    # The summary is right although the root span arrived last (SimpleSpanProcessor exports on end).
    status, summaries = sidecar.get_json("/api/trace-summaries", service=service)
    assert status == 200
    (summary,) = summaries["data"]
    assert summary["traceID"] == trace_id.hex()
    assert summary["rootServiceName"] == service
    assert summary["rootOperationName"] == "GET /checkout"
    assert (summary["spanCount"], summary["errorCount"]) == (3, 1)
    assert summary["startTime"] == t0 // 1000
    assert summary["duration"] == 12_345_678 // 1000


# ---------------------------------------------------------------------------------------------
# Hand-written OTLP-JSON (opentelemetry-proto docs/specification.md, "JSON Protobuf Encoding")


def _json_trace(service: str, trace_hex: str, root_hex: str, child_hex: str, t0: int) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": service}},
                        {"key": "host.name", "value": {"stringValue": "box-1"}},
                    ],
                    "droppedAttributesCount": 0,
                    "someFutureResourceField": {"nested": [1, 2, 3]},
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual-json", "version": "0.9", "unknownScopeField": True},
                        "spans": [
                            {
                                "traceId": trace_hex.upper(),  # hex is case-insensitive
                                "spanId": root_hex.upper(),
                                "parentSpanId": "",
                                "name": "GET /json",
                                "kind": 2,
                                "startTimeUnixNano": str(t0),
                                "endTimeUnixNano": str(t0 + 1_234_567_891),
                                "attributes": [
                                    {"key": "int.as.string", "value": {"intValue": "42"}},
                                    {"key": "int.as.number", "value": {"intValue": 7}},
                                    {"key": "big.int", "value": {"intValue": "9007199254740993"}},
                                    {"key": "ratio", "value": {"doubleValue": 1.5}},
                                    {"key": "flag", "value": {"boolValue": True}},
                                    {"key": "raw", "value": {"bytesValue": "AQID"}},
                                    {
                                        "key": "list",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"stringValue": "x"}, {"intValue": "1"}]
                                            }
                                        },
                                    },
                                    {"key": "unknown.in.kv", "value": {"stringValue": "v"}, "extra": 1},
                                ],
                                "status": {"code": 1},
                                "futureSpanField": "ignored",
                            },
                            {
                                "traceId": trace_hex,
                                "spanId": child_hex,
                                "parentSpanId": root_hex,
                                "name": "consume",
                                "kind": 5,
                                "startTimeUnixNano": str(t0 + 10 * MS),
                                "endTimeUnixNano": t0 + 30 * MS,  # numbers are accepted too
                                "events": [
                                    {
                                        "timeUnixNano": str(t0 + 20 * MS),
                                        "name": "message.dropped",
                                        "attributes": [{"key": "reason", "value": {"stringValue": "ttl"}}],
                                    }
                                ],
                                "status": {"code": 2, "message": "poison message"},
                            },
                        ],
                    }
                ],
            }
        ],
        "unknownTopLevel": {"a": 1},
    }


def test_otlp_json_spec_encoding(sidecar: Sidecar) -> None:
    service = unique("json")
    trace_id, root, child = new_trace_id(), new_span_id(), new_span_id()
    t0 = time.time_ns() - 60_000 * MS + 987
    body = json.dumps(_json_trace(service, trace_id.hex(), root.hex(), child.hex(), t0)).encode()

    status, headers, raw = sidecar.post_traces(body, JSON)
    assert status == 200, raw
    assert headers["content-type"].startswith(JSON)
    response = json.loads(raw)
    assert isinstance(response, dict)
    assert not response.get("partialSuccess"), response  # full success: partial_success unset

    got = sidecar.jaeger_trace(trace_id.hex())
    assert len(got["spans"]) == 2
    process = only_process(got)
    assert process["serviceName"] == service
    assert tag_map(process["tags"]) == {"host.name": ("string", "box-1")}

    spans = spans_by_name(got)
    r, c = spans["GET /json"], spans["consume"]
    assert r["spanID"] == root.hex() and c["spanID"] == child.hex()  # hex IDs, not base64 garbage
    assert r["references"] == []
    assert c["references"] == [{"refType": "CHILD_OF", "traceID": trace_id.hex(), "spanID": root.hex()}]
    assert r["startTime"] == t0 // 1000
    assert r["duration"] == 1_234_567_891 // 1000
    assert c["duration"] == 20_000

    rtags = tag_map(r["tags"])
    assert rtags["int.as.string"] == ("int64", 42)
    assert rtags["int.as.number"] == ("int64", 7)
    assert rtags["big.int"] == ("int64", "9007199254740993")  # beyond 2^53: a decimal string
    assert rtags["ratio"] == ("float64", 1.5)
    assert rtags["flag"] == ("bool", True)
    assert rtags["raw"] == ("binary", "AQID")
    assert rtags["list"] == ("string", '["x",1]')
    assert rtags["unknown.in.kv"] == ("string", "v")
    assert rtags["span.kind"] == ("string", "server")
    assert rtags["otel.status_code"] == ("string", "OK")
    assert rtags["otel.scope.name"] == ("string", "manual-json")
    assert "error" not in rtags

    ctags = tag_map(c["tags"])
    assert ctags["span.kind"] == ("string", "consumer")
    assert ctags["error"] == ("bool", True)
    assert ctags["otel.status_code"] == ("string", "ERROR")
    assert ctags["otel.status_description"] == ("string", "poison message")
    assert c["logs"] == [
        {
            "timestamp": (t0 + 20 * MS) // 1000,
            "fields": [
                {"key": "event", "type": "string", "value": "message.dropped"},
                {"key": "reason", "type": "string", "value": "ttl"},
            ],
        }
    ]
    # Upper-case IDs in the URL name the same trace.
    assert sidecar.jaeger_trace(trace_id.hex().upper())["traceID"] == trace_id.hex()


def test_otlp_json_enum_names_are_accepted(sidecar: Sidecar) -> None:
    """The spec says integers only, but lenient receivers accept enum names (CONTRACTS §1.3)."""
    service = unique("json-enum-names")
    trace_id, a, b = new_trace_id(), new_span_id(), new_span_id()
    t0 = time.time_ns() - 30_000 * MS

    def span(span_id: bytes, name: str, kind: str, code: str, parent: str = "") -> dict[str, Any]:
        return {
            "traceId": trace_id.hex(),
            "spanId": span_id.hex(),
            "parentSpanId": parent,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(t0),
            "endTimeUnixNano": str(t0 + 5 * MS),
            "status": {"code": code},
        }

    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            span(a, "publish", "SPAN_KIND_PRODUCER", "STATUS_CODE_OK"),
                            span(b, "call", "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR", a.hex()),
                        ]
                    }
                ],
            }
        ]
    }
    status, _, raw = sidecar.post_traces(json.dumps(body).encode(), JSON)
    assert status == 200, raw

    spans = spans_by_name(sidecar.jaeger_trace(trace_id.hex()))
    ptags, ctags = tag_map(spans["publish"]["tags"]), tag_map(spans["call"]["tags"])
    assert ptags["span.kind"] == ("string", "producer")
    assert ptags["otel.status_code"] == ("string", "OK")
    assert "error" not in ptags
    assert ctags["span.kind"] == ("string", "client")
    assert ctags["otel.status_code"] == ("string", "ERROR")
    assert ctags["error"] == ("bool", True)
    assert spans["call"]["references"][0]["spanID"] == a.hex()


def test_otlp_json_content_type_with_charset(sidecar: Sidecar) -> None:
    """Dispatch is on the media type; parameters such as charset are ignored (CONTRACTS §1.2)."""
    service = unique("json-charset")
    trace_id = new_trace_id()
    span = {
        "traceId": trace_id.hex(),
        "spanId": new_span_id().hex(),
        "name": "op",
        "kind": 1,
        "startTimeUnixNano": str(time.time_ns() - 10 * MS),
        "endTimeUnixNano": str(time.time_ns()),
    }
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"spans": [span]}],
            }
        ]
    }
    status, headers, raw = sidecar.post_traces(json.dumps(body).encode(), "application/json; charset=utf-8")
    assert status == 200, raw
    assert headers["content-type"].startswith(JSON)
    assert len(sidecar.jaeger_trace(trace_id.hex())["spans"]) == 1


# ---------------------------------------------------------------------------------------------
# Compressed OTLP/HTTP bodies


def _protobuf_trace(service: str, n_spans: int) -> tuple[bytes, bytes]:
    trace_id = new_trace_id()
    t0 = time.time_ns() - 20_000 * MS
    root = new_span_id()
    spans = [make_span(trace_id, "root", t0, 100 * MS, span_id=root, kind=Span.SPAN_KIND_SERVER)]
    spans += [
        make_span(trace_id, f"step-{i}", t0 + i * MS, MS, parent=root, attrs={"i": i, "pad": "z" * 200})
        for i in range(1, n_spans)
    ]
    return trace_id, make_request(service, spans).SerializeToString()


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [(PROTOBUF, "gzip"), (PROTOBUF, "deflate"), (JSON, "gzip"), (JSON, "deflate")],
)
def test_compressed_post(sidecar: Sidecar, content_type: str, encoding: str) -> None:
    service = unique(f"compressed-{encoding}")
    trace_id, raw_request = _protobuf_trace(service, 25)
    if content_type == JSON:
        # The same spans as OTLP-JSON: hex IDs, string nanos, integer enums.
        raw_request = json.dumps(to_otlp_json(ExportTraceServiceRequest.FromString(raw_request))).encode()
        assert trace_id.hex() in raw_request.decode()
    compress = gzip_body if encoding == "gzip" else deflate_body
    body = compress(raw_request)
    assert len(body) < len(raw_request) / 3  # really compressed (the pad attribute compresses well)

    status, headers, raw = sidecar.post_traces(body, content_type, encoding=encoding)
    assert status == 200, raw
    if content_type == PROTOBUF:
        assert headers["content-type"].startswith(PROTOBUF)
        assert not ExportTraceServiceResponse.FromString(raw).HasField("partial_success")
    else:
        assert headers["content-type"].startswith(JSON)
        assert not json.loads(raw).get("partialSuccess")

    got = sidecar.jaeger_trace(jaeger_id(trace_id))
    assert len(got["spans"]) == 25
    assert only_process(got)["serviceName"] == service
    step = spans_by_name(got)["step-7"]
    assert find_tag(step["tags"], "i") == {"key": "i", "type": "int64", "value": 7}


# ---------------------------------------------------------------------------------------------
# Resource edge cases


def test_resource_without_service_name(sidecar: Sidecar) -> None:
    """No attributes -> OTLPResourceNoServiceName (the translator constant, CONTRACTS §2.4)."""
    trace_id = new_trace_id()
    t0 = time.time_ns() - 10 * MS
    sidecar.export(make_request(None, [make_span(trace_id, "anonymous", t0, MS)]))
    got = sidecar.jaeger_trace(jaeger_id(trace_id))
    assert only_process(got)["serviceName"] == "OTLPResourceNoServiceName"


def test_many_resources_in_one_request(sidecar: Sidecar) -> None:
    """Two services in one request, one trace: two processes, each span points at its own."""
    a, b = unique("multi-a"), unique("multi-b")
    trace_id, root = new_trace_id(), new_span_id()
    t0 = time.time_ns() - 10_000 * MS
    req = merge_requests(
        make_request(
            a, [make_span(trace_id, "front", t0, 50 * MS, span_id=root, kind=Span.SPAN_KIND_CLIENT)]
        ),
        make_request(
            b,
            [
                make_span(
                    trace_id,
                    "back",
                    t0 + MS,
                    20 * MS,
                    parent=root,
                    kind=Span.SPAN_KIND_SERVER,
                    status=Status.STATUS_CODE_ERROR,
                )
            ],
            resource_attrs={"k8s.pod.name": "back-0"},
        ),
    )
    sidecar.export(req)
    got = sidecar.jaeger_trace(jaeger_id(trace_id))
    by_pid = {pid: p["serviceName"] for pid, p in got["processes"].items()}
    assert sorted(by_pid.values()) == sorted([a, b])
    spans = spans_by_name(got)
    assert by_pid[spans["front"]["processID"]] == a
    assert by_pid[spans["back"]["processID"]] == b
    back_process = got["processes"][spans["back"]["processID"]]
    assert tag_map(back_process["tags"]) == {"k8s.pod.name": ("string", "back-0")}
    assert sidecar.search_ids(service=b) == [jaeger_id(trace_id)]


def test_links_tracestate_and_special_values(sidecar: Sidecar) -> None:
    """Links -> FOLLOWS_FROM (or CHILD_OF by opentracing.ref_type), trace_state -> w3c.tracestate,
    non-finite doubles and huge ints stay valid JSON, a zero-length span is kept (CONTRACTS §2.3/2.4)."""
    service = unique("links")
    trace_id, other_trace = new_trace_id(), new_trace_id()
    root, other_span, ref_span = new_span_id(), new_span_id(), new_span_id()
    t0 = time.time_ns() - 10_000 * MS
    span = make_span(
        trace_id,
        "linked",
        t0,
        0,
        span_id=root,
        attrs={"nan": float("nan"), "neg.inf": float("-inf"), "neg.big": -(2**60)},
    )
    span.trace_state = "congo=t61rcWkgMzE"
    span.links.add(trace_id=other_trace, span_id=other_span)
    link = span.links.add(trace_id=other_trace, span_id=ref_span)
    link.attributes.add(key="opentracing.ref_type").value.string_value = "child_of"
    child = make_span(trace_id, "child", t0, 10 * MS, parent=root)
    sidecar.export(make_request(service, [span, child]))

    def reject(token: str) -> None:
        raise AssertionError(f"invalid JSON constant {token}")

    status, raw = sidecar.get(f"/api/traces/{jaeger_id(trace_id)}")
    assert status == 200
    spans = spans_by_name(json.loads(raw, parse_constant=reject)["data"][0])
    linked = spans["linked"]
    assert linked["duration"] == 0
    assert linked["references"] == [
        {"refType": "FOLLOWS_FROM", "traceID": jaeger_id(other_trace), "spanID": other_span.hex()},
        {"refType": "CHILD_OF", "traceID": jaeger_id(other_trace), "spanID": ref_span.hex()},
    ]
    tags = tag_map(linked["tags"])
    assert tags["w3c.tracestate"] == ("string", "congo=t61rcWkgMzE")
    assert tags["nan"] == ("float64", "NaN")
    assert tags["neg.inf"] == ("float64", "-Inf")
    assert tags["neg.big"] == ("int64", str(-(2**60)))
    assert spans["child"]["references"] == [
        {"refType": "CHILD_OF", "traceID": jaeger_id(trace_id), "spanID": root.hex()}
    ]
    status, raw = sidecar.get(f"/api/v3/traces/{trace_id.hex()}")
    assert status == 200
    json.loads(raw, parse_constant=reject)
