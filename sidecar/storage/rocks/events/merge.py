"""The event merge: validated business events into the write queue's WriteBatch, with indexes.

Key layout (big-endian; ``eid`` = ts_ns(8) | write_ns(8) | index(4), unique, ordered by event time).

Partition column family ``eYYYYMM01`` (UTC month of the event's timestamp; retention drops it whole):
    V | eid                              -> record: name(4) user(4) service(4) | len(2) session
                                            | len(1) id | properties as compact JSON
    U | user(4) | eid                    -> ""   one user's timeline is one range read
    N | name(4) | eid                    -> ""   one event name's events, in time order
    I | id                               -> eid  client ids already stored (dedupe)
    H | rev(8) | seq(2), C | rev(8) | seq(2) | column
                                         -> the write's events again, as a column block (columns.py)
    Rc, Ru, Rs, Rv ...                   -> rollups of counts, user sets, rows and numbers by UTC
                                            hour or day and name (rollups.py)
Default column family (the events registry, loaded whole at start-up, see registry.py):
    E | kind(1) | code(4) -> text        kind n: event name, u: user id, s: service
    E | k | name(4) | property key -> "" the keys each name carried: CSV headers without a scan

Names, users and services are dictionary-coded (u32, 0 = absent) so records and index keys stay
small, and the analytics that follow (issue 8) can group on integers; their rollups are meant to
go into this same WriteBatch. Everything of one write - records, indexes, ids, registry entries -
is in one WriteBatch, so an acknowledged event is always indexed and never half-stored after a kill.

Dedupe: an event whose ``id`` is in its month's ``I`` (or the neighbouring month's, within a day
of the boundary, where a retry stamped with the receive time may land) or earlier in the same
write is a duplicate: acknowledged, counted, not stored.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, cast

from rocksdict import ColumnFamily, WriteBatch

from sidecar.core._event_merge import EventRows, ids_by_month
from sidecar.ingest.events import Event
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import RocksStore
from sidecar.storage.rocks.events.columns import block_suffix, put_block
from sidecar.storage.rocks.events.ids import IdFilter
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.events.rollups import RollupWriter, WriteRows
from sidecar.storage.rocks.partitions import EVENTS

RECORD = b"V"
BY_USER = b"U"
BY_NAME = b"N"
_EID = struct.Struct(">QQI")
_HEAD = struct.Struct(">IIIH")
_U32 = struct.Struct(">I")
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(slots=True)
class EventBatch:
    """One request's valid events; the merge fills in ``duplicates`` before the write is acknowledged."""

    events: list[Event]
    duplicates: int = 0
    stored: list[bytes] = field(default_factory=list)  # eids written, in order (for tests and taps)


def eid_ts(key_eid: bytes) -> int:
    return int(_EID.unpack_from(key_eid)[0])


def decode_record(data: bytes) -> tuple[int, int, int, str | None, str | None, dict[str, object]]:
    """(name, user, service codes, session_id, id, properties)."""
    name, user, service, n = _HEAD.unpack_from(data)
    at = _HEAD.size
    session = data[at : at + n].decode() if n else None
    at += n
    m = data[at]
    ident = data[at + 1 : at + 1 + m].decode() if m else None
    props = json.loads(data[at + 1 + m :])
    return name, user, service, session, ident, props


def user_key(user: int) -> bytes:
    return BY_USER + _U32.pack(user)


def name_key(name: int) -> bytes:
    return BY_NAME + _U32.pack(name)


class _Months:
    """The month partitions of a UTC day's events (cached: dates are slow)."""

    def __init__(self, store: RocksStore) -> None:
        self._store = store
        self._of: dict[int, tuple[int, ...]] = {}

    def of(self, day: int) -> tuple[int, ...]:
        """Start days of the months an id sent on ``day`` may be stored in: its own, and the
        neighbouring one when ``day`` is the first or last of its month."""
        months = self._of.get(day)
        if months is None:
            start = EVENTS.period(day)
            end = EVENTS.period_end(start)
            months = (start,)
            if day == start:
                months += (EVENTS.period(start - 1),)
            if day == end - 1:
                months += (end,)
            if len(self._of) > 4096:
                self._of.clear()
            self._of[day] = months
        return months

    def part(self, day: int) -> tuple[int, ColumnFamily]:
        """The month partition an event of UTC ``day`` is stored in: its start day and handle."""
        return self.of(day)[0], self._store.partition_for_write(day, EVENTS).handle


class EventMerge:
    """The write queue's merger for events; its state belongs to the writer thread."""

    def __init__(self, store: RocksStore, registry: EventRegistry, dimensions: tuple[str, ...] = ()) -> None:
        self._store = store
        self._registry = registry
        self._dimensions = dimensions
        self._default_cf = store.db.get_column_family_handle("default")
        # Not a method of self: EventRows keeps it, and a cycle would keep the store's handles open.
        self._months = _Months(store)
        self._rollups = RollupWriter(store)
        self._ids = IdFilter(store)
        codes = registry.codes
        self._rows = EventRows(
            codes["n"],
            codes["u"],
            codes["s"],
            registry.code,
            registry.keys.keys,
            registry.note_keys,
            self._months.part,
            lambda props: _JSON(props).encode(),
        )

    def _known_ids(self, items: list[EventBatch]) -> set[bytes]:
        """Ids of these events already stored: one multi-get per month looked at, of the ids its
        filter (ids.py) cannot rule out."""
        wanted = ids_by_month(items, self._months.of)
        known: set[bytes] = set()
        for month, idents in wanted.items():
            part = self._store.partition(month, EVENTS)
            if part is not None:
                asked = self._ids.candidates(month, idents)
                if asked:
                    found = cast(list[bytes | None], part.data.get(cast(list[Any], asked)))
                    known.update(key for key, value in zip(asked, found, strict=True) if value is not None)
            self._ids.add(month, idents)
        return known

    def merge(self, items: list[EventBatch], batch: WriteBatch, ns: int) -> None:
        """Records and index keys per event in the compiled loop; the column blocks and rollups
        then take the gathered rows whole."""
        known = self._known_ids(items)
        blocks = self._rows.merge(items, known, batch, self._default_cf, ns)
        rev = keys.rev(ns)
        rolled = WriteRows(dimensions=self._dimensions)
        for cf, rows in blocks.values():
            put_block(rows, block_suffix(rev, 0), batch, cf)
            rolled.extend(rows)
        self._rollups.add(rolled, batch, ns)

    def after_write(self) -> None:
        self._registry.commit()
        self._rollups.after_write()

    def write_failed(self) -> None:
        self._registry.rollback()
        self._rollups.write_failed()
