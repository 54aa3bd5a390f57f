"""Metrics ingest: decode an ExportMetricsServiceRequest and keep the data points that make sense.

Both receivers call :func:`prepare_metrics` with protobuf bytes (OTLP-JSON is converted first, hex
exemplar IDs included). A point that breaks the data model is dropped and named in
``partial_success`` (``rejected_data_points``), the rest of the request is kept: a missing
metric name, a sum or histogram without an aggregation temporality, a number point without a
value, a monotonic sum below 0 or NaN (a counter cannot be one, a negative delta would make it go
down, and OpenMetrics refuses the whole scrape over either), a histogram whose bucket counts do
not match its bounds or its count or with an infinite bound, an exponential histogram with a scale
outside -10..20 or counts that do not add up, a summary quantile outside 0..1 or with a negative
value (OpenMetrics again), an exemplar ID of the wrong length. What Prometheus makes of a valid point is the
consumer's business (``sidecar.metrics.otlp_state``).
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from sidecar.ingest.traces import RequestDecodeError
from sidecar.metrics.otlp_batch import (
    EXPONENTIAL_HISTOGRAM,
    GAUGE,
    HISTOGRAM,
    SUM,
    SUMMARY,
    MetricIn,
    PreparedMetrics,
    ScopeGroup,
)

NO_RECORDED_VALUE = 1  # DataPointFlags: the series has ended (a staleness marker)
_DELTA, _CUMULATIVE = 1, 2
MIN_SCALE, MAX_SCALE = -10, 20  # ExponentialHistogramDataPoint.scale, as metrics.proto bounds it
_JSON_KIND = {
    GAUGE: "gauge",
    SUM: "sum",
    HISTOGRAM: "histogram",
    EXPONENTIAL_HISTOGRAM: "exponentialHistogram",
    SUMMARY: "summary",
}


def _exemplar_problem(point: Any) -> str | None:
    for i, exemplar in enumerate(point.exemplars):
        if len(exemplar.trace_id) not in (0, 16):
            return f"exemplars[{i}].traceId must be 16 bytes or empty, got {len(exemplar.trace_id)}"
        if len(exemplar.span_id) not in (0, 8):
            return f"exemplars[{i}].spanId must be 8 bytes or empty, got {len(exemplar.span_id)}"
    return None


def _number_problem(point: Any) -> str | None:
    if point.WhichOneof("value") is None:
        return "value is missing (asDouble or asInt)"
    return _exemplar_problem(point)


def _counter_problem(point: Any) -> str | None:
    """A monotonic sum is a Prometheus counter, which can be neither negative nor NaN (OpenMetrics
    refuses the whole scrape otherwise); a negative delta would also make the total go down."""
    problem = _number_problem(point)
    if problem is not None:
        return problem
    value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
    if not value >= 0:  # also catches NaN
        field = "asDouble" if point.WhichOneof("value") == "as_double" else "asInt"
        return f"{field} is {_shown(value)}; a monotonic sum (a counter) must be a number >= 0"
    return None


def _shown(value: float) -> str:
    return "NaN" if value != value else repr(value).replace("inf", "Inf")


def _histogram_problem(point: Any) -> str | None:
    counts, bounds = point.bucket_counts, point.explicit_bounds
    if counts:
        if len(counts) != len(bounds) + 1:
            return (
                f"bucketCounts has {len(counts)} entries; with {len(bounds)} explicitBounds "
                f"it must have {len(bounds) + 1}"
            )
        total = sum(counts)
        if total != point.count:
            return f"count {point.count} is not the sum of bucketCounts ({total})"
    previous = -math.inf
    for bound in bounds:
        if not bound > previous or math.isinf(bound):  # also catches NaN
            return "explicitBounds must be increasing finite numbers (+Inf is the last bucket's)"
        previous = bound
    return _exemplar_problem(point)


def _exponential_problem(point: Any) -> str | None:
    if not MIN_SCALE <= point.scale <= MAX_SCALE:
        return f"scale must be {MIN_SCALE}..{MAX_SCALE}, got {point.scale}"
    if not (point.zero_threshold >= 0 and math.isfinite(point.zero_threshold)):
        return f"zeroThreshold must be a finite number >= 0, got {point.zero_threshold}"
    total = point.zero_count + sum(point.positive.bucket_counts) + sum(point.negative.bucket_counts)
    if total != point.count:
        return f"count {point.count} is not zeroCount plus the bucket counts ({total})"
    return _exemplar_problem(point)


def _summary_problem(point: Any) -> str | None:
    for i, quantile in enumerate(point.quantile_values):
        if not 0 <= quantile.quantile <= 1:
            return f"quantileValues[{i}].quantile must be 0..1, got {quantile.quantile}"
        if quantile.value < 0:  # OpenMetrics refuses the whole scrape over a negative quantile value
            return f"quantileValues[{i}].value must be >= 0, got {_shown(quantile.value)}"
    return None


_PROBLEMS = {
    GAUGE: _number_problem,
    SUM: _number_problem,
    HISTOGRAM: _histogram_problem,
    EXPONENTIAL_HISTOGRAM: _exponential_problem,
    SUMMARY: _summary_problem,
}


def _metric(metric: Any, path: str, batch: PreparedMetrics) -> MetricIn | None:
    """The metric with its valid points; None when it has none (each bad point is recorded)."""
    kind = metric.WhichOneof("data")
    if kind is None:
        return None  # no data: nothing to keep or refuse
    data = getattr(metric, kind)
    points = data.data_points
    where = f"{path}.{_JSON_KIND[kind]}.dataPoints"
    problem = None
    if not metric.name:
        problem = "name is missing"
    elif kind in (SUM, HISTOGRAM, EXPONENTIAL_HISTOGRAM) and data.aggregation_temporality not in (
        _DELTA,
        _CUMULATIVE,
    ):
        problem = (
            f"aggregationTemporality must be DELTA (1) or CUMULATIVE (2), got {data.aggregation_temporality}"
        )
    if problem is not None:
        if points:
            batch.rejected += len(points)
            batch.note(len(points), f"{path}: {problem}")
        return None
    check = _counter_problem if kind == SUM and data.is_monotonic else _PROBLEMS[kind]
    kept = []
    for index, point in enumerate(points):
        bad = None if point.flags & NO_RECORDED_VALUE else check(point)
        if bad is None:
            kept.append(point)
        else:
            batch.rejected += 1
            batch.note(1, f"{where}[{index}]: {bad}")
    if not kept:
        return None
    return MetricIn(
        name=metric.name,
        description=metric.description,
        unit=metric.unit,
        kind=kind,
        delta=kind in (SUM, HISTOGRAM, EXPONENTIAL_HISTOGRAM) and data.aggregation_temporality == _DELTA,
        monotonic=kind == SUM and data.is_monotonic,
        points=kept,
        path=path,
    )


def prepare_metrics(body: bytes, *, well_formed: bool = False) -> PreparedMetrics:
    """Decode, validate and group one ExportMetricsServiceRequest.

    ``well_formed`` is accepted for the signal table's signature; metrics are always decoded with
    the official schema (they are few next to spans and are read field by field anyway).
    """
    try:
        request = ExportMetricsServiceRequest.FromString(body)
    except DecodeError as exc:
        raise RequestDecodeError(f"cannot decode ExportMetricsServiceRequest: {exc}") from exc
    batch = PreparedMetrics([], 0, 0)
    for r_index, resource_metrics in enumerate(request.resource_metrics):
        resource = list(resource_metrics.resource.attributes)
        for s_index, scope_metrics in enumerate(resource_metrics.scope_metrics):
            scope = scope_metrics.scope
            group = ScopeGroup(resource, scope.name, scope.version, list(scope.attributes))
            for m_index, metric in enumerate(scope_metrics.metrics):
                path = f"resourceMetrics[{r_index}].scopeMetrics[{s_index}].metrics[{m_index}]"
                kept = _metric(metric, path, batch)
                if kept is not None:
                    batch.accepted += len(kept.points)
                    group.metrics.append(kept)
            if group.metrics:
                batch.groups.append(group)
    return batch
