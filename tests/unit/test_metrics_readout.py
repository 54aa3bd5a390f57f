"""Scrape readouts: per-family encoding equals the encoder's own output, and an unchanged family's
bytes are reused until a write (or an expiry) changes it."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from sidecar.metrics.families import OVERFLOW_KEY, CounterFamily, GaugeFamily, HistogramFamily, Readout
from sidecar.metrics.registry import Metrics, encode

TEXT = ""
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _filled() -> tuple[Metrics, CounterFamily, HistogramFamily, GaugeFamily]:
    metrics = Metrics(3)
    overflows = metrics.overflows
    calls = CounterFamily("demo_calls", "Calls", ("service_name", "span_name"), 3, overflows)
    duration = HistogramFamily(
        "demo_duration_seconds", "Durations", ("service_name",), [0.1, 1.0], 3, overflows
    )
    depth = GaugeFamily("demo_depth", "Depth", ("queue",), 3, overflows)
    calls.add_many([(("a", f"op{i}"), i + 1) for i in range(5)])  # two fold into the overflow series
    ex = Exemplar({"trace_id": "ab" * 16, "span_id": "cd" * 8}, 0.5, 1_700_000_000.0)
    duration.add_counts(("a",), np.array([1, 2, 3]), 4.5, {1: ex})
    duration.observe_one(("b",), 0.05)
    depth.set(("writes",), 7)
    for family in (calls, duration, depth):
        metrics.add(family.collect)
    return metrics, calls, duration, depth


class _Without(Collector):
    """The registry minus the process and GC collectors, whose CPU seconds and collection counts
    move between two encodings."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return (
            m for m in self.metrics.registry.collect() if not m.name.startswith(("process_", "python_gc_"))
        )


def test_per_family_encoding_is_the_encoders_output_in_both_formats() -> None:
    metrics, *_ = _filled()
    source = _Without(metrics)
    for accept in (TEXT, OPENMETRICS):
        encoder, content_type = choose_encoder(accept)
        whole = encoder(source)
        assert encode(source, encoder, content_type) == whole
        assert encode(source, encoder, content_type) == whole  # again, from the kept bytes
    text = encode(source, *choose_encoder(TEXT)).decode()
    assert 'demo_calls_total{otel_metric_overflow="true"} 9.0' in text
    assert 'demo_duration_seconds_bucket{le="1.0",service_name="a"} 3.0' in text
    assert "demo_depth" in text
    om = encode(source, *choose_encoder(OPENMETRICS)).decode()
    assert om.endswith("# EOF\n") and om.count("# EOF") == 1
    assert '# {span_id="' + "cd" * 8 in om


def test_an_unchanged_family_hands_out_the_same_readout_and_a_write_replaces_it() -> None:
    metrics, calls, duration, depth = _filled()
    first = next(iter(calls.collect()))
    assert isinstance(first, Readout)
    encoder, content_type = choose_encoder(TEXT)
    encode(metrics.registry, encoder, content_type)
    assert content_type in first.encoded
    assert next(iter(calls.collect())) is first  # nothing written: same readout, same bytes
    calls.add(("a", "op0"), 10)
    second = next(iter(calls.collect()))
    assert second is not first and not second.encoded
    values = {tuple(s.labels.values()): s.value for s in second.samples}
    assert values[("a", "op0")] == 11
    assert {tuple(s.labels.values()): s.value for s in first.samples}[("a", "op0")] == 1  # a copy
    hist = next(iter(duration.collect()))
    duration.observe_one(("a",), 0.05)
    assert next(iter(duration.collect())) is not hist
    gauge = next(iter(depth.collect()))
    assert depth.remove_if(lambda state: True) == 1
    after = next(iter(depth.collect()))
    assert after is not gauge and after.samples == []


def test_a_readout_keeps_a_bounded_number_of_encodings() -> None:
    _, calls, _, _ = _filled()
    readout = next(iter(calls.collect()))
    assert isinstance(readout, Readout)
    for i in range(10):
        readout.keep(f"application/openmetrics-text; version=1.0.{i}", b"x")
    assert len(readout.encoded) <= Readout.MAX_ENCODINGS


def test_restricted_scrapes_still_filter_readouts() -> None:
    metrics, *_ = _filled()
    encoder, content_type = choose_encoder(TEXT)
    body = encode(metrics.registry.restricted_registry(["demo_depth"]), encoder, content_type).decode()
    assert "demo_depth 7.0" not in body and 'demo_depth{queue="writes"} 7.0' in body
    assert "demo_calls" not in body and "process_" not in body


# -- series-level caching: a scrape encodes only the series written since the previous one ----------
VALUES = ["a", "b", 'q"uote', "back\\slash", "new\nline", "cr\rx", "ünï", ""]


class _Plain(Collector):
    """The same readouts as plain metrics, for the encoder to encode whole."""

    def __init__(self, readouts: list[Metric]) -> None:
        self.readouts = readouts

    def collect(self) -> Iterator[Metric]:
        for readout in self.readouts:
            metric = Metric(readout.name, readout.documentation, readout.type)
            metric.samples = readout.samples
            yield metric


class _Listed(Collector):
    def __init__(self, readouts: list[Metric]) -> None:
        self.readouts = readouts

    def collect(self) -> Iterator[Metric]:
        return iter(self.readouts)


def _families(limit: int) -> tuple[CounterFamily, GaugeFamily, HistogramFamily]:
    metrics = Metrics(limit)
    return (
        CounterFamily(
            "rand_calls", "Calls\nwith a newline", ("service_name", "span_name"), limit, metrics.overflows
        ),
        GaugeFamily("rand_depth", "Depth", ("queue",), limit, metrics.overflows),
        HistogramFamily(
            "rand_seconds", "Durations", ("service_name",), [0.01, 0.1, 1.0], limit, metrics.overflows
        ),
    )


def _exemplar(rng: random.Random) -> Exemplar:
    return Exemplar(
        {"trace_id": rng.randbytes(16).hex(), "span_id": rng.randbytes(8).hex()}, rng.random(), 1.7e9
    )


def _step(rng: random.Random, calls: CounterFamily, depth: GaugeFamily, hist: HistogramFamily) -> None:
    """One random write or removal on one of the families."""
    op = rng.randrange(9)
    v = rng.choice
    if op == 0:
        calls.add((v(VALUES), v(VALUES)), rng.randrange(1, 5))
    elif op == 1:
        calls.add_many([((v(VALUES), v(VALUES)), rng.random()) for _ in range(rng.randrange(1, 6))])
    elif op == 2:
        depth.set((v(VALUES),), rng.uniform(-5, 5))
    elif op == 3:
        values = np.asarray([rng.uniform(0, 2) for _ in range(rng.randrange(1, 5))])
        ex = ({"trace_id": rng.randbytes(16).hex()}, float(values[0]), 1.7e9) if rng.random() < 0.5 else None
        hist.observe((v(VALUES),), values, ex)
    elif op == 4:
        hist.observe_one((v(VALUES),), rng.uniform(0, 2))
    elif op == 5:
        counts = np.asarray([rng.randrange(3) for _ in range(4)])
        hist.add_counts((v(VALUES),), counts, float(counts.sum()) / 3, {rng.randrange(4): _exemplar(rng)})
    elif op == 6:
        family = rng.choice([calls, depth, hist])
        keys = list(family._series)  # the live series, overflow included (test-only peek)
        if keys:
            family.remove(rng.choice(keys))
    elif op == 7:
        family = rng.choice([calls, depth, hist])
        family.remove_if(lambda state: rng.random() < 0.3)
    else:
        calls.remove(("never", "there"))  # a removal of nothing changes nothing


def _kept_within_bounds(*families: CounterFamily | GaugeFamily | HistogramFamily) -> None:
    for family in families:
        assert len(family._lines) <= Readout.MAX_ENCODINGS
        for kept in family._lines.values():
            assert set(kept) <= set(family._series)  # removed and expired series hold no lines


def test_random_writes_removals_and_overflow_encode_as_the_whole_family_in_both_formats() -> None:
    formats = [choose_encoder(TEXT), choose_encoder(OPENMETRICS)]
    overflowed = 0
    for seed in range(40):
        rng = random.Random(seed)
        families = _families(limit=rng.choice([0, 3, 6, 20]))
        for _ in range(40):
            for _ in range(rng.randrange(0, 4)):
                _step(rng, *families)
            readouts = [next(iter(family.collect())) for family in families]
            # sometimes one format only: the other's lines must still catch up later
            for encoder, content_type in rng.sample(formats, rng.choice([1, 2])):
                whole = encoder(_Plain(readouts))
                assert encode(_Listed(readouts), encoder, content_type) == whole, seed
            _kept_within_bounds(*families)
            overflowed += any(OVERFLOW_KEY in family for family in families)
    assert overflowed  # the overflow series was written, scraped and expired along the way


def test_overflow_series_lines_follow_its_writes_and_its_removal() -> None:
    calls, _, _ = _families(limit=2)
    encoder, content_type = choose_encoder(OPENMETRICS)
    calls.add_many([(("s", f"op{i}"), 1) for i in range(4)])  # op2 and op3 fold
    assert OVERFLOW_KEY in calls
    first = encode(_Listed([next(iter(calls.collect()))]), encoder, content_type).decode()
    assert 'rand_calls_total{otel_metric_overflow="true"} 2.0' in first
    calls.add(("s", "op9"), 5)
    second = encode(_Listed([next(iter(calls.collect()))]), encoder, content_type).decode()
    assert 'rand_calls_total{otel_metric_overflow="true"} 7.0' in second
    assert calls.remove_if(lambda state: state.value == 7.0) == 1
    readout = next(iter(calls.collect()))
    third = encode(_Listed([readout]), encoder, content_type)
    assert b"otel_metric_overflow" not in third and third == encoder(_Plain([readout]))
    _kept_within_bounds(calls)


class _Counting:
    """An encoder that records how many samples each call encoded."""

    def __init__(self, accept: str) -> None:
        self.encoder, self.content_type = choose_encoder(accept)
        self.samples: list[int] = []

    def __call__(self, collector: Collector) -> bytes:
        self.samples.append(sum(len(metric.samples) for metric in collector.collect()))
        return self.encoder(collector)


def test_a_scrape_after_one_write_encodes_that_series_only() -> None:
    calls, _, hist = _families(limit=0)
    calls.add_many([(("svc", f"op{i}"), 1) for i in range(1000)])
    for i in range(500):
        hist.add_counts((f"svc{i}",), np.array([1, 0, 2, 1]), 3.0, {2: _exemplar(random.Random(i))})
    for accept in (TEXT, OPENMETRICS):
        counting = _Counting(accept)
        source = _Listed([next(iter(f.collect())) for f in (calls, hist)])
        encode(source, counting, counting.content_type)
        assert sum(counting.samples) == 1000 + 500 * 6  # the first scrape encodes everything
        calls.add(("svc", "op7"), 1)
        hist.observe_one(("svc3",), 0.5)
        counting.samples.clear()
        readouts = [next(iter(f.collect())) for f in (calls, hist)]
        body = encode(_Listed(readouts), counting, counting.content_type)
        # per family: the header (no samples), then one call with the written series' samples
        assert counting.samples == [0, 1, 0, 6]
        assert body == counting.encoder(_Plain(readouts))
        counting.samples.clear()
        assert encode(_Listed(readouts), counting, counting.content_type) == body
        assert counting.samples == []  # unchanged: the readouts' bytes are reused


def test_a_stale_readout_encodes_its_own_data_and_keeps_nothing() -> None:
    calls, _, _ = _families(limit=0)
    encoder, content_type = choose_encoder(TEXT)
    calls.add_many([(("svc", f"op{i}"), 1) for i in range(10)])
    encode(_Listed([next(iter(calls.collect()))]), encoder, content_type)
    calls.add(("svc", "op1"), 1)
    old = next(iter(calls.collect()))
    calls.add(("svc", "op2"), 1)
    new = next(iter(calls.collect()))  # a second scrape took a readout while the first one encodes
    assert encode(_Listed([old]), encoder, content_type) == encoder(_Plain([old]))
    assert b'span_name="op2"} 1.0' in encode(_Listed([old]), encoder, content_type)
    assert encode(_Listed([new]), encoder, content_type) == encoder(_Plain([new]))
    calls.add(("svc", "op3"), 1)
    newest = next(iter(calls.collect()))
    body = encode(_Listed([newest]), encoder, content_type)
    assert body == encoder(_Plain([newest])) and b'span_name="op2"} 2.0' in body
