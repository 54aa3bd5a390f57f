"""The dedupe filter: which client ids a month partition certainly does not hold, without a read.

Every event with an ``id`` is looked up in its month's ``I`` keys before it is stored (merge.py).
Nearly all of those ids are new, and a point lookup of an absent key still costs RocksDB a probe of
every memtable and file: 1.5 µs per id on a fresh store, 5-10 µs once a month held a million
events (the filter blocks evicted from a 32 MiB block cache), half the writer's time at 30k
events/s. A Bloom filter per month in memory (about 1.5 bytes per id) says "certainly absent" for
all but about 1 % of them; only the rest are read. The answer is the same either way: the filter
only decides which ids are worth a read.

A month's filter is filled from its stored ``I`` keys one slice per write (SCAN_STEP keys), so a
restart on a full month does not stall the writer; until its scan ends, every id of that month is
read, as before. The ids of each write go into the filter when they are merged; a write that then
fails leaves bits that only cost a read. A filter grows by stages (the next twice the size) and a
month past MAX_BYTES of them goes back to reading every id.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from rocksdict import ReadOptions

from sidecar.core._event_merge import BloomFilter
from sidecar.storage.rocks.db import RocksStore
from sidecar.storage.rocks.keys import prefix_end
from sidecar.storage.rocks.partitions import EVENTS

ID = b"I"
SCAN_STEP = 50_000  # stored ids read into a month's filter per write until it has them all
FIRST_CAPACITY = 1 << 18  # ids in a month's first stage (384 KiB)
MAX_BYTES = 64 << 20  # per month; past it that month's ids are all read again
KEPT_MONTHS = 4


@dataclass(slots=True)
class MonthIds:
    """One month's filter: ``cursor`` is the next stored key to scan (None once all are in)."""

    stages: list[BloomFilter] = field(default_factory=lambda: [BloomFilter(FIRST_CAPACITY)])
    cursor: bytes | None = ID
    disabled: bool = False

    def add(self, keys: list[bytes]) -> None:
        last = self.stages[-1]
        if last.count + len(keys) > last.capacity:
            if sum(stage.nbytes for stage in self.stages) + 2 * last.nbytes > MAX_BYTES:
                self.disabled = True
                self.stages = []
                return
            last = BloomFilter(max(2 * last.capacity, len(keys)))
            self.stages.append(last)
        last.add(keys)

    def maybe(self, keys: list[bytes]) -> list[bytes]:
        if len(self.stages) == 1:
            return self.stages[0].maybe(keys)
        found = set().union(*(stage.maybe(keys) for stage in self.stages))
        return [key for key in keys if key in found]


class IdFilter:
    """The writer's filters of recent months (it alone touches them)."""

    def __init__(self, store: RocksStore) -> None:
        self._store = store
        self._months: OrderedDict[int, MonthIds] = OrderedDict()

    def candidates(self, month: int, keys: list[bytes]) -> list[bytes]:
        """The ``I|id`` keys of ``keys`` that the partition starting on day ``month`` may hold (all
        of them while its filter is being filled or when it is off)."""
        ids = self._month(month)
        if ids.disabled:
            return keys
        if ids.cursor is not None:
            self._scan(month, ids)
            if ids.cursor is not None:
                return keys
        return ids.maybe(keys)

    def add(self, month: int, keys: list[bytes]) -> None:
        """Note ``keys`` as (about to be) stored in month ``month``."""
        ids = self._month(month)
        if not ids.disabled:
            ids.add(keys)

    def _month(self, month: int) -> MonthIds:
        ids = self._months.get(month)
        if ids is None:
            ids = self._months[month] = MonthIds()
            if self._store.partition(month, EVENTS) is None:
                ids.cursor = None  # nothing stored yet: every id of it goes through add()
            while len(self._months) > KEPT_MONTHS:
                self._months.popitem(last=False)
        self._months.move_to_end(month)
        return ids

    def _scan(self, month: int, ids: MonthIds) -> None:
        part = self._store.partition(month, EVENTS)
        if part is None or ids.cursor is None:
            ids.cursor = None
            return
        ro = ReadOptions()
        ro.set_iterate_upper_bound(prefix_end(ID))
        it = part.data.iter(ro)
        found: list[bytes] = []
        try:
            it.seek(ids.cursor)
            while it.valid() and len(found) < SCAN_STEP:
                found.append(it.key())
                it.next()
            ids.cursor = found[-1] + b"\x00" if it.valid() else None
        finally:
            del it  # an open iterator would keep the store from closing
        if found:
            ids.add(found)
