"""Service graph metrics: requests between services, from a tap on traces.

Names and labels are the Collector's servicegraph connector's (Grafana's service map reads them):
``traces_service_graph_request_total``, ``..._request_failed_total``, the histograms
``..._request_server_seconds`` and ``..._request_client_seconds`` (labels ``client``, ``server``,
``connection_type``), and ``..._unpaired_spans_total`` / ``..._dropped_spans_total``.

Calls are paired by ``storage/pairing.py``, the pairing ``/api/dependencies`` uses, with the same
wait and bound, and the same rules: a call within one service is no edge; a database call
(``ingest/peers.py``) is an edge at once; a client half whose server half never came becomes an
edge to its virtual peer when its wait ends, as the Collector's ``onExpire`` completes an expired
edge with its virtual node. A half that waited in vain and became no edge counts as unpaired
(``client`` or ``server`` left empty); every half refused because too many wait as dropped.
Expiry runs with each batch and at each scrape, so an idle sidecar still reports its unpaired
halves; at a scrape it runs just before ``sidecar_metric_series_overflow_total`` is read
(``Overflows.before_read``), so that counter covers the edges the same scrape shows.
``connection_type`` is ``messaging_system`` when either side is a PRODUCER/CONSUMER span (or the
client has ``messaging.system``), ``database`` for database calls, else empty.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import compress, count

import numpy as np
from prometheus_client.metrics_core import Metric

from sidecar.config.model import SPAN_METRICS_BUCKETS, ServiceGraphConfig
from sidecar.metrics.families import CounterFamily, HistogramFamily, Labels, Overflows
from sidecar.metrics.spans import status_codes
from sidecar.storage.pairing import Pairing
from sidecar.storage.prepared import PreparedTraces

# (service, seconds, failed, peer, connection type) and (service, seconds, failed, connection type)
ClientHalf = tuple[str, float, bool, str, str]
ServerHalf = tuple[str, float, bool, str]
Edge = tuple[str, str, str, bool, float, float]  # client, server, type, failed, client s, server s

_CLIENT_KINDS = frozenset({3, 4})
_SERVER_KINDS = frozenset({2, 5})
_PRODUCER, _CONSUMER = 4, 5
_DATABASE, _MESSAGING = "database", "messaging_system"
_NO_PEER = ("", "")
# The connector's default latency buckets (seconds), as the span metrics' defaults.
BUCKETS = [float(b) for b in SPAN_METRICS_BUCKETS.split(",")]
LABELS = ("client", "server", "connection_type")


class ServiceGraphMetrics:
    """The tap's consumer; ``collect`` (the registry's source) also expires halves whose wait ended."""

    def __init__(
        self,
        config: ServiceGraphConfig,
        limit: int,
        overflows: Overflows,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pairing: Pairing[ClientHalf, ServerHalf] = Pairing(config.wait_s, config.max_pending, clock)
        self._lock = threading.Lock()  # the tap pairs on the event loop, scrapes expire on a worker
        # The registry reads the overflow counter before every derived family: expire there.
        overflows.before_read(self.expire)

        def counter(name: str, doc: str) -> CounterFamily:
            return CounterFamily(name, doc, LABELS, limit, overflows)

        def histogram(name: str, doc: str) -> HistogramFamily:
            return HistogramFamily(name, doc, LABELS, BUCKETS, limit, overflows)

        self.requests = counter("traces_service_graph_request", "Requests between two nodes")
        self.failed = counter("traces_service_graph_request_failed", "Failed requests between two nodes")
        self.server_seconds = histogram(
            "traces_service_graph_request_server_seconds", "Request durations as the server saw them"
        )
        self.client_seconds = histogram(
            "traces_service_graph_request_client_seconds", "Request durations as the client saw them"
        )
        self.unpaired = counter(
            "traces_service_graph_unpaired_spans", "Client or server spans whose other half never came"
        )
        self.dropped = counter(
            "traces_service_graph_dropped_spans", "Client or server spans not paired: too many were waiting"
        )

    async def consume(self, batch: PreparedTraces) -> None:
        clients: dict[bytes, ClientHalf] = {}
        servers: dict[bytes, ServerHalf] = {}
        edges: list[Edge] = []
        for col in batch.columns:
            kinds = col.kinds
            if _CLIENT_KINDS.isdisjoint(kinds) and _SERVER_KINDS.isdisjoint(kinds):
                continue
            service, tids, durations, peers = col.resource.service, col.trace_ids, col.durations, col.peers
            failed = [code == 2 for code in status_codes(col.statuses)]
            for i in compress(count(), map(_CLIENT_KINDS.__contains__, kinds)):
                name, ctype = peers.get(i, _NO_PEER)
                seconds = durations[i] / 1e9
                if ctype == _DATABASE:
                    edges.append((service, name, ctype, failed[i], seconds, seconds))
                    continue
                ctype = ctype or (_MESSAGING if kinds[i] == _PRODUCER else "")
                clients[tids[i] + col.span_ids[i]] = (service, seconds, failed[i], name, ctype)
            parents = col.parents
            for i in compress(count(), map(_SERVER_KINDS.__contains__, kinds)):
                if parents[i]:
                    ctype = _MESSAGING if kinds[i] == _CONSUMER else ""
                    servers[tids[i] + parents[i]] = (service, durations[i] / 1e9, failed[i], ctype)
        with self._lock:
            pairs = self._pairing.pair(clients, servers)
        for (client, client_s, client_failed, _, client_type), (
            server,
            server_s,
            server_failed,
            server_type,
        ) in pairs:
            if client != server:
                ctype = client_type or server_type
                edges.append((client, server, ctype, client_failed or server_failed, client_s, server_s))
        self._add(edges)
        self.expire()

    def expire(self) -> None:
        """Halves whose wait ended: unpaired, and edges to the clients' virtual peers; plus drops."""
        with self._lock:
            clients, servers = self._pairing.expire()
            dropped_clients, dropped_servers = self._pairing.take_dropped()
        if clients or servers:
            # The Collector's virtual node: the server side is timed by the client span. Such a
            # half became an edge, so it is not unpaired.
            self._add([(c[0], c[3], c[4], c[2], c[1], c[1]) for c in clients if c[3]])
            unpaired = _halves([c for c in clients if not c[3]], servers)
            if unpaired:
                self.unpaired.add_many(unpaired.items())
        if dropped_clients or dropped_servers:
            self.dropped.add_many(_halves(dropped_clients, dropped_servers).items())

    def collect(self) -> Iterator[Metric]:
        """The families as they are; halves whose wait ended were expired by the overflow
        counter's read just before (``before_read``), so that both agree."""
        for family in (
            self.requests,
            self.failed,
            self.server_seconds,
            self.client_seconds,
            self.unpaired,
            self.dropped,
        ):
            yield from family.collect()

    def _add(self, edges: list[Edge]) -> None:
        if not edges:
            return
        by_edge: dict[Labels, list[int]] = {}
        for i, (client, server, ctype, *_) in enumerate(edges):
            by_edge.setdefault((client, server, ctype), []).append(i)
        self.requests.add_many((labels, len(ix)) for labels, ix in by_edge.items())
        failed = Counter(labels for labels, ix in by_edge.items() for i in ix if edges[i][3])
        if failed:
            self.failed.add_many(failed.items())
        client_s = np.array([e[4] for e in edges])
        server_s = np.array([e[5] for e in edges])
        for labels, ix in by_edge.items():
            self.client_seconds.observe(labels, client_s[ix])
            self.server_seconds.observe(labels, server_s[ix])


def _halves(clients: list[ClientHalf], servers: list[ServerHalf]) -> Counter[Labels]:
    """Unpaired or dropped halves by (client, server, connection type), the other side empty."""
    counts: Counter[Labels] = Counter((c[0], "", c[4]) for c in clients)
    counts.update(("", s[0], s[3]) for s in servers)
    return counts
