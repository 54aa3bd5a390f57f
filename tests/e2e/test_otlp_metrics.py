"""OTLP metrics in, Prometheus out, against a live ``sidecar serve``.

The real SDK's ``OTLPMetricExporter`` over gRPC and over HTTP (a counter, an up-down counter, a
histogram, an exponential histogram, observable gauges), delta temporality, hand-built OTLP-JSON
and protobuf requests (summaries, exemplars, the end-of-series flag), bad input, expiry after
``metrics.staleness`` and the series limit; each read back from ``GET /metrics``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample

from sidecar.client import configure_opentelemetry
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import JSON, PROTOBUF, Sidecar, deflate_body, gzip_body, http_request
from tests.e2e.prom import promtool_check, scrape, wait_for

METRICS_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
DELTA = AggregationTemporality.DELTA
NOW = time.time_ns()


def families(sidecar: Sidecar, openmetrics: bool = False) -> dict[str, Any]:
    text = scrape(sidecar, openmetrics)
    parse = parse_openmetrics if openmetrics else parse_text
    return {family.name: family for family in parse(text)}


def samples_of(found: dict[str, Any], family: str, **labels: str) -> list[Sample]:
    metric = found.get(family)
    if metric is None:
        return []
    return [s for s in metric.samples if all(s.labels.get(k) == v for k, v in labels.items())]


def one(found: dict[str, Any], family: str, name: str, **labels: str) -> float:
    matching = [s for s in samples_of(found, family, **labels) if s.name == name]
    assert len(matching) == 1, (name, labels, matching)
    return float(matching[0].value)


@pytest.fixture
def meters() -> Iterator[Callable[..., MeterProvider]]:
    """``meters(sidecar, service, protocol, ...)`` -> a MeterProvider exporting only on force_flush."""
    made: list[MeterProvider] = []

    def make(
        sidecar: Sidecar,
        service: str,
        protocol: str = "grpc",
        *,
        temporality: dict[type, AggregationTemporality] | None = None,
        views: tuple[View, ...] = (),
        **resource: str,
    ) -> MeterProvider:
        exporter: Any
        if protocol == "grpc":
            exporter = GrpcMetricExporter(
                endpoint=sidecar.grpc_endpoint, insecure=True, timeout=10, preferred_temporality=temporality
            )
        else:
            exporter = HttpMetricExporter(
                endpoint=f"{sidecar.http_url}/v1/metrics", timeout=10, preferred_temporality=temporality
            )
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
        attributes = {"service.name": service, **{k.replace("_", "."): v for k, v in resource.items()}}
        provider = MeterProvider(resource=Resource.create(attributes), metric_readers=[reader], views=views)
        made.append(provider)
        return provider

    try:
        yield make
    finally:
        for provider in made:
            provider.shutdown()


def flush(provider: MeterProvider) -> None:
    assert provider.force_flush(30_000), "force_flush timed out"


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    return KeyValue(key=key, value=AnyValue(int_value=value))


def request(
    service: str, *metrics: metrics_pb2.Metric, scope: str = "hand.made"
) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", service))
    sm = rm.scope_metrics.add()
    sm.scope.name = scope
    sm.metrics.extend(metrics)
    return req


def gauge(name: str, value: float, **attributes: str) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name, unit="1", description="hand-made gauge")
    point = metric.gauge.data_points.add(as_double=value, time_unix_nano=time.time_ns())
    point.attributes.extend(kv(k, v) for k, v in attributes.items())
    return metric


def post(sidecar: Sidecar, body: bytes, content_type: str = PROTOBUF, **headers: str) -> tuple[int, bytes]:
    status, _, answer = http_request(
        "POST", f"{sidecar.http_url}/v1/metrics", body, {"Content-Type": content_type, **headers}
    )
    return status, answer


def post_proto(sidecar: Sidecar, req: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
    status, answer = post(sidecar, req.SerializeToString())
    assert status == 200, answer
    return ExportMetricsServiceResponse.FromString(answer)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_instruments_appear_with_prometheus_names(
    sidecar: Sidecar, meters: Callable[..., MeterProvider], protocol: str
) -> None:
    service = f"checkout-{protocol}"
    provider = meters(
        sidecar,
        service,
        protocol,
        service_namespace="shop",
        service_instance_id="pod-1",
        deployment_environment="prod",
        views=(View(instrument_name="queue.wait", aggregation=ExponentialBucketHistogramAggregation()),),
    )
    meter = provider.get_meter("e2e.meter", "1.0")
    requests = meter.create_counter("http.server.requests", unit="{request}", description="Requests served")
    requests.add(3, {"http.route": "/pay", "http.response.status_code": 200})
    duration = meter.create_histogram("http.server.duration", unit="ms")
    for millis in (3, 30, 300):
        duration.record(millis, {"http.route": "/pay"})
    depth = meter.create_up_down_counter("queue.depth", unit="{item}")
    depth.add(5)
    depth.add(-2)
    wait = meter.create_histogram("queue.wait", unit="s")
    for seconds in (0.001, 0.01, 0.1, 1.5):
        wait.record(seconds)

    def memory(_: CallbackOptions) -> list[Observation]:
        return [Observation(1234, {"pool": "heap"})]

    meter.create_observable_gauge("process.memory.usage", callbacks=[memory], unit="By")
    meter.create_observable_gauge("cpu.utilization", callbacks=[lambda _: [Observation(0.5)]], unit="1")
    flush(provider)
    requests.add(2, {"http.route": "/pay", "http.response.status_code": 200})
    flush(provider)  # cumulative: the second export replaces the first, it does not add to it

    job = {"job": f"shop/{service}", "instance": "pod-1"}
    scope = {**job, "otel_scope_name": "e2e.meter", "otel_scope_version": "1.0"}
    found = wait_for(lambda: (f := families(sidecar)) and samples_of(f, "cpu_utilization_ratio", **job) and f)
    assert found, scrape(sidecar)

    assert found["http_server_requests"].type == "counter"
    assert found["http_server_requests"].documentation == "Requests served"
    route = {**scope, "http_route": "/pay"}
    assert (
        one(
            found,
            "http_server_requests",
            "http_server_requests_total",
            **route,
            http_response_status_code="200",
        )
        == 5
    )

    assert found["http_server_duration_milliseconds"].type == "histogram"
    bucket = "http_server_duration_milliseconds_bucket"
    assert one(found, "http_server_duration_milliseconds", bucket, **route, le="5.0") == 1
    assert one(found, "http_server_duration_milliseconds", bucket, **route, le="50.0") == 2
    assert one(found, "http_server_duration_milliseconds", bucket, **route, le="500.0") == 3
    assert one(found, "http_server_duration_milliseconds", bucket, **route, le="+Inf") == 3
    assert (
        one(found, "http_server_duration_milliseconds", "http_server_duration_milliseconds_sum", **route)
        == 333
    )
    assert (
        one(found, "http_server_duration_milliseconds", "http_server_duration_milliseconds_count", **route)
        == 3
    )

    assert found["queue_depth"].type == "gauge"  # an up-down counter is no counter
    assert one(found, "queue_depth", "queue_depth", **scope) == 3
    assert (
        one(found, "process_memory_usage_bytes", "process_memory_usage_bytes", **scope, pool="heap") == 1234
    )
    assert found["cpu_utilization_ratio"].type == "gauge"
    assert one(found, "cpu_utilization_ratio", "cpu_utilization_ratio", **scope) == 0.5

    # The exponential histogram as classic buckets: every value in the bucket whose le is the first
    # bound at or above it, nothing lost, count and sum as sent.
    assert found["queue_wait_seconds"].type == "histogram"
    wait_buckets = sorted(
        (float(s.labels["le"]), s.value)
        for s in samples_of(found, "queue_wait_seconds", **scope)
        if s.name == "queue_wait_seconds_bucket"
    )
    assert wait_buckets[-1] == (float("inf"), 4)
    for rank, seconds in enumerate((0.001, 0.01, 0.1, 1.5), start=1):
        first = next(count for le, count in wait_buckets if le >= seconds)
        assert first == rank, (seconds, wait_buckets)
        below = [count for le, count in wait_buckets if le < seconds]
        assert not below or below[-1] == rank - 1, (seconds, wait_buckets)
    assert one(found, "queue_wait_seconds", "queue_wait_seconds_count", **scope) == 4
    assert one(found, "queue_wait_seconds", "queue_wait_seconds_sum", **scope) == pytest.approx(1.611)

    # The other resource attributes go to target_info, labelled by job and instance only.
    info = samples_of(found, "target_info", **job)
    assert len(info) == 1 and info[0].value == 1
    assert info[0].labels["deployment_environment"] == "prod"
    assert info[0].labels["telemetry_sdk_language"] == "python"
    assert not {"service_name", "service_namespace", "service_instance_id"} & set(info[0].labels)


def test_delta_temporality_accumulates(sidecar: Sidecar, meters: Callable[..., MeterProvider]) -> None:
    temporality = {Counter: DELTA, UpDownCounter: DELTA, Histogram: DELTA}
    provider = meters(sidecar, "deltas", "http", temporality=temporality)
    meter = provider.get_meter("delta.meter")
    orders = meter.create_counter("orders", unit="{order}")
    stock = meter.create_up_down_counter("stock")
    sizes = meter.create_histogram("payload.size", unit="By")
    orders.add(5)
    stock.add(5)
    sizes.record(100)
    sizes.record(2000)
    flush(provider)
    orders.add(3)
    stock.add(-2)
    sizes.record(30)
    flush(provider)
    flush(provider)  # an export with nothing new changes nothing

    job = {"job": "deltas", "otel_scope_name": "delta.meter"}
    found = wait_for(lambda: (f := families(sidecar)) and samples_of(f, "orders", **job) and f)
    assert found["orders"].type == "counter"
    assert one(found, "orders", "orders_total", **job) == 8
    assert one(found, "stock", "stock", **job) == 3
    assert one(found, "payload_size_bytes", "payload_size_bytes_count", **job) == 3
    assert one(found, "payload_size_bytes", "payload_size_bytes_sum", **job) == 2130
    assert one(found, "payload_size_bytes", "payload_size_bytes_bucket", **job, le="100.0") == 2
    assert one(found, "payload_size_bytes", "payload_size_bytes_bucket", **job, le="+Inf") == 3


HEX_TRACE = "5b8efff798038103d269b633813fc60c"
HEX_SPAN = "eee19b7ec3c1b174"


def json_request(service: str) -> dict[str, Any]:
    now = str(time.time_ns())
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeMetrics": [
                    {
                        "scope": {"name": "json.scope", "version": "0.1"},
                        "metrics": [
                            {
                                "name": "jobs.done",
                                "unit": "{job}",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "asInt": "7",
                                            "timeUnixNano": now,
                                            "attributes": [{"key": "queue", "value": {"stringValue": "q1"}}],
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "rpc.latency",
                                "unit": "s",
                                "histogram": {
                                    "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                                    "dataPoints": [
                                        {
                                            "count": "3",
                                            "sum": 0.6,
                                            "bucketCounts": ["1", "1", "1"],
                                            "explicitBounds": [0.1, 0.5],
                                            "timeUnixNano": now,
                                            "exemplars": [
                                                {
                                                    "asDouble": 0.3,
                                                    "timeUnixNano": now,
                                                    "traceId": HEX_TRACE,
                                                    "spanId": HEX_SPAN,
                                                }
                                            ],
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "rpc.quantiles",
                                "unit": "s",
                                "summary": {
                                    "dataPoints": [
                                        {
                                            "count": "10",
                                            "sum": 2.5,
                                            "timeUnixNano": now,
                                            "quantileValues": [
                                                {"quantile": 0.99, "value": 0.9},
                                                {"quantile": 0.5, "value": 0.2},
                                            ],
                                        }
                                    ],
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }


def test_otlp_json_with_exemplars_and_summaries(sidecar: Sidecar) -> None:
    body = gzip_body(json.dumps(json_request("json-svc")).encode())
    status, answer = post(sidecar, body, JSON, **{"Content-Encoding": "gzip"})
    assert status == 200, answer
    assert json.loads(answer) == {}  # full success: partialSuccess unset

    job = {"job": "json-svc", "otel_scope_name": "json.scope", "otel_scope_version": "0.1"}
    found = wait_for(
        lambda: (f := families(sidecar, openmetrics=True)) and samples_of(f, "jobs_done", **job) and f
    )
    assert one(found, "jobs_done", "jobs_done_total", **job, queue="q1") == 7
    bucket = [
        s for s in samples_of(found, "rpc_latency_seconds", **job, le="0.5") if s.name.endswith("_bucket")
    ]
    assert bucket[0].value == 2
    # The hex IDs of OTLP-JSON arrive as the exemplar's trace and span, not base64 garbage.
    assert bucket[0].exemplar is not None
    assert bucket[0].exemplar.labels == {"trace_id": HEX_TRACE, "span_id": HEX_SPAN}
    assert bucket[0].exemplar.value == 0.3
    assert found["rpc_quantiles_seconds"].type == "summary"
    assert one(found, "rpc_quantiles_seconds", "rpc_quantiles_seconds", **job, quantile="0.5") == 0.2
    assert one(found, "rpc_quantiles_seconds", "rpc_quantiles_seconds", **job, quantile="0.99") == 0.9
    assert one(found, "rpc_quantiles_seconds", "rpc_quantiles_seconds_sum", **job) == 2.5
    assert one(found, "rpc_quantiles_seconds", "rpc_quantiles_seconds_count", **job) == 10


def test_protobuf_over_http_and_end_of_series(sidecar: Sidecar) -> None:
    exp = metrics_pb2.Metric(name="io.wait", unit="ms")
    exp.exponential_histogram.aggregation_temporality = 2
    point = exp.exponential_histogram.data_points.add(count=5, sum=12.0, scale=1, zero_count=1)
    point.positive.offset = 2  # buckets (2, 2.83] and (2.83, 4] at scale 1
    point.positive.bucket_counts.extend([3, 1])
    req = request("proto-svc", exp, gauge("pool.fill", 0.25, pool="a"), gauge("pool.fill", 0.75, pool="b"))
    status, answer = post(sidecar, deflate_body(req.SerializeToString()), **{"Content-Encoding": "deflate"})
    assert status == 200, answer
    assert not ExportMetricsServiceResponse.FromString(answer).HasField("partial_success")

    job = {"job": "proto-svc"}
    found = wait_for(lambda: (f := families(sidecar)) and samples_of(f, "io_wait_milliseconds", **job) and f)
    buckets = {
        s.labels["le"]: s.value
        for s in samples_of(found, "io_wait_milliseconds", **job)
        if s.name.endswith("_bucket")
    }
    assert buckets == {"0.0": 1, "2.8284271247461903": 4, "4.0": 5, "+Inf": 5}
    assert one(found, "pool_fill_ratio", "pool_fill_ratio", **job, pool="b") == 0.75

    # A point flagged NO_RECORDED_VALUE ends its series at once.
    ended = gauge("pool.fill", 0, pool="b")
    ended.gauge.data_points[0].flags = 1
    post_proto(sidecar, request("proto-svc", ended))
    found = families(sidecar)
    assert samples_of(found, "pool_fill_ratio", **job, pool="b") == []
    assert one(found, "pool_fill_ratio", "pool_fill_ratio", **job, pool="a") == 0.25


def test_bad_input_names_the_field(sidecar: Sidecar) -> None:
    doc = json_request("bad-json")
    doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"][0]["asInt"] = "seven"
    status, answer = post(sidecar, json.dumps(doc).encode(), JSON)
    assert status == 400
    assert json.loads(answer)["message"].endswith(
        "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].asInt: expected integer"
    )
    doc = json_request("bad-json")
    histogram = doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1]["histogram"]
    histogram["dataPoints"][0]["exemplars"][0]["traceId"] = HEX_TRACE[:30]
    status, answer = post(sidecar, json.dumps(doc).encode(), JSON)
    assert status == 400
    assert "metrics[1].histogram.dataPoints[0].exemplars[0].traceId" in json.loads(answer)["message"]
    status, answer = post(sidecar, b"\xff\xff not protobuf")
    assert status == 400

    # Bad points are dropped and named; the good ones are kept (partial success).
    mismatched = metrics_pb2.Metric(name="bad.histogram")
    mismatched.histogram.aggregation_temporality = 2
    mismatched.histogram.data_points.add(count=2, bucket_counts=[1, 1], explicit_bounds=[1.0, 2.0])
    no_temporality = metrics_pb2.Metric(name="bad.sum")
    no_temporality.sum.data_points.add(as_int=1)
    no_value = metrics_pb2.Metric(name="bad.level")
    no_value.gauge.data_points.add(time_unix_nano=time.time_ns())
    no_value.gauge.data_points.add(as_int=4)
    req = request("bad-proto", mismatched, no_temporality, no_value)
    response = post_proto(sidecar, req)
    assert response.partial_success.rejected_data_points == 3
    message = response.partial_success.error_message
    assert message.startswith("3 data point(s) rejected: ")
    assert (
        "metrics[0].histogram.dataPoints[0]: bucketCounts has 2 entries; with 2 explicitBounds it must have 3"
        in message
    )
    assert "metrics[1]: aggregationTemporality must be DELTA (1) or CUMULATIVE (2), got 0" in message
    assert "metrics[2].gauge.dataPoints[0]: value is missing" in message
    assert one(families(sidecar), "bad_level", "bad_level", job="bad-proto") == 4

    # gRPC: the same answer; a Prometheus name taken by another type is refused the same way.
    counter = metrics_pb2.Metric(name="clash")
    counter.sum.aggregation_temporality = 2
    counter.sum.is_monotonic = True
    counter.sum.data_points.add(as_int=1)
    first = request("clash-svc", counter, scope="a")
    clash = metrics_pb2.Metric(name="clash_total")
    clash.gauge.data_points.add(as_int=2)
    second = request("clash-svc", clash, scope="b")
    with grpc.insecure_channel(sidecar.grpc_endpoint) as channel:
        export = channel.unary_unary(
            METRICS_METHOD,
            request_serializer=ExportMetricsServiceRequest.SerializeToString,
            response_deserializer=ExportMetricsServiceResponse.FromString,
        )
        assert not export(first, timeout=10).HasField("partial_success")
        answer = export(second, timeout=10)
        assert answer.partial_success.rejected_data_points == 1
        assert "whose samples clash" in answer.partial_success.error_message
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(METRICS_METHOD)(b"\xff\xff not protobuf", timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = families(sidecar)
    assert one(found, "clash", "clash_total", job="clash-svc") == 1
    assert (
        one(
            found,
            "sidecar_otlp_metric_points_dropped",
            "sidecar_otlp_metric_points_dropped_total",
            reason="type_conflict",
        )
        >= 1
    )


def test_promtool_accepts_the_output(
    sidecar_factory: SidecarFactory, meters: Callable[..., MeterProvider]
) -> None:
    """Names, types and help texts pass promtool's lint (an application's own names may not:
    promtool wants base units, so a histogram in ``ms`` is flagged whoever exposes it)."""
    sidecar = sidecar_factory()
    provider = meters(sidecar, "linted", "http", service_instance_id="i-1")
    meter = provider.get_meter("lint.meter", "2.0")
    meter.create_counter("lint.requests", description="Requests").add(1, {"route": "/"})
    meter.create_histogram("lint.latency", unit="s", description="Latency").record(0.2)
    meter.create_up_down_counter("lint.inflight", description="In flight").add(2)
    flush(provider)
    post_proto(sidecar, request("linted", gauge("lint.fill", 0.5)))
    assert wait_for(lambda: "lint_latency_seconds_bucket" in scrape(sidecar))
    # promtool reads the Prometheus text format (it takes an OpenMetrics counter's HELP, written
    # for the family name without _total, as missing); the OpenMetrics parser checks the other.
    openmetrics = families(sidecar, openmetrics=True)
    assert openmetrics["lint_latency_seconds"].type == "histogram"
    problem = promtool_check(scrape(sidecar))
    assert problem is None, problem


def test_series_expire_after_staleness(sidecar_factory: SidecarFactory) -> None:
    sidecar = sidecar_factory(env={"SIDECAR_METRICS__STALENESS": "3s"})
    post_proto(sidecar, request("short-lived", gauge("temperature", 21.5, room="lab")))
    found = families(sidecar)
    assert one(found, "temperature_ratio", "temperature_ratio", job="short-lived", room="lab") == 21.5
    assert samples_of(found, "target_info", job="short-lived")
    time.sleep(1.5)
    post_proto(sidecar, request("short-lived", gauge("temperature", 22.0, room="office")))
    gone = wait_for(lambda: not samples_of(families(sidecar), "temperature_ratio", room="lab"), timeout=5)
    assert gone, scrape(sidecar)
    found = families(sidecar)
    assert one(found, "temperature_ratio", "temperature_ratio", job="short-lived", room="office") == 22
    assert wait_for(lambda: "temperature_ratio" not in families(sidecar), timeout=5), scrape(sidecar)
    assert not samples_of(families(sidecar), "target_info", job="short-lived")


def test_series_limit_under_a_flood(
    sidecar_factory: SidecarFactory, meters: Callable[..., MeterProvider]
) -> None:
    sidecar = sidecar_factory(env={"SIDECAR_METRICS__SERIES_LIMIT": "20"})
    cumulative = meters(sidecar, "flood", "grpc")
    delta = meters(sidecar, "flood", "http", temporality={Counter: DELTA})
    users = cumulative.get_meter("flood.meter").create_counter("logins")
    clicks = delta.get_meter("flood.meter").create_counter("clicks")
    for i in range(100):
        users.add(1, {"user.id": f"u{i}"})
        clicks.add(2, {"user.id": f"u{i}"})
    flush(cumulative)
    flush(delta)

    found = wait_for(lambda: (f := families(sidecar)) and samples_of(f, "clicks") and f)
    logins = samples_of(found, "logins", job="flood")
    assert len(logins) == 20  # the other 80 cumulative points were refused: no exact fold exists
    clicks_series = samples_of(found, "clicks")
    assert len(clicks_series) == 21
    overflow = [s for s in clicks_series if s.labels.get("otel_metric_overflow") == "true"]
    assert overflow[0].value == 80 * 2  # the folded deltas, summed
    overflows = {s.labels["family"]: s.value for s in samples_of(found, "sidecar_metric_series_overflow")}
    assert overflows["logins"] == 80
    assert overflows["clicks"] == 80


def test_configure_opentelemetry_exports_metrics_by_default(sidecar: Sidecar) -> None:
    providers = configure_opentelemetry("client-metrics", endpoint=sidecar.http_url, set_global=False)
    try:
        assert providers.meter_provider is not None
        meter = providers.meter_provider.get_meter("client.meter")
        meter.create_counter("signups", description="Signups").add(2, {"plan": "pro"})
        assert providers.force_flush(10_000)
    finally:
        providers.shutdown()
    found = families(sidecar)
    assert one(found, "signups", "signups_total", job="client-metrics", plan="pro") == 2
    off = configure_opentelemetry("client-off", endpoint=sidecar.http_url, metrics=False, set_global=False)
    off.shutdown()
    assert off.meter_provider is None


def test_unique_metric_names_stop_at_the_family_limit(sidecar_factory: SidecarFactory) -> None:
    """Each new name is a family; past metrics.series_limit of them new names are refused, so a
    client inventing names cannot grow memory (or the scrape) without bound."""
    sidecar = sidecar_factory(env={"SIDECAR_METRICS__SERIES_LIMIT": "5"})
    first = post_proto(sidecar, request("names", *(gauge(f"name.{i}", i) for i in range(5))))
    assert not first.HasField("partial_success")
    flood = post_proto(sidecar, request("names", *(gauge(f"name.{i}", i) for i in range(5, 205))))
    assert flood.partial_success.rejected_data_points == 200
    assert "a new name past the family limit (5, metrics.series_limit)" in flood.partial_success.error_message
    # A known name still takes new points.
    again = post_proto(sidecar, request("names", gauge("name.0", 42)))
    assert not again.HasField("partial_success")
    found = families(sidecar)
    exposed = sorted(name for name in found if name.startswith("name_"))
    assert exposed == [f"name_{i}_ratio" for i in range(5)]
    assert one(found, "name_0_ratio", "name_0_ratio", job="names") == 42
    dropped = "sidecar_otlp_metric_points_dropped"
    assert one(found, dropped, dropped + "_total", reason="family_limit") == 200


@pytest.mark.parametrize(
    ("name", "unit", "exposed"),
    [
        ("up", "", "up"),
        ("scrape.duration", "s", "scrape_duration_seconds"),
        ("scrape_samples_scraped", "", "scrape_samples_scraped"),
        ("scrape_samples_post_metric_relabeling", "", "scrape_samples_post_metric_relabeling"),
        ("scrape_series_added", "", "scrape_series_added"),
        ("scrape_timeout_seconds", "", "scrape_timeout_seconds"),
        ("scrape_sample_limit", "", "scrape_sample_limit"),
        ("scrape_body_size_bytes", "", "scrape_body_size_bytes"),
        ("otel_scope_info", "", "otel_scope_info"),
    ],
)
def test_names_prometheus_writes_itself_are_refused(
    sidecar: Sidecar, name: str, unit: str, exposed: str
) -> None:
    metric = metrics_pb2.Metric(name=name, unit=unit)
    metric.gauge.data_points.add(as_double=1, time_unix_nano=time.time_ns())
    answer = post_proto(sidecar, request("owned", metric, gauge("fine", 1)))
    assert answer.partial_success.rejected_data_points == 1
    assert f"which Prometheus itself writes ({exposed!r})" in answer.partial_success.error_message
    found = families(sidecar)
    assert exposed not in found
    assert one(found, "fine_ratio", "fine_ratio", job="owned") == 1
    dropped = "sidecar_otlp_metric_points_dropped"
    assert one(found, dropped, dropped + "_total", reason="reserved_name") >= 1


def attributed(metric: metrics_pb2.Metric, **attributes: str) -> metrics_pb2.Metric:
    """``metric`` with ``attributes`` on each of its points."""
    kind = metric.WhichOneof("data")
    assert kind is not None
    for point in getattr(metric, kind).data_points:
        point.attributes.extend(kv(k, v) for k, v in attributes.items())
    return metric


def assert_valid_exposition(sidecar: Sidecar) -> dict[str, Any]:
    """promtool on the text format and prometheus_client's strict OpenMetrics parser both accept
    the scrape; returns the OpenMetrics families."""
    problem = promtool_check(scrape(sidecar))
    assert problem is None, problem
    return families(sidecar, openmetrics=True)


def test_reserved_label_names_are_renamed_on_every_type(sidecar_factory: SidecarFactory) -> None:
    """An attribute ``le`` or ``quantile`` on any type (not only the histogram or summary that
    owns it) is ``exported_le``/``exported_quantile``; so are ``job``, ``instance``,
    ``otel_scope_*`` and ``otel_metric_overflow``; a resource attribute ``le`` in target_info too."""
    sidecar = sidecar_factory()  # its own: promtool lints other tests' families (units in ms)
    clash = {"le": "x", "quantile": "q", "otel_metric_overflow": "true", "job": "j"}
    level = gauge("gle", 2.0, **clash)
    level.unit = ""
    hits = metrics_pb2.Metric(name="hits")
    hits.sum.aggregation_temporality = 2
    hits.sum.is_monotonic = True
    hits.sum.data_points.add(as_int=3, time_unix_nano=time.time_ns())
    latency = metrics_pb2.Metric(name="lat", unit="s")
    latency.histogram.aggregation_temporality = 2
    latency.histogram.data_points.add(
        count=2, sum=1.5, bucket_counts=[1, 1], explicit_bounds=[1.0], time_unix_nano=time.time_ns()
    )
    quantiles = metrics_pb2.Metric(name="qs", unit="s")
    point = quantiles.summary.data_points.add(count=4, sum=2.0, time_unix_nano=time.time_ns())
    point.quantile_values.add(quantile=0.5, value=0.4)
    req = request("c", level, *(attributed(m, **clash) for m in (hits, latency, quantiles)))
    req.resource_metrics[0].resource.attributes.extend([kv("le", "r"), kv("quantile", "rq")])
    response = post_proto(sidecar, req)
    assert not response.HasField("partial_success"), response
    found = assert_valid_exposition(sidecar)
    exported = {"exported_le": "x", "exported_quantile": "q", "exported_otel_metric_overflow": "true"}
    exported["exported_job"] = "j"
    [sample] = samples_of(found, "gle", job="c", **exported)
    assert sample.value == 2.0 and "le" not in sample.labels and "quantile" not in sample.labels
    assert one(found, "hits", "hits_total", job="c", **exported) == 3
    buckets = samples_of(found, "lat_seconds", job="c", **exported)
    assert [s.labels["le"] for s in buckets if s.name.endswith("_bucket")] == ["1.0", "+Inf"]
    assert one(found, "lat_seconds", "lat_seconds_sum", job="c", **exported) == 1.5
    assert one(found, "qs_seconds", "qs_seconds", job="c", quantile="0.5", **exported) == 0.4
    assert one(found, "target_info", "target_info", job="c", exported_le="r", exported_quantile="rq") == 1
    assert not [s for f in found.values() for s in f.samples if s.labels.get("otel_metric_overflow")]


def test_points_openmetrics_cannot_expose_are_refused_or_left_out(sidecar_factory: SidecarFactory) -> None:
    """A counter (monotonic sum) below zero or NaN is refused and named in partial_success, also a
    negative delta that would make the total go down, an infinite histogram bound and a negative
    quantile value; a histogram whose sum is no counter (negative observations) keeps its buckets
    without _sum and _count (the specification writes _sum only when it is a counter, OpenMetrics
    _count only with _sum). The scrape stays valid for promtool and the OpenMetrics parser."""
    sidecar = sidecar_factory()
    now = time.time_ns()

    def counter(name: str, temporality: int, *values: float) -> metrics_pb2.Metric:
        metric = metrics_pb2.Metric(name=name)
        metric.sum.aggregation_temporality = temporality
        metric.sum.is_monotonic = True
        for i, value in enumerate(values):
            metric.sum.data_points.add(
                as_double=value, start_time_unix_nano=now + i, time_unix_nano=now + i + 1
            )
        return metric

    negative = counter("c.neg", 2, -5.0)
    nan = counter("c.nan", 2, float("nan"))
    ints = metrics_pb2.Metric(name="c.int")
    ints.sum.aggregation_temporality = 2
    ints.sum.is_monotonic = True
    ints.sum.data_points.add(as_int=-3, time_unix_nano=now)
    deltas = counter("c.delta", 1, 4.0, -1.0, 2.0)
    updown = metrics_pb2.Metric(name="c.updown")  # not monotonic: a gauge, negative is fine
    updown.sum.aggregation_temporality = 2
    updown.sum.data_points.add(as_double=-5.0, time_unix_nano=now)
    infinite = metrics_pb2.Metric(name="h.inf")
    infinite.histogram.aggregation_temporality = 2
    infinite.histogram.data_points.add(
        count=2, sum=3.0, bucket_counts=[1, 1, 0], explicit_bounds=[1.0, float("inf")], time_unix_nano=now
    )
    below = metrics_pb2.Metric(name="h.below")  # negative bounds and a negative sum
    below.histogram.aggregation_temporality = 2
    below.histogram.data_points.add(
        count=3, sum=-4.0, bucket_counts=[2, 1, 0], explicit_bounds=[-1.0, 0.0], time_unix_nano=now
    )
    low_sum = metrics_pb2.Metric(name="h.lowsum")  # no negative bound, negative observations
    low_sum.histogram.aggregation_temporality = 2
    low_sum.histogram.data_points.add(
        count=2, sum=-1.5, bucket_counts=[2, 0], explicit_bounds=[0.0], time_unix_nano=now
    )
    no_sum = metrics_pb2.Metric(name="h.nosum")
    no_sum.histogram.aggregation_temporality = 2
    no_sum.histogram.data_points.add(count=2, bucket_counts=[1, 1], explicit_bounds=[1.0], time_unix_nano=now)
    fine = metrics_pb2.Metric(name="h.fine")
    fine.histogram.aggregation_temporality = 2
    fine.histogram.data_points.add(
        count=2, sum=2.5, bucket_counts=[1, 1], explicit_bounds=[1.0], time_unix_nano=now
    )
    exp = metrics_pb2.Metric(name="e.signed")
    point = exp.exponential_histogram.data_points.add(count=3, sum=-1.0, scale=0, time_unix_nano=now)
    exp.exponential_histogram.aggregation_temporality = 2
    point.positive.bucket_counts.extend([1])
    point.negative.bucket_counts.extend([2])
    cold = metrics_pb2.Metric(name="temp.q")
    summary_point = cold.summary.data_points.add(count=2, sum=-3.0, time_unix_nano=now)
    summary_point.quantile_values.add(quantile=0.5, value=0.0)
    colder = metrics_pb2.Metric(name="temp.neg")
    summary_point = colder.summary.data_points.add(count=2, sum=-3.0, time_unix_nano=now)
    summary_point.quantile_values.add(quantile=0.5, value=-1.5)
    metrics = (negative, nan, ints, deltas, updown, infinite, below, low_sum, no_sum, fine, exp, cold, colder)
    req = request("careless", *metrics)
    response = post_proto(sidecar, req)
    assert response.partial_success.rejected_data_points == 6
    message = response.partial_success.error_message
    assert message.startswith("6 data point(s) rejected: "), message
    expected = [
        "metrics[0].sum.dataPoints[0]: asDouble is -5.0; a monotonic sum (a counter) must be a number >= 0",
        "metrics[1].sum.dataPoints[0]: asDouble is NaN; a monotonic sum (a counter) must be a number >= 0",
        "metrics[2].sum.dataPoints[0]: asInt is -3; a monotonic sum (a counter) must be a number >= 0",
        "metrics[3].sum.dataPoints[1]: asDouble is -1.0; a monotonic sum (a counter) must be a number >= 0",
        "metrics[5].histogram.dataPoints[0]: explicitBounds must be increasing finite numbers",
    ]
    for part in expected:
        assert part in message, (part, message)
    assert "and 1 more" in message  # the summary's negative quantile value, past the 5 messages shown
    one_more = request("careless", colder)
    answer = post_proto(sidecar, one_more).partial_success.error_message
    assert "metrics[0].summary.dataPoints[0]: quantileValues[0].value must be >= 0, got -1.5" in answer

    found = assert_valid_exposition(sidecar)
    job = {"job": "careless"}
    for refused in ("c_neg", "c_nan", "c_int", "h_inf", "temp_neg"):
        assert refused not in found, refused
    assert one(found, "c_delta", "c_delta_total", **job) == 6  # 4 + 2, the -1 refused
    assert one(found, "c_updown", "c_updown", **job) == -5
    for name in ("h_below", "h_lowsum", "h_nosum", "e_signed"):
        names = {s.name for s in found[name].samples}
        assert names == {name + "_bucket"}, (name, names)
    assert one(found, "h_below", "h_below_bucket", le="-1.0", **job) == 2
    assert one(found, "h_below", "h_below_bucket", le="+Inf", **job) == 3
    assert one(found, "h_fine", "h_fine_sum", **job) == 2.5
    assert one(found, "h_fine", "h_fine_count", **job) == 2
    assert one(found, "e_signed", "e_signed_bucket", le="+Inf", **job) == 3
    assert {s.name for s in found["temp_q"].samples} == {"temp_q", "temp_q_count"}
    assert one(found, "temp_q", "temp_q_count", **job) == 2
