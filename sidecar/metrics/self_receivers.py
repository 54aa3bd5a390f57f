"""The sidecar's own metrics about what it receives: items per signal and transport, and request
latency, per receiver and per HTTP route.

Items follow the Collector's own receiver metrics (``otelcol_receiver_accepted_spans``,
``otelcol_receiver_refused_spans``), one family per fate with a ``signal`` label instead of one per
item noun: *accepted* items are stored, *rejected* ones were invalid and dropped (named in the
answer's partial success, or an event's error), *refused* ones were valid but not taken
(backpressure, shutdown, a storage failure; the client sends them again), and *received* is the
three together. Requests are counted once each, as they are answered, never per item.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from sidecar.metrics.families import HistogramFamily, Overflows

# The OpenTelemetry semantic conventions' advice for http.server.request.duration, in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_ITEMS = (
    ("received", "Items (spans, log records, events) in requests that could be decoded"),
    ("accepted", "Items stored (acknowledged once in the write-ahead log)"),
    ("rejected", "Items dropped as invalid (partial success, or an event's error)"),
    ("refused", "Valid items not taken (backpressure, shutdown, storage failure): the client retries"),
)


class ReceiverMetrics:
    """What export.py and the events receiver report per request (``ExportObserver``)."""

    def __init__(self, limit: int, overflows: Overflows) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], list[int]] = {}  # (signal, transport) -> _ITEMS order
        self.duration = HistogramFamily(
            "sidecar_receiver_request_duration_seconds",
            "Receiver requests by outcome, from the body in hand to the answer (decode, validate, "
            "wait for the write-ahead log)",
            ("signal", "transport", "outcome"),
            LATENCY_BUCKETS,
            limit,
            overflows,
        )

    def request(
        self,
        signal: str,
        transport: str,
        outcome: str,
        seconds: float,
        accepted: int = 0,
        rejected: int = 0,
        refused: int = 0,
    ) -> None:
        with self._lock:
            counts = self._items.get((signal, transport))
            if counts is None:
                counts = self._items[(signal, transport)] = [0, 0, 0, 0]
            counts[0] += accepted + rejected + refused
            counts[1] += accepted
            counts[2] += rejected
            counts[3] += refused
        self.duration.observe_one((signal, transport, outcome), seconds)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            items = {key: list(counts) for key, counts in self._items.items()}
        for i, (fate, documentation) in enumerate(_ITEMS):
            name = f"sidecar_receiver_{fate}_items"
            metric = Metric(name, documentation, "counter")
            for (signal, transport), counts in sorted(items.items()):
                metric.add_sample(name + "_total", {"signal": signal, "transport": transport}, counts[i])
            yield metric
        yield from self.duration.collect()


_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"))


class HttpServerMetrics:
    """``sidecar_http_server_request_duration_seconds``: the semantic conventions'
    ``http.server.request.duration`` for every HTTP listener (API, OTLP/HTTP, metrics), by route."""

    def __init__(self, limit: int, overflows: Overflows) -> None:
        self.duration = HistogramFamily(
            "sidecar_http_server_request_duration_seconds",
            "HTTP requests served, by method, route template and status code",
            ("http_request_method", "http_route", "http_response_status_code"),
            LATENCY_BUCKETS,
            limit,
            overflows,
        )

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """``route`` is the matched route's template ("" when none matched); a method outside
        the standard ones is ``_OTHER``, as the conventions ask, so a client cannot make series."""
        method = method if method in _METHODS else "_OTHER"
        self.duration.observe_one((method, route, str(status)), seconds)

    def collect(self) -> Iterator[Metric]:
        yield from self.duration.collect()
