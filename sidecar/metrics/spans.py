"""Span metrics: calls and latency per service, span name, kind and status, from a tap on traces.

Named as the Collector's spanmetrics connector names them once exported to Prometheus
(``traces_span_metrics_calls_total``, ``traces_span_metrics_duration_seconds``, labels
``service_name``, ``span_name``, ``span_kind``, ``status_code``), so Jaeger's Monitor tab and
Grafana dashboards built for the connector work unchanged; optionally also Tempo's
metrics-generator family (``traces_spanmetrics_calls_total``, ``traces_spanmetrics_latency``, label
``service``), which Grafana's service graph table reads.

Each batch is aggregated at once from the columns ingest built anyway (``ScopeColumns``): series
are found with one dict pass, bucket counts and sums with numpy, and each family is touched once
per distinct series in the batch. Span attributes are read only for configured dimensions. The
latest span of each bucket a batch touches becomes that bucket's exemplar (``trace_id``,
``span_id``), shown in OpenMetrics output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import count, repeat
from operator import methodcaller
from typing import Any

import numpy as np
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

from sidecar.config.model import SpanMetricsConfig, label_name
from sidecar.metrics.families import CounterFamily, HistogramFamily, Labels, Overflows
from sidecar.otlp.anyvalue import body_text
from sidecar.otlp.shadow import ShadowStatus
from sidecar.storage.prepared import PreparedTraces, ScopeColumns, SpanSeries

KIND_NAMES = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
)
STATUS_NAMES = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")
TEMPO_BUCKETS = [0.002 * 2**n for n in range(14)]  # Tempo metrics-generator's default, seconds
_DECODED_CACHE = 10_000


def status_codes(statuses: list[bytes]) -> Sequence[int]:
    """Status code per span (0 unset, 1 ok, 2 error), each distinct Status decoded once."""
    if not any(statuses):
        return [0] * len(statuses)
    table = {raw: ShadowStatus.FromString(raw).code if raw else 0 for raw in set(statuses)}
    table = {raw: code if 0 <= code <= 2 else 0 for raw, code in table.items()}
    return list(map(table.__getitem__, statuses))


def _prefix(key: str) -> bytes:
    raw = key.encode()
    return b"\x0a" + bytes((len(raw),)) + raw + b"\x12" if len(raw) < 0x80 else b"\xff"


def cells(
    groups: np.ndarray, values: np.ndarray, bounds: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group bucket counts (n_groups x buckets+1), per group sums, and for each touched
    (group, bucket) cell the index of its last value: (cell ids, last indexes) stacked."""
    width = bounds.size + 1
    cell = groups * width + np.searchsorted(bounds, values, side="left")
    counts = np.bincount(cell, minlength=n_groups * width).reshape(n_groups, width)
    sums = np.bincount(groups, weights=values, minlength=n_groups)
    touched, first_from_end = np.unique(cell[::-1], return_index=True)
    last = np.stack((touched, cell.size - 1 - first_from_end))
    return counts, sums, last


class SpanMetrics:
    """The tap's consumer and the families it fills; ``collect`` is the registry's source."""

    def __init__(self, config: SpanMetricsConfig, limit: int, overflows: Overflows) -> None:
        self._dims = config.dimension_list()
        dim_labels = [label_name(name) for name, _ in self._dims]
        self._has_dim = methodcaller("startswith", tuple(_prefix(name) for name, _ in self._dims))
        self._dim_index = {name: i for i, (name, _) in enumerate(self._dims)}
        self._resource_dims: dict[bytes, tuple[str, ...]] = {}
        self._decoded: dict[bytes, tuple[str, str]] = {}
        labels = ("service_name", "span_name", "span_kind", "status_code", *dim_labels)
        seconds = config.bucket_list()
        self.calls = CounterFamily(
            "traces_span_metrics_calls", "Spans per service, name, kind and status", labels, limit, overflows
        )
        if config.unit_milliseconds:
            self._scale = 1e-6
            name, bounds = "traces_span_metrics_duration_milliseconds", [b * 1000 for b in seconds]
        else:
            self._scale = 1e-9
            name, bounds = "traces_span_metrics_duration_seconds", seconds
        self.duration = HistogramFamily(name, "Span durations", labels, bounds, limit, overflows)
        self.tempo: tuple[CounterFamily, HistogramFamily] | None = None
        if config.tempo_compatible:
            tempo_labels = ("service", *labels[1:])
            self.tempo = (
                CounterFamily(
                    "traces_spanmetrics_calls",
                    "Spans (Tempo's metrics-generator names)",
                    tempo_labels,
                    limit,
                    overflows,
                ),
                HistogramFamily(
                    "traces_spanmetrics_latency",
                    "Span durations in seconds (Tempo's metrics-generator names)",
                    tempo_labels,
                    TEMPO_BUCKETS,
                    limit,
                    overflows,
                ),
            )

    async def consume(self, batch: PreparedTraces) -> None:
        self.add(batch.columns, batch.series)

    def collect(self) -> Iterator[Metric]:
        yield from self.calls.collect()
        yield from self.duration.collect()
        if self.tempo is not None:
            for family in self.tempo:
                yield from family.collect()

    def add(self, columns: Sequence[ScopeColumns], series: SpanSeries | None = None) -> None:
        """One batch: group spans into series, then add each series' counts once. Without extra
        dimensions the compiled core grouped them already (``series``); with them, spans are
        grouped here, their attributes read."""
        starts: list[int] = []
        trace_ids: list[bytes] = []
        span_ids: list[bytes] = []
        for col in columns:
            starts.extend(col.starts)
            trace_ids.extend(col.trace_ids)
            span_ids.extend(col.span_ids)
        if not starts:
            return
        if series is not None and not self._dims:
            keys: Sequence[tuple[Any, ...]] = series.keys
            groups = np.frombuffer(series.of, dtype=np.int32).astype(np.intp)
            durations = np.frombuffer(series.durations, dtype=np.uint64)
        else:
            keys, groups, durations = self._group(columns)
        ns = durations.astype(np.float64)
        labels = [self._labels(key) for key in keys]
        calls = np.bincount(groups, minlength=len(labels)).tolist()
        self.calls.add_many(zip(labels, calls, strict=True))
        exemplar_of = partial(_exemplar, trace_ids, span_ids, starts, durations)
        self._observe(self.duration, labels, groups, ns * self._scale, exemplar_of)
        if self.tempo is not None:
            self.tempo[0].add_many(zip(labels, calls, strict=True))
            self._observe(self.tempo[1], labels, groups, ns * 1e-9, exemplar_of)

    def _group(self, columns: Sequence[ScopeColumns]) -> tuple[list[tuple[Any, ...]], np.ndarray, np.ndarray]:
        """(distinct series keys, each span's series, each span's duration) with the dimensions."""
        keys: list[tuple[Any, ...]] = []
        durations: list[int] = []
        for col in columns:
            if not col.names:
                continue
            service = col.resource.service
            codes = status_codes(col.statuses)
            if self._dims:  # the dimension values ride as one tuple, the key's fifth item
                dims = self._dimension_values(col)
                keys.extend(zip(repeat(service), col.names, col.kinds, codes, dims, strict=False))
            else:
                keys.extend(zip(repeat(service), col.names, col.kinds, codes, strict=False))
            durations.extend(col.durations)
        index = dict(zip(dict.fromkeys(keys), count(), strict=False))
        groups = np.fromiter(map(index.__getitem__, keys), dtype=np.intp, count=len(keys))
        return list(index), groups, np.array(durations, dtype=np.uint64)

    @staticmethod
    def _observe(
        family: HistogramFamily,
        labels: list[Labels],
        groups: np.ndarray,
        values: np.ndarray,
        exemplar_of: Callable[[int, float], Exemplar],
    ) -> None:
        counts, sums, last = cells(groups, values, family.bounds, len(labels))
        width = family.bounds.size + 1
        exemplars: list[dict[int, Exemplar]] = [{} for _ in labels]
        for cell, at in zip(*last.tolist(), strict=True):
            exemplars[cell // width][cell % width] = exemplar_of(at, float(values[at]))
        for i, series in enumerate(labels):
            family.add_counts(series, counts[i], float(sums[i]), exemplars[i])

    @staticmethod
    def _labels(key: tuple[Any, ...]) -> Labels:
        service, name, kind, code, *dims = key
        kind_name = KIND_NAMES[kind] if 0 <= kind < len(KIND_NAMES) else KIND_NAMES[0]
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        return (service, text, kind_name, STATUS_NAMES[code], *(dims[0] if dims else ()))

    # -- dimensions: span attribute, else resource attribute, else default --------------------
    def _dimension_values(self, col: ScopeColumns) -> list[tuple[str, ...]]:
        base = self._resource_dims.get(col.resource.ref)
        if base is None:
            base = self._resource_dims[col.resource.ref] = self._lookup(
                col.resource.attributes, self._defaults()
            )
            if len(self._resource_dims) > _DECODED_CACHE:
                self._resource_dims.clear()
        hits = list(map(list, map(partial(filter, self._has_dim), col.span_attributes())))
        if not any(hits):
            return [base] * len(hits)
        return [self._lookup(found, base) if found else base for found in hits]

    def _defaults(self) -> tuple[str, ...]:
        return tuple(default or "" for _, default in self._dims)

    def _lookup(self, attributes: Sequence[bytes], base: tuple[str, ...]) -> tuple[str, ...]:
        """``base`` with the dimensions these encoded attributes carry put in."""
        values = list(base)
        decoded = self._decoded
        if len(decoded) > _DECODED_CACHE:
            decoded.clear()
        for kv in filter(self._has_dim, attributes):
            pair = decoded.get(kv)
            if pair is None:
                message = KeyValue.FromString(kv)
                pair = decoded[kv] = (message.key, body_text(message.value))
            values[self._dim_index[pair[0]]] = pair[1]
        return tuple(values)


def _exemplar(
    trace_ids: list[bytes],
    span_ids: list[bytes],
    starts: list[int],
    durations: np.ndarray,
    at: int,
    value: float,
) -> Exemplar:
    labels = {"trace_id": trace_ids[at].hex(), "span_id": span_ids[at].hex()}
    return Exemplar(labels, value, (starts[at] + int(durations[at])) / 1e9)
