"""Resent spans count once: a retried export must not double a trace, its counts or the service graph.

OTLP exporters retry when an answer is lost, so the same spans reach the sidecar again. Here the
real SDK exporters send every batch twice (what a retry after a lost answer puts on the wire), and
raw requests are resent concurrently, after a restart and mixed with new spans.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    Sidecar,
    jaeger_id,
    make_request,
    make_span,
    merge_requests,
    new_span_id,
    new_trace_id,
)

MS = 1_000_000


class ResendingExporter(SpanExporter):
    """Exports every batch twice through a real OTLP exporter, as a retry after a lost answer does."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.results += [self.inner.export(spans), self.inner.export(spans)]
        return self.results[-1]

    def shutdown(self) -> None:
        self.inner.shutdown()


def _provider(sidecar: Sidecar, service: str, protocol: str) -> tuple[TracerProvider, ResendingExporter]:
    inner: SpanExporter
    if protocol == "grpc":
        inner = GrpcSpanExporter(endpoint=sidecar.grpc_endpoint, insecure=True, timeout=10)
    else:
        inner = HttpSpanExporter(endpoint=sidecar.traces_url, timeout=10)
    exporter = ResendingExporter(inner)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def providers() -> Iterator[list[TracerProvider]]:
    made: list[TracerProvider] = []
    yield made
    for provider in made:
        provider.shutdown()


def _span_ids_v1(sidecar: Sidecar, trace_id: str) -> list[str]:
    return sorted(s["spanID"] for s in sidecar.jaeger_trace(trace_id)["spans"])


def _summary(sidecar: Sidecar, service: str, trace_hex: str) -> dict[str, Any]:
    status, body = sidecar.get_json("/api/trace-summaries", service=service)
    assert status == 200, body
    found = [s for s in body["data"] if s["traceID"] == trace_hex]
    assert len(found) == 1, body
    return dict(found[0])


def _calls(sidecar: Sidecar, parent: str, child: str) -> int:
    status, body = sidecar.get_json(
        "/api/dependencies", endTs=int(time.time() * 1000) + 60_000, lookback=3_600_000
    )
    assert status == 200, body
    return sum(d["callCount"] for d in body["data"] if (d["parent"], d["child"]) == (parent, child))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_batches_sent_twice_count_once(
    sidecar_factory: SidecarFactory, providers: list[TracerProvider], protocol: str
) -> None:
    sidecar = sidecar_factory()
    front, front_exporter = _provider(sidecar, f"retry-front-{protocol}", protocol)
    back, back_exporter = _provider(sidecar, f"retry-back-{protocol}", protocol)
    providers += [front, back]
    tracer_front, tracer_back = front.get_tracer("retry-test"), back.get_tracer("retry-test")
    with (
        tracer_front.start_as_current_span("GET /order", kind=SpanKind.SERVER) as root,
        tracer_front.start_as_current_span("call back", kind=SpanKind.CLIENT),
        tracer_back.start_as_current_span("POST /charge", kind=SpanKind.SERVER) as charge,
    ):
        charge.set_attribute("payment.id", f"p-{protocol}")
        charge.set_status(StatusCode.ERROR, "declined")
    assert all(r is SpanExportResult.SUCCESS for r in front_exporter.results + back_exporter.results)
    assert len(front_exporter.results) == 4 and len(back_exporter.results) == 2  # every span sent twice

    trace_id = root.get_span_context().trace_id.to_bytes(16, "big")
    assert len(_span_ids_v1(sidecar, jaeger_id(trace_id))) == 3
    summary = _summary(sidecar, f"retry-front-{protocol}", trace_id.hex())
    assert (summary["spanCount"], summary["errorCount"]) == (3, 1)
    assert {s["name"]: (s["spanCount"], s["errorCount"]) for s in summary["services"]} == {
        f"retry-front-{protocol}": (2, 0),
        f"retry-back-{protocol}": (1, 1),
    }
    status, v3 = sidecar.get_json(f"/api/v3/traces/{trace_id.hex()}")
    assert status == 200, v3
    v3_spans = [s for rs in v3["result"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(v3_spans) == 3
    found = sidecar.search_ids(
        service=f"retry-back-{protocol}", tags=json.dumps({"payment.id": f"p-{protocol}"})
    )
    assert found == [jaeger_id(trace_id)]
    assert _calls(sidecar, f"retry-front-{protocol}", f"retry-back-{protocol}") == 1


def _request(service: str, trace_id: bytes, span_ids: Sequence[bytes], now: int) -> Any:
    spans = [
        make_span(
            trace_id,
            f"op-{i}",
            now - 10_000 * MS + i * MS,
            5 * MS,
            span_id=sid,
            kind=Span.SPAN_KIND_SERVER if i == 0 else Span.SPAN_KIND_INTERNAL,
            status=Status.STATUS_CODE_ERROR if i == 1 else Status.STATUS_CODE_UNSET,
        )
        for i, sid in enumerate(span_ids)
    ]
    return make_request(service, spans)


def test_concurrent_resends_over_both_transports_count_once(sidecar_factory: SidecarFactory) -> None:
    """Resends that overlap in time (the first copy still queued when the retry arrives)."""
    sidecar = sidecar_factory()
    trace_id, span_ids = new_trace_id(), [new_span_id() for _ in range(20)]
    body = _request("retry-race", trace_id, span_ids, time.time_ns()).SerializeToString()

    def over_http(_: int) -> int:
        return sidecar.post_traces(body)[0]

    def over_grpc(_: int) -> int:
        with grpc.insecure_channel(sidecar.grpc_endpoint) as channel:
            method = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None,
                response_deserializer=None,
            )
            method(body, timeout=10)
        return 200

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(over_http, range(8))) + list(pool.map(over_grpc, range(8)))
    assert results == [200] * 16
    assert len(_span_ids_v1(sidecar, jaeger_id(trace_id))) == 20
    summary = _summary(sidecar, "retry-race", trace_id.hex())
    assert (summary["spanCount"], summary["errorCount"]) == (20, 1)


def test_resends_after_a_restart_and_mixed_with_new_spans_count_once(sidecar_factory: SidecarFactory) -> None:
    sidecar = sidecar_factory()
    now = time.time_ns()
    trace_id, span_ids = new_trace_id(), [new_span_id() for _ in range(6)]
    first = _request("retry-restart", trace_id, span_ids[:4], now)
    sidecar.export(first)
    sidecar.restart()  # the writer's memory of recent traces is gone: the check reads the store
    with grpc.insecure_channel(sidecar.grpc_endpoint) as channel:
        TraceServiceStub(channel).Export(first, timeout=10)
    # A collector that re-batched: two old spans and two new ones, in one request with another trace.
    other = new_trace_id()
    mixed = _request("retry-restart", trace_id, span_ids[2:], now)
    sidecar.export(merge_requests(mixed, _request("retry-restart", other, [new_span_id()], now)))
    assert _span_ids_v1(sidecar, jaeger_id(trace_id)) == sorted(s.hex() for s in span_ids)
    summary = _summary(sidecar, "retry-restart", trace_id.hex())
    assert (summary["spanCount"], summary["errorCount"]) == (6, 1)
    assert _summary(sidecar, "retry-restart", other.hex())["spanCount"] == 1
