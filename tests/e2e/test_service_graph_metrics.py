"""Service graph metrics and /api/dependencies from real SDK spans: the same edges in both."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.e2e.conftest import SidecarFactory
from tests.e2e.prom import find, promtool_check, samples, scrape, value, wait_for

REQUESTS = "traces_service_graph_request_total"
WAIT = {"SIDECAR_METRICS__SERVICEGRAPH__WAIT_S": "1"}


def dependencies(sidecar: Any) -> dict[tuple[str, str], int]:
    status, body = sidecar.get_json(
        "/api/dependencies", endTs=int(time.time() * 1000) + 60_000, lookback=3_600_000
    )
    assert status == 200, body
    return {(d["parent"], d["child"]): d["callCount"] for d in body["data"]}


def test_a_paired_call_is_one_edge_in_metrics_and_dependencies(
    sidecar_factory: SidecarFactory, sdk: Any
) -> None:
    sidecar = sidecar_factory(env=WAIT)
    front, back = sdk(sidecar, "frontend"), sdk(sidecar, "backend")
    for fail in (False, True):
        start = time.time_ns() - 5_000_000_000
        client = front.tracer.start_span("GET /cart", kind=SpanKind.CLIENT, start_time=start)
        server = back.tracer.start_span(
            "GET /cart",
            kind=SpanKind.SERVER,
            context=trace.set_span_in_context(client),
            start_time=start + 1_000_000,
        )
        if fail:
            server.set_status(Status(StatusCode.ERROR))
        server.end(end_time=start + 21_000_000)  # 20 ms on the server
        client.end(end_time=start + 30_000_000)  # 30 ms on the client
    front.flush()
    back.flush()
    edge = {"client": "frontend", "server": "backend", "connection_type": ""}
    got = wait_for(lambda: (s := samples(sidecar)) and value(s, REQUESTS, **edge) == 2 and s)
    assert got, scrape(sidecar)
    assert value(got, "traces_service_graph_request_failed_total", **edge) == 1
    assert value(got, "traces_service_graph_request_server_seconds_sum", **edge) == 0.04
    assert value(got, "traces_service_graph_request_client_seconds_sum", **edge) == 0.06
    server_buckets = {
        s.labels["le"]: s.value
        for s in find(got, "traces_service_graph_request_server_seconds_bucket", **edge)
    }
    assert (server_buckets["0.01"], server_buckets["0.05"], server_buckets["+Inf"]) == (0, 2, 2)
    assert dependencies(sidecar) == {("frontend", "backend"): 2}
    time.sleep(1.5)  # past the wait: nothing was left unpaired
    assert not find(samples(sidecar), "traces_service_graph_unpaired_spans_total")
    assert promtool_check(scrape(sidecar)) is None


def test_virtual_edges_from_peer_attributes(sidecar_factory: SidecarFactory, sdk: Any) -> None:
    sidecar = sidecar_factory(env=WAIT)
    shop = sdk(sidecar, "shop")
    calls = [
        ({"peer.service": "payments", "server.address": "pay.internal"}, SpanKind.CLIENT),
        ({"server.address": "api.example.com"}, SpanKind.CLIENT),
        ({"net.peer.name": "legacy.example.com"}, SpanKind.CLIENT),
        ({"db.system": "postgresql", "db.name": "orders", "server.address": "db1"}, SpanKind.CLIENT),
        ({"db.system": "redis"}, SpanKind.CLIENT),
        ({"messaging.system": "kafka"}, SpanKind.PRODUCER),
        ({}, SpanKind.CLIENT),  # no peer: stays an unpaired half
    ]
    for attrs, kind in calls:
        shop.tracer.start_span("call", kind=kind, attributes=attrs).end()
    shop.flush()
    # Database calls are edges at once; they never wait for a server span.
    got = wait_for(lambda: (s := samples(sidecar)) and value(s, REQUESTS, server="orders") and s)
    assert got, scrape(sidecar)
    assert value(got, REQUESTS, client="shop", server="orders", connection_type="database") == 1
    assert value(got, REQUESTS, client="shop", server="redis", connection_type="database") == 1
    assert value(got, REQUESTS, server="payments") is None
    time.sleep(1.5)  # the others wait for their server spans, in vain; a scrape expires them
    got = samples(sidecar)
    for server, ctype in [
        ("payments", ""),
        ("api.example.com", ""),
        ("legacy.example.com", ""),
        ("kafka", "messaging_system"),
    ]:
        assert value(got, REQUESTS, client="shop", server=server, connection_type=ctype) == 1, server
        assert value(got, "traces_service_graph_request_server_seconds_count", server=server) == 1
    # Halves that became edges to their virtual peers are not unpaired (the Collector's onExpire
    # completes them): only the client span with no peer attribute is.
    unpaired = find(got, "traces_service_graph_unpaired_spans_total")
    assert [(s.labels, s.value) for s in unpaired] == [
        ({"client": "shop", "server": "", "connection_type": ""}, 1)
    ]

    # /api/dependencies: the same edges, once a write after the wait has stored them.
    shop.tracer.start_span("tick").end()
    shop.flush()
    expected = {
        ("shop", peer): 1
        for peer in ("payments", "api.example.com", "legacy.example.com", "orders", "redis", "kafka")
    }
    assert wait_for(lambda: dependencies(sidecar) == expected) or dependencies(sidecar) == expected


def test_an_orphan_server_span_is_counted_unpaired_after_the_wait(
    sidecar_factory: SidecarFactory, sdk: Any
) -> None:
    sidecar = sidecar_factory(env=WAIT)
    api = sdk(sidecar, "api")

    def remote(span_id: int) -> Any:
        parent = trace.SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id, True, trace.TraceFlags(1))
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    api.tracer.start_span("GET /", kind=SpanKind.SERVER, context=remote(0x00F067AA0BA902B7)).end()
    api.tracer.start_span("consume", kind=SpanKind.CONSUMER, context=remote(0x00F067AA0BA902B8)).end()
    api.flush()
    unpaired = "traces_service_graph_unpaired_spans_total"
    # The two spans may arrive in two exports, so wait out both halves' waits, not only the first.
    got = wait_for(
        lambda: (
            (s := samples(sidecar))
            and value(s, unpaired, server="api", connection_type="")
            and value(s, unpaired, server="api", connection_type="messaging_system")
            and s
        ),
        5,
    )
    assert got, scrape(sidecar)
    assert value(got, unpaired, client="", server="api", connection_type="") == 1
    assert value(got, unpaired, client="", server="api", connection_type="messaging_system") == 1
    assert not find(got, REQUESTS)
    assert dependencies(sidecar) == {}


def test_the_service_graph_can_be_switched_off(sidecar_factory: SidecarFactory, sdk: Any) -> None:
    env = {
        "SIDECAR_METRICS__SERVICEGRAPH__ENABLED": "false",
        "SIDECAR_METRICS__SPANMETRICS__ENABLED": "false",
    }
    sidecar = sidecar_factory(env=env)
    db = sdk(sidecar, "db-user")
    db.tracer.start_span("q", kind=SpanKind.CLIENT, attributes={"db.system": "mysql"}).end()
    db.flush()
    text = scrape(sidecar)
    assert "traces_service_graph" not in text and "traces_span_metrics" not in text
    assert dependencies(sidecar) == {("db-user", "mysql"): 1}  # the dependencies do not depend on metrics


def test_the_overflow_count_covers_virtual_edges_folded_at_the_same_scrape(
    sidecar_factory: SidecarFactory, sdk: Any
) -> None:
    """Virtual edges are made when a scrape expires their client halves; the overflow counter
    read in that scrape already counts the ones folded into ``otel_metric_overflow``."""
    sidecar = sidecar_factory(env={**WAIT, "SIDECAR_METRICS__SERIES_LIMIT": "2"})
    shop = sdk(sidecar, "shop")
    for i in range(6):
        shop.tracer.start_span("call", kind=SpanKind.CLIENT, attributes={"peer.service": f"peer-{i}"}).end()
    shop.flush()
    calls = "traces_span_metrics_calls_total"
    assert wait_for(
        lambda: value(samples(sidecar), calls, service_name="shop", span_kind="SPAN_KIND_CLIENT") == 6
    )
    time.sleep(1.5)  # past the wait: the next scrape makes the six virtual edges
    got = samples(sidecar)
    overflow = {"otel_metric_overflow": "true"}
    folded = value(got, REQUESTS, **overflow)
    assert folded == 4
    for family, sample in [
        ("traces_service_graph_request", REQUESTS),
        ("traces_service_graph_request_server_seconds", "traces_service_graph_request_server_seconds_count"),
        ("traces_service_graph_request_client_seconds", "traces_service_graph_request_client_seconds_count"),
    ]:
        assert value(got, sample, **overflow) == 4, family
        assert value(got, "sidecar_metric_series_overflow_total", family=family) == 4, family
    assert not find(got, "traces_service_graph_unpaired_spans_total")
