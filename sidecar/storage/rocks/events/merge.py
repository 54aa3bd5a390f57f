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

from rocksdict import WriteBatch

from sidecar.ingest.events import Event
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.events.columns import BlockRows, block_suffix, put_block
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.events.rollups import RollupWriter, WriteRows
from sidecar.storage.rocks.keys import DAY_NS
from sidecar.storage.rocks.partitions import EVENTS

RECORD = b"V"
BY_USER = b"U"
BY_NAME = b"N"
ID = b"I"
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


def eid(ts_ns: int, write_ns: int, index: int) -> bytes:
    return _EID.pack(ts_ns, write_ns, index)


def eid_ts(key_eid: bytes) -> int:
    return int(_EID.unpack_from(key_eid)[0])


def encode_record(name: int, user: int, service: int, event: Event) -> bytes:
    session = (event.session_id or "").encode()
    ident = (event.id or "").encode()
    props = _JSON(event.properties).encode()
    return b"".join(
        (_HEAD.pack(name, user, service, len(session)), session, bytes([len(ident)]), ident, props)
    )


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


class EventMerge:
    """The write queue's merger for events; its state belongs to the writer thread."""

    def __init__(self, store: RocksStore, registry: EventRegistry, dimensions: tuple[str, ...] = ()) -> None:
        self._store = store
        self._registry = registry
        self._dimensions = dimensions
        self._default_cf = store.db.get_column_family_handle("default")
        self._months_of: dict[int, tuple[int, ...]] = {}
        self._rollups = RollupWriter(store)

    def _months(self, day: int) -> tuple[int, ...]:
        """Start days of the months an id sent on ``day`` may be stored in: its own, and the
        neighbouring one when ``day`` is the first or last of its month (cached: dates are slow)."""
        months = self._months_of.get(day)
        if months is None:
            start = EVENTS.period(day)
            end = EVENTS.period_end(start)
            months = (start,)
            if day == start:
                months += (EVENTS.period(start - 1),)
            if day == end - 1:
                months += (end,)
            if len(self._months_of) > 4096:
                self._months_of.clear()
            self._months_of[day] = months
        return months

    def _known_ids(self, items: list[EventBatch]) -> set[bytes]:
        """Ids of these events already stored: one multi-get per month looked at."""
        wanted: dict[int, list[bytes]] = {}
        for item in items:
            for event in item.events:
                if event.id is not None:
                    ident = ID + event.id.encode()
                    for month in self._months(event.ts_ns // DAY_NS):
                        wanted.setdefault(month, []).append(ident)
        known: set[bytes] = set()
        for month, idents in wanted.items():
            part = self._store.partition(month, EVENTS)
            if part is not None:
                found = cast(list[bytes | None], part.data.get(cast(list[Any], idents)))
                known.update(ident for ident, value in zip(idents, found, strict=True) if value is not None)
        return known

    def merge(self, items: list[EventBatch], batch: WriteBatch, ns: int) -> None:
        """Everything of the write in one pass per event; the column blocks and rollups then take
        the gathered rows whole (numpy), not per event."""
        registry, default_cf, put = self._registry, self._default_cf, batch.put
        code = registry.code  # made on first sight; the dicts below answer the rest
        name_codes, user_codes, service_codes = (registry.codes[kind] for kind in ("n", "u", "s"))
        known = self._known_ids(items)
        index = 0
        months: dict[int, int] = {}  # day -> month of this write's events
        parts: dict[int, Partition] = {}
        blocks: dict[int, BlockRows] = {}  # month -> the rows of this write's column block
        for item in items:
            stored = item.stored
            for event in item.events:
                id_key = None
                if event.id is not None:
                    id_key = ID + event.id.encode()
                    if id_key in known:
                        item.duplicates += 1
                        continue
                    known.add(id_key)  # a second copy in this write is a duplicate too
                ts = event.ts_ns
                day = ts // DAY_NS
                month = months.get(day)
                if month is None:
                    month = months[day] = self._months(day)[0]
                part = parts.get(month)
                if part is None:
                    part = parts[month] = self._store.partition_for_write(day, EVENTS)
                    blocks[month] = []
                cf = part.handle
                name = name_codes.get(event.name) or code("n", event.name, batch, default_cf)
                props = event.properties
                if props:
                    registry.note_keys(name, props, batch, default_cf)
                user = service = 0  # none
                if user_id := event.user_id:
                    user = user_codes.get(user_id) or code("u", user_id, batch, default_cf)
                if service_name := event.service:
                    service = service_codes.get(service_name) or code("s", service_name, batch, default_cf)
                key = _EID.pack(ts, ns, index)
                index += 1
                blocks[month].append((ts, name, user, service, event.session_id, props))
                put(RECORD + key, encode_record(name, user, service, event), cf)
                put(BY_NAME + _U32.pack(name) + key, b"", cf)
                if user:
                    put(BY_USER + _U32.pack(user) + key, b"", cf)
                if id_key is not None:
                    put(id_key, key, cf)
                stored.append(key)
        rev = keys.rev(ns)
        rolled = WriteRows(dimensions=self._dimensions)
        for month, rows in blocks.items():
            put_block(rows, block_suffix(rev, 0), batch, parts[month].handle)
            rolled.extend(rows)
        self._rollups.add(rolled, batch, ns)

    def after_write(self) -> None:
        self._registry.commit()
        self._rollups.after_write()

    def write_failed(self) -> None:
        self._registry.rollback()
        self._rollups.write_failed()
