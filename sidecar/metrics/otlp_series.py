"""One OTLP series' state between scrapes, and its Prometheus samples.

A series holds its latest cumulative value: a number (counter, gauge), a :class:`Classic`
histogram, an :class:`Exponential` one, or a :class:`Quantiles` summary. Delta points are added to
it (accumulated into a cumulative series, as the specification asks of a pull exporter).

Exponential histograms are exposed as classic buckets: ``prometheus_client`` cannot encode native
histograms (they exist only in Prometheus' protobuf exposition), so each exponential bucket
becomes an ``le`` of its own. To keep that to a classic histogram's size, a histogram is first
downscaled to at most :data:`MAX_SCALE` (bounds 2^(1/8) apart, about 9 %, client_golang's
default factor for native histograms), then further until the populated buckets of each sign
span at most :data:`MAX_BUCKETS` indexes: a narrow distribution keeps fine buckets, a wide one
gets coarser ones (each step halves the resolution). Downscaling merges whole buckets, so every
count stays in its exact bucket; nothing is interpolated. A positive bucket with index i holds
(base^i, base^(i+1)] and is the ``le`` base^(i+1); the zero bucket is the ``le``
``zero_threshold``; a negative bucket i holds [-base^(i+1), -base^i) and is the ``le`` -base^i (a
value exactly on a negative boundary is then counted one bucket low). Every index between the
lowest and the highest populated one gets its ``le``, so a bucket filled later was already
exposed; when the range grows past MAX_BUCKETS the scale drops and the ``le`` set changes once.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from sidecar.metrics.otlp_names import label_name, label_value

MAX_SCALE = 3
MAX_BUCKETS = 40  # indexes per sign: about a classic histogram's number of buckets
MIN_SCALE = -10
MAX_EXEMPLAR_CHARS = 128  # OpenMetrics: label names and values of an exemplar together
_KEEP_EXEMPLARS = 16  # per exponential series, mapped to buckets at scrape time


@dataclass(slots=True)
class Classic:
    """An explicit-bounds histogram: counts per bucket (the last is +Inf), not cumulated."""

    bounds: tuple[float, ...]
    counts: list[int]
    count: int
    total: float | None  # absent when the points carry no sum
    exemplars: dict[int, Exemplar] = field(default_factory=dict)  # by bucket index


@dataclass(slots=True)
class Exponential:
    scale: int
    zero_threshold: float
    zero_count: int
    positive: dict[int, int]  # bucket index -> count, populated buckets only
    negative: dict[int, int]
    count: int
    total: float | None
    exemplars: list[Exemplar] = field(default_factory=list)


@dataclass(slots=True)
class Quantiles:
    count: int
    total: float
    quantiles: list[tuple[float, float]]


@dataclass(slots=True)
class Series:
    seen: float = 0.0  # clock time of the latest point, for expiry
    time: int = 0  # time_unix_nano of the latest point applied
    value: Any = None  # float, Classic, Exponential or Quantiles; None until a point is applied
    exemplar: Exemplar | None = None  # a counter's latest


def number(point: Any) -> float:
    return point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)


def exemplar(source: Any) -> Exemplar:
    """An OTLP exemplar as Prometheus'; filtered attributes are added while they fit in 128 characters."""
    labels: dict[str, str] = {}
    if source.trace_id:
        labels["trace_id"] = source.trace_id.hex()
    if source.span_id:
        labels["span_id"] = source.span_id.hex()
    used = sum(len(k) + len(v) for k, v in labels.items())
    for kv in source.filtered_attributes:
        name, value = label_name(kv.key), label_value(kv.value)
        if name and name not in labels and used + len(name) + len(value) <= MAX_EXEMPLAR_CHARS:
            labels[name] = value
            used += len(name) + len(value)
    when = source.time_unix_nano / 1e9 if source.time_unix_nano else None
    return Exemplar(labels, number(source), when)


def _largest_per_bucket(exemplars: Sequence[Exemplar], bounds: Sequence[float]) -> dict[int, Exemplar]:
    """The specification's pull rule: one exemplar per bucket, the largest that falls in it."""
    out: dict[int, Exemplar] = {}
    for found in exemplars:
        index = bisect.bisect_left(bounds, found.value)
        held = out.get(index)
        if held is None or found.value > held.value:
            out[index] = found
    return out


# --- explicit-bounds histograms ---------------------------------------------------------------


def classic(point: Any) -> Classic:
    bounds = tuple(point.explicit_bounds) if point.bucket_counts else ()
    counts = list(point.bucket_counts) or [point.count]
    found = [exemplar(e) for e in point.exemplars]
    total = point.sum if point.HasField("sum") else None
    return Classic(bounds, counts, point.count, total, _largest_per_bucket(found, bounds))


def add_classic(held: Classic, point: Any) -> Classic:
    """A delta point added to the accumulated histogram; other bounds start it again."""
    new = classic(point)
    if new.bounds != held.bounds:
        return new
    held.counts = [a + b for a, b in zip(held.counts, new.counts, strict=True)]
    held.count += new.count
    held.total = None if held.total is None or new.total is None else held.total + new.total
    held.exemplars.update(new.exemplars)
    return held


def replace_classic(held: Classic | None, point: Any) -> Classic:
    """A cumulative point; the held exemplars of buckets this point has none for are kept."""
    new = classic(point)
    if held is not None and held.bounds == new.bounds:
        new.exemplars = {**held.exemplars, **new.exemplars}
    return new


# --- exponential histograms -------------------------------------------------------------------


def _downscale(buckets: dict[int, int], by: int) -> dict[int, int]:
    if by <= 0 or not buckets:
        return buckets
    out: dict[int, int] = {}
    for index, count in buckets.items():
        merged = index >> by  # floor division by 2^by, also for negative indexes
        out[merged] = out.get(merged, 0) + count
    return out


def _span(buckets: dict[int, int], by: int) -> int:
    """How many indexes the populated buckets span once downscaled by ``by``."""
    return (max(buckets) >> by) - (min(buckets) >> by) + 1 if buckets else 0


def _fit(held: Exponential, scale: int) -> None:
    """Downscale to ``scale`` (or lower), then until both sides span at most MAX_BUCKETS."""
    scale = max(MIN_SCALE, min(scale, held.scale))
    while scale > MIN_SCALE and (
        max(_span(held.positive, held.scale - scale), _span(held.negative, held.scale - scale)) > MAX_BUCKETS
    ):
        scale -= 1
    by = held.scale - scale
    held.positive = _downscale(held.positive, by)
    held.negative = _downscale(held.negative, by)
    held.scale = scale


def _populated(offset: int, counts: Sequence[int]) -> dict[int, int]:
    return {offset + i: c for i, c in enumerate(counts) if c}


def exponential(point: Any) -> Exponential:
    held = Exponential(
        scale=point.scale,
        zero_threshold=point.zero_threshold,
        zero_count=point.zero_count,
        positive=_populated(point.positive.offset, point.positive.bucket_counts),
        negative=_populated(point.negative.offset, point.negative.bucket_counts),
        count=point.count,
        total=point.sum if point.HasField("sum") else None,
        exemplars=[exemplar(e) for e in point.exemplars][-_KEEP_EXEMPLARS:],
    )
    _fit(held, MAX_SCALE)
    return held


def add_exponential(held: Exponential, point: Any) -> Exponential:
    """A delta point merged into the accumulated histogram, both at the lower of the two scales."""
    new = exponential(point)
    scale = min(held.scale, new.scale)
    _fit(held, scale)
    _fit(new, scale)
    for side, more in ((held.positive, new.positive), (held.negative, new.negative)):
        for index, count in more.items():
            side[index] = side.get(index, 0) + count
    held.zero_count += new.zero_count
    held.zero_threshold = max(held.zero_threshold, new.zero_threshold)
    held.count += new.count
    held.total = None if held.total is None or new.total is None else held.total + new.total
    held.exemplars = (held.exemplars + new.exemplars)[-_KEEP_EXEMPLARS:]
    _fit(held, held.scale)  # the merged sides may span more than MAX_BUCKETS
    return held


def _power(index: int, scale: int) -> float:
    """base^index with base = 2^(2^-scale); inf past the float range."""
    try:
        if scale <= 0:
            return math.ldexp(1.0, index << -scale)
        return 2.0 ** (index / (1 << scale))
    except OverflowError:
        return math.inf


def exponential_buckets(held: Exponential) -> list[tuple[float, int]]:
    """(le, count in that bucket) in increasing ``le``, the +Inf bucket left out."""
    out: list[tuple[float, int]] = []
    if held.negative:
        low, high = min(held.negative), max(held.negative)
        for index in range(high, low - 1, -1):
            out.append((-_power(index, held.scale), held.negative.get(index, 0)))
    if held.zero_count or held.negative:
        out.append((held.zero_threshold, held.zero_count))
    if held.positive:
        low, high = min(held.positive), max(held.positive)
        for index in range(low, high + 1):
            out.append((_power(index + 1, held.scale), held.positive.get(index, 0)))
    finite = sorted((le, c) for le, c in out if math.isfinite(le))
    merged: list[tuple[float, int]] = []
    for le, count in finite:  # a bound that under- or overflowed merges with its neighbour
        if merged and merged[-1][0] == le:
            merged[-1] = (le, merged[-1][1] + count)
        else:
            merged.append((le, count))
    return merged


# --- samples ----------------------------------------------------------------------------------


def histogram_samples(metric: Metric, labels: dict[str, str], held: Classic | Exponential) -> None:
    if isinstance(held, Classic):
        bounds = list(held.bounds)
        counts = held.counts[: len(bounds)]
        exemplars = held.exemplars
    else:
        pairs = exponential_buckets(held)
        bounds = [le for le, _ in pairs]
        counts = [c for _, c in pairs]
        exemplars = _largest_per_bucket(held.exemplars, bounds)
    name = metric.name
    running = 0
    for index, (le, count) in enumerate(zip(bounds, counts, strict=True)):
        running += count
        sample_labels = {**labels, "le": floatToGoString(le)}
        metric.add_sample(name + "_bucket", sample_labels, running, None, exemplars.get(index))
    inf_labels = {**labels, "le": "+Inf"}
    metric.add_sample(name + "_bucket", inf_labels, held.count, None, exemplars.get(len(bounds)))
    # The specification writes _sum only when it is a counter (no negative bucket, not negative);
    # OpenMetrics wants _count exactly with _sum. Without them the +Inf bucket still holds the count.
    total = held.total
    if total is not None and total >= 0 and not (bounds and bounds[0] < 0):  # NaN fails >= 0
        metric.add_sample(name + "_count", labels, held.count)
        metric.add_sample(name + "_sum", labels, total)


def summary_samples(metric: Metric, labels: dict[str, str], held: Quantiles) -> None:
    name = metric.name
    for quantile, value in sorted(held.quantiles):
        metric.add_sample(name, {**labels, "quantile": floatToGoString(quantile)}, value)
    if held.total >= 0:  # a negative or NaN _sum is no counter: OpenMetrics refuses it
        metric.add_sample(name + "_sum", labels, held.total)
    metric.add_sample(name + "_count", labels, held.count)


def quantiles(point: Any) -> Quantiles:
    return Quantiles(point.count, point.sum, [(q.quantile, q.value) for q in point.quantile_values])
