"""The events writer: validated events into the shared write queue, merged by EventMerge."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

from sidecar.storage.rocks.events.merge import EventBatch, EventMerge
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.write_queue import WriteQueue

SIGNAL = "events"


class EventWriter:
    """Registers the events signal on ``queue`` (limits in events); the queue's owner starts and closes it."""

    def __init__(
        self,
        queue: WriteQueue,
        registry: EventRegistry,
        max_batch: int,
        max_queue: int,
        dimensions: tuple[str, ...] = (),
    ) -> None:
        """``dimensions``: the properties the count rollups also split by (see rollups.py)."""
        self._queue = queue
        merge = EventMerge(queue.store, registry, dimensions)
        queue.register(SIGNAL, merge, max_batch=max_batch, max_queue=max_queue, unit="events")

    def submit(self, batch: EventBatch) -> Future[None]:
        """Queue a batch; the future resolves once it is in the WAL (``batch.duplicates`` then set)."""
        return self._queue.submit(SIGNAL, batch, max(len(batch.events), 1))

    def submit_async(self, batch: EventBatch) -> asyncio.Future[None]:
        """Like submit, for the calling event loop."""
        return self._queue.submit_async(SIGNAL, batch, max(len(batch.events), 1))
