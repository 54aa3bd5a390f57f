"""Span metrics from real SDK spans, read back from a live sidecar's /metrics (both formats)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import serve_command, subprocess_env
from tests.e2e.prom import find, promtool_check, samples, scrape, value, wait_for

CALLS = "traces_span_metrics_calls_total"
DURATION = "traces_span_metrics_duration_seconds"


def emit(
    pipeline: Any,
    name: str,
    millis: float,
    kind: SpanKind = SpanKind.SERVER,
    error: bool = False,
    **attrs: Any,
) -> str:
    """One span of exactly ``millis``; returns its trace id (hex)."""
    start = time.time_ns() - 10_000_000_000
    span = pipeline.tracer.start_span(name, kind=kind, start_time=start, attributes=attrs or None)
    if error:
        span.set_status(Status(StatusCode.ERROR, "boom"))
    trace_id = format(span.get_span_context().trace_id, "032x")
    span.end(end_time=start + int(millis * 1_000_000))
    return trace_id


def test_calls_durations_and_exemplars(sidecar_factory: SidecarFactory, sdk: Any) -> None:
    sidecar = sidecar_factory()
    shop = sdk(sidecar, "shop")
    ids = [emit(shop, "GET /pay", ms) for ms in (3, 30, 300)]
    emit(shop, "GET /pay", 7, error=True)
    emit(shop, "SELECT", 1, kind=SpanKind.CLIENT)
    ok = shop.tracer.start_span("work", kind=SpanKind.INTERNAL)
    ok.set_status(Status(StatusCode.OK))
    ok.end()
    shop.flush()

    server = {"service_name": "shop", "span_name": "GET /pay", "span_kind": "SPAN_KIND_SERVER"}
    unset = {**server, "status_code": "STATUS_CODE_UNSET"}
    got = wait_for(lambda: value(samples(sidecar), CALLS, **unset) == 3 and samples(sidecar))
    assert got, scrape(sidecar)
    assert value(got, CALLS, **server, status_code="STATUS_CODE_ERROR") == 1
    assert value(got, CALLS, service_name="shop", span_name="SELECT", span_kind="SPAN_KIND_CLIENT") == 1
    assert (
        value(got, CALLS, span_name="work", span_kind="SPAN_KIND_INTERNAL", status_code="STATUS_CODE_OK") == 1
    )
    buckets = {s.labels["le"]: s.value for s in find(got, DURATION + "_bucket", **unset)}
    # The connector's default buckets, in seconds: 2 ms .. 15 s and +Inf.
    assert list(buckets) == [
        "0.002", "0.004", "0.006", "0.008", "0.01", "0.05", "0.1", "0.2", "0.4", "0.8",
        "1.0", "1.4", "2.0", "5.0", "10.0", "15.0", "+Inf",
    ]  # fmt: skip
    assert (buckets["0.002"], buckets["0.004"], buckets["0.05"], buckets["0.4"], buckets["+Inf"]) == (
        0,
        1,
        2,
        3,
        3,
    )
    assert value(got, DURATION + "_count", **unset) == 3
    assert value(got, DURATION + "_sum", **unset) == pytest.approx(0.333)

    # Exemplars: only in OpenMetrics, on the buckets; the trace they name is in the Jaeger API.
    assert "trace_id" not in scrape(sidecar)
    om = samples(sidecar, openmetrics=True)
    exemplars = [s.exemplar for s in find(om, DURATION + "_bucket", **unset) if s.exemplar]
    assert {e.labels["trace_id"] for e in exemplars} == set(ids)
    slow = next(e for e in exemplars if e.value > 0.2)
    assert slow.value == pytest.approx(0.3) and len(slow.labels["span_id"]) == 16
    trace = sidecar.jaeger_trace(slow.labels["trace_id"])
    assert [s["spanID"] for s in trace["spans"]] == [slow.labels["span_id"]]

    text = scrape(sidecar, names=(CALLS.removesuffix("_total"), DURATION))
    assert promtool_check(text) is None
    assert promtool_check(scrape(sidecar)) is None


def test_dimensions_span_then_resource_then_default(sidecar_factory: SidecarFactory, sdk: Any) -> None:
    env = {
        "SIDECAR_METRICS__SPANMETRICS__DIMENSIONS": "http.route, deployment.environment ,tenant:none,retries"
    }
    sidecar = sidecar_factory(env=env)
    api = sdk(
        sidecar, "api", resource_attrs={"deployment.environment": "prod", "http.route": "/from-resource"}
    )
    emit(api, "GET", 5, **{"http.route": "/users/{id}", "tenant": "acme", "retries": 2})
    emit(api, "GET", 5)
    api.flush()
    got = wait_for(lambda: (s := samples(sidecar)) and len(find(s, CALLS, service_name="api")) == 2 and s)
    assert got
    series = sorted(
        (s.labels["http_route"], s.labels["deployment_environment"], s.labels["tenant"], s.labels["retries"])
        for s in find(got, CALLS, service_name="api")
    )
    assert series == [("/from-resource", "prod", "none", ""), ("/users/{id}", "prod", "acme", "2")]
    assert value(got, DURATION + "_count", service_name="api", tenant="acme", http_route="/users/{id}") == 1


def refused_at_start(tmp_path: Path, env: dict[str, str]) -> str:
    """``sidecar serve`` with ``env`` must exit 2 (a config error, before binding); its stderr."""
    done = subprocess.run(
        serve_command("--data-dir", str(tmp_path / "data")),
        env=subprocess_env(env),
        capture_output=True,
        timeout=60,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    return err


def test_bad_dimensions_and_buckets_are_refused_at_start(tmp_path: Path) -> None:
    env = {
        "SIDECAR_METRICS__SPANMETRICS__DIMENSIONS": "service.name",
        "SIDECAR_METRICS__SPANMETRICS__BUCKETS": "0.1,x",
    }
    err = refused_at_start(tmp_path, env)
    assert "metrics.spanmetrics.dimensions: 'service.name' would be the label 'service_name'" in err
    assert "metrics.spanmetrics.buckets: 'x' is not a number" in err


def test_reserved_label_names_are_refused_at_start(tmp_path: Path) -> None:
    """A ``__name__`` dimension once let one span's attribute break the whole /metrics page."""
    env = {
        "SIDECAR_METRICS__SPANMETRICS__DIMENSIONS": "http.route,__name__,le,job,instance,service",
        "SIDECAR_METRICS__EVENTS__DIMENSIONS": "plan,__meta",
    }
    err = refused_at_start(tmp_path, env)
    where = "metrics.spanmetrics.dimensions"
    for label in ("__name__", "le", "job", "instance"):
        assert f"{where}: {label!r} would be the label {label!r}, which is reserved" in err
    assert f"{where}: 'service' would be the label 'service', which the family already has" in err
    assert "metrics.events.dimensions: '__meta' would be the label '__meta', which is reserved" in err
    assert "http_route" not in err and "'plan'" not in err
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_milliseconds_and_tempo_families(sidecar_factory: SidecarFactory, sdk: Any) -> None:
    env = {
        "SIDECAR_METRICS__SPANMETRICS__UNIT_MILLISECONDS": "true",
        "SIDECAR_METRICS__SPANMETRICS__TEMPO_COMPATIBLE": "true",
    }
    sidecar = sidecar_factory(env=env)
    web = sdk(sidecar, "web")
    trace_id = emit(web, "GET /", 25)
    web.flush()
    got = wait_for(
        lambda: (s := samples(sidecar)) and value(s, "traces_spanmetrics_calls_total", service="web") and s
    )
    assert got, scrape(sidecar)
    assert not find(got, DURATION + "_count")
    ms = {
        s.labels["le"]: s.value
        for s in find(got, "traces_span_metrics_duration_milliseconds_bucket", service_name="web")
    }
    assert ms["10.0"] == 0 and ms["50.0"] == 1 and "15000.0" in ms
    assert value(got, "traces_span_metrics_duration_milliseconds_sum", service_name="web") == pytest.approx(
        25
    )
    assert value(got, CALLS, service_name="web", span_kind="SPAN_KIND_SERVER") == 1
    tempo = {s.labels["le"]: s.value for s in find(got, "traces_spanmetrics_latency_bucket", service="web")}
    assert list(tempo)[:3] == ["0.002", "0.004", "0.008"] and list(tempo)[-2:] == ["16.384", "+Inf"]
    assert tempo["0.016"] == 0 and tempo["0.032"] == 1
    om = samples(sidecar, openmetrics=True)
    exemplars = [
        s.exemplar for s in find(om, "traces_spanmetrics_latency_bucket", service="web") if s.exemplar
    ]
    assert [e.labels["trace_id"] for e in exemplars] == [trace_id]
    # The one lint complaint is the unit Jaeger SPM asks for (the Collector's name has it too).
    complaint = promtool_check(scrape(sidecar))
    assert (
        complaint
        == 'traces_span_metrics_duration_milliseconds use base unit "seconds" instead of "milliseconds"\n'
    )


def test_a_flood_of_span_names_stays_within_the_series_limit(
    sidecar_factory: SidecarFactory, sdk: Any
) -> None:
    sidecar = sidecar_factory(env={"SIDECAR_METRICS__SERIES_LIMIT": "50"})
    flood = sdk(sidecar, "flood", batch=True)
    for i in range(3000):
        flood.tracer.start_span(f"GET /item/{i}").end()
        if i % 1000 == 999:
            flood.flush()  # the SDK's queue holds 2048 spans
    flood.exporter.assert_all_succeeded(3000)

    def overflowed() -> Any:
        s = samples(sidecar)
        folded = value(s, "sidecar_metric_series_overflow_total", family="traces_span_metrics_calls")
        return s if folded == 3000 - 50 else None

    got = wait_for(overflowed, timeout=20)
    assert got, scrape(sidecar)
    calls = find(got, CALLS)
    assert len(calls) == 51
    assert value(got, CALLS, otel_metric_overflow="true") == 2950
    assert sum(s.value for s in calls) == 3000
    assert len(find(got, DURATION + "_count")) == 51
    assert (
        value(got, "sidecar_metric_series_overflow_total", family="traces_span_metrics_duration_seconds")
        == 2950
    )
