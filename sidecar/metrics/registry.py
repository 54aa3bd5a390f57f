"""The one registry ``/metrics`` serves: process and GC collectors, plus every derived source.

Sources are callables yielding metric families (``Family.collect`` and the like); they are asked
only when Prometheus scrapes, never per ingested item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sidecar.metrics.families import OPENMETRICS_EOF, Encoder, One, Overflows, Readout

Source = Callable[[], Iterable[Metric]]


def encode(source: Collector, encoder: Encoder, content_type: str) -> bytes:
    """What ``encoder`` (from ``choose_encoder``) makes of ``source``, one metric at a time, so
    that the bytes of a family unchanged since an earlier scrape (the same :class:`Readout`) are
    reused, and of a changed one only its changed series are encoded (``Readout.encode``). The
    result is the encoder's own output for the whole source: both formats are their families one
    after another, OpenMetrics then ends with ``# EOF``."""
    openmetrics = content_type.startswith("application/openmetrics-text")
    chunks: list[bytes] = []
    for metric in source.collect():
        if isinstance(metric, Readout):
            chunks.append(metric.encode(encoder, content_type))
            continue
        body = encoder(One(metric))
        chunks.append(body.removesuffix(OPENMETRICS_EOF) if openmetrics else body)
    if openmetrics:
        chunks.append(OPENMETRICS_EOF)
    return b"".join(chunks)


class Derived(Collector):
    """Yields the families of every registered source at scrape time."""

    def __init__(self) -> None:
        self._sources: list[Source] = []

    def add(self, source: Source) -> None:
        self._sources.append(source)

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source()


class Metrics:
    """What server.py wires: the registry to serve, where sources register, the shared overflow
    counter, and the series limit every derived family gets."""

    def __init__(self, series_limit: int) -> None:
        self.series_limit = series_limit
        # Collectors without describe() (all of ours) are still asked when name[] restricts a scrape.
        self.registry = CollectorRegistry(auto_describe=False, support_collectors_without_names=True)
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.overflows = Overflows()
        self._derived = Derived()
        self._derived.add(self.overflows.collect)
        self.registry.register(self._derived)

    def add(self, source: Source) -> None:
        """Register a source of families, collected at each scrape in registration order."""
        self._derived.add(source)
