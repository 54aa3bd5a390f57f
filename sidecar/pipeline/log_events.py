"""Logs that carry business events: the records go to the log store, the events to the events store.

A log record with ``event_name`` (or the older ``event.name`` attribute) is a business event too
(CONTRACTS §6). The export is acknowledged only once both stores hold what they were given, so an
acknowledged event is never missing; a refusal by either makes the client resend, and both stores
recognise the resend (logs by content, events by the id ``as_events`` derives from content).
"""

from __future__ import annotations

import asyncio

from sidecar.ingest.logs import as_events
from sidecar.pipeline.consumer import Consumer
from sidecar.storage.prepared_logs import PreparedLogs
from sidecar.storage.rocks.events.merge import EventBatch


class LogsWithEvents:
    """A logs consumer that also hands the requests' business events to the events consumer."""

    def __init__(self, logs: Consumer[PreparedLogs], events: Consumer[EventBatch]) -> None:
        self._logs = logs
        self._events = events

    async def consume(self, batch: PreparedLogs) -> None:
        if not batch.events:
            await self._logs.consume(batch)
            return
        events = EventBatch(as_events(batch.events))
        results = await asyncio.gather(
            self._logs.consume(batch), self._events.consume(events), return_exceptions=True
        )
        for result in results:  # both settled: nothing is left running when the client is answered
            if isinstance(result, BaseException):
                raise result
