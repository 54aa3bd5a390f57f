"""One writer thread for every signal: what is queued merges into one WriteBatch per drain.

RocksDB's write holds the GIL, so one thread writes for the whole process (Datasette's writer, with a
reply future per request and a sentinel to stop). Each signal registers a :class:`Merger` that adds
its queued items to the drain's WriteBatch; the queue writes that batch once, then wakes the callers
of that write with one ``call_soon_threadsafe`` per event loop: one wake-up (and one GIL hand-over)
per write instead of one per request.

Limits count the signal's own items (spans, log records, events) and are kept per signal, so one
signal's backlog answers ``Overloaded`` to its own senders without taking another signal's room.

The queue keeps plain numbers for the sidecar's own metrics (``stats``, read at scrape time) and
hands each write's timing and size to ``on_write`` (set by the server): storage knows nothing of
Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from rocksdict import WriteBatch, WriteOptions

from sidecar.storage.api import Overloaded, StoreClosed
from sidecar.storage.rocks.db import RocksStore

log = logging.getLogger(__name__)

Reply = Future[None] | asyncio.Future[None]


class Merger(Protocol):
    """A signal's part of a write: turns its queued items into keys of the drain's WriteBatch."""

    def merge(self, items: list[Any], batch: WriteBatch, ns: int) -> None:
        """Add ``items`` (in queue order) to ``batch``; raising fails the whole write.

        ``ns`` is the write's time, unique and increasing, the same for every signal in the batch.
        Other signals put into the same batch: set its default column family before relying on it.
        """
        ...

    def after_write(self) -> None:
        """The batch is in the WAL: keep what ``merge`` set aside (caches that must match the store)."""
        ...

    def write_failed(self) -> None:
        """The batch was not written: forget what ``merge`` set aside."""
        ...


@dataclass(eq=False, slots=True)
class _Signal:
    name: str
    merger: Merger
    max_batch: int  # items one write takes (a lone larger item is written alone)
    max_queue: int  # items waiting before submit answers Overloaded
    unit: str  # what an item counts, for messages ("spans")
    queued: int = 0
    overloaded: int = 0  # submissions refused because the queue was full (backpressure)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One signal's queue, as a scrape sees it."""

    signal: str
    queued: int  # items waiting for the writer
    capacity: int  # max_queue
    overloaded: int  # submissions refused with Overloaded since start


@dataclass(frozen=True, slots=True)
class WriteDone:
    """One WriteBatch written: what ``on_write`` hears (on the writer thread; keep it cheap)."""

    seconds: float  # merge and write, until the WAL holds it
    items: dict[str, int]  # per signal
    bytes: int  # the WriteBatch's size


def _settle(futures: list[Reply], error: Exception | None) -> None:
    """Resolve one write's futures: thread futures here, each loop's in one callback."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for future in futures:
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append(future)
        elif error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting
            loop.call_soon_threadsafe(_settle_in_loop, waiting, error)


def _settle_in_loop(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in futures:
        if future.done():  # the caller gave up (cancelled)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class WriteQueue:
    """Serialises every signal's writes through one thread; a signal is registered before use."""

    def __init__(self, store: RocksStore, clock: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self._clock = clock
        self._last_ns = 0
        self._signals: dict[str, _Signal] = {}
        self._queue: deque[tuple[_Signal, Any, int, Reply]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._write_options = WriteOptions()
        self._write_options.sync = store.options.wal_sync
        store.attach_writer(self._thread.is_alive)
        self.on_write: Callable[[WriteDone], None] | None = None

    # -- set-up and lifecycle --------------------------------------------------------------
    def register(self, signal: str, merger: Merger, *, max_batch: int, max_queue: int, unit: str) -> None:
        """Accept ``signal``'s items, merged by ``merger``; limits count items (see submit)."""
        with self._cond:
            if signal in self._signals:
                raise ValueError(f"signal {signal!r} is registered already")
            self._signals[signal] = _Signal(signal, merger, max_batch, max_queue, unit)

    def start(self) -> None:
        self._thread.start()

    def stats(self) -> list[QueueStats]:
        with self._cond:
            return [QueueStats(s.name, s.queued, s.max_queue, s.overloaded) for s in self._signals.values()]

    @property
    def alive(self) -> bool:
        """The writer thread is running: the store must stay open."""
        return self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new writes, write what is queued, end the thread; safe to call twice or unstarted.

        What is still queued after ``timeout`` (or was queued on a queue never started) is refused
        with StoreClosed: never acknowledged, so clients send it again. The write in progress then
        gets up to ``timeout`` more. The thread has ended on return unless that one write outlasted
        it too: check ``alive`` before closing the store.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._cond:
            refused = [future for *_, future in self._queue]
            self._queue.clear()
            for sig in self._signals.values():
                sig.queued = 0
        if refused:
            log.warning("shutdown: %d queued writes refused after %.1f s", len(refused), timeout)
            _settle(refused, StoreClosed("the store shut down before this write"))
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- callers -----------------------------------------------------------------------------
    def submit(self, signal: str, item: Any, count: int) -> Future[None]:
        """Queue ``item`` (``count`` of the signal's units); the future resolves once it is in the WAL.

        Raises Overloaded when the signal's queue is full and StoreClosed once close() began.
        """
        future: Future[None] = Future()
        self._enqueue(self._signals[signal], item, count, future)
        return future

    def submit_async(self, signal: str, item: Any, count: int) -> asyncio.Future[None]:
        """submit() for callers on an event loop: the future belongs to the running loop."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(self._signals[signal], item, count, future)
        return future

    def _enqueue(self, sig: _Signal, item: Any, count: int, future: Reply) -> None:
        with self._cond:
            if self._stopping:
                raise StoreClosed("the store is shutting down")
            queued = sig.queued
            if queued and queued + count > sig.max_queue:
                sig.overloaded += 1
                raise Overloaded(f"write queue holds {queued} {sig.unit} (limit {sig.max_queue})")
            self._queue.append((sig, item, count, future))
            sig.queued = queued + count
            self._cond.notify()

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return  # stopping, and everything queued is written
                drained = self._take()
            self._write(drained)

    def _take(self) -> list[tuple[_Signal, Any, int, Reply]]:
        """Items in queue order until the next would take its signal past max_batch."""
        queue = self._queue
        taken: dict[_Signal, int] = {}
        drained = []
        while queue:
            sig, _, count, _ = queue[0]
            so_far = taken.get(sig, 0)
            if so_far and so_far + count > sig.max_batch:
                break
            drained.append(queue.popleft())
            taken[sig] = so_far + count
        for sig, count in taken.items():
            sig.queued -= count
        return drained

    def _next_ns(self) -> int:
        ns = max(self._clock(), self._last_ns + 1)
        self._last_ns = ns
        return ns

    def _write(self, drained: list[tuple[_Signal, Any, int, Reply]]) -> None:
        """Merge every signal's items into one batch, write it once, then wake the callers."""
        by_signal: dict[_Signal, list[Any]] = {}
        for sig, item, _, _ in drained:
            items = by_signal.get(sig)
            if items is None:
                by_signal[sig] = [item]
            else:
                items.append(item)
        error: Exception | None = None
        started = time.perf_counter()
        size = 0
        try:
            ns = self._next_ns()
            batch = WriteBatch(raw_mode=True)
            for sig, items in by_signal.items():
                sig.merger.merge(items, batch, ns)
            if not batch.is_empty():  # empty when everything was a resend of stored data
                size = batch.size_in_bytes()
                self.store.db.write(batch, self._write_options)
        except Exception as exc:
            counts = {sig: sum(n for s, _, n, _ in drained if s is sig) for sig in by_signal}
            log.exception("write of %s failed", ", ".join(f"{n} {sig.unit}" for sig, n in counts.items()))
            error = exc
        elapsed = time.perf_counter() - started
        for sig in by_signal:
            try:
                if error is None:
                    sig.merger.after_write()
                else:
                    sig.merger.write_failed()
            except Exception:  # the thread must live on, and the callers must hear back
                log.exception("%s: after the write", sig.name)
        _settle([future for *_, future in drained], error)
        if error is None and self.on_write is not None:
            written: dict[str, int] = {}
            for sig, _, count, _ in drained:
                written[sig.name] = written.get(sig.name, 0) + count
            if not size and not any(written.values()):
                return  # a merger's tick that found nothing to write (traces/writer.py): no write
            try:
                self.on_write(WriteDone(elapsed, written, size))
            except Exception:  # a metrics bug must not end the writer thread
                log.exception("on_write failed")
