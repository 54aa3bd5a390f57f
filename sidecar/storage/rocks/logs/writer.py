"""The log writer the receivers' pipeline holds: prepared records into the shared write queue."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

from sidecar.storage.prepared_logs import PreparedLogs
from sidecar.storage.rocks.key_registry import KeyRegistry
from sidecar.storage.rocks.logs.merge import LogMerge, attribute_keys
from sidecar.storage.rocks.write_queue import WriteQueue

SIGNAL = "logs"


class LogWriter:
    """Registers the logs signal on ``queue`` (limits in log records); the queue's owner runs it."""

    def __init__(
        self,
        queue: WriteQueue,
        max_batch_records: int,
        max_queue_records: int,
        keys_seen: KeyRegistry | None = None,
    ) -> None:
        """``keys_seen``: the attribute-key registry the log reader also holds (loaded here if None)."""
        self._queue = queue
        queue.register(
            SIGNAL,
            LogMerge(queue.store, keys_seen or attribute_keys(queue.store.db)),
            max_batch=max_batch_records,
            max_queue=max_queue_records,
            unit="log records",
        )

    def submit(self, prepared: PreparedLogs) -> Future[None]:
        """Queue a prepared request; the future resolves once it is in the WAL."""
        if not prepared.groups:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return self._queue.submit(SIGNAL, prepared, prepared.accepted)

    def submit_async(self, prepared: PreparedLogs) -> asyncio.Future[None]:
        """Like submit, for the calling event loop."""
        if not prepared.groups:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return self._queue.submit_async(SIGNAL, prepared, prepared.accepted)
