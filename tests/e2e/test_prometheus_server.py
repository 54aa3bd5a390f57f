"""A real Prometheus server scrapes a live sidecar; PromQL gives what the real SDK's spans imply.

One ``sidecar serve`` and one ``prometheus`` (exemplar storage on, scraping every second) for the
module. Service ``checkout`` sends, through the SDK's OTLP gRPC exporter, N server spans with
status OK, M with status ERROR and a CLIENT span with ``peer.service="payments"``, all with set
durations; the tests read them back through Prometheus's HTTP API, not from ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.e2e.conftest import SdkPipeline, SidecarFactory
from tests.e2e.harness import Sidecar
from tests.e2e.prometheus_server import PrometheusServer, prometheus_binary

JOB = "sidecar"
CHECKOUT = 'service_name="checkout"'
SERVER = f'{CHECKOUT}, span_kind="SPAN_KIND_SERVER"'
CALLS = "traces_span_metrics_calls_total"
BUCKETS = "traces_span_metrics_duration_seconds_bucket"
OK_MS = (20, 25, 30, 35, 40)  # N: all in the connector's bucket (0.01, 0.05]
ERROR_MS = (300, 300)  # M: in (0.2, 0.4]
SLOW_MS = (3000, 3000, 3000)  # sent by the rate test only: in (2, 5]


@dataclass
class Stack:
    sidecar: Sidecar
    prometheus: PrometheusServer
    checkout: SdkPipeline
    started: float
    ok_ids: list[str] = field(default_factory=list)
    error_ids: list[str] = field(default_factory=list)
    client_trace: str = ""
    scraped_at: float = 0.0  # a query time at which Prometheus holds every phase-1 span


def server_span(pipeline: SdkPipeline, millis: int, status: StatusCode, end_ns: int) -> str:
    """One SERVER span of exactly ``millis`` ending at ``end_ns``; returns its trace id (hex)."""
    start = end_ns - millis * 1_000_000
    span = pipeline.tracer.start_span("POST /checkout", kind=SpanKind.SERVER, start_time=start)
    span.set_status(Status(status, "card declined" if status is StatusCode.ERROR else None))
    span.end(end_time=end_ns)
    return format(span.get_span_context().trace_id, "032x")


@pytest.fixture(scope="module")
def stack(
    module_sidecar_factory: SidecarFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    prometheus_binary()  # skip before starting anything when the server is missing
    # A client span's virtual edge is counted once its wait for a server span ends (a scrape expires it).
    sidecar = module_sidecar_factory("scraped", env={"SIDECAR_METRICS__SERVICEGRAPH__WAIT_S": "1"})
    prometheus = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"), f"{sidecar.api_url.split('//')[1]}", JOB
    )
    checkout = SdkPipeline(sidecar, "checkout", "grpc", batch=True)
    try:
        prometheus.start()
        stack = Stack(sidecar, prometheus, checkout, time.time())
        now = time.time_ns()
        stack.ok_ids = [
            server_span(checkout, ms, StatusCode.OK, now - i * 1_000_000) for i, ms in enumerate(OK_MS)
        ]
        stack.error_ids = [server_span(checkout, ms, StatusCode.ERROR, now) for ms in ERROR_MS]
        # The checkout handler's call to a payments service that reports elsewhere: 15 ms, status unset.
        parent = checkout.tracer.start_span("parent", kind=SpanKind.SERVER)  # not ended: never sent
        client = checkout.tracer.start_span(
            "POST /charge",
            kind=SpanKind.CLIENT,
            context=trace.set_span_in_context(parent),
            attributes={"peer.service": "payments", "rpc.system": "grpc"},
            start_time=now - 15_000_000,
        )
        client.end(end_time=now)
        stack.client_trace = format(client.get_span_context().trace_id, "032x")
        checkout.flush()
        total = len(OK_MS) + len(ERROR_MS) + 1

        def all_scraped() -> float | None:
            """The time of the first answer that counts every phase-1 span."""
            return time.time() if prometheus.scalar(f"sum({CALLS}{{{CHECKOUT}}})") == total else None

        stack.scraped_at = prometheus.wait_until(all_scraped, f"{total} checkout calls in Prometheus")
        yield stack
    finally:
        checkout.shutdown()
        prometheus.close()


def test_the_scrape_is_healthy(stack: Stack) -> None:
    """Prometheus parsed every scrape (OpenMetrics, negotiated by its default Accept) without error."""
    prom = stack.prometheus

    def target() -> dict[str, Any] | None:
        """The sidecar's target once its latest scrape succeeded (a slow machine may time one out)."""
        (found,) = [t for t in prom.targets() if t["scrapePool"] == JOB]
        return found if found["health"] == "up" else None

    found = prom.wait_until(target, "a healthy scrape")
    assert found["lastError"] == "", found
    assert found["scrapeUrl"] == f"{stack.sidecar.api_url}/metrics"
    assert prom.scalar(f'up{{job="{JOB}"}}') == 1
    # The sidecar's own families came through the same scrapes.
    accepted = prom.scalar(
        f'sum(sidecar_receiver_accepted_items_total{{job="{JOB}", signal="traces"}})', at=stack.scraped_at
    )
    assert accepted == len(OK_MS) + len(ERROR_MS) + 1


def test_calls_per_service_and_status(stack: Stack) -> None:
    got = stack.prometheus.query(
        f"sum by (service_name, status_code) ({CALLS}{{{CHECKOUT}}})", at=stack.scraped_at
    )
    assert {(m["service_name"], m["status_code"]): v for m, v in got} == {
        ("checkout", "STATUS_CODE_OK"): len(OK_MS),
        ("checkout", "STATUS_CODE_ERROR"): len(ERROR_MS),
        ("checkout", "STATUS_CODE_UNSET"): 1,  # the client span
    }
    by_kind = stack.prometheus.query(
        f"sum by (span_kind, span_name) ({CALLS}{{{CHECKOUT}}})", at=stack.scraped_at
    )
    assert {(m["span_kind"], m["span_name"]): v for m, v in by_kind} == {
        ("SPAN_KIND_SERVER", "POST /checkout"): len(OK_MS) + len(ERROR_MS),
        ("SPAN_KIND_CLIENT", "POST /charge"): 1,
    }
    # Prometheus attached the target's job and instance to the sidecar's series.
    target = f'job="{JOB}", instance="{stack.prometheus.target}"'
    assert stack.prometheus.scalar(
        f'{CALLS}{{{target}, {SERVER}, status_code="STATUS_CODE_ERROR"}}',
        at=stack.scraped_at,
    ) == len(ERROR_MS)


def test_histogram_quantile_lands_in_the_right_bucket(stack: Stack) -> None:
    prom = stack.prometheus

    def quantile(q: float) -> float | None:
        return prom.scalar(
            f"histogram_quantile({q}, sum by (le) ({BUCKETS}{{{SERVER}}}))", at=stack.scraped_at
        )

    # 5 spans in (0.01, 0.05] then 2 in (0.2, 0.4]: the median is the 3.5th of 7, in the first.
    median = quantile(0.5)
    assert median is not None and 0.01 < median <= 0.05, median
    assert median == pytest.approx(0.01 + 0.04 * 3.5 / 5)
    p95 = quantile(0.95)
    assert p95 is not None and 0.2 < p95 <= 0.4, p95
    counts = dict(
        (m["le"], v) for m, v in prom.query(f"sum by (le) ({BUCKETS}{{{SERVER}}})", at=stack.scraped_at)
    )
    assert (counts["0.01"], counts["0.05"], counts["0.2"], counts["0.4"], counts["+Inf"]) == (0, 5, 5, 7, 7)
    total = prom.scalar(f"sum(traces_span_metrics_duration_seconds_sum{{{SERVER}}})", at=stack.scraped_at)
    assert total == pytest.approx((sum(OK_MS) + sum(ERROR_MS)) / 1000)


def test_service_graph_edge_from_peer_service(stack: Stack) -> None:
    prom = stack.prometheus
    edge = 'traces_service_graph_request_total{client="checkout", server="payments"}'
    got = prom.wait_until(lambda: prom.query(edge), "the checkout -> payments edge")
    # connection_type is empty for a plain call, and Prometheus stores no empty label.
    assert [(m.get("connection_type", ""), v) for m, v in got] == [("", 1)]
    assert prom.scalar('sum(traces_service_graph_request_failed_total{client="checkout"})') in (None, 0)
    # A virtual edge's server histogram is timed by the client span: 15 ms.
    seconds = 'traces_service_graph_request_server_seconds_sum{client="checkout", server="payments"}'
    assert prom.scalar(seconds) == pytest.approx(0.015)


def test_an_exemplar_leads_to_its_trace_in_the_jaeger_api(stack: Stack) -> None:
    prom = stack.prometheus
    promql = f'{BUCKETS}{{{SERVER}, status_code="STATUS_CODE_ERROR"}}'

    def stored() -> list[dict[str, Any]]:
        return prom.exemplars(promql, stack.started - 60, time.time() + 60)

    series = prom.wait_until(stored, "an exemplar on the error spans' buckets")
    exemplars = [(s["seriesLabels"], e) for s in series for e in s["exemplars"]]
    # Only the bucket the error spans fell in has one, naming one of them.
    assert {labels["le"] for labels, _ in exemplars} == {"0.4"}, exemplars
    exemplar = exemplars[0][1]
    assert exemplar["labels"]["trace_id"] in stack.error_ids, exemplar
    assert float(exemplar["value"]) == pytest.approx(0.3)
    trace_doc = stack.sidecar.jaeger_trace(exemplar["labels"]["trace_id"])
    assert trace_doc["traceID"] == exemplar["labels"]["trace_id"]
    (span,) = trace_doc["spans"]
    assert span["spanID"] == exemplar["labels"]["span_id"]
    assert span["operationName"] == "POST /checkout" and span["duration"] == 300_000
    assert trace_doc["processes"][span["processID"]]["serviceName"] == "checkout"
    # Every exemplar of the service's spans names a trace it sent.
    everything = prom.exemplars(f"{BUCKETS}{{{CHECKOUT}}}", stack.started - 60, time.time() + 60)
    ids = {e["labels"]["trace_id"] for s in everything for e in s["exemplars"]}
    assert set(stack.error_ids) & ids and ids <= {*stack.ok_ids, *stack.error_ids, stack.client_trace}, ids


def test_rate_quantile_follows_new_spans(stack: Stack) -> None:
    """Grafana's query: histogram_quantile over rate(); only what arrived in the window counts."""
    prom = stack.prometheus
    now = time.time_ns()
    stack.ok_ids += [server_span(stack.checkout, ms, StatusCode.OK, now) for ms in SLOW_MS]
    stack.checkout.flush()
    ok = f'sum({CALLS}{{{SERVER}, status_code="STATUS_CODE_OK"}})'
    prom.wait_until(lambda: prom.scalar(ok) == len(OK_MS) + len(SLOW_MS), "the slow spans in Prometheus")
    median = prom.scalar(f"histogram_quantile(0.5, sum by (le) (rate({BUCKETS}{{{SERVER}}}[1m])))")
    # Within the minute only the three 3 s spans added to any bucket: the median is in (2, 5].
    assert median is not None and 2 < median <= 5, median
    increase = prom.scalar(f'sum(increase({BUCKETS}{{{SERVER}, le="2.0"}}[1m]))')
    assert increase == 0
