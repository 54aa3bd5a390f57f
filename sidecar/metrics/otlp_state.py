"""OTLP metrics re-exposed to Prometheus: the consumer of the metrics pipeline and its scrape source.

OTLP metrics are not stored. :meth:`OtlpMetrics.consume` applies a batch to in-memory series and
returns (the export is acknowledged once applied); ``/metrics`` reads them at scrape time. A
restart therefore starts empty, and a series no point has refreshed for ``metrics.staleness``
is dropped, as the Collector's ``prometheus`` exporter does with ``metric_expiration``.

What becomes of a point follows the OTel -> Prometheus compatibility specification and the
Collector's exporter (names in ``otlp_names.py``, values in ``otlp_series.py``):

- labels are the point's attributes, ``otel_scope_name``/``otel_scope_version`` (and the scope's
  attributes as ``otel_scope_<key>``), ``job`` (``service.namespace/service.name``) and
  ``instance`` (``service.instance.id``); the other resource attributes go to one ``target_info``
  gauge (value 1) per job and instance. An attribute whose label name is one of those (or ``le``,
  ``quantile`` or ``otel_metric_overflow``, on every type) is renamed ``exported_<name>``, as
  Prometheus renames clashing target labels; attributes that map to one label name have their
  values joined with ``;`` in the order of their keys; a label with an empty value is no label,
  as in Prometheus;
- cumulative points replace the series' value (an older point than the one held is ignored);
  delta points are added to it, starting from the first delta seen; a delta point that starts
  before the series' latest point (a resend, or two writers) is refused;
- a point flagged ``NO_RECORDED_VALUE`` ends its series at once.

One Prometheus name has one type. A point whose name is already exposed with another type (from
another scope or resource), or whose samples would clash with another family's (``x_count`` next
to a histogram ``x``), with the sidecar's own metrics or with the names Prometheus writes itself
(``up``, ``scrape_*``, ``otel_scope_info``), is dropped: the export's
``partial_success`` names it, ``sidecar_otlp_metric_points_dropped_total{reason}`` counts it, and
a warning is logged at most every 10 s per reason.

At most ``metrics.series_limit`` families exist at once: past it the points of a new name are
refused (``reason="family_limit"``), so a client sending unique metric names cannot grow memory
without bound; a family frees its place when its last series expires. Each family keeps at most
``metrics.series_limit`` series. Past it a new series folds into the
``otel_metric_overflow="true"`` series when that can be exact: a delta point is added to it, a gauge
sets it. A cumulative point cannot be folded (its increment is unknown without its own series), so
it is refused; both are counted in ``sidecar_metric_series_overflow_total{family}``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from typing import Any

from prometheus_client.metrics_core import Metric

from sidecar.metrics.families import OVERFLOW_KEY, OVERFLOW_LABEL, Family, Labels, Overflows
from sidecar.metrics.otlp_batch import (
    EXPONENTIAL_HISTOGRAM,
    HISTOGRAM,
    SUMMARY,
    MetricIn,
    PreparedMetrics,
    ScopeGroup,
)
from sidecar.metrics.otlp_names import COUNTER, GAUGE, label_name, label_value, metric_name, prometheus_type
from sidecar.metrics.otlp_series import (
    Classic,
    Exponential,
    Quantiles,
    Series,
    add_classic,
    add_exponential,
    exemplar,
    exponential,
    histogram_samples,
    number,
    quantiles,
    replace_classic,
    summary_samples,
)

log = logging.getLogger("sidecar.metrics")

NO_RECORDED_VALUE = 1
TARGET_INFO = "target_info"
DROPPED = "sidecar_otlp_metric_points_dropped"
RESERVED_PREFIX = "sidecar_"  # the sidecar's own metrics
# Names Prometheus itself writes for every scrape (``up`` and the ``scrape_*`` series) and the
# info metric the OTel compatibility rules give to scopes: an exposed sample with one of these
# names would clash with them in Prometheus.
PROMETHEUS_NAMES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "scrape_timeout_seconds",
        "scrape_sample_limit",
        "scrape_body_size_bytes",
        "otel_scope_info",
    }
)
DEFAULT_STALENESS_S = 300.0
WARN_INTERVAL_S = 10.0
_SWEEP_INTERVAL_S = 1.0
# Sample names a family of each type exposes besides its own name (the OpenMetrics suffixes).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "info": ("_info",),
}
# Label names the exposition reserves, whatever the metric's type: an attribute that would take
# one is renamed exported_<name> (``le`` on a gauge fails promtool and Prometheus' own checks,
# ``otel_metric_overflow`` would pass for the overflow series). ``__*`` cannot occur: label_name
# makes a leading ``_`` ``key_``.
RESERVED_LABELS = (
    *("job", "instance", "otel_scope_name", "otel_scope_version"),
    *("le", "quantile", OVERFLOW_LABEL),
)
_WHY = {
    "type_conflict": "a Prometheus name already exposed with another type (or whose samples clash)",
    "reserved_name": "a Prometheus name the sidecar or Prometheus itself owns",
    "family_limit": "new metric names past metrics.series_limit families",
    "invalid_name": "a metric name with no character a Prometheus name can use",
    "series_limit": "cumulative points of new series past metrics.series_limit",
    "overlapping_delta": "delta points that start before their series' latest point",
}


def exposed_names(name: str, typ: str) -> tuple[str, ...]:
    return (name, *(name + suffix for suffix in _SUFFIXES.get(typ, ())))


@dataclass(slots=True)
class _Family:
    name: str  # the family's name (a counter's without _total)
    type: str
    help: str
    series: Family[Series]
    names: tuple[str, ...]  # every sample name it exposes


@dataclass(slots=True)
class _Target:
    labels: dict[str, str] = field(default_factory=dict)
    seen: float = 0.0


class _Warnings:
    """At most one warning per reason every WARN_INTERVAL_S, with the points held back since."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def event(self, reason: str, points: int) -> None:
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < WARN_INTERVAL_S:
            self._held[reason] = self._held.get(reason, 0) + points
            return
        self._last[reason] = now
        points += self._held.pop(reason, 0)
        log.warning(
            "OTLP metric points dropped: %d with %s (reason %s; the export's partial_success names "
            "them; further ones are counted and reported at most every %g s)",
            points,
            _WHY[reason],
            reason,
            WARN_INTERVAL_S,
        )


def _labels(attributes: Iterable[Any], taken: Iterable[str]) -> dict[str, str]:
    """Attributes as labels: names sanitised, clashes joined with ``;`` by key, reserved names renamed."""
    found = sorted((label_name(kv.key), kv.key, label_value(kv.value)) for kv in attributes)
    out: dict[str, str] = {}
    for name, _, value in found:
        if name and value:
            out[name] = f"{out[name]};{value}" if name in out else value
    for name in sorted(set(taken).intersection(out)):
        value, exported = out.pop(name), "exported_" + name
        out[exported] = f"{out[exported]};{value}" if exported in out else value
    return out


class OtlpMetrics:
    """The metrics signal's consumer and ``/metrics`` source; thread-safe (applied off the loop)."""

    def __init__(
        self,
        series_limit: int,
        overflows: Overflows,
        staleness_s: float = DEFAULT_STALENESS_S,
        *,
        reserved: Callable[[], Iterable[Metric]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``reserved``: the registry's other families (read at the first batch), whose names OTLP
        metrics may not take."""
        self._limit = series_limit
        self._overflows = overflows
        self._staleness = staleness_s
        self._reserved_source = reserved
        self._reserved: set[str] | None = None if reserved is not None else set()
        self._clock = clock
        self._lock = threading.Lock()
        self._serial = asyncio.Lock()
        self._families: dict[str, _Family] = {}
        self._claims: dict[str, str] = {}  # sample name -> family name
        self._targets: Family[_Target] = Family(
            TARGET_INFO, "Target metadata", (), series_limit, overflows, _Target
        )
        self._dropped: dict[str, int] = {}
        self._warnings = _Warnings(clock)
        self._last_sweep = 0.0

    async def consume(self, batch: PreparedMetrics) -> None:
        """Apply the batch (in a worker thread: a large one must not stall the event loop)."""
        async with self._serial:
            await asyncio.to_thread(self.apply, batch)

    # --- applying ------------------------------------------------------------------------------

    def apply(self, batch: PreparedMetrics) -> None:
        if self._reserved is None:
            self._reserved = self._read_reserved()
        dropped: dict[str, int] = {}
        with self._lock:
            now = self._clock()
            self._expire(now)
            for group in batch.groups:
                base = self._group_labels(group, now)
                for metric in group.metrics:
                    self._apply_metric(metric, base, batch, dropped, now)
            for reason, points in dropped.items():
                self._dropped[reason] = self._dropped.get(reason, 0) + points
        for reason, points in dropped.items():
            self._warnings.event(reason, points)

    def _read_reserved(self) -> set[str]:
        assert self._reserved_source is not None
        names = {RESERVED_PREFIX}
        for metric in self._reserved_source():
            if metric.name not in (TARGET_INFO, DROPPED):
                names.update(exposed_names(metric.name, metric.type))
        return names

    def _is_reserved(self, name: str) -> bool:
        assert self._reserved is not None
        return (
            name.startswith(RESERVED_PREFIX)
            or name == TARGET_INFO
            or name in PROMETHEUS_NAMES
            or name in self._reserved
        )

    def _group_labels(self, group: ScopeGroup, now: float) -> dict[str, str]:
        """The labels every point of a (resource, scope) carries; refreshes its target_info."""
        resource = {kv.key: kv for kv in group.resource}
        service = resource.pop("service.name", None)
        namespace = resource.pop("service.namespace", None)
        instance_kv = resource.pop("service.instance.id", None)
        job = label_value(service.value) if service is not None else ""
        if job and namespace is not None and label_value(namespace.value):
            job = f"{label_value(namespace.value)}/{job}"
        instance = label_value(instance_kv.value) if instance_kv is not None else ""
        base = {"job": job, "instance": instance, "otel_scope_name": group.scope_name}
        base["otel_scope_version"] = group.scope_version
        scope = _labels(group.scope_attributes, ())
        base.update((f"otel_scope_{name}", value) for name, value in scope.items())
        base = {k: v for k, v in base.items() if v}
        if job or instance:
            with self._targets.lock:
                target = self._targets.series((job, instance))
                target.labels = _labels(resource.values(), RESERVED_LABELS)
                if job:
                    target.labels["job"] = job
                if instance:
                    target.labels["instance"] = instance
                target.seen = now
        return base

    def _family(self, metric: MetricIn, batch: PreparedMetrics, dropped: dict[str, int]) -> _Family | None:
        """The family a metric's points go to, made if new; None (points refused) on a conflict."""
        typ = prometheus_type(metric.kind, metric.monotonic)
        name = metric_name(metric.name, metric.unit, metric.kind, metric.monotonic)
        if typ == COUNTER:
            name = name.removesuffix("_total")
        found = self._families.get(name)
        if found is not None and found.type == typ:
            return found
        shown = f"{metric.name!r} is the Prometheus {name!r}"
        if not name.strip("_"):
            reason, why = "invalid_name", f"name {metric.name!r} has no character a Prometheus name can use"
        elif found is not None:
            reason, why = "type_conflict", f"{shown}, already a {found.type} (from another scope or resource)"
        else:
            names = exposed_names(name, typ)
            owned = [n for n in names if self._is_reserved(n)]
            if owned:
                who = (
                    "Prometheus itself writes"
                    if owned[0] in PROMETHEUS_NAMES
                    else "the sidecar exposes itself"
                )
                reason, why = "reserved_name", f"{shown}, which {who} ({owned[0]!r})"
            elif any(self._claims.get(n, name) != name for n in names):
                reason, why = "type_conflict", f"{shown}, whose samples clash with another family's"
            elif len(self._families) >= self._limit:
                reason = "family_limit"
                why = f"{shown}, a new name past the family limit ({self._limit}, metrics.series_limit)"
            else:
                # promtool wants a help text; the Collector leaves it empty when there is no description.
                documentation = metric.description or f"OTLP metric {metric.name}"
                series = Family(name, documentation, (), self._limit, self._overflows, Series)
                found = self._families[name] = _Family(name, typ, documentation, series, names)
                self._claims.update(dict.fromkeys(names, name))
                return found
        points = len(metric.points)
        batch.reject(points, f"{metric.path}: {why}; dropped")
        dropped[reason] = dropped.get(reason, 0) + points
        return None

    def _apply_metric(
        self,
        metric: MetricIn,
        base: dict[str, str],
        batch: PreparedMetrics,
        dropped: dict[str, int],
        now: float,
    ) -> None:
        family = self._family(metric, batch, dropped)
        if family is None:
            return
        taken = (*base, *RESERVED_LABELS)
        series = family.series
        cumulative = not metric.delta and family.type != GAUGE
        ended: list[Labels] = []
        refused: dict[str, int] = {}
        with series.lock:
            for point in metric.points:
                labels = {**base, **_labels(point.attributes, taken)}
                key = tuple(chain.from_iterable(sorted(labels.items())))
                if point.flags & NO_RECORDED_VALUE:
                    ended.append(key)
                    continue
                folded = key not in series and series.full()
                state = series.series(key)
                if folded and cumulative:
                    refused["series_limit"] = refused.get("series_limit", 0) + 1
                    continue
                state.seen = now
                if not self._update(state, metric, family.type, point, folded):
                    refused["overlapping_delta"] = refused.get("overlapping_delta", 0) + 1
        for key in ended:
            series.remove(key)
        for reason, points in refused.items():
            if reason == "series_limit":
                why = f"series limit ({self._limit}, metrics.series_limit) reached for {family.name!r}"
            else:
                why = "a delta point starts before its series' latest point (resent?)"
            batch.reject(points, f"{metric.path}: {why}; {points} point(s) dropped")
            dropped[reason] = dropped.get(reason, 0) + points

    @staticmethod
    def _update(state: Series, metric: MetricIn, typ: str, point: Any, folded: bool) -> bool:
        """Apply one point; False when a delta point overlaps what the series already holds."""
        held = state.value
        when = point.time_unix_nano
        if metric.delta:
            start = point.start_time_unix_nano
            if held is not None and not folded and state.time and start and start < state.time:
                return False
        elif when and when < state.time and not folded:
            return True  # older than the point held: ignored, as the Collector does
        kind = metric.kind
        if kind == HISTOGRAM:
            classic = held if isinstance(held, Classic) else None
            if metric.delta:
                state.value = (
                    add_classic(classic, point) if classic is not None else replace_classic(None, point)
                )
            else:
                state.value = replace_classic(classic, point)
        elif kind == EXPONENTIAL_HISTOGRAM:
            if metric.delta and isinstance(held, Exponential):
                state.value = add_exponential(held, point)
            else:
                state.value = exponential(point)
        elif kind == SUMMARY:
            state.value = quantiles(point)
        else:
            value = number(point)
            state.value = value + held if metric.delta and isinstance(held, float) else value
            if typ == COUNTER and point.exemplars:
                state.exemplar = exemplar(point.exemplars[-1])
        state.time = max(state.time, when)
        return True

    # --- expiry and scrapes --------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        """Drop series not refreshed for the staleness period, and families left empty. Under the lock."""
        if now - self._last_sweep < _SWEEP_INTERVAL_S:
            return
        self._last_sweep = now
        cutoff = now - self._staleness
        for name, family in list(self._families.items()):
            family.series.remove_if(lambda state: state.seen < cutoff)
            if not len(family.series):
                del self._families[name]
                for exposed in family.names:
                    self._claims.pop(exposed, None)
        self._targets.remove_if(lambda target: target.seen < cutoff)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._expire(self._clock())
            families = list(self._families.values())
            dropped = dict(self._dropped)
        targets = self._targets.read(_target_labels)
        if targets:
            info = Metric(TARGET_INFO, "Target metadata", "gauge")
            for labels in targets:
                info.add_sample(TARGET_INFO, labels, 1)
            yield info
        for family in families:
            metric = Metric(family.name, family.help, family.type)
            family.series.read(partial(_samples, metric, family.type))
            if metric.samples:
                yield metric
        counter = Metric(DROPPED, "OTLP metric data points dropped, by reason", "counter")
        for reason, points in sorted(dropped.items()):
            counter.add_sample(DROPPED + "_total", {"reason": reason}, points)
        yield counter


def _target_labels(key: Labels, target: _Target) -> dict[str, str]:
    return {OVERFLOW_LABEL: "true"} if key == OVERFLOW_KEY else dict(target.labels)


def _samples(metric: Metric, typ: str, key: Labels, state: Series) -> None:
    if state.value is None:
        return
    labels = {OVERFLOW_LABEL: "true"} if key == OVERFLOW_KEY else dict(zip(key[::2], key[1::2], strict=True))
    value = state.value
    if isinstance(value, Classic | Exponential):
        histogram_samples(metric, labels, value)
    elif isinstance(value, Quantiles):
        summary_samples(metric, labels, value)
    elif typ == COUNTER:
        metric.add_sample(metric.name + "_total", labels, value, None, state.exemplar)
    else:
        metric.add_sample(metric.name, labels, value)
