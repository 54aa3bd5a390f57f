"""Bad OTLP input: each gets the status the OTLP spec (CONTRACTS §1.2, §1.5, §1.6) asks for, the
process stays up, and data stored before is still there.

An autouse fixture checks "still up, earlier data intact" after every test, on every sidecar the
module uses, so each case is also a robustness check.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    EXPORT_PATH,
    JSON,
    PROTOBUF,
    Sidecar,
    http_request,
    jaeger_id,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
    to_otlp_json,
)

MS = 1_000_000
MIB = 1 << 20
GARBAGE = b"\xff" * 16 + b"definitely not protobuf"


def seed_trace(sidecar: Sidecar) -> bytes:
    trace_id, root = new_trace_id(), new_span_id()
    t0 = time.time_ns() - 60_000 * MS
    spans = [make_span(trace_id, "seed-root", t0, 10 * MS, span_id=root, kind=Span.SPAN_KIND_SERVER)]
    spans += [make_span(trace_id, f"seed-{i}", t0 + i * MS, MS, parent=root) for i in (1, 2)]
    sidecar.export(make_request("seed", spans))
    return trace_id


@pytest.fixture(scope="module")
def small_sidecar(module_sidecar_factory: SidecarFactory) -> Sidecar:
    """OTLP/HTTP body limit of 1 MiB (after decompression), set through the environment."""
    return module_sidecar_factory(
        "small", env={"SIDECAR_RECEIVERS__OTLP__HTTP__MAX_REQUEST_BODY_SIZE_MIB": "1"}
    )


@pytest.fixture(scope="module")
def seeds(sidecar: Sidecar, small_sidecar: Sidecar) -> dict[str, tuple[Sidecar, bytes]]:
    return {"default": (sidecar, seed_trace(sidecar)), "small": (small_sidecar, seed_trace(small_sidecar))}


@pytest.fixture(autouse=True)
def still_up_and_intact(seeds: dict[str, tuple[Sidecar, bytes]]) -> Iterator[None]:
    yield
    for name, (sc, trace_id) in seeds.items():
        assert sc.running, f"{name} sidecar died:\n{sc.stderr_text()}"
        status, body = sc.get_json("/readyz")
        assert status == 200, body
        got = sc.jaeger_trace(jaeger_id(trace_id))
        assert len(got["spans"]) == 3, f"{name}: seed trace damaged"


def rpc_status(raw: bytes) -> status_pb2.Status:
    status = status_pb2.Status.FromString(raw)
    assert status.message, status
    return status


# ---------------------------------------------------------------------------------------------
# OTLP/HTTP


def test_http_garbage_protobuf(sidecar: Sidecar) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the point is only that the body is not a request
        ExportTraceServiceRequest.FromString(GARBAGE)
    status, headers, raw = sidecar.post_traces(GARBAGE, PROTOBUF)
    assert status == 400
    assert headers["content-type"].startswith(PROTOBUF)
    assert rpc_status(raw).code == code_pb2.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2, 3]", b'{"resourceSpans": {"not": "a list"}}', b"\xff\xfe"],
    ids=["syntax", "not-an-object", "wrong-type", "not-utf8"],
)
def test_http_garbage_json(sidecar: Sidecar, body: bytes) -> None:
    status, headers, raw = sidecar.post_traces(body, JSON)
    assert status == 400
    assert headers["content-type"].startswith(JSON)
    error = json.loads(raw)
    assert error["code"] == code_pb2.INVALID_ARGUMENT
    assert isinstance(error["message"], str) and error["message"]
    if b"resourceSpans" in body:
        assert "resourceSpans" in error["message"]  # the path of the bad field


def test_http_wrong_json_field_type_names_path(sidecar: Sidecar) -> None:
    body = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": new_trace_id().hex(), "startTimeUnixNano": "soon"}]}]}
        ]
    }
    status, _, raw = sidecar.post_traces(json.dumps(body).encode(), JSON)
    assert status == 400
    message = json.loads(raw)["message"]
    assert "startTimeUnixNano" in message, message


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "application/grpc"])
def test_http_unsupported_media_type(sidecar: Sidecar, content_type: str) -> None:
    status, _, _ = sidecar.post_traces(b"hello", content_type)
    assert status == 415


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_http_wrong_method(sidecar: Sidecar, method: str) -> None:
    status, headers, _ = http_request(method, sidecar.traces_url, b"" if method != "GET" else None)
    assert status == 405
    assert headers.get("allow") == "POST"


def test_http_corrupt_gzip(sidecar: Sidecar) -> None:
    status, headers, raw = sidecar.post_traces(b"this is not gzip", PROTOBUF, encoding="gzip")
    assert status == 400
    assert headers["content-type"].startswith(PROTOBUF)
    assert rpc_status(raw).code == code_pb2.INVALID_ARGUMENT


def test_http_empty_request_is_success(sidecar: Sidecar) -> None:
    status, _, raw = sidecar.post_traces(b"", PROTOBUF)
    assert status == 200
    assert not ExportTraceServiceResponse.FromString(raw).HasField("partial_success")
    status, _, raw = sidecar.post_traces(b"{}", JSON)
    assert status == 200
    assert not json.loads(raw).get("partialSuccess")


def _big_request(pad_bytes: int) -> tuple[bytes, bytes]:
    trace_id = new_trace_id()
    span = make_span(trace_id, "big", time.time_ns() - 10 * MS, MS, attrs={"pad": "x" * pad_bytes})
    return trace_id, make_request("big-body", [span]).SerializeToString()


def test_http_body_over_limit(small_sidecar: Sidecar, sidecar: Sidecar) -> None:
    trace_id, body = _big_request(MIB + MIB // 2)
    assert len(body) > MIB
    status, headers, raw = small_sidecar.post_traces(body, PROTOBUF)
    assert status == 413
    assert headers["content-type"].startswith(PROTOBUF)
    rpc_status(raw)
    assert small_sidecar.get_json(f"/api/traces/{jaeger_id(trace_id)}")[0] == 404

    # The same body is fine under the default 64 MiB limit, and a body under 1 MiB is fine here.
    status, _, raw = sidecar.post_traces(body, PROTOBUF)
    assert status == 200, raw
    small_id, small_body = _big_request(MIB // 2)
    status, _, raw = small_sidecar.post_traces(small_body, PROTOBUF)
    assert status == 200, raw
    assert len(small_sidecar.jaeger_trace(jaeger_id(small_id))["spans"]) == 1


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_http_gzip_bomb_over_limit(small_sidecar: Sidecar, content_type: str) -> None:
    """The limit applies after decompression: a small gzip body that inflates past it is refused."""
    trace_id, body = _big_request(2 * MIB)
    if content_type == JSON:
        body = json.dumps(to_otlp_json(ExportTraceServiceRequest.FromString(body))).encode()
    compressed = gzip.compress(body)
    assert len(compressed) < 64 * 1024 < MIB < len(body)
    status, headers, raw = small_sidecar.post_traces(compressed, content_type, encoding="gzip")
    assert status == 413
    if content_type == JSON:
        assert headers["content-type"].startswith(JSON)
        assert json.loads(raw)["message"]
    else:
        rpc_status(raw)
    assert small_sidecar.get_json(f"/api/traces/{jaeger_id(trace_id)}")[0] == 404


def _mixed_request(service: str) -> tuple[bytes, bytes, bytes]:
    """Two valid spans of one trace plus three invalid ones (CONTRACTS §1.5 partial success)."""
    trace_id, root = new_trace_id(), new_span_id()
    t0 = time.time_ns() - 5_000 * MS
    spans = [
        make_span(trace_id, "valid-root", t0, 20 * MS, span_id=root, kind=Span.SPAN_KIND_SERVER),
        make_span(new_trace_id()[:15], "short-trace-id", t0, MS),
        make_span(trace_id, "zero-span-id", t0, MS, span_id=bytes(8), parent=root),
        make_span(trace_id, "valid-child", t0 + MS, 5 * MS, parent=root),
        make_span(trace_id, "ends-before-start", t0, MS, parent=root),
    ]
    spans[-1].end_time_unix_nano = t0 - 1
    return trace_id, root, make_request(service, spans).SerializeToString()


def _check_partial(sidecar: Sidecar, trace_id: bytes, root: bytes, rejected: int, message: str) -> None:
    assert rejected == 3
    assert message
    got = sidecar.jaeger_trace(jaeger_id(trace_id))
    names = sorted(s["operationName"] for s in got["spans"])
    assert names == ["valid-child", "valid-root"]
    child = next(s for s in got["spans"] if s["operationName"] == "valid-child")
    assert child["references"][0]["spanID"] == root.hex()


def test_http_partial_success_protobuf(sidecar: Sidecar) -> None:
    trace_id, root, body = _mixed_request("partial-http")
    status, headers, raw = sidecar.post_traces(body, PROTOBUF)
    assert status == 200, raw
    assert headers["content-type"].startswith(PROTOBUF)
    response = ExportTraceServiceResponse.FromString(raw)
    assert response.HasField("partial_success")
    _check_partial(
        sidecar,
        trace_id,
        root,
        response.partial_success.rejected_spans,
        response.partial_success.error_message,
    )
    assert sidecar.search_ids(service="partial-http") == [jaeger_id(trace_id)]


def test_http_partial_success_json(sidecar: Sidecar) -> None:
    trace_id, root, body = _mixed_request("partial-json")
    request = to_otlp_json(ExportTraceServiceRequest.FromString(body))
    # In OTLP-JSON a 15-byte ID is not decodable (see the next test); an empty one is a missing ID.
    request["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = ""
    status, headers, raw = sidecar.post_traces(json.dumps(request).encode(), JSON)
    assert status == 200, raw
    assert headers["content-type"].startswith(JSON)
    partial = json.loads(raw)["partialSuccess"]
    assert partial["rejectedSpans"] in ("3", 3)  # int64: a string in proto3 JSON
    assert "spans[1]: trace_id is missing" in partial["errorMessage"]
    _check_partial(sidecar, trace_id, root, int(partial["rejectedSpans"]), partial["errorMessage"])


@pytest.mark.parametrize(
    ("trace_id", "reason"),
    [("abc", "'abc' has 3 characters; a trace ID is 32 hex digits"), ("g" * 32, "is not hex")],
)
def test_http_json_bad_hex_id_is_400_naming_the_field(sidecar: Sidecar, trace_id: str, reason: str) -> None:
    """As in the Collector, an ID that is not 32 / 16 hex digits makes OTLP-JSON undecodable."""
    good_id = new_trace_id()
    request = to_otlp_json(
        make_request("bad-hex-json", [make_span(good_id, "ok", time.time_ns() - 10 * MS, MS)] * 2)
    )
    request["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = trace_id
    body = json.dumps(request).encode()
    status, headers, raw = sidecar.post_traces(body, JSON)
    assert status == 400, raw
    assert headers["content-type"].startswith(JSON)
    message = json.loads(raw)["message"]
    assert "resourceSpans[0].scopeSpans[0].spans[1].traceId: " in message and reason in message, message
    assert sidecar.get_json(f"/api/traces/{jaeger_id(good_id)}")[0] == 404


# ---------------------------------------------------------------------------------------------
# OTLP/gRPC


@pytest.fixture
def channel(sidecar: Sidecar) -> Iterator[grpc.Channel]:
    options = [("grpc.max_receive_message_length", 8 * MIB)]
    with grpc.insecure_channel(sidecar.grpc_endpoint, options=options) as ch:
        yield ch


def raw_export(channel: grpc.Channel) -> Any:
    """The Export method with identity serializers: bytes in, bytes out."""
    return channel.unary_unary(EXPORT_PATH, request_serializer=None, response_deserializer=None)


def test_grpc_garbage_is_invalid_argument(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        raw_export(channel)(GARBAGE, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details()


def test_grpc_partial_success(sidecar: Sidecar, channel: grpc.Channel) -> None:
    trace_id, root, body = _mixed_request("partial-grpc")
    response = TraceServiceStub(channel).Export(ExportTraceServiceRequest.FromString(body), timeout=10)
    assert response.HasField("partial_success")
    _check_partial(
        sidecar,
        trace_id,
        root,
        response.partial_success.rejected_spans,
        response.partial_success.error_message,
    )


def test_grpc_full_success_has_no_partial_success(sidecar: Sidecar, channel: grpc.Channel) -> None:
    trace_id = new_trace_id()
    request = make_request("grpc-ok", [make_span(trace_id, "ok", time.time_ns() - 10 * MS, MS)])
    response = TraceServiceStub(channel).Export(request, timeout=10)
    assert not response.HasField("partial_success")
    assert len(sidecar.jaeger_trace(jaeger_id(trace_id))["spans"]) == 1


def test_grpc_gzip(sidecar: Sidecar, channel: grpc.Channel) -> None:
    trace_id, root = new_trace_id(), new_span_id()
    t0 = time.time_ns() - 10 * MS
    spans = [make_span(trace_id, "gz-root", t0, 5 * MS, span_id=root)]
    spans += [
        make_span(trace_id, f"gz-{i}", t0, MS, parent=root, attrs={"pad": "q" * 500}) for i in range(20)
    ]
    request = make_request("grpc-gzip", spans)
    response = TraceServiceStub(channel).Export(request, timeout=10, compression=grpc.Compression.Gzip)
    assert not response.HasField("partial_success")
    assert len(sidecar.jaeger_trace(jaeger_id(trace_id))["spans"]) == 21


def test_grpc_request_over_4mib_is_accepted(sidecar: Sidecar, channel: grpc.Channel) -> None:
    """grpc's default receive limit is 4 MiB; the sidecar's is 64 MiB (CONTRACTS §1.6)."""
    trace_id = new_trace_id()
    t0 = time.time_ns() - 10 * MS
    spans = [
        make_span(trace_id, f"big-{i}", t0 + i, MS, attrs={"pad": os.urandom(5500).hex()}) for i in range(600)
    ]
    body = make_request("grpc-6mib", spans).SerializeToString()
    assert len(body) > 6 * MIB
    response = ExportTraceServiceResponse.FromString(raw_export(channel)(body, timeout=30))
    assert not response.HasField("partial_success")
    status, summaries = sidecar.get_json("/api/trace-summaries", service="grpc-6mib")
    assert status == 200
    assert [(s["traceID"], s["spanCount"]) for s in summaries["data"]] == [(trace_id.hex(), 600)]


def test_grpc_request_over_64mib_is_resource_exhausted(sidecar: Sidecar, channel: grpc.Channel) -> None:
    trace_id, body = _big_request(65 * MIB)
    with pytest.raises(grpc.RpcError) as info:
        raw_export(channel)(body, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sidecar.get_json(f"/api/traces/{jaeger_id(trace_id)}")[0] == 404
