"""One batch, many consumers: the store decides the answer, taps see what it acknowledged.

The Collector's fan-out calls every consumer in turn and merges their errors; here only the store
may decide whether the client gets its acknowledgement, since the promise is "acknowledged means in
the WAL". Taps (span metrics, the service graph, forwarding) get each batch the store acknowledged,
and never one it refused: the client will send that one again. A tap is fed through its own
bounded queue by its own task, so a slow tap cannot delay an answer and a failing one cannot change
it: when a tap falls behind, its oldest batches are dropped and counted (as the OpenTelemetry SDK's
batch processor does), and its exceptions are logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

from sidecar.pipeline.consumer import Consumer

log = logging.getLogger(__name__)
B = TypeVar("B")
MAX_PENDING = 64  # batches a tap may be behind before its oldest is dropped


class Tap(Generic[B]):
    """A consumer fed from a bounded queue by one task of its own; ``offer`` never waits."""

    def __init__(self, consumer: Consumer[B], name: str, max_pending: int = MAX_PENDING) -> None:
        self.name = name
        self.dropped = 0  # batches dropped because the tap was behind
        self.failed = 0  # batches whose consume raised
        self._consumer = consumer
        self._pending: deque[B] = deque()
        self._max_pending = max_pending
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def offer(self, batch: B) -> None:
        """Queue a batch for the tap; costs an append, whatever the tap does with it."""
        if self._closing:
            return
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
            if _worth_a_line(self.dropped):
                log.warning("tap %s is behind: oldest batch dropped (%d so far)", self.name, self.dropped)
        self._pending.append(batch)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"tap {self.name}")

    async def close(self, timeout: float) -> None:
        """Let the tap finish what is queued within ``timeout``, then cancel it; safe to call twice."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        _, pending = await asyncio.wait({task}, timeout=timeout)
        if pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.warning(
                "tap %s cancelled after %.3g s with %d batches still queued",
                self.name,
                timeout,
                len(self._pending),
            )

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending.popleft()
            try:
                await self._consumer.consume(batch)
            except Exception as exc:
                self.failed += 1
                if _worth_a_line(self.failed):  # the first with its traceback: likely a bug in the tap
                    log.warning(
                        "tap %s failed (failure %d): %s",
                        self.name,
                        self.failed,
                        exc,
                        exc_info=self.failed == 1,
                    )


def _worth_a_line(count: int) -> bool:
    """Log the 1st, 2nd, 4th, 8th… occurrence: a tap that keeps failing cannot flood the log."""
    return count & (count - 1) == 0


class FanOut(Generic[B]):
    """The consumer the receivers call: the store's answer is the answer; taps follow, never awaited."""

    def __init__(self, store: Consumer[B], taps: Sequence[Tap[B]] = ()) -> None:
        self._store = store
        self.taps = tuple(taps)

    async def consume(self, batch: B) -> None:
        """Return (acknowledge) or raise exactly as the store does; then offer the batch to the taps."""
        await self._store.consume(batch)
        for tap in self.taps:
            tap.offer(batch)

    async def close(self, timeout: float) -> None:
        """After the receivers have stopped: give the taps ``timeout`` to catch up; safe to call twice."""
        await asyncio.gather(*(tap.close(timeout) for tap in self.taps))
