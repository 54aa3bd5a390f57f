"""Column blocks of business events: what analytics scan, one block per write and month partition.

Key layout, in the month partition column family ``eYYYYMM01`` next to merge.py's records
(``rev`` = 2**64-1 - write ns, so the newest write sorts first; ``seq`` numbers a write's blocks):

    H | rev(8) | seq(2)            -> header: min_ts(8) | max_ts(8) | rows(4) | JSON [[column, kind], ...]
    C | rev(8) | seq(2) | column   -> one column's bytes, ``rows`` values in event-time order

Columns: ``ts`` (int64 ns), ``name``, ``user``, ``service`` (u32 codes of the events registry,
0 = absent), ``session`` and every property key as ``p.<key>``. A property column is of one of two
kinds, chosen per block:
    ``n``  every value present in the block is a number: float64, NaN where the event lacks it
    ``d``  anything else: u32 codes (0 = absent) | JSON list of the block's distinct values
           (strings, numbers, bools: what the event sent), code k = entry k-1
``session`` is always ``d``. Everything is little-endian numpy arrays, so a scan turns a column
into an array without a Python step per event, and reads only the columns a query names: a filter
on ``screen`` evaluates its predicate once per distinct value of the block, then indexes.

Blocks sit in the same WriteBatch as the records they copy, so a block holds exactly the stored
(not duplicate) events of its write. Records serve listing and a user's timeline; blocks serve
scans over many events, which per-event records (one key and one JSON decode each) cannot at
millions of events a second.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from rocksdict import ColumnFamily, ReadOptions, WriteBatch

from sidecar.core._event_merge import dictionary_codes, gather_properties
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.events.rollups import Rollups
from sidecar.storage.rocks.partitions import EVENTS

HEADER = b"H"
COLUMN = b"C"
HEADER_STRUCT = struct.Struct(">QQI")
NUMBER, DICT = "n", "d"
FIXED = ("ts", "name", "user", "service", "session")
PROPERTY = "p."
_SEQ = struct.Struct(">H").pack
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_I64 = np.dtype("<i8")
_U32 = np.dtype("<u4")
_F64 = np.dtype("<f8")


# One stored event as the merge gathers it: (ts_ns, name, user, service codes, session, properties).
BlockRow = tuple[int, int, int, int, str | None, dict[str, Any]]
BlockRows = list[BlockRow]


def block_suffix(rev: bytes, seq: int) -> bytes:
    return rev + _SEQ(seq)


def _dict_column(values: list[Any], rows: np.ndarray[Any, Any] | None = None, n: int = 0) -> bytes:
    """u32 codes (0 = absent) then the JSON list of distinct values; bools and numbers stay apart.
    ``rows``: the row of each value (a sparse column of ``n`` rows); None: ``values`` is every row."""
    found, entries = dictionary_codes(values)
    if rows is not None:
        codes = np.zeros(n, dtype=_U32)
        codes[rows] = np.frombuffer(found, dtype=_U32)
        found = codes.tobytes()
    return found + _JSON(entries).encode()


def _property_column(rows: list[int], values: list[Any], n: int) -> tuple[str, bytes]:
    """A property present in ``rows`` (ascending) of a block of ``n``: float64 with NaN for the
    absent when every value is a number that a float64 holds, else a dictionary column."""
    at = np.array(rows, dtype=np.intp)
    if all(type(v) is int or type(v) is float for v in values):
        try:
            numbers = np.array(values, dtype=_F64)
        except OverflowError:  # an integer past float64's range: kept exactly as a dictionary entry
            pass
        else:
            column = np.full(n, np.nan, dtype=_F64)
            column[at] = numbers
            return NUMBER, column.tobytes()
    return DICT, _dict_column(values, at, n)


def put_block(rows: BlockRows, suffix: bytes, batch: WriteBatch, cf: ColumnFamily) -> None:
    """Write one block of ``rows`` (sorted here by event time, stably) into ``batch``."""
    n = len(rows)
    ts_in, name, user, service, session_in, props_in = zip(*rows, strict=True)
    order = np.argsort(np.array(ts_in, dtype=_I64), kind="stable")
    ts = np.array(ts_in, dtype=_I64)[order]
    at = order.tolist()
    columns: list[tuple[str, str, bytes]] = [
        ("ts", NUMBER, ts.tobytes()),
        ("name", DICT, np.array(name, dtype=_U32)[order].tobytes()),
        ("user", DICT, np.array(user, dtype=_U32)[order].tobytes()),
        ("service", DICT, np.array(service, dtype=_U32)[order].tobytes()),
        ("session", DICT, _dict_column([session_in[i] for i in at])),
    ]
    present = gather_properties(list(props_in), at)  # keys in order of first appearance
    for key, (where, values) in present.items():
        kind, data = _property_column(where, values, n)
        columns.append((PROPERTY + key, kind, data))
    layout = _JSON([[name, kind] for name, kind, _ in columns]).encode()
    batch.put(HEADER + suffix, HEADER_STRUCT.pack(int(ts[0]), int(ts[-1]), n) + layout, cf)
    for column, _, data in columns:
        batch.put(COLUMN + suffix + column.encode(), data, cf)


# -- reading ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Column:
    """One column of a block: ``values`` (int64 ts, float64 numbers, or u32 codes) and, for a
    dictionary column of ``session`` or a property, the distinct values its codes point at."""

    kind: str
    values: np.ndarray[Any, Any]
    entries: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class Block:
    min_ts: int
    max_ts: int
    rows: int
    columns: dict[str, Column]  # the ones asked for that the block has; a missing one is all-absent


def decode_column(kind: str, name: str, data: bytes, rows: int) -> Column:
    if name == "ts":
        return Column(NUMBER, np.frombuffer(data, dtype=_I64, count=rows))
    if kind == NUMBER:
        return Column(NUMBER, np.frombuffer(data, dtype=_F64, count=rows))
    codes = np.frombuffer(data, dtype=_U32, count=rows)
    if name in ("name", "user", "service"):
        return Column(DICT, codes)
    return Column(DICT, codes, json.loads(data[rows * 4 :]))


def scan_blocks(
    part: Partition, columns: Sequence[str] | None, from_ns: int = 0, to_ns: int = keys.MAX_U64
) -> Iterator[Block]:
    """The blocks of ``part`` with an event in ``[from_ns, to_ns)``, with the named columns
    (``ts`` always; None: every column); rows outside the range are the caller's to mask. One
    multi-get per block."""
    wanted = None if columns is None else ["ts", *(c for c in columns if c != "ts")]
    ro = ReadOptions()
    ro.set_iterate_upper_bound(keys.prefix_end(HEADER))
    it = part.data.iter(ro)
    it.seek(HEADER)
    try:
        while it.valid():
            key, header = it.key(), it.value()
            it.next()
            first, last, rows = HEADER_STRUCT.unpack_from(header)
            if last < from_ns or first >= to_ns:
                continue
            kinds = dict(json.loads(header[HEADER_STRUCT.size :]))
            names = list(kinds) if wanted is None else [c for c in wanted if c in kinds]
            suffix = key[len(HEADER) :]
            found = cast(list[bytes | None], part.data.get([COLUMN + suffix + c.encode() for c in names]))
            decoded = {
                c: decode_column(kinds[c], c, data, rows)
                for c, data in zip(names, found, strict=True)
                if data is not None
            }
            yield Block(first, last, rows, decoded)
    finally:
        del it


class EventColumns:
    """The column blocks of every month partition, the registry that decodes their codes, and the
    rollups kept beside them."""

    def __init__(self, store: RocksStore, registry: EventRegistry, dimensions: tuple[str, ...] = ()) -> None:
        self._store = store
        self.registry = registry
        self.rollups = Rollups(store)
        self.dimensions = dimensions  # the properties the count rollups split by

    def blocks(self, from_ns: int, to_ns: int, columns: Sequence[str]) -> Iterator[Block]:
        """Blocks with an event in ``[from_ns, to_ns)``, oldest partition first (see scan_blocks)."""
        first, last = from_ns // keys.DAY_NS, max(to_ns - 1, 0) // keys.DAY_NS
        for part in self._store.partitions(EVENTS, newest_first=False):
            if part.end_day > first and part.day <= last:
                yield from scan_blocks(part, columns, from_ns, to_ns)

    def code(self, kind: str, text: str) -> int | None:
        """The code of a name (``n``), user (``u``) or service (``s``); None if never stored."""
        return self.registry.codes[kind].get(text)

    def texts(self, kind: str) -> dict[int, str]:
        """Every code of a kind and its text (a copy: the writer adds codes meanwhile)."""
        return dict(self.registry.texts[kind])
