"""The SpanWriter the receivers hold: prepared spans into the shared write queue, merged by TraceMerge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future

from sidecar.storage.pairing import DEFAULT_MAX_PENDING, DEFAULT_WAIT_S
from sidecar.storage.prepared import PreparedTraces
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.servicegraph import ServiceGraph
from sidecar.storage.rocks.traces.merge import MAX_TRACES_PER_WRITE, TraceMerge
from sidecar.storage.rocks.write_queue import WriteQueue

SIGNAL = "traces"


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
        graph = ServiceGraph(graph_wait_s, graph_max_pending)
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
