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
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from rocksdict import ColumnFamily, ReadOptions, WriteBatch

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


@dataclass(slots=True)
class BlockRows:
    """One block's rows as the merge gathers them (codes from the events registry)."""

    ts: list[int]
    name: list[int]
    user: list[int]
    service: list[int]
    session: list[str | None]
    properties: list[dict[str, Any]]


def new_rows() -> BlockRows:
    return BlockRows([], [], [], [], [], [])


def block_suffix(rev: bytes, seq: int) -> bytes:
    return rev + _SEQ(seq)


def _dict_column(values: Sequence[Any]) -> bytes:
    """u32 codes (0 = absent) then the JSON list of distinct values; bools and numbers stay apart."""
    index: dict[tuple[type, Any], int] = {}
    entries: list[Any] = []
    codes = np.zeros(len(values), dtype=_U32)
    for row, value in enumerate(values):
        if value is None:
            continue
        tag = (type(value), value)
        code = index.get(tag)
        if code is None:
            entries.append(value)
            code = index[tag] = len(entries)
        codes[row] = code
    return codes.tobytes() + _JSON(entries).encode()


def _property_column(values: list[Any]) -> tuple[str, bytes]:
    if all(v is None or (type(v) is not bool and isinstance(v, int | float)) for v in values):
        numbers = np.array([math.nan if v is None else float(v) for v in values], dtype=_F64)
        return NUMBER, numbers.tobytes()
    return DICT, _dict_column(values)


def put_block(rows: BlockRows, suffix: bytes, batch: WriteBatch, cf: ColumnFamily) -> None:
    """Write one block of ``rows`` (sorted here by event time) into ``batch``."""
    order = sorted(range(len(rows.ts)), key=rows.ts.__getitem__)
    n = len(order)
    ts = np.array([rows.ts[i] for i in order], dtype=_I64)
    columns: list[tuple[str, str, bytes]] = [
        ("ts", NUMBER, ts.tobytes()),
        ("name", DICT, np.array([rows.name[i] for i in order], dtype=_U32).tobytes()),
        ("user", DICT, np.array([rows.user[i] for i in order], dtype=_U32).tobytes()),
        ("service", DICT, np.array([rows.service[i] for i in order], dtype=_U32).tobytes()),
        ("session", DICT, _dict_column([rows.session[i] for i in order])),
    ]
    props = [rows.properties[i] for i in order]
    present: dict[str, None] = {}
    for p in props:
        if p:
            present.update(dict.fromkeys(p))
    for key in present:
        kind, data = _property_column([p.get(key) for p in props])
        columns.append((PROPERTY + key, kind, data))
    layout = _JSON([[name, kind] for name, kind, _ in columns]).encode()
    batch.put(HEADER + suffix, HEADER_STRUCT.pack(int(ts[0]), int(ts[-1]), n) + layout, cf)
    for name, _, data in columns:
        batch.put(COLUMN + suffix + name.encode(), data, cf)


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
