"""``GET /metrics`` on a live sidecar: the exposition formats, a separate metrics address, promtool on
the output after real traffic (the OTel SDK's spans and logs, ``POST /v1/events``, a bad request),
the event and log counters, the sidecar's own metrics moving, and the series limit under a flood of
unique event names.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import SdkPipeline, SidecarFactory
from tests.e2e.harness import HOST, PROTOBUF, Sidecar, free_ports, http_request

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, accept: str | None = None) -> str:
    headers = {"Accept": accept} if accept else {}
    status, _, body = http_request("GET", url, headers=headers)
    assert status == 200, body[:300]
    return body.decode()


def samples(text: str) -> Samples:
    """Every sample of a text 0.0.4 exposition, keyed by (sample name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def series(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in found.items() if n == name}


def wait_for(sc: Sidecar, check: Callable[[Samples], bool], timeout: float = 10.0) -> Samples:
    """Scrape until ``check`` holds: taps count a batch just after its acknowledgement."""
    deadline = time.monotonic() + timeout
    while True:
        found = samples(scrape(f"{sc.api_url}/metrics"))
        if check(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "promtool is not installed: `make test` installs the Debian package prometheus when it "
            "runs as root with apt-get; elsewhere install it (apt-get install prometheus)"
        )
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    complaint = (done.stdout + done.stderr).decode()
    assert done.returncode == 0 and not complaint.strip(), complaint


def openmetrics_check(text: str) -> None:
    """The OpenMetrics parser raises on anything out of spec (a missing # EOF, a bad suffix)."""
    families = list(openmetrics_families(text))
    assert any(f.name == "sidecar_write_batch_duration_seconds" for f in families)


def post_events(sc: Sidecar, events: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, _, body = http_request(
        "POST", f"{sc.http_url}/v1/events", json.dumps(events).encode(), {"Content-Type": "application/json"}
    )
    return status, json.loads(body)


def test_formats_gzip_and_name_filter(sidecar: Sidecar) -> None:
    url = f"{sidecar.api_url}/metrics"
    status, headers, body = http_request("GET", url)
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE sidecar_write_queue_size gauge" in body and not body.endswith(b"# EOF\n")

    status, headers, body = http_request("GET", url, headers={"Accept": OPENMETRICS})
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")

    status, headers, body = http_request("GET", url, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("content-encoding") == "gzip"
    assert b"# TYPE process_cpu_seconds_total counter" in gzip.decompress(body)

    only = scrape(f"{url}?name[]=sidecar_write_queue_size&name[]=sidecar_storage_partitions")
    names = {family.name for family in text_string_to_metric_families(only)}
    assert names == {"sidecar_write_queue_size", "sidecar_storage_partitions"}


def test_name_filter_takes_family_names(sidecar: Sidecar, sdk: Callable[..., SdkPipeline]) -> None:
    """``name[]=family`` returns the family whatever its samples are called (a histogram's are
    ``_bucket``/``_count``/``_sum``, a counter's ``_total``); sample names still work."""
    pipeline = sdk(sidecar, "filtered")
    with pipeline.tracer.start_as_current_span("GET /filtered"):
        pass
    pipeline.flush()
    url = f"{sidecar.api_url}/metrics"
    wait_for(sidecar, lambda found: bool(series(found, "traces_span_metrics_calls_total")))
    for query, family, typ in [
        ("traces_span_metrics_duration_seconds", "traces_span_metrics_duration_seconds", "histogram"),
        ("traces_span_metrics_calls", "traces_span_metrics_calls", "counter"),
        ("traces_span_metrics_calls_total", "traces_span_metrics_calls", "counter"),
        ("sidecar_write_queue_size", "sidecar_write_queue_size", "gauge"),
    ]:
        for accept in (None, OPENMETRICS):
            text = scrape(f"{url}?name[]={query}", accept)
            parse = openmetrics_families if accept else text_string_to_metric_families
            found = {f.name: f for f in parse(text)}
            assert list(found) == [family], (query, accept, text[:300])
            assert found[family].type == typ
            names = {s.name for s in found[family].samples if s.labels.get("service_name") == "filtered"}
            if typ == "histogram":
                assert names == {family + "_bucket", family + "_count", family + "_sum"}, names
            elif typ == "counter":
                assert names == {family + "_total"}, names
    both = scrape(f"{url}?name[]=traces_span_metrics_duration_seconds_count&name[]=sidecar_write_queue_size")
    found = {f.name: f for f in text_string_to_metric_families(both)}
    assert set(found) == {"traces_span_metrics_duration_seconds", "sidecar_write_queue_size"}
    assert {s.name for s in found["traces_span_metrics_duration_seconds"].samples} == {
        "traces_span_metrics_duration_seconds_count"
    }


def test_metrics_listen_serves_metrics_apart_from_the_api(sidecar_factory: SidecarFactory) -> None:
    (port,) = free_ports(1)
    sc = sidecar_factory(extra_args=["--metrics-listen", f"{HOST}:{port}"])
    text = scrape(f"http://{HOST}:{port}/metrics")
    assert "sidecar_write_queue_capacity" in text
    status, _ = sc.get_json("/api/services")
    assert status == 200
    status, _ = sc.get("/metrics")
    assert status == 404  # only on its own address
    # The metrics listener times its own requests too.
    again = samples(scrape(f"http://{HOST}:{port}/metrics"))
    ok = {"http_request_method": "GET", "http_route": "/metrics", "http_response_status_code": "200"}
    assert value(again, "sidecar_http_server_request_duration_seconds_count", **ok) >= 1


def emit_logs(sc: Sidecar, service: str) -> None:
    """Through the SDK's LoggerProvider over gRPC: two INFO, one ERROR, one event record."""
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=sc.grpc_endpoint, insecure=True, timeout=10))
    )
    logger = provider.get_logger("e2e.metrics")
    logger.emit(body="cart loaded", severity_number=SeverityNumber.INFO)
    logger.emit(body="cart saved", severity_number=SeverityNumber.INFO3)
    logger.emit(body="card declined", severity_number=SeverityNumber.ERROR)
    logger.emit(event_name="checkout.paid", attributes={"user.id": "42", "plan": "pro"})
    assert provider.force_flush(10_000)
    provider.shutdown()


def test_real_traffic_passes_promtool_and_moves_every_counter(
    sidecar_factory: SidecarFactory, sdk: Callable[..., SdkPipeline]
) -> None:
    sc = sidecar_factory(env={"SIDECAR_METRICS__EVENTS__DIMENSIONS": "plan"})
    for protocol, spans in (("grpc", 3), ("http", 2)):
        pipeline = sdk(sc, f"shop-{protocol}", protocol)
        for i in range(spans):
            with pipeline.tracer.start_as_current_span(f"GET /item/{i}"):
                pass
        pipeline.flush()
        pipeline.exporter.assert_all_succeeded(spans)
    emit_logs(sc, "checkout")
    status, answer = post_events(
        sc,
        [
            {"event": "pay", "user": "1", "plan": "pro"},
            {"event": "pay", "user": "2", "plan": "pro"},
            {"event": "view", "user": "1"},
            {"user": "3"},  # no name: rejected
        ],
    )
    assert (status, answer["accepted"], answer["rejected"]) == (200, 3, 1)
    status, _, _ = http_request("POST", sc.traces_url, b"\xff not protobuf", {"Content-Type": PROTOBUF})
    assert status == 400

    def settled(found: Samples) -> bool:
        return value(found, "sidecar_log_records_total", service_name="checkout", severity="ERROR") == 1 and (
            value(found, "sidecar_events_total", event_name="checkout.paid", plan="pro") == 1
        )

    found = wait_for(sc, settled)
    # Event counters, the configured dimension included (absent: ""), from both event routes.
    assert series(found, "sidecar_events_total") == {
        frozenset({("event_name", "pay"), ("plan", "pro")}): 2,
        frozenset({("event_name", "view"), ("plan", "")}): 1,
        frozenset({("event_name", "checkout.paid"), ("plan", "pro")}): 1,
    }
    # Log counters by service and severity range (INFO3 is INFO; the event record has none).
    assert series(found, "sidecar_log_records_total") == {
        frozenset({("service_name", "checkout"), ("severity", "INFO")}): 2,
        frozenset({("service_name", "checkout"), ("severity", "ERROR")}): 1,
        frozenset({("service_name", "checkout"), ("severity", "UNSPECIFIED")}): 1,
    }
    # Receivers: items per signal and transport, and the bad request by its outcome.
    accepted = "sidecar_receiver_accepted_items_total"
    assert value(found, accepted, signal="traces", transport="grpc") == 3
    assert value(found, accepted, signal="traces", transport="http") == 2
    assert value(found, accepted, signal="logs", transport="grpc") == 4
    assert value(found, accepted, signal="events", transport="http") == 3
    assert value(found, "sidecar_receiver_rejected_items_total", signal="events", transport="http") == 1
    assert value(found, "sidecar_receiver_received_items_total", signal="events", transport="http") == 4
    bad = {"signal": "traces", "transport": "http", "outcome": "bad_request"}
    assert value(found, "sidecar_receiver_request_duration_seconds_count", **bad) == 1
    ok = {"signal": "traces", "transport": "grpc", "outcome": "ok"}
    assert value(found, "sidecar_receiver_request_duration_seconds_count", **ok) >= 1
    route = {"http_request_method": "POST", "http_route": "/v1/events", "http_response_status_code": "200"}
    assert value(found, "sidecar_http_server_request_duration_seconds_count", **route) == 1
    # The writer: every acknowledged item went through a timed WriteBatch.
    writes = value(found, "sidecar_write_batch_duration_seconds_count")
    assert writes >= 1 and value(found, "sidecar_write_batch_bytes_sum") > 0
    assert value(found, "sidecar_write_batch_items_sum", signal="traces") == 5
    assert value(found, "sidecar_write_batch_items_sum", signal="events") == 4  # 3 posted, 1 from logs
    assert value(found, "sidecar_write_queue_capacity", signal="logs") > 0
    for signal in ("traces", "logs", "events"):
        assert value(found, "sidecar_storage_partitions", signal=signal) == 1
        assert value(found, "sidecar_write_queue_refused_total", signal=signal) == 0

    # promtool accepts the text format as served after real traffic (promtool check metrics reads
    # only that format; OpenMetrics goes through prometheus_client's strict parser instead).
    promtool_check(scrape(f"{sc.api_url}/metrics"))
    openmetrics_check(scrape(f"{sc.api_url}/metrics", OPENMETRICS))

    # After a restart RocksDB has flushed the recovered WAL into SST files: bytes on disk per partition.
    sc.restart()
    found = samples(scrape(f"{sc.api_url}/metrics"))
    on_disk = series(found, "sidecar_storage_sst_files_bytes")
    assert {dict(labels)["signal"] for labels in on_disk} == {"traces", "logs", "events"}
    assert all(size > 0 for size in on_disk.values()), on_disk
    assert value(found, "sidecar_storage_data_dir_bytes") >= sum(on_disk.values())


def test_a_flood_of_event_names_stays_within_the_series_limit(sidecar_factory: SidecarFactory) -> None:
    sc = sidecar_factory(env={"SIDECAR_METRICS__SERIES_LIMIT": "50"})
    for start in range(0, 1000, 250):
        status, answer = post_events(sc, [{"event": f"flood-{i}"} for i in range(start, start + 250)])
        assert (status, answer["accepted"]) == (200, 250)

    overflow = frozenset({("otel_metric_overflow", "true")})

    def settled(found: Samples) -> bool:
        return sum(series(found, "sidecar_events_total").values()) == 1000

    found = wait_for(sc, settled)
    counted = series(found, "sidecar_events_total")
    assert len(counted) == 51  # the limit, plus the one overflow series
    assert counted[overflow] == 950 and sum(counted.values()) == 1000
    assert value(found, "sidecar_metric_series_overflow_total", family="sidecar_events") == 950
    promtool_check(scrape(f"{sc.api_url}/metrics"))
    openmetrics_check(scrape(f"{sc.api_url}/metrics", OPENMETRICS))
