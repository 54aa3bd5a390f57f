"""The SpanWriter the receivers hold: prepared spans into the shared write queue, merged by TraceMerge.

It also keeps the service graph's waits ending on an idle sidecar: :meth:`TraceWriter.tick` runs on
the event loop and queues a write of no spans when client or server halves wait and no write ended
waits for a second (or ``wait_s`` if shorter). The write itself runs on the writer thread like
every other, so RocksDB is still written by that thread alone.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future

from sidecar.storage.api import Overloaded, StoreClosed
from sidecar.storage.pairing import DEFAULT_MAX_PENDING, DEFAULT_WAIT_S
from sidecar.storage.prepared import PreparedTraces
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.servicegraph import ServiceGraph
from sidecar.storage.rocks.traces.merge import MAX_TRACES_PER_WRITE, TraceMerge
from sidecar.storage.rocks.write_queue import WriteQueue

SIGNAL = "traces"
TICK_S = 1.0  # how often an idle writer looks for service-graph waits that are over (at most)


class TraceWriter:
    """Registers the trace signal on ``queue`` (limits in spans); the queue's owner starts and closes it."""

    def __init__(
        self,
        queue: WriteQueue,
        registry: Registry,
        max_batch_spans: int,
        max_queue_spans: int,
        reprepare: Callable[[bytes], PreparedTraces],
        graph_wait_s: float = DEFAULT_WAIT_S,
        graph_max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._queue = queue
        # The dependencies pair calls as the service graph metrics do (metrics.servicegraph.*).
        graph = self._graph = ServiceGraph(graph_wait_s, graph_max_pending)
        self.tick_s = min(graph_wait_s, TICK_S)
        queue.register(
            SIGNAL,
            TraceMerge(queue.store, registry, reprepare, graph),
            max_batch=min(max_batch_spans, MAX_TRACES_PER_WRITE),
            max_queue=max_queue_spans,
            unit="spans",
        )

    def submit(self, prepared: PreparedTraces) -> Future[None]:
        """Queue a prepared request; the future resolves once it is in the WAL."""
        if not prepared.parts:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return self._queue.submit(SIGNAL, prepared, prepared.accepted)

    def submit_async(self, prepared: PreparedTraces) -> asyncio.Future[None]:
        """Like submit, for the calling event loop (woken once per write, not once per request)."""
        if not prepared.parts:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return self._queue.submit_async(SIGNAL, prepared, prepared.accepted)

    def expire_waiting(self) -> Future[None] | None:
        """Queue a write of no spans if the service graph has waits to end (see :meth:`tick`).

        Never blocks: the queue's lock is held only to append. None when nothing was queued.
        """
        if not self._graph.due(self.tick_s):
            return None
        nothing = PreparedTraces([], defaultdict(), 0, 0, [])
        try:
            return self._queue.submit(SIGNAL, nothing, 0)
        except (Overloaded, StoreClosed):  # spans are queued (their write ends the waits) or shutting down
            return None

    async def tick(self) -> None:
        """Until cancelled (at shutdown, before the queue closes): every ``tick_s``, expire_waiting()."""
        while True:
            await asyncio.sleep(self.tick_s)
            self.expire_waiting()
