"""Retention: which partitions to drop, and the background check that drops them.

Each signal has its own age limit (``storage.<signal>.retention_days``). A check drops the
signal's partitions that end at least that many whole days before today, so an item is kept at
least its retention and at most one partition width more (a day for traces), and its files go at
once. Signals never share a partition, so one signal's retention cannot drop another's data.

A check runs its policies in order. The disk budget (a later issue) is one more policy after the
age limits: a policy is any callable that gets the store and the time and drops what it must.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.config.model import StorageConfig
from sidecar.storage.rocks.db import RocksStore
from sidecar.storage.rocks.keys import DAY_NS
from sidecar.storage.rocks.partitions import EVENTS, LOGS, TRACES, Signal, parse_partition

log = logging.getLogger(__name__)


class Policy(Protocol):
    def __call__(self, store: RocksStore, now_ns: int) -> list[str]:
        """Drop what this policy no longer keeps at ``now_ns``; return the dropped partitions' names."""
        ...


@dataclass(frozen=True, slots=True)
class MaxAge:
    """Keep ``signal``'s data ``days`` whole UTC days after its partition ends, then drop the partition."""

    signal: Signal
    days: int

    def __call__(self, store: RocksStore, now_ns: int) -> list[str]:
        return store.drop_before(now_ns // DAY_NS - self.days, self.signal)


def age_policies(storage: StorageConfig) -> list[Policy]:
    """One age limit per stored signal, from its config section."""
    return [
        MaxAge(TRACES, storage.traces.retention_days),
        MaxAge(EVENTS, storage.events.retention_days),
        MaxAge(LOGS, storage.logs.retention_days),
    ]


class Retention:
    """Runs the policies now (``check``) or every ``interval_s`` on the event loop (``start``/``stop``)."""

    def __init__(
        self,
        store: RocksStore,
        policies: Sequence[Policy],
        interval_s: float,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._store = store
        self._policies = tuple(policies)
        self._interval_s = interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._check: asyncio.Future[list[str]] | None = None
        # For the sidecar's own metrics, read at scrape time: partitions dropped per signal name,
        # checks run, and policies that failed.
        self.dropped: dict[str, int] = {s.name: 0 for s in store.signals}
        self.checks = 0
        self.failures = 0

    @classmethod
    def from_config(
        cls, store: RocksStore, storage: StorageConfig, clock: Callable[[], int] = time.time_ns
    ) -> Retention:
        return cls(store, age_policies(storage), storage.retention_check_interval_s, clock)

    def check(self) -> list[str]:
        """Run every policy once, in order, at one instant; blocking (RocksDB drops column families).

        A policy that fails is logged and skipped, so the others still run.
        """
        now = self._clock()
        dropped: list[str] = []
        for policy in self._policies:
            try:
                names = policy(self._store, now)
            except Exception:
                # One signal's failure must not keep the others' data past their retention.
                log.exception("retention: %r failed; the next check retries", policy)
                self.failures += 1
                continue
            for name in names:
                log.info("retention: dropped partition %s", name)
                found = parse_partition(name, self._store.signals)
                if found is not None:
                    signal = found[0].name
                    self.dropped[signal] = self.dropped.get(signal, 0) + 1
            dropped += names
        self.checks += 1
        return dropped

    def start(self) -> None:
        """Check now, then every ``interval_s``, off the event loop; needs a running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        """Stop checking, and wait for a check under way: the store may close right after."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._check is not None:
            await asyncio.gather(self._check, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._check = loop.run_in_executor(None, self.check)
            try:
                # Shielded: cancelling the loop must not abandon a drop half-way (stop() waits for it).
                await asyncio.shield(self._check)
            except Exception:  # the clock, say: retried at the next interval rather than ending retention
                log.exception("retention check failed; retrying in %s s", self._interval_s)
            await asyncio.sleep(self._interval_s)
