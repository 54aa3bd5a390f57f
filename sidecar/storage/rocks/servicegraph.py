"""Calls between services, paired from client and server spans as they are written.

A call is a CLIENT (or PRODUCER) span in one service whose id is the parent of a SERVER (or
CONSUMER) span in another: the Collector's servicegraph connector and Jaeger's dependencies both
count these. The trace merge hands each write's halves to :class:`ServiceGraph`, which pairs them
(waiting, bounded, for a half that comes in a later write) and adds the counts to the write's
batch under ``G | hour(4) | parent(4) | child(4) -> u64`` in the day's partition (layout atop
``traces/merge.py``). A client span whose callee never reports here still makes an edge, to its
virtual peer (``ingest/peers.py``: a database at once, anything else once its wait is over), under
``V | hour(4) | client(4) | peer name -> u64``. ``/api/dependencies`` reads both back with
:func:`read_calls` and :func:`read_peer_calls`.

Waits end in a write: the next one with spans, or, on an idle sidecar, a write without spans that
the trace writer queues when halves wait and no write expired any for a while (:meth:`ServiceGraph.due`),
so an edge to a virtual peer reaches ``/api/dependencies`` as it reaches the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat

from rocksdict import ReadOptions, WriteBatch

from sidecar.storage.pairing import DEFAULT_MAX_PENDING, DEFAULT_WAIT_S, Pairing
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition

_COUNTS = 10_000  # (hour, parent, child) totals kept to skip a read per edge per write
PEER_EDGE = b"V"  # V | hour(4) | client_service(4) | peer name (UTF-8) -> calls that hour (u64)

Calls = dict[tuple[int, int], int]  # (parent service id, child service id) -> calls
PeerCalls = dict[tuple[int, str], int]  # (client service id, virtual peer name) -> calls


class ServiceGraph:
    """Pairs each write's client and server spans and keeps hourly call counts; writer thread only."""

    def __init__(
        self,
        wait_s: float = DEFAULT_WAIT_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Waiting halves: (client service id, its virtual peer or "") and the server's service id.
        self._pairing: Pairing[tuple[int, str], int] = Pairing(wait_s, max_pending, clock)
        self._counts: dict[bytes, int] = {}
        self._clock = clock
        self._expired_at = clock()  # the last time a write ended the waits that were over

    def due(self, every: float) -> bool:
        """Halves wait and no write has ended waits for ``every`` seconds: time for a write without spans.

        Read from the event loop while the writer thread pairs: plain reads of a float and two
        ``len()``s, a hint only (a late or needless write of no spans is harmless).
        """
        return self._clock() - self._expired_at >= every and any(self._pairing.waiting())

    def add(
        self,
        clients: dict[bytes, int],
        servers: dict[bytes, int],
        ns: int,
        part: Partition,
        batch: WriteBatch,
        peers: dict[bytes, str] | None = None,
        databases: Iterable[tuple[int, str]] = (),
    ) -> Calls:
        """Pair one write's halves, put the new hourly totals into ``batch``; returns this write's calls.

        ``clients``: trace id + span id -> service, of CLIENT/PRODUCER spans; ``servers``: trace
        id + parent span id -> service, of SERVER/CONSUMER spans. Both are consumed. ``peers``: the
        clients' virtual peers (by the same keys; absent: none); ``databases``: (service, peer) of
        database calls, edges at once. Client halves whose wait ended make edges to their peers.
        """
        calls, virtual = self.pair(clients, servers, peers)
        for svc, name in databases:
            virtual[(svc, name)] = virtual.get((svc, name), 0) + 1
        hour = ns // keys.HOUR_NS
        if calls:
            self._put(((keys.edge_key(hour, p, c), n) for (p, c), n in calls.items()), part, batch)
        if virtual:
            self._put(((peer_edge_key(hour, c, name), n) for (c, name), n in virtual.items()), part, batch)
        return calls

    def pair(
        self, clients: dict[bytes, int], servers: dict[bytes, int], peers: dict[bytes, str] | None = None
    ) -> tuple[Calls, PeerCalls]:
        """Match halves with each other and with those waiting from earlier writes (pairing.py);
        also the virtual edges of client halves that waited in vain. A call within one service
        (parent == child) is not an edge."""
        peer = (peers or {}).get
        halves = dict(
            zip(clients, zip(clients.values(), map(peer, clients, repeat("")), strict=True), strict=True)
        )
        calls: Calls = {}
        for (parent, _), child in self._pairing.pair(halves, servers):
            _count(calls, parent, child)
        virtual: PeerCalls = {}
        self._expired_at = self._clock()
        expired, _ = self._pairing.expire(self._expired_at)
        for svc, name in expired:
            if name:
                virtual[(svc, name)] = virtual.get((svc, name), 0) + 1
        self._pairing.take_dropped()
        return calls, virtual

    def _put(self, counted: Iterable[tuple[bytes, int]], part: Partition, batch: WriteBatch) -> None:
        """Running totals, read once then kept here, so a read sums one value per hour and pair."""
        counts = self._counts
        if len(counts) > _COUNTS:
            counts.clear()
        for key, n in counted:
            total = counts.get(key)
            if total is None:
                stored = part.data.get(key)
                total = keys.read_u64(stored) if stored else 0
            total += n
            counts[key] = total
            batch.put(key, keys.u64(total), part.handle)


def _count(calls: Calls, parent: int, child: int) -> None:
    if parent != child:
        calls[(parent, child)] = calls.get((parent, child), 0) + 1


def peer_edge_key(hour: int, client: int, peer: str) -> bytes:
    return PEER_EDGE + keys.u32(hour) + keys.u32(client) + peer.encode()


def _scan(
    partitions: Iterable[Partition], prefix: bytes, start_ns: int, end_ns: int
) -> Iterator[tuple[bytes, int]]:
    """(key, count) of every ``prefix | hour(4) | ...`` key in the hours overlapping [start_ns, end_ns]."""
    lo_hour, hi_hour = start_ns // keys.HOUR_NS, end_ns // keys.HOUR_NS
    for part in partitions:
        if part.day < start_ns // keys.DAY_NS or part.day > end_ns // keys.DAY_NS:
            continue
        ro = ReadOptions()
        ro.set_iterate_upper_bound(prefix + keys.u32(hi_hour + 1))
        it = part.data.iter(ro)
        it.seek(prefix + keys.u32(lo_hour))
        while it.valid():
            yield it.key(), keys.read_u64(it.value())
            it.next()
        del it


def read_calls(partitions: Iterable[Partition], start_ns: int, end_ns: int) -> Calls:
    """Calls per (parent, child) in the hours that overlap [start_ns, end_ns]; {} when none."""
    totals: Calls = {}
    for key, n in _scan(partitions, keys.EDGE, start_ns, end_ns):
        _hour, parent, child = keys.parse_edge_key(key)
        totals[(parent, child)] = totals.get((parent, child), 0) + n
    return totals


def read_peer_calls(partitions: Iterable[Partition], start_ns: int, end_ns: int) -> PeerCalls:
    """Calls per (client service, virtual peer) in the hours that overlap [start_ns, end_ns]."""
    totals: PeerCalls = {}
    for key, n in _scan(partitions, PEER_EDGE, start_ns, end_ns):
        edge = (keys.read_u32(key, 5), key[9:].decode("utf-8", "replace"))
        totals[edge] = totals.get(edge, 0) + n
    return totals
