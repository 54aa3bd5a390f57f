"""Calls between services, paired from client and server spans as they are written.

A call is a CLIENT (or PRODUCER) span in one service whose id is the parent of a SERVER (or
CONSUMER) span in another: the Collector's servicegraph connector and Jaeger's dependencies both
count these. The trace merge hands each write's halves to :class:`ServiceGraph`, which pairs them
(waiting, bounded, for a half that comes in a later write) and adds the counts to the write's
batch under ``G | hour(4) | parent(4) | child(4) -> u64`` in the day's partition (layout atop
``traces/merge.py``). ``/api/dependencies`` reads them back with :func:`read_calls`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rocksdict import ReadOptions, WriteBatch

from sidecar.storage.pairing import DEFAULT_MAX_PENDING, DEFAULT_WAIT_S, Pairing
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition

_COUNTS = 10_000  # (hour, parent, child) totals kept to skip a read per edge per write

Calls = dict[tuple[int, int], int]  # (parent service id, child service id) -> calls


class ServiceGraph:
    """Pairs each write's client and server spans and keeps hourly call counts; writer thread only."""

    def __init__(
        self,
        wait_s: float = DEFAULT_WAIT_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Unpaired client / server halves (service ids), waiting as the metrics' halves do.
        self._pairing: Pairing[int, int] = Pairing(wait_s, max_pending, clock)
        self._counts: dict[bytes, int] = {}

    def add(
        self,
        clients: dict[bytes, int],
        servers: dict[bytes, int],
        ns: int,
        part: Partition,
        batch: WriteBatch,
    ) -> Calls:
        """Pair one write's halves, put the new hourly totals into ``batch``; returns this write's calls.

        ``clients``: trace id + span id -> service, of CLIENT/PRODUCER spans; ``servers``: trace
        id + parent span id -> service, of SERVER/CONSUMER spans. Both are consumed.
        """
        calls = self.pair(clients, servers)
        if calls:
            self._put(calls, ns // keys.HOUR_NS, part, batch)
        return calls

    def pair(self, clients: dict[bytes, int], servers: dict[bytes, int]) -> Calls:
        """Match halves with each other and with those waiting from earlier writes (pairing.py).
        A call within one service (parent == child) is not an edge."""
        calls: Calls = {}
        for parent, child in self._pairing.pair(clients, servers):
            _count(calls, parent, child)
        self._pairing.expire()
        self._pairing.take_dropped()
        return calls

    def _put(self, calls: Calls, hour: int, part: Partition, batch: WriteBatch) -> None:
        """Running totals, read once then kept here, so a read sums one value per hour and pair."""
        counts = self._counts
        if len(counts) > _COUNTS:
            counts.clear()
        for (parent, child), n in calls.items():
            key = keys.edge_key(hour, parent, child)
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


def read_calls(partitions: Iterable[Partition], start_ns: int, end_ns: int) -> Calls:
    """Calls per (parent, child) in the hours that overlap [start_ns, end_ns]; {} when none."""
    lo_hour, hi_hour = start_ns // keys.HOUR_NS, end_ns // keys.HOUR_NS
    totals: Calls = {}
    for part in partitions:
        if part.day < start_ns // keys.DAY_NS or part.day > end_ns // keys.DAY_NS:
            continue
        ro = ReadOptions()
        ro.set_iterate_upper_bound(keys.EDGE + keys.u32(hi_hour + 1))
        it = part.data.iter(ro)
        it.seek(keys.EDGE + keys.u32(lo_hour))
        while it.valid():
            _hour, parent, child = keys.parse_edge_key(it.key())
            totals[(parent, child)] = totals.get((parent, child), 0) + keys.read_u64(it.value())
            it.next()
        del it
    return totals
