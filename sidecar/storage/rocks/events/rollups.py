"""Event rollups: what dashboard questions read instead of every event, kept in the events' WriteBatch.

Key layout, in the month partition column family of the UTC day they describe (retention drops
them with their events; big-endian; ``name`` is the events registry's code, 0 for "any event";
``rev`` = 2**64-1 - write ns, one delta per write):

    Rc | day(4) | name(4)                  -> 24 u64 LE: events of that UTC day and name, per hour
    Ru | day(4) | name(4) | rev(8)         -> u32 LE users first seen that UTC day (for that name) in
                                              this write: a day's deltas together are its user set,
                                              each user once, so DAU is a sum of lengths
    Rm | day(4) | 0(4) | rev(8)          -> users (u32 LE)[n] then hour bits (u32 LE)[n]: the hours of
                                              the UTC day in which each user was first seen with
                                              any event, per write (OR them): distinct users of a
                                              zone whose days are not UTC days (Europe/Warsaw)
    RU | day(4) | 0(4) | rev(8)            -> u32 LE users first seen in the UTC month that starts on
                                              ``day``, with any event, per write: the month's user
                                              set in a few keys, not a union of 31 day sets (the
                                              first delta of a month with older data seeds it from
                                              the day sets; a month without RU keys, written
                                              before they existed, is read as its days' union)
    Rs | day(4) | name(4) | rev(8)         -> the write's (user u32 LE)[n] then (time i64 LE)[n] of
                                              events with a user, sorted by user then time: funnels
                                              and retention read only their steps' names
    Rv | day(4) | name(4) | len(1) | property | rev(8)
                                           -> float64 LE values of a numeric property: sums,
                                              min/max and exact percentiles without a scan
    Rd | day(4) | name(4) | len(1) | property | value (JSON)
                                           -> 24 u64 LE: per hour of the day, events of that name
                                              whose configured dimension ``property`` had that
                                              value (null: absent)

Counts are read-modify-written through a cache of recent days; one key holds a day's 24 hours,
so 180 days of a name are 180 keys to read. Everything else is append-only,
one small key per write and day; when a (day, name) holds more than MAX_DELTAS deltas of a kind,
the write that adds one merges its newest ones into one key (deleting them in the same WriteBatch;
older, bigger ones stay, as an LSM's tiers do), so a day read stays a handful of keys whatever the
write rate, and a write never rewrites the whole day. The writer remembers which users each
recent day has (a bitmap over user codes) to put only new ones in ``Ru``; for a day it has not
seen since start-up it reads the day's deltas once.

Rollups cover time, name, user and numeric properties, not other properties: questions with
filters or breakdowns read the column blocks (columns.py), as do time zones whose days are not
UTC days. ``rebuild`` recomputes everything from the column blocks.
"""

from __future__ import annotations

import json
import struct
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from rocksdict import WriteBatch

from sidecar.core._event_merge import numeric_properties
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.partitions import EVENTS

if TYPE_CHECKING:  # columns.py imports this module
    from sidecar.storage.rocks.events.columns import BlockRows

COUNT = b"Rc"
USERS = b"Ru"
ROWS = b"Rs"
MASKS = b"Rm"
MONTH_USERS = b"RU"
VALUES = b"Rv"
DIMENSION = b"Rd"
KINDS = (COUNT, USERS, MASKS, MONTH_USERS, ROWS, VALUES, DIMENSION)
_MONTH = -1  # the writer's cache key (day, _MONTH): a month's users
HOUR_NS = 3600 * 10**9
DAY_NS = keys.DAY_NS
MAX_DELTAS = 16
_CACHED_DAYS = 64  # (day, name) user bitmaps kept by the writer
_CACHED_COUNTS = 4096  # (day, name[, dimension value]) count keys
_CACHED_ROWS = 2_000_000  # parsed Rs rows kept for reads (32 MB)
_U32 = struct.Struct(">I")
_U64LE = struct.Struct("<Q")
_REV = 8
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _prefix(kind: bytes, period: int, name: int, prop: bytes = b"") -> bytes:
    head = kind + _U32.pack(period) + _U32.pack(name)
    return head + bytes([len(prop)]) + prop if kind in (VALUES, DIMENSION) else head


def dimension_value(value: Any) -> bytes:
    """A dimension value's key text: JSON of what the event sent, a whole number without ``.0``
    (as breakdowns show it), ``null`` when the event lacks the property."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    return _JSON(value).encode()


@dataclass(slots=True)
class WriteRows:
    """The stored events of one write, as the merge gathers them."""

    ts: list[int] = field(default_factory=list)
    name: list[int] = field(default_factory=list)
    user: list[int] = field(default_factory=list)
    numbers: dict[tuple[int, str], list[tuple[int, float]]] = field(
        default_factory=dict
    )  # (row's name, prop)
    dimensions: tuple[str, ...] = ()
    values: dict[str, list[bytes]] = field(default_factory=dict)  # per dimension, each row's value

    def add(self, ts: int, name: int, user: int, properties: dict[str, Any]) -> None:
        self.extend([(ts, name, user, 0, None, properties)])

    def extend(self, rows: BlockRows) -> None:
        """Rows as the merge gathers them: (ts, name, user, service, session, properties)."""
        if not rows:
            return
        ts, name, user, _, _, properties = zip(*rows, strict=True)
        first = len(self.ts)
        self.ts.extend(ts)
        self.name.extend(name)
        self.user.extend(user)
        for dim in self.dimensions:
            self.values.setdefault(dim, []).extend(dimension_value(p.get(dim)) for p in properties)
        numeric_properties(rows, first, self.numbers)


class RollupWriter:
    """Puts one write's rollups into its WriteBatch; caches belong to the writer thread."""

    def __init__(self, store: RocksStore) -> None:
        self._store = store
        self._rows_cache = rows_cache(store)
        self._counts: OrderedDict[bytes, np.ndarray] = OrderedDict()  # key -> a day's 24 counts
        self._seen: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._deltas: dict[bytes, int] = {}
        self._pending: list[tuple[str, Any, Any]] = []

    # -- the write -------------------------------------------------------------------------------
    def add(self, rows: WriteRows, batch: WriteBatch, ns: int) -> None:
        if not rows.ts:
            return
        ts = np.array(rows.ts, dtype=np.int64)
        name = np.array(rows.name, dtype=np.int64)
        user = np.array(rows.user, dtype=np.int64)
        day = ts // DAY_NS
        rev = keys.rev(ns)
        self._add_counts(ts // HOUR_NS, name, batch)
        for dim, keyed in rows.values.items():
            self._add_dimension(dim.encode(), ts // HOUR_NS, name, keyed, batch)
        for d in np.unique(day).tolist():
            part = self._store.partition_for_write(d, EVENTS)
            in_day = day == d
            for n in [0, *np.unique(name[in_day]).tolist()]:
                rows_of = in_day if n == 0 else in_day & (name == n)
                users = user[rows_of]
                with_user = users != 0
                hours = (ts[rows_of][with_user] // HOUR_NS) % 24
                self._add_users(part, d, n, users[with_user], hours, rev, batch)
                if n:
                    order = np.lexsort((ts[rows_of][with_user], users[with_user]))
                    data = users[with_user][order].astype("<u4").tobytes()
                    data += ts[rows_of][with_user][order].astype("<i8").tobytes()
                    if data:
                        self._append(part, _prefix(ROWS, d, n), rev, data, batch, _merge_rows)
                        self._pending.append(("rows", (d, n), None))
        months = month_start(day)
        for month in np.unique(months).tolist():
            users = user[(months == month) & (user != 0)]
            self._add_month_users(self._store.partition_for_write(month, EVENTS), month, users, rev, batch)
        for (n, prop), found in rows.numbers.items():
            index = np.array([r for r, _ in found], dtype=np.int64)
            values = np.array([v for _, v in found], dtype="<f8")
            for d in np.unique(day[index]).tolist():
                part = self._store.partition_for_write(d, EVENTS)
                chosen = values[day[index] == d]
                self._append(
                    part, _prefix(VALUES, d, n, prop.encode()), rev, chosen.tobytes(), batch, _concat
                )

    def _add_counts(self, hour: np.ndarray, name: np.ndarray, batch: WriteBatch) -> None:
        self._add_hourly(hour, [_U32.pack(n) for n in name.tolist()], COUNT, batch)

    def _add_dimension(
        self, dim: bytes, hour: np.ndarray, name: np.ndarray, values: list[bytes], batch: WriteBatch
    ) -> None:
        tails = [
            _prefix(DIMENSION, 0, int(n), dim)[6:] + value
            for n, value in zip(name.tolist(), values, strict=True)
        ]
        self._add_hourly(hour, tails, DIMENSION, batch)

    def _add_hourly(self, hour: np.ndarray, tails: list[bytes], kind: bytes, batch: WriteBatch) -> None:
        """Per (day, tail): add each row to its hour's slot of the day's 24 counts. ``tails`` is
        what follows the day in each row's key (``name(4)``, then the dimension's part)."""
        day = hour // 24
        slot = hour % 24
        grouped: dict[tuple[int, bytes], np.ndarray] = {}
        for d, tail, h in zip(day.tolist(), tails, slot.tolist(), strict=True):
            counts = grouped.get((d, tail))
            if counts is None:
                counts = grouped[(d, tail)] = np.zeros(24, dtype=np.int64)
            counts[h] += 1
        for (d, tail), added in grouped.items():
            key = kind + _U32.pack(d) + tail
            part = self._store.partition_for_write(d, EVENTS)
            stored = self._counts.get(key)
            if stored is None:
                raw = part.data.get(key)
                stored = (
                    np.frombuffer(raw, dtype="<u8").astype(np.int64) if raw else np.zeros(24, dtype=np.int64)
                )
            total = stored + added
            batch.put(key, total.astype("<u8").tobytes(), part.handle)
            self._pending.append(("count", key, total))

    def _add_users(
        self,
        part: Partition,
        day: int,
        name: int,
        users: np.ndarray,
        hours: np.ndarray,
        rev: bytes,
        batch: WriteBatch,
    ) -> None:
        """``Ru``: the users new to (day, name); for any event (name 0) also ``Rm``: the hours each
        user gained. The cache holds each user's hour bits of the day (any bit for a name)."""
        if not users.size:
            return
        key = (day, name)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._load_seen(part, day, name, int(users.max()))
        if users.max() >= seen.size:
            seen = np.concatenate([seen, np.zeros(int(users.max()) + 1 - seen.size + 4096, dtype=seen.dtype)])
        order = np.argsort(users, kind="stable")
        users = users[order]
        # Hour bits for any event; for a name only "seen", in a byte (the cache holds 64 days).
        if name == 0:
            bits = np.uint32(1) << hours[order].astype(np.uint32)
        else:
            bits = np.ones(users.size, dtype=np.uint8)
        first = np.flatnonzero(np.concatenate([[True], users[1:] != users[:-1]]))
        users, bits = users[first], np.bitwise_or.reduceat(bits, first)
        before = seen[users]
        added = bits & ~before
        changed = added != 0
        if not changed.any():
            return
        seen = seen.copy()  # the cache changes only once the write is durable (after_write)
        seen[users] = before | bits
        self._pending.append(("seen", key, seen))
        fresh = users[before == 0]
        if fresh.size:
            data = fresh.astype("<u4").tobytes()
            self._append(part, _prefix(USERS, day, name), rev, data, batch, _concat_sorted_users)
        if name == 0:
            data = users[changed].astype("<u4").tobytes() + added[changed].astype("<u4").tobytes()
            self._append(part, _prefix(MASKS, day, 0), rev, data, batch, _merge_masks)

    def _add_month_users(
        self, part: Partition, month: int, users: np.ndarray, rev: bytes, batch: WriteBatch
    ) -> None:
        """``RU``: the users new to the UTC month starting on day ``month``."""
        if not users.size:
            return
        key = (month, _MONTH)
        seen = self._seen.get(key)
        seed = np.zeros(0, dtype=np.int64)
        if seen is None:
            known = [*_user_deltas(part, _prefix(MONTH_USERS, month, 0))]
            if not known:  # the month's first RU delta: seeded with what its day sets hold so far
                days = range(month, month_end(month))
                known = [u for d in days for u in _user_deltas(part, _prefix(USERS, d, 0))]
                seed = np.unique(np.concatenate([*known, seed]))
            found = np.concatenate([*known, np.zeros(0, dtype=np.int64)])
            seen = np.zeros(int(found.max(initial=0)) + 1, dtype=np.uint8)
            seen[found] = 1
        users = np.unique(users)
        if users[-1] >= seen.size:
            seen = np.concatenate([seen, np.zeros(int(users[-1]) + 1 - seen.size + 4096, dtype=seen.dtype)])
        fresh = users[seen[users] == 0]
        if not fresh.size and not seed.size:
            return
        seen = seen.copy()  # the cache changes only once the write is durable (after_write)
        seen[fresh] = 1
        self._pending.append(("seen", key, seen))
        data = np.union1d(seed, fresh).astype("<u4").tobytes()
        self._append(part, _prefix(MONTH_USERS, month, 0), rev, data, batch, _concat_sorted_users)

    def _load_seen(self, part: Partition, day: int, name: int, top: int) -> np.ndarray:
        """A day's users as the cache holds them, read back once: hour bits for any event, a
        non-zero mark for a name."""
        if name == 0:
            users, masks = _masks(part.items(_prefix(MASKS, day, 0)))
        else:
            users = np.concatenate(
                [*_user_deltas(part, _prefix(USERS, day, name)), np.zeros(0, dtype=np.int64)]
            )
            masks = np.ones(users.size, dtype=np.uint8)
        seen = np.zeros(max(int(users.max(initial=0)), top) + 1, dtype=masks.dtype)
        seen[users] = masks
        return seen

    def _append(
        self, part: Partition, prefix: bytes, rev: bytes, data: bytes, batch: WriteBatch, merge: Any
    ) -> None:
        """One delta under ``prefix``; past MAX_DELTAS, the newest ones merged into one (see
        :func:`newest_to_merge`), so a day's deltas stay few without rewriting the whole day."""
        count = self._deltas.get(prefix)
        if count is None:
            count = sum(1 for _ in part.items(prefix))
        if count + 1 > MAX_DELTAS:
            taken = newest_to_merge(part.items(prefix), len(data))
            for key, _ in taken:
                batch.delete(key, part.handle)
            data = merge([value for _, value in taken] + [data])
            count -= len(taken)
        batch.put(prefix + rev, data, part.handle)
        self._pending.append(("deltas", prefix, count + 1))

    # -- after the write -----------------------------------------------------------------------
    def after_write(self) -> None:
        for kind, key, value in self._pending:
            if kind == "count":
                self._counts[key] = value
                self._counts.move_to_end(key)
            elif kind == "seen":
                self._seen[key] = value
                self._seen.move_to_end(key)
            elif kind == "rows":
                self._rows_cache.changed(key)
            else:
                self._deltas[key] = value
        self._pending.clear()
        while len(self._counts) > _CACHED_COUNTS:
            self._counts.popitem(last=False)
        while len(self._seen) > _CACHED_DAYS:
            self._seen.popitem(last=False)
        if len(self._deltas) > 100_000:
            self._deltas.clear()

    def write_failed(self) -> None:
        self._pending.clear()


def month_start(day: np.ndarray) -> np.ndarray:
    """The first UTC day of each UTC day's month."""
    months = day.astype("datetime64[D]").astype("datetime64[M]")
    return months.astype("datetime64[D]").astype(np.int64)


def month_end(month: int) -> int:
    """The first UTC day after the month that starts on day ``month``."""
    after = np.datetime64(month, "D").astype("datetime64[M]") + 1
    return int(after.astype("datetime64[D]").astype(np.int64))


class RowsCache:
    """Parsed ``Rs`` rows per (day, name), shared by a store's rollup reads and its writer: a
    funnel over 180 days reads thousands of deltas, and parsing them costs more than reading.

    The writer bumps a (day, name)'s generation once a write that added rows to it is durable; a
    read keeps what it parsed only if the generation it saw before reading is still current, so a
    late event is never hidden by what an earlier query cached. Least recently used entries go
    past ``max_rows`` rows (16 bytes each)."""

    def __init__(self, max_rows: int = _CACHED_ROWS) -> None:
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._generations: dict[tuple[int, int], int] = {}
        self._entries: OrderedDict[tuple[int, int], tuple[int, np.ndarray, np.ndarray]] = OrderedDict()
        self._rows = 0

    def generation(self, key: tuple[int, int]) -> int:
        with self._lock:
            return self._generations.get(key, 0)

    def get(self, key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != self._generations.get(key, 0):
                return None
            self._entries.move_to_end(key)
            return entry[1], entry[2]

    def put(self, key: tuple[int, int], generation: int, users: np.ndarray, times: np.ndarray) -> None:
        if users.size > self.max_rows:
            return
        with self._lock:
            if generation != self._generations.get(key, 0):
                return  # a write landed while the caller read: what it parsed may be stale
            self._drop(key)
            users.setflags(write=False)  # shared by every later read
            times.setflags(write=False)
            self._entries[key] = (generation, users, times)
            self._rows += users.size
            while self._rows > self.max_rows:
                self._drop(next(iter(self._entries)))

    def changed(self, key: tuple[int, int]) -> None:
        with self._lock:
            self._generations[key] = self._generations.get(key, 0) + 1
            self._drop(key)

    def _drop(self, key: tuple[int, int]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._rows -= entry[1].size


_ROWS_CACHES: weakref.WeakKeyDictionary[RocksStore, RowsCache] = weakref.WeakKeyDictionary()
_ROWS_CACHES_LOCK = threading.Lock()


def rows_cache(store: RocksStore) -> RowsCache:
    """The store's one RowsCache (the writer's and the readers' must be the same)."""
    with _ROWS_CACHES_LOCK:
        cache = _ROWS_CACHES.get(store)
        if cache is None:
            cache = _ROWS_CACHES[store] = RowsCache()
        return cache


def newest_to_merge(deltas: Iterable[tuple[bytes, bytes]], size: int) -> list[tuple[bytes, bytes]]:
    """The deltas (key, value) to merge with a new one of ``size`` bytes: the newest (keys sort
    newest first), at least two, and no older one larger than twice what is taken so far.

    Merging every delta of a day at once rewrote the whole day every MAX_DELTAS writes: a sort
    and a put of all its rows, growing with the day (seconds of CPU per merge at a few million
    events a day). Taken this way, sizes grow about geometrically with age, like an LSM's tiers, so
    a write rewrites a delta about as often as its size doubles: logarithmic, not quadratic."""
    taken: list[tuple[bytes, bytes]] = []
    total = size
    for key, value in deltas:
        if len(taken) >= 2 and len(value) > 2 * total:
            break
        taken.append((key, value))
        total += len(value)
    return taken


def _concat(values: list[bytes]) -> bytes:
    return b"".join(values)


def _concat_sorted_users(values: list[bytes]) -> bytes:
    return np.sort(np.frombuffer(b"".join(values), dtype="<u4")).tobytes()


def _masks(items: Iterable[tuple[bytes, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    """(users, hour bits) of ``Rm`` values, each user once with its bits OR-ed."""
    users_parts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    masks_parts: list[np.ndarray] = [np.zeros(0, dtype=np.uint32)]
    for _, value in items:
        n = len(value) // 8
        users_parts.append(np.frombuffer(value, dtype="<u4", count=n).astype(np.int64))
        masks_parts.append(np.frombuffer(value, dtype="<u4", offset=4 * n, count=n).astype(np.uint32))
    users, masks = np.concatenate(users_parts), np.concatenate(masks_parts)
    if not users.size:
        return users, masks
    order = np.argsort(users, kind="stable")
    users, masks = users[order], masks[order]
    first = np.flatnonzero(np.concatenate([[True], users[1:] != users[:-1]]))
    return users[first], np.bitwise_or.reduceat(masks, first)


def _merge_masks(values: list[bytes]) -> bytes:
    users, masks = _masks((b"", v) for v in values)
    return users.astype("<u4").tobytes() + masks.astype("<u4").tobytes()


def _split_rows(value: bytes) -> tuple[np.ndarray, np.ndarray]:
    n = len(value) // 12
    return np.frombuffer(value, dtype="<u4", count=n), np.frombuffer(
        value, dtype="<i8", offset=4 * n, count=n
    )


def _merge_rows(values: list[bytes]) -> bytes:
    parts = [_split_rows(v) for v in values]
    users = np.concatenate([u for u, _ in parts])
    times = np.concatenate([t for _, t in parts])
    order = np.lexsort((times, users))
    return users[order].tobytes() + times[order].tobytes()


def _user_deltas(part: Partition, prefix: bytes) -> Iterator[np.ndarray]:
    for _, value in part.items(prefix):
        yield np.frombuffer(value, dtype="<u4").astype(np.int64)


# -- reading ------------------------------------------------------------------------------------
class Rollups:
    """Reads rollups over a range of UTC hours or days (see the module docstring)."""

    def __init__(self, store: RocksStore) -> None:
        self._store = store
        self._rows_cache = rows_cache(store)  # the writer's too: it invalidates what changed

    def _part(self, day: int) -> Partition | None:
        return self._store.partition(day, EVENTS)

    def counts_by_name(self, first_hour: int, end_hour: int) -> dict[int, np.ndarray]:
        """Per name code, its events per hour in ``[first_hour, end_hour)``."""
        return self._hourly(COUNT, first_hour, end_hour, lambda key: _U32.unpack_from(key, 6)[0])

    def dimension_counts(
        self, first_hour: int, end_hour: int, dim: str
    ) -> dict[tuple[int, bytes], np.ndarray]:
        """Per (name code, value key) of dimension ``dim``, its events per hour in the range."""
        wanted = bytes([len(dim.encode())]) + dim.encode()
        at = 10 + len(wanted)

        def slot(key: bytes) -> tuple[int, bytes] | None:
            return (_U32.unpack_from(key, 6)[0], key[at:]) if key[10:at] == wanted else None

        return self._hourly(DIMENSION, first_hour, end_hour, slot)

    def _hourly(self, kind: bytes, first_hour: int, end_hour: int, slot_of: Any) -> dict[Any, np.ndarray]:
        """Per ``slot_of(key)`` (None: skip the key), the counts of ``kind`` keys on the hours
        ``[first_hour, end_hour)``: one key per day and name (and dimension value) to read."""
        first_day, end_day = first_hour // 24, (end_hour + 23) // 24
        low, high = kind + _U32.pack(max(first_day, 0)), kind + _U32.pack(end_day)
        out: dict[Any, np.ndarray] = {}
        for part in self._parts(first_day, end_day):
            for key, value in part.range(low, high):
                slot = slot_of(key)
                if slot is None:
                    continue
                start = _U32.unpack_from(key, 2)[0] * 24 - first_hour  # the day's hour 0 in the output
                lo, hi = max(start, 0), min(start + 24, end_hour - first_hour)
                if lo >= hi:
                    continue
                hourly = out.get(slot)
                if hourly is None:
                    hourly = out[slot] = np.zeros(end_hour - first_hour, dtype=np.int64)
                hourly[lo:hi] += np.frombuffer(value, dtype="<u8")[lo - start : hi - start].astype(np.int64)
        return out

    def day_users(self, day: int, name: int) -> np.ndarray:
        """The distinct users (u32 codes, each once, in no particular order) with an event of
        ``name`` (0: any) on UTC ``day``."""
        part = self._part(day)
        if part is None:
            return np.zeros(0, dtype=np.int64)
        found = [np.frombuffer(v, dtype="<u4") for _, v in part.items(_prefix(USERS, day, name))]
        return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)

    def month_users(self, month: int) -> np.ndarray | None:
        """The distinct users with any event in the UTC month starting on day ``month``; None
        when the month has no month set (written before they existed: union its days)."""
        part = self._part(month)
        if part is None:
            return None
        found = [np.frombuffer(v, dtype="<u4") for _, v in part.items(_prefix(MONTH_USERS, month, 0))]
        return np.concatenate(found).astype(np.int64) if found else None

    def day_hours(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """(users, hour bits): each user with any event on UTC ``day`` and the hours (bit h for
        hour h) in which they had one."""
        part = self._part(day)
        if part is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32)
        return _masks(part.items(_prefix(MASKS, day, 0)))

    def rows(self, first_day: int, end_day: int, name: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, times, rows per day) of ``name``'s events with a user on the UTC days
        ``[first_day, end_day)``, day after day, in no particular order within a day."""
        users: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        times: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        per_day = np.zeros(max(end_day - first_day, 0), dtype=np.int64)
        cache = self._rows_cache
        for day in range(first_day, end_day):
            part = self._part(day)
            if part is None:  # dropped by retention: whatever the cache holds is gone
                continue
            found = cache.get((day, name))
            if found is None:
                generation = cache.generation((day, name))
                parts = [_split_rows(v) for _, v in part.items(_prefix(ROWS, day, name))]
                found = (
                    np.concatenate([*(u for u, _ in parts), np.zeros(0, dtype="<u4")]).astype(np.int64),
                    np.concatenate([*(t for _, t in parts), np.zeros(0, dtype="<i8")]).astype(np.int64),
                )
                cache.put((day, name), generation, *found)
            users.append(found[0])
            times.append(found[1])
            per_day[day - first_day] = found[0].size
        return np.concatenate(users), np.concatenate(times), per_day

    def day_values(self, day: int, name: int, prop: str) -> np.ndarray:
        """The numeric values of ``prop`` on ``name``'s events of UTC ``day``."""
        part = self._part(day)
        if part is None or len(prop.encode()) > 255:
            return np.zeros(0)
        found = [
            np.frombuffer(v, dtype="<f8") for _, v in part.items(_prefix(VALUES, day, name, prop.encode()))
        ]
        return np.concatenate(found) if found else np.zeros(0)

    def _parts(self, first_day: int, end_day: int) -> list[Partition]:
        return [
            p
            for p in self._store.partitions(EVENTS, newest_first=False)
            if p.end_day > first_day and p.day < end_day
        ]


def drop_all(store: RocksStore) -> int:
    """Delete every rollup key (for a rebuild); returns how many."""
    removed = 0
    for part in store.partitions(EVENTS):
        for kind in KINDS:
            batch = WriteBatch(raw_mode=True)
            for key, _ in part.items(kind):
                batch.delete(key, part.handle)
                removed += 1
            store.db.write(batch)
    return removed
