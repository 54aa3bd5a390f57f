"""The OTel -> Prometheus naming rules, attribute values as label text, and exponential buckets."""

from __future__ import annotations

import math

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.metrics.v1 import metrics_pb2

from sidecar.config.model import MetricsConfig
from sidecar.metrics.otlp_names import label_name, label_value, metric_name, prometheus_type
from sidecar.metrics.otlp_series import MAX_BUCKETS, add_exponential, exponential, exponential_buckets
from sidecar.metrics.otlp_state import RESERVED_LABELS, _labels


@pytest.mark.parametrize(
    ("name", "unit", "kind", "monotonic", "expected"),
    [
        ("http.server.request.duration", "s", "histogram", False, "http_server_request_duration_seconds"),
        ("http.server.duration", "ms", "histogram", False, "http_server_duration_milliseconds"),
        ("http.server.requests", "{request}", "sum", True, "http_server_requests_total"),
        ("system.network.io", "By", "sum", True, "system_network_io_bytes_total"),
        ("queue.depth", "{item}", "sum", False, "queue_depth"),
        ("cpu.utilization", "1", "gauge", False, "cpu_utilization_ratio"),
        ("cpu.utilization", "1", "sum", True, "cpu_utilization_total"),  # _ratio is for gauges only
        ("hit.ratio", "1", "gauge", False, "hit_ratio"),  # no duplicate suffix
        ("requests_total", "", "sum", True, "requests_total"),
        ("total.requests", "", "sum", True, "requests_total"),  # one _total, at the end
        ("latency_seconds", "s", "histogram", False, "latency_seconds"),
        ("throughput", "By/s", "gauge", False, "throughput_bytes_per_second"),
        ("rate", "{packet}/s", "gauge", False, "rate_per_second"),
        ("heap", "MiBy", "gauge", False, "heap_mebibytes"),
        ("temp", "Cel", "gauge", False, "temp_celsius"),
        ("odd", "furlongs", "gauge", False, "odd_furlongs"),  # an unknown unit is kept as a word
        ("2xx.count", "", "sum", False, "_2xx_count"),
        ("my..weird--name!", "", "gauge", False, "my_weird_name"),
        ("__already__snake__", "", "gauge", False, "already_snake"),
        ("ns:rule", "", "gauge", False, "ns:rule"),  # colons are valid in metric names
        ("日本", "", "gauge", False, ""),  # nothing usable
        ("size", "By", "exponential_histogram", False, "size_bytes"),
    ],
)
def test_metric_names(name: str, unit: str, kind: str, monotonic: bool, expected: str) -> None:
    assert metric_name(name, unit, kind, monotonic) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http.route", "http_route"),
        ("http.response.status_code", "http_response_status_code"),
        ("2fa", "key_2fa"),
        ("_private", "key_private"),
        ("__reserved", "key_reserved"),
        ("__name__", "key_name_"),  # no label name starts with __ (Prometheus' own)
        ("._x", "key_x"),
        ("a..b", "a_b"),
        ("ünïcode", "key_n_code"),
        ("", ""),
    ],
)
def test_label_names(key: str, expected: str) -> None:
    assert label_name(key) == expected


def test_reserved_label_names_are_exported_whatever_the_type() -> None:
    keys = {"le": "1", "quantile": "q", "job": "j", "otel_scope_name": "s", "exported_le": "e", "ok": "v"}
    attributes = [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in keys.items()]
    labels = _labels(attributes, RESERVED_LABELS)
    assert labels == {
        "exported_le": "e;1",  # joined with the attribute already called exported_le
        "exported_quantile": "q",
        "exported_job": "j",
        "exported_otel_scope_name": "s",
        "ok": "v",
    }
    assert {"instance", "otel_scope_version", "otel_metric_overflow"} <= set(RESERVED_LABELS)


def test_label_values_follow_the_attribute_rules() -> None:
    assert label_value(AnyValue(string_value="x")) == "x"
    assert label_value(AnyValue(bool_value=True)) == "true"
    assert label_value(AnyValue(int_value=-42)) == "-42"
    assert label_value(AnyValue(double_value=1.5)) == "1.5"
    assert label_value(AnyValue(double_value=3.0)) == "3"
    assert label_value(AnyValue(double_value=1e21)) == "1000000000000000000000"
    assert label_value(AnyValue(bytes_value=b"\x01\x02")) == "AQI="
    array = AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a")]))
    assert label_value(array) == '[1,"a"]'
    kvlist = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(bool_value=False))]))
    assert label_value(kvlist) == '{"k":false}'
    assert label_value(AnyValue()) == ""


def test_prometheus_types() -> None:
    assert prometheus_type("sum", True) == "counter"
    assert prometheus_type("sum", False) == "gauge"
    assert prometheus_type("gauge", False) == "gauge"
    assert prometheus_type("exponential_histogram", False) == "histogram"
    assert prometheus_type("summary", False) == "summary"


def point(
    scale: int, offset: int, counts: list[int], zero: int = 0
) -> metrics_pb2.ExponentialHistogramDataPoint:
    found = metrics_pb2.ExponentialHistogramDataPoint(scale=scale, zero_count=zero, count=sum(counts) + zero)
    found.positive.offset = offset
    found.positive.bucket_counts.extend(counts)
    return found


def test_exponential_buckets_keep_every_count_in_its_bucket() -> None:
    # scale 0: bucket i is (2^i, 2^(i+1)]; values 3 (i=1), 5 and 6 (i=2)
    held = exponential(point(0, 1, [1, 2], zero=1))
    assert exponential_buckets(held) == [(0.0, 1), (4.0, 1), (8.0, 2)]
    # scale 5 is downscaled to 3: 4 buckets of scale 5 make one of scale 3
    fine = exponential(point(5, 0, [1, 1, 1, 1, 1]))
    assert fine.scale == 3
    assert sum(c for _, c in exponential_buckets(fine)) == 5
    assert exponential_buckets(fine)[0] == (pytest.approx(2 ** (1 / 8)), 4)


def test_wide_exponential_histograms_are_coarsened_not_truncated() -> None:
    wide = exponential(point(3, -400, [1] + [0] * 798 + [1]))
    assert len(exponential_buckets(wide)) <= MAX_BUCKETS
    pairs = exponential_buckets(wide)
    assert sum(c for _, c in pairs) == 2
    # Each value still lies at or below the le of the bucket that counts it, in a coarser bucket.
    assert pairs[0][1] == 1 and 2 ** (-399 / 8) <= pairs[0][0] <= 2**-40
    assert pairs[-1][1] == 1 and pairs[-1][0] >= 2 ** (400 / 8)
    assert wide.scale < 3


def test_delta_exponential_points_merge_at_the_lower_scale() -> None:
    held = exponential(point(3, 8, [2]))  # (2, 2^(9/8)]
    merged = add_exponential(held, point(1, 2, [1]))  # (2, 2.83] at scale 1
    assert merged.scale == 1
    assert merged.count == 3
    assert exponential_buckets(merged) == [(pytest.approx(math.sqrt(2) ** 3), 3)]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("300s", 300), ("300", 300), ("1.5h", 5400), ("1d", 86400), ("7d", 604800)],
)
def test_staleness_accepts_durations_and_seconds(text: str, seconds: float) -> None:
    assert MetricsConfig(staleness=text).validate("metrics") == []
    assert MetricsConfig(staleness=text).staleness_s() == seconds


@pytest.mark.parametrize("text", ["0", "500ms", "5 minutes", "-5m", "8d", "7.5d", "1w", ""])
def test_staleness_refuses_nonsense(text: str) -> None:
    (error,) = MetricsConfig(staleness=text).validate("metrics")
    assert error.startswith("metrics.staleness: ")
