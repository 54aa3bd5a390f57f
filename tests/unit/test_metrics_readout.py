"""Scrape readouts: per-family encoding equals the encoder's own output, and an unchanged family's
bytes are reused until a write (or an expiry) changes it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from sidecar.metrics.families import CounterFamily, GaugeFamily, HistogramFamily, Readout
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
    """The registry minus the process collector, whose CPU seconds move between two encodings."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return (m for m in self.metrics.registry.collect() if not m.name.startswith("process_"))


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
