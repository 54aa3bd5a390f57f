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

A scrape of a changed family encodes only the series written since the previous readout: a family
keeps, per content type, each series' encoded sample lines (what the encoder made of a metric
holding that series' samples, headers and ``# EOF`` cut off), drops those of the series written
(:meth:`Family.series` notes them) or removed, and :meth:`Family.encode` encodes the missing ones
in one encoder call and joins the family's header and every series' lines in the family's order:
the bytes the encoder makes of the whole family. The lines kept are at most the live series times
:attr:`Readout.MAX_ENCODINGS` content types.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Any, Generic, TypeVar

import numpy as np
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

OVERFLOW_LABEL = "otel_metric_overflow"
OVERFLOW_KEY: tuple[str, ...] = ("\x00overflow",)  # never a real label tuple (labels are text)

S = TypeVar("S")
T = TypeVar("T")
Labels = tuple[str, ...]
Encoder = Callable[[Collector], bytes]
# A Sample from a (name, labels, value, timestamp, exemplar, native) tuple: Sample._make, in C.
_sample = partial(tuple.__new__, Sample)
OPENMETRICS_EOF = b"# EOF\n"
# Samples the text encoder moves out of their series into a block at the family's end (so their
# lines cannot be kept per series); no family here emits them, which Family.encode checks.
_MOVED_SUFFIXES = ("_created", "_gsum", "_gcount")


class One(Collector):
    """A collector of one metric: what the encoders take."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric


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
    """A family's metric as of one version: ``samples`` are built by ``rows`` (a closure over the
    copied series: all of them, or the series at the given positions of ``labels``, ``width``
    samples each) each time they are read; ``encoded`` holds each content type's bytes."""

    MAX_ENCODINGS = 4  # content types kept (a client varying Accept cannot grow it)

    def __init__(
        self,
        family: Family[Any],
        generation: int,
        typ: str,
        labels: list[Labels],
        rows: Callable[[list[int] | None], list[Sample]],
        width: int,
    ) -> None:
        self._family = family
        self.generation = generation
        self.labels = labels
        self.rows = rows
        self.width = width
        super().__init__(family.name, family.documentation, typ)
        self.encoded: dict[str, bytes] = {}

    @property
    def samples(self) -> list[Sample]:
        return self.rows(None)

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:  # Metric.__init__ sets [], which is what build gives before any series exists
            raise AttributeError("a Readout's samples come from its family")

    def keep(self, content_type: str, body: bytes) -> None:
        if len(self.encoded) >= self.MAX_ENCODINGS:
            self.encoded.clear()
        self.encoded[content_type] = body

    def encode(self, encoder: Encoder, content_type: str) -> bytes:
        """The encoder's bytes for this metric (without OpenMetrics' ``# EOF``): kept ones, else
        the family's kept lines of unchanged series plus the changed series encoded."""
        body = self.encoded.get(content_type)
        if body is None:
            body = self._family.encode(self, encoder, content_type)
            self.keep(content_type, body)
        return body


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
        self._dirty: set[Labels] = set()  # series written since the latest readout (live ones)
        self._generation = 0  # readouts taken; the kept lines are those of the latest one
        self._lines: dict[str, dict[Labels, bytes]] = {}  # content type -> series -> sample lines

    def series(self, labels: Labels, observations: float = 1) -> S:
        """The state of a series (created if new); the overflow series' when the family is full.
        Call under ``self.lock``. ``observations`` is what gets counted as folded on overflow."""
        self._version += 1
        state = self._series.get(labels)
        if state is not None:
            self._dirty.add(labels)
            return state
        if self.limit and len(self._series) >= self.limit + (OVERFLOW_KEY in self._series):
            self._overflows.add(self.name, observations)
            labels = OVERFLOW_KEY
            state = self._series.get(labels)
            if state is not None:
                self._dirty.add(labels)
                return state
        state = self._series[labels] = self._new()
        self._dirty.add(labels)
        return state

    def _forget(self, labels: Labels) -> None:
        """A series was removed: its kept lines go (under the lock)."""
        self._dirty.discard(labels)
        for kept in self._lines.values():
            kept.pop(labels, None)

    def remove(self, labels: Labels) -> None:
        with self.lock:
            self._version += 1
            if self._series.pop(labels, None) is not None:
                self._forget(labels)

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
                self._forget(labels)
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
        self,
        typ: str,
        copy: Callable[[list[S]], T],
        build: Callable[[list[Labels], T], list[Sample]],
        take: Callable[[T, list[int]], T],
        width: int,
    ) -> Readout:
        """The family's metric: the one handed out before while no write came since; else a new
        one over ``copy(states)`` (taken under the lock), whose samples ``build`` makes, ``width``
        per series; ``take`` picks some series of a copy. The kept lines of the series written
        since the previous readout are dropped: the others still hold for the new one."""
        with self.lock:
            cached = self._readout
            if cached is not None and cached[0] == self._version:
                return cached[1]
            for kept in self._lines.values():
                for labels in self._dirty:
                    kept.pop(labels, None)
            self._dirty.clear()
            self._generation += 1
            order = list(self._series)
            copied = copy(list(self._series.values()))
            rows = partial(_rows, build, take, order, copied)
            metric = Readout(self, self._generation, typ, order, rows, width)
            self._readout = (self._version, metric)
        return metric

    def encode(self, readout: Readout, encoder: Encoder, content_type: str) -> bytes:
        """What ``encoder`` makes of ``readout`` (OpenMetrics' ``# EOF`` cut off): the kept lines
        of each series, the missing ones encoded in one call. Lines are kept only while
        ``readout`` is the latest readout, and only for series still live."""
        openmetrics = content_type.startswith("application/openmetrics-text")
        labels = readout.labels
        with self.lock:
            current = readout.generation == self._generation
            kept = self._lines.get(content_type) if current else None
            held: list[bytes | None] = list(map(kept.get, labels)) if kept else [None] * len(labels)
        missing = [i for i, lines in enumerate(held) if lines is None]
        header, encoded = _encode_rows(readout, encoder, missing, openmetrics)
        for i, lines in zip(missing, encoded, strict=True):
            held[i] = lines
        if missing:
            with self.lock:
                if readout.generation == self._generation:
                    kept = self._lines.get(content_type)
                    if kept is None:
                        if len(self._lines) >= Readout.MAX_ENCODINGS:
                            self._lines.clear()
                        kept = self._lines[content_type] = {}
                    live = self._series
                    for i, lines in zip(missing, encoded, strict=True):
                        if labels[i] in live:
                            kept[labels[i]] = lines
        return header + b"".join(held)  # type: ignore[arg-type]  # every None was filled


def _rows(
    build: Callable[[list[Labels], T], list[Sample]],
    take: Callable[[T, list[int]], T],
    labels: list[Labels],
    copied: T,
    rows: list[int] | None,
) -> list[Sample]:
    """The samples of every series of a readout (``rows`` None), or of those at ``rows``."""
    if rows is None or len(rows) == len(labels):
        return build(labels, copied)
    return build([labels[i] for i in rows], take(copied, rows))


def _encode_rows(
    readout: Readout, encoder: Encoder, rows: list[int], openmetrics: bool
) -> tuple[bytes, list[bytes]]:
    """The family header ``encoder`` writes for ``readout`` (``# HELP``, ``# TYPE``, ``# UNIT``),
    and the sample lines of each series at ``rows``, from one call over those series' samples."""
    metric = Metric(readout.name, readout.documentation, readout.type, readout.unit)
    header = encoder(One(metric))
    if openmetrics:
        header = header.removesuffix(OPENMETRICS_EOF)
    if not rows:
        return header, []
    samples = readout.rows(rows)
    width = readout.width
    if len(samples) != len(rows) * width:
        raise AssertionError(f"{readout.name}: {len(samples)} samples for {len(rows)} series of {width}")
    moved = {readout.name + suffix for suffix in _MOVED_SUFFIXES}
    if any(sample.name in moved for sample in samples[:width]):  # the same names in every series
        raise AssertionError(f"{readout.name}: a sample the text encoder moves out of its series")
    metric.samples = samples
    body = encoder(One(metric))
    lines = body.split(b"\n")  # one line per sample: the encoders escape newlines in text
    head = header.count(b"\n")
    tail = 2 if openmetrics else 1  # "# EOF" and the empty string after the last newline
    if len(lines) != head + len(samples) + tail or not body.startswith(header):
        raise AssertionError(f"{readout.name}: the encoder did not write one line per sample")
    lines = lines[head : head + len(samples)]
    if width == 1:
        return header, [line + b"\n" for line in lines]
    return header, [b"\n".join(lines[i : i + width]) + b"\n" for i in range(0, len(lines), width)]


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
        yield self.readout(
            "counter", _values, partial(_value_samples, self, self.name + "_total"), _take_values, 1
        )


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
        yield self.readout("gauge", _values, partial(_value_samples, self, self.name), _take_values, 1)


def _values(states: list[Count]) -> list[float]:
    return [state.value for state in states]


def _take_values(values: list[float], rows: list[int]) -> list[float]:
    return [values[i] for i in rows]


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
        yield self.readout("histogram", _histogram_copy, self._samples, _take_histogram, len(self._le) + 2)

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


def _take_histogram(copied: _HistogramCopy, rows: list[int]) -> _HistogramCopy:
    counts, totals, exemplars = copied
    return counts[rows], [totals[i] for i in rows], [exemplars[i] for i in rows]
