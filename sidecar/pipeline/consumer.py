"""The one-method consumer interface (the Collector's ``consumer.Traces``) and the store behind it.

A receiver hands each decoded batch to a :class:`Consumer` and answers the client by what
``consume`` did: returning means acknowledged, raising means refused. The store's consumer returns
only once the write-ahead log holds the batch, so an acknowledged batch survives a crash.
"""

from __future__ import annotations

import asyncio
from typing import Generic, Protocol, TypeVar

from sidecar.storage.prepared import PreparedTraces

B = TypeVar("B")
B_contra = TypeVar("B_contra", contravariant=True)


class Consumer(Protocol[B_contra]):
    """Takes batches of one signal, as its receivers decoded them."""

    async def consume(self, batch: B_contra) -> None:
        """Return once the batch is kept (for the store: in the WAL).

        Raises ``Overloaded`` or ``StoreClosed`` (``sidecar.storage.api``) to refuse it for now (the
        client retries), any other exception when keeping it failed. Must not block the event loop.
        """
        ...


TracesConsumer = Consumer[PreparedTraces]


class AsyncWriter(Protocol[B_contra]):
    """A storage writer as the event loop sees it (``SpanWriter`` for traces)."""

    def submit_async(self, batch: B_contra) -> asyncio.Future[None]: ...


class StoreConsumer(Generic[B]):
    """The store as a consumer: queues the batch on the writer and waits for durability."""

    def __init__(self, writer: AsyncWriter[B]) -> None:
        self._writer = writer

    async def consume(self, batch: B) -> None:
        await self._writer.submit_async(batch)  # Overloaded / StoreClosed raise before any wait
