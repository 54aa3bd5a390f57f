"""Reading stored events: newest or oldest first, by user, by name or all, a page at a time.

A page ends with a cursor: the last event's key (hex). The next page starts strictly after it, so
walking the cursors gives every stored event once, even while new events arrive. A ``user_id`` is
a range read of that user's index, a ``name`` of the name's; session and service filter the rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from rocksdict import ReadOptions

from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.events.merge import RECORD, decode_record, eid_ts, name_key, user_key
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.keys import DAY_NS
from sidecar.storage.rocks.partitions import EVENTS

EID_BYTES = 20
_FETCH = 256


class BadCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StoredEvent:
    name: str
    ts_ns: int
    user_id: str | None
    session_id: str | None
    service: str | None
    id: str | None
    properties: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timestamp_ns": self.ts_ns,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "service": self.service,
            "id": self.id,
            "properties": self.properties,
        }


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[StoredEvent]
    next_cursor: str | None


def prop_matches(value: object, text: str) -> bool:
    """A property equals a query-string value: strings as text, bools as true/false, numbers by value
    (``amount=100`` matches 100 and 100.0); an event without the property never matches."""
    if value is None:
        return False
    if isinstance(value, bool):
        return text.lower() == ("true" if value else "false")
    if isinstance(value, int | float):
        try:
            return float(text) == value
        except ValueError:
            return False
    return value == text


class EventReader:
    def __init__(self, store: RocksStore, registry: EventRegistry) -> None:
        self._store = store
        self._registry = registry

    def list_events(
        self,
        name: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        service: str | None = None,
        from_ns: int | None = None,
        to_ns: int | None = None,
        order: str = "desc",
        limit: int = 100,
        after_cursor: str | None = None,
        props: Sequence[tuple[str, str]] = (),
    ) -> EventPage:
        """Events with ``from_ns <= ts < to_ns`` matching every filter given, ``limit`` at most.

        ``props`` are (key, text) pairs that must all match the event's property (see ``prop_matches``).
        """
        if order not in ("asc", "desc"):
            raise ValueError("order must be asc or desc")
        registry = self._registry
        prefix = RECORD
        if user_id is not None:
            code = registry.codes["u"].get(user_id)
            if code is None:
                return EventPage([], None)
            prefix = user_key(code)
        elif name is not None:
            code = registry.codes["n"].get(name)
            if code is None:
                return EventPage([], None)
            prefix = name_key(code)
        name_code = registry.codes["n"].get(name, -1) if name is not None else None
        service_code = registry.codes["s"].get(service, -1) if service is not None else None
        lower = keys.u64(max(from_ns or 0, 0))
        upper = keys.u64(min(to_ns, keys.MAX_U64)) if to_ns is not None else b"\xff" * 8
        cursor = bytes.fromhex(after_cursor) if after_cursor else None
        if cursor is not None and len(cursor) != EID_BYTES:
            raise BadCursor("cursor is not one this store gave")
        if cursor is not None:
            if order == "asc":
                lower = max(lower, cursor + b"\x00")
            else:
                upper = min(upper, cursor)
        out: list[StoredEvent] = []
        last: bytes | None = None
        for part in self._partitions(lower, upper, order == "desc"):
            wanted = limit - len(out)
            for key_eid, record in self._scan(part, prefix, lower, upper, order == "desc", wanted):
                n, u, s, session, ident, props_of = decode_record(record)
                if name_code is not None and n != name_code:
                    continue
                if service_code is not None and s != service_code:
                    continue
                if session_id is not None and session != session_id:
                    continue
                if props and not all(prop_matches(props_of.get(k), text) for k, text in props):
                    continue
                out.append(
                    StoredEvent(
                        registry.text("n", n) or "",
                        eid_ts(key_eid),
                        registry.text("u", u),
                        session,
                        registry.text("s", s),
                        ident,
                        props_of,
                    )
                )
                last = key_eid
                if len(out) >= limit:
                    return EventPage(out, last.hex())
        return EventPage(out, None)

    def property_keys(self, name: str | None) -> list[str]:
        """The property keys events called ``name`` (None: any event) have carried, sorted."""
        if name is None:
            return self._registry.keys_of(None)
        code = self._registry.codes["n"].get(name)
        return [] if code is None else self._registry.keys_of(code)

    def _partitions(self, lower: bytes, upper: bytes, newest_first: bool) -> list[Partition]:
        first = keys.read_u64(lower[:8].ljust(8, b"\x00")) // DAY_NS
        last = keys.read_u64(upper[:8].ljust(8, b"\xff")) // DAY_NS
        return [
            p
            for p in self._store.partitions(EVENTS, newest_first=newest_first)
            if p.end_day > first and p.day <= last
        ]

    def _scan(
        self, part: Partition, prefix: bytes, lower: bytes, upper: bytes, reverse: bool, wanted: int
    ) -> Iterator[tuple[bytes, bytes]]:
        """(eid, record) in key order (reversed if asked) for keys ``prefix + eid`` in [lower, upper).

        Through an index, records are fetched ``wanted`` at first (a page fetches no record it
        will not show unless filters skip some), then twice as many each time up to _FETCH: each
        fetch is a random read per record, most of a user's page's time."""
        # rocksdict applies the upper bound but not the lower one: seek to it, or check it going back.
        ro = ReadOptions()
        ro.set_iterate_upper_bound(prefix + upper)
        it = part.data.iter(ro)
        floor = prefix + lower
        if reverse:
            it.seek_to_last()
        else:
            it.seek(floor)
        step = it.prev if reverse else it.next

        def more() -> bool:
            return bool(it.valid()) and (not reverse or it.key() >= floor)

        start = len(prefix)
        if prefix == RECORD:
            while more():
                yield it.key()[start:], it.value()
                step()
            return
        fetch = max(min(wanted, _FETCH), 1)
        while True:  # an index: gather eids, then fetch their records in one multi-get
            eids: list[bytes] = []
            while more() and len(eids) < fetch:
                eids.append(it.key()[start:])
                step()
            if not eids:
                return
            fetch = min(fetch * 2, _FETCH)
            records = cast(list[bytes | None], part.data.get([RECORD + e for e in eids]))
            for e, record in zip(eids, records, strict=True):
                if record is not None:
                    yield e, record
