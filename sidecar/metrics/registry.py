"""The one registry ``/metrics`` serves: process and GC collectors, plus every derived source.

Sources are callables yielding metric families (``Family.collect`` and the like); they are asked
only when Prometheus scrapes, never per ingested item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sidecar.metrics.families import Overflows, Readout

Source = Callable[[], Iterable[Metric]]
Encoder = Callable[[Collector], bytes]
OPENMETRICS_EOF = b"# EOF\n"


class _One(Collector):
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric


def encode(source: Collector, encoder: Encoder, content_type: str) -> bytes:
    """What ``encoder`` (from ``choose_encoder``) makes of ``source``, one metric at a time, so
    that the bytes of a family unchanged since an earlier scrape (the same :class:`Readout`) are
    reused instead of encoded again. The result is the encoder's own output for the whole source:
    both formats are their families one after another, OpenMetrics then ends with ``# EOF``."""
    openmetrics = content_type.startswith("application/openmetrics-text")
    chunks: list[bytes] = []
    for metric in source.collect():
        cached = metric.encoded.get(content_type) if isinstance(metric, Readout) else None
        if cached is None:
            cached = encoder(_One(metric))
            if openmetrics:
                cached = cached.removesuffix(OPENMETRICS_EOF)
            if isinstance(metric, Readout):
                metric.keep(content_type, cached)
        chunks.append(cached)
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
