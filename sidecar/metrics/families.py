"""Derived metric families: plain structures updated once per batch, read out at scrape time.

This is prometheus_client's custom-Collector pattern: ingest never calls a labelled ``inc()`` per
span; a tap adds a whole batch's aggregates to these tables (a dict lookup per distinct series in
the batch), and :meth:`Family.collect` turns them into metric families when Prometheus scrapes.

Every family has a series limit. Past it, new series fold into one series labelled
``otel_metric_overflow="true"`` (the OpenTelemetry SDK's and the Collector's cardinality-limit
convention), and ``sidecar_metric_series_overflow_total{family}`` counts the observations folded,
so a client sending a million span names costs one series, not a million.

Tables are written by one thread at a time per family (the tap's task) and read by the scrape; a
scrape copies what it reads under the family's lock.

A scrape of an unchanged family costs nothing: every write goes through :meth:`Family.series`,
which counts a version, and ``collect`` hands out the same :class:`Readout` until the version
moves; ``sidecar.metrics.registry.encode`` keeps each format's bytes on it. A readout holds a
compact copy of the series (label tuples and numbers), and builds the samples (label dicts) only
while an encoder reads them, so keeping one costs no memory per sample.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Generic, TypeVar

import numpy as np
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

OVERFLOW_LABEL = "otel_metric_overflow"
OVERFLOW_KEY: tuple[str, ...] = ("\x00overflow",)  # never a real label tuple (labels are text)

S = TypeVar("S")
T = TypeVar("T")
Labels = tuple[str, ...]
# A Sample from a (name, labels, value, timestamp, exemplar, native) tuple: Sample._make, in C.
_sample = partial(tuple.__new__, Sample)


class Overflows:
    """``sidecar_metric_series_overflow_total{family}``: observations folded per family."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, float] = {}
        self._before_read: list[Callable[[], object]] = []

    def before_read(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` at each scrape just before the counts are read: for a source that folds
        series at scrape time (the service graph's expiry), so the count read covers what its
        families show in the same scrape rather than lagging one scrape behind."""
        self._before_read.append(hook)

    def add(self, family: str, amount: float = 1) -> None:
        with self._lock:
            self._counts[family] = self._counts.get(family, 0) + amount

    def value(self, family: str) -> float:
        with self._lock:
            return self._counts.get(family, 0)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(
            "sidecar_metric_series_overflow",
            "Observations folded into the otel_metric_overflow series because a family hit its series limit",
            "counter",
        )
        for hook in self._before_read:
            hook()
        with self._lock:
            counts = dict(self._counts)
        for family, value in sorted(counts.items()):
            metric.add_sample("sidecar_metric_series_overflow_total", {"family": family}, value)
        yield metric


class Readout(Metric):
    """A family's metric as of one version: ``samples`` are built from ``build`` (a closure over
    the copied series) each time they are read; ``encoded`` holds each content type's bytes."""

    MAX_ENCODINGS = 4  # content types kept (a client varying Accept cannot grow it)

    def __init__(self, name: str, documentation: str, typ: str, build: Callable[[], list[Sample]]) -> None:
        self._build = build
        super().__init__(name, documentation, typ)
        self.encoded: dict[str, bytes] = {}

    @property
    def samples(self) -> list[Sample]:
        return self._build()

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:  # Metric.__init__ sets [], which is what build gives before any series exists
            raise AttributeError("a Readout's samples come from its family")

    def keep(self, content_type: str, body: bytes) -> None:
        if len(self.encoded) >= self.MAX_ENCODINGS:
            self.encoded.clear()
        self.encoded[content_type] = body


class Family(Generic[S]):
    """One metric family's series by label values, at most ``limit`` of them (0: no limit)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        limit: int,
        overflows: Overflows,
        new: Callable[[], S],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.limit = limit
        self._overflows = overflows
        self._new = new
        self._series: dict[Labels, S] = {}
        self.lock = threading.Lock()
        self._version = 0  # moves with every write (series() is how every write finds its state)
        self._readout: tuple[int, Readout] | None = None

    def series(self, labels: Labels, observations: float = 1) -> S:
        """The state of a series (created if new); the overflow series' when the family is full.
        Call under ``self.lock``. ``observations`` is what gets counted as folded on overflow."""
        self._version += 1
        state = self._series.get(labels)
        if state is not None:
            return state
        if self.limit and len(self._series) >= self.limit + (OVERFLOW_KEY in self._series):
            self._overflows.add(self.name, observations)
            labels = OVERFLOW_KEY
            state = self._series.get(labels)
            if state is not None:
                return state
        state = self._series[labels] = self._new()
        return state

    def remove(self, labels: Labels) -> None:
        with self.lock:
            self._version += 1
            self._series.pop(labels, None)

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, labels: object) -> bool:
        return labels in self._series

    def full(self) -> bool:
        """A new series would fold into the overflow series. Call under ``self.lock``."""
        return bool(self.limit) and len(self._series) >= self.limit + (OVERFLOW_KEY in self._series)

    def remove_if(self, over: Callable[[S], bool]) -> int:
        """Drop every series whose state ``over`` says has ended (expiry); how many were dropped."""
        with self.lock:
            ended = [labels for labels, state in self._series.items() if over(state)]
            for labels in ended:
                del self._series[labels]
            self._version += bool(ended)
        return len(ended)

    def read(self, view: Callable[[Labels, S], T]) -> list[T]:
        """``view(labels, state)`` of every series, under the lock (``OVERFLOW_KEY`` for the
        overflow series): for families whose series do not share one tuple of label names."""
        with self.lock:
            return [view(labels, state) for labels, state in self._series.items()]

    def snapshot(self, copy: Callable[[S], S]) -> list[tuple[dict[str, str], S]]:
        """(label dict, copied state) of every series, the overflow one labelled as such."""
        with self.lock:
            items = [(labels, copy(state)) for labels, state in self._series.items()]
        out = []
        for labels, state in items:
            if labels == OVERFLOW_KEY:
                out.append(({OVERFLOW_LABEL: "true"}, state))
            else:
                out.append((dict(zip(self.labelnames, labels, strict=True)), state))
        return out

    def label_dicts(self, labels: list[Labels]) -> list[dict[str, str]]:
        """The label dict of each label tuple, the overflow series' labelled as such."""
        dicts = list(map(dict, map(zip, repeat(self.labelnames), labels)))
        if OVERFLOW_KEY in labels:
            for i, found in enumerate(labels):
                if found == OVERFLOW_KEY:
                    dicts[i] = {OVERFLOW_LABEL: "true"}
        return dicts

    def readout(
        self, typ: str, copy: Callable[[list[S]], T], build: Callable[[list[Labels], T], list[Sample]]
    ) -> Readout:
        """The family's metric: the one handed out before while no write came since; else a new
        one over ``copy(states)`` (taken under the lock), whose samples ``build`` makes."""
        with self.lock:
            cached = self._readout
            if cached is not None and cached[0] == self._version:
                return cached[1]
            labels = list(self._series)
            copied = copy(list(self._series.values()))
            metric = Readout(self.name, self.documentation, typ, partial(build, labels, copied))
            self._readout = (self._version, metric)
        return metric


@dataclass(slots=True)
class Count:
    value: float = 0.0


class CounterFamily(Family[Count]):
    """A counter per series; exposed as ``<name>_total``."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], limit: int, overflows: Overflows
    ) -> None:
        super().__init__(name, documentation, labelnames, limit, overflows, Count)

    def add(self, labels: Labels, amount: float) -> None:
        with self.lock:
            self.series(labels, amount).value += amount

    def add_many(self, amounts: Iterable[tuple[Labels, float]]) -> None:
        with self.lock:
            for labels, amount in amounts:
                self.series(labels, amount).value += amount

    def collect(self) -> Iterator[Metric]:
        yield self.readout("counter", _values, partial(_value_samples, self, self.name + "_total"))


class GaugeFamily(Family[Count]):
    """A value per series, set (not added)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], limit: int, overflows: Overflows
    ) -> None:
        super().__init__(name, documentation, labelnames, limit, overflows, Count)

    def set(self, labels: Labels, value: float) -> None:
        with self.lock:
            self.series(labels).value = value

    def collect(self) -> Iterator[Metric]:
        yield self.readout("gauge", _values, partial(_value_samples, self, self.name))


def _values(states: list[Count]) -> list[float]:
    return [state.value for state in states]


def _value_samples(
    family: Family[Count], name: str, labels: list[Labels], values: list[float]
) -> list[Sample]:
    dicts = family.label_dicts(labels)
    return list(map(_sample, zip(repeat(name), dicts, values, repeat(None), repeat(None), repeat(None))))


@dataclass(slots=True)
class Buckets:
    """A classic histogram's state: per bucket counts (the last is +Inf), sum, and at most one
    exemplar per bucket, the latest (as the Collector keeps a bounded few per data point)."""

    counts: np.ndarray
    total: float = 0.0
    exemplars: dict[int, Exemplar] = field(default_factory=dict)

    def copy(self) -> Buckets:
        return Buckets(self.counts.copy(), self.total, dict(self.exemplars))


class HistogramFamily(Family[Buckets]):
    """A classic histogram per series with fixed upper bounds (``le``), in the family's unit."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        bounds: Sequence[float],
        limit: int,
        overflows: Overflows,
    ) -> None:
        self.bounds = np.asarray(sorted(set(bounds)), dtype=np.float64)
        size = self.bounds.size + 1
        super().__init__(
            name, documentation, labelnames, limit, overflows, lambda: Buckets(np.zeros(size, dtype=np.int64))
        )
        self._le = [floatToGoString(b) for b in self.bounds.tolist()] + ["+Inf"]
        self._bounds_list: list[float] = self.bounds.tolist()

    def observe(
        self,
        labels: Labels,
        values: np.ndarray,
        exemplar: tuple[dict[str, str], float, float] | None = None,
    ) -> None:
        """Add a batch of one series' values; ``exemplar`` is (labels, value, unix seconds) of one
        of them, kept on its bucket."""
        counts = np.bincount(
            np.searchsorted(self.bounds, values, side="left"), minlength=self.bounds.size + 1
        )
        with self.lock:
            state = self.series(labels, float(values.size))
            state.counts += counts
            state.total += float(values.sum())
            if exemplar is not None:
                ex_labels, value, ts = exemplar
                bucket = int(np.searchsorted(self.bounds, value, side="left"))
                state.exemplars[bucket] = Exemplar(ex_labels, value, ts)

    def observe_one(self, labels: Labels, value: float) -> None:
        """Add one value (a request's latency): a bisection, no array, for per-request callers."""
        bucket = bisect.bisect_left(self._bounds_list, value)
        with self.lock:
            state = self.series(labels)
            state.counts[bucket] += 1
            state.total += value

    def add_counts(
        self, labels: Labels, counts: np.ndarray, total: float, exemplars: dict[int, Exemplar] | None = None
    ) -> None:
        """Add per-bucket counts (the last is +Inf) and their sum, already computed for a whole
        batch; ``exemplars`` by bucket index replace the ones held."""
        with self.lock:
            state = self.series(labels, float(counts.sum()))
            state.counts += counts
            state.total += total
            if exemplars:
                state.exemplars.update(exemplars)

    def collect(self) -> Iterator[Metric]:
        yield self.readout("histogram", _histogram_copy, self._samples)

    def _samples(self, labels: list[Labels], copied: _HistogramCopy) -> list[Sample]:
        counts, totals, exemplars = copied
        if not labels:
            return []
        cumulative: list[list[int]] = np.cumsum(counts, axis=1).tolist()
        bucket, count, total = self.name + "_bucket", self.name + "_count", self.name + "_sum"
        les = self._le
        none = [None] * len(les)
        out: list[Sample] = []
        for base, cum, value, held in zip(
            self.label_dicts(labels), cumulative, totals, exemplars, strict=True
        ):
            dicts = [{**base, "le": le} for le in les]
            marks = [held.get(i) for i in range(len(les))] if held else none
            out += map(_sample, zip(repeat(bucket), dicts, cum, none, marks, none))
            out.append(_sample((count, base, cum[-1], None, None, None)))
            out.append(_sample((total, base, value, None, None, None)))
        return out


_HistogramCopy = tuple[np.ndarray, list[float], list[dict[int, Exemplar]]]


def _histogram_copy(states: list[Buckets]) -> _HistogramCopy:
    """Counts as one 2-D array, sums, and the exemplars (only buckets that have one)."""
    counts = np.stack([s.counts for s in states]) if states else np.zeros((0, 0), dtype=np.int64)
    return counts, [s.total for s in states], [dict(s.exemplars) if s.exemplars else {} for s in states]
