"""Signals and their time partitions: which column family holds which signal's data for which period.

Each signal keeps its data in column families of its own, one per period, named ``<prefix>YYYYMMDD``
after the period's first UTC day (traces: ``tYYYYMMDD``, one per day, as data directories have always
held them). Retention drops a signal's periods whole, so the width is a trade: a period outlives its
retention by up to one width, and every open period costs a column family with its own memtables.
Days suit traces and logs; months suit business events kept for a year or more.

Every data key sits inside a period's column family, so a signal never shares one with another and
dropping one signal's old periods cannot touch another's data.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rocksdict import ColumnFamily, Rdict, ReadOptions

from sidecar.storage.rocks.keys import TRACE_PARTITION_PREFIX, partition_day, partition_name, prefix_end

_EPOCH = _dt.date(1970, 1, 1)


def _date(day: int) -> _dt.date:
    return _EPOCH + _dt.timedelta(days=day)


def _day(date: _dt.date) -> int:
    return (date - _EPOCH).days


class Width(enum.Enum):
    """How much time one partition covers, in UTC calendar units (days since the epoch in and out)."""

    DAY = "day"
    MONTH = "month"

    def start(self, day: int) -> int:
        """First day of the period holding ``day``."""
        if self is Width.DAY:
            return day
        return _day(_date(day).replace(day=1))

    def next(self, start: int) -> int:
        """First day of the period after the one starting on ``start``."""
        if self is Width.DAY:
            return start + 1
        date = _date(start)
        year, month = (date.year + 1, 1) if date.month == 12 else (date.year, date.month + 1)
        return _day(_dt.date(year, month, 1))


@dataclass(frozen=True, slots=True)
class Signal:
    """One kind of data with partitions of its own; ``prefix`` is part of every partition name on disk."""

    name: str
    prefix: str
    width: Width = Width.DAY

    def __post_init__(self) -> None:
        """Letters only, so ``<prefix>YYYYMMDD`` parses back unambiguously whatever the other prefixes."""
        if not (self.prefix.isascii() and self.prefix.isalpha() and self.prefix.islower()):
            raise ValueError(f"signal {self.name}: prefix must be lowercase letters, got {self.prefix!r}")

    def period(self, day: int) -> int:
        """First day of the partition that holds ``day``: the partition's key."""
        return self.width.start(day)

    def period_end(self, start: int) -> int:
        """First day after the partition that starts on ``start``."""
        return self.width.next(start)

    def partition_name(self, day: int) -> str:
        return partition_name(self.period(day), self.prefix)

    def parse(self, name: str) -> int | None:
        """The start day of this signal's partition called ``name``, or None when it is not one."""
        day = partition_day(name, self.prefix)
        return day if day is not None and self.period(day) == day else None


TRACES = Signal("traces", TRACE_PARTITION_PREFIX, Width.DAY)
LOGS = Signal("logs", "l", Width.DAY)  # lYYYYMMDD: operators search hours and days back
# Business events are kept for a year or more: a month each keeps the column families few.
EVENTS = Signal("events", "e", Width.MONTH)
# The signals a store knows by default.
SIGNALS: tuple[Signal, ...] = (TRACES, EVENTS, LOGS)


def check_signals(signals: Iterable[Signal]) -> tuple[Signal, ...]:
    """The signals as a tuple, refusing two that share a name or a prefix (their partitions would mix)."""
    result = tuple(signals)
    for attribute in ("name", "prefix"):
        values = [getattr(s, attribute) for s in result]
        if len(set(values)) != len(values):
            raise ValueError(f"signals must have distinct {attribute}s: {values}")
    return result


def parse_partition(name: str, signals: Iterable[Signal]) -> tuple[Signal, int] | None:
    """Which signal's partition a column family is, and its start day; None for any other family."""
    for signal in signals:
        day = signal.parse(name)
        if day is not None:
            return signal, day
    return None


@dataclass(slots=True)
class Partition:
    """One open partition: ``day`` is its first day (for day-wide signals, simply its day)."""

    day: int
    name: str
    data: Rdict  # column-family view for reads
    handle: ColumnFamily  # for WriteBatch
    signal: Signal = TRACES

    @property
    def end_day(self) -> int:
        """First day after this partition: retention may drop it once that day is old enough."""
        return self.signal.period_end(self.day)

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) under ``prefix``, in key order."""
        return self.range(prefix, prefix_end(prefix))

    def range(self, low: bytes, high: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) with ``low <= key < high``, in key order: one seek, then the upper
        bound stops the iterator (rocksdict's lower-bound setter sets the upper one: seek)."""
        ro = ReadOptions()
        ro.set_iterate_upper_bound(high)
        it = self.data.iter(ro)
        try:
            it.seek(low)
            while it.valid():
                yield it.key(), it.value()
                it.next()
        finally:
            del it  # an open iterator would keep the store from closing
