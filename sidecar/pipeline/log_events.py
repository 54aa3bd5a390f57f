"""Logs that carry business events: the records go to the log store, the events to the events store.

A log record with ``event_name`` (or the older ``event.name`` attribute) is a business event too
(CONTRACTS §6). The export is acknowledged only once both stores hold what they were given, so an
acknowledged event is never missing; a refusal by either makes the client resend, and both stores
recognise the resend (logs by content, events by the id ``as_events`` derives from content).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sidecar.ingest.events import Event, Limits
from sidecar.ingest.logs import as_events
from sidecar.pipeline.consumer import Consumer
from sidecar.storage.prepared_logs import PreparedLogs
from sidecar.storage.rocks.events.merge import EventBatch


class LogsWithEvents:
    """A logs consumer that also hands the requests' business events to the events consumer.

    An event outside the window ``POST /v1/events`` accepts (older than the events' retention, or
    too far in the future) is left out of the events store, as that route would refuse it: stored,
    it would be acknowledged and then dropped with its month by retention. The log record itself
    is kept (logs are filed by arrival).
    """

    def __init__(
        self,
        logs: Consumer[PreparedLogs],
        events: Consumer[EventBatch],
        limits: Limits | None = None,
        on_skipped: Callable[[int], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """``on_skipped(n)`` hears of events left out by the window (the server logs them)."""
        self._logs = logs
        self._events = events
        self._limits = limits
        self._on_skipped = on_skipped
        self._clock = clock

    def _in_window(self, found: list[Event]) -> list[Event]:
        if self._limits is None:
            return found
        now = self._clock()
        low, high = now - self._limits.max_past_ns, now + self._limits.max_future_ns
        kept = [e for e in found if low <= e.ts_ns <= high]
        if len(kept) < len(found) and self._on_skipped is not None:
            self._on_skipped(len(found) - len(kept))
        return kept

    async def consume(self, batch: PreparedLogs) -> None:
        found = self._in_window(as_events(batch.events)) if batch.events else []
        if not found:
            await self._logs.consume(batch)
            return
        events = EventBatch(found)
        results = await asyncio.gather(
            self._logs.consume(batch), self._events.consume(events), return_exceptions=True
        )
        for result in results:  # both settled: nothing is left running when the client is answered
            if isinstance(result, BaseException):
                raise result
