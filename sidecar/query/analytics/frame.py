"""The events one analytics question reads, as numpy columns: a scan of the column blocks.

Each block is masked by time, event name and filters (a filter is judged once per distinct value,
see filters.py), and only what the question uses is kept: times, name and user codes, the numeric
property it measures, and one value id per breakdown property. Value ids are global to the scan
(0 = the event has no such property), so rows of different blocks group together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sidecar.query.analytics.filters import Filter
from sidecar.query.analytics.rollup_reads import RollupSource
from sidecar.query.analytics.timebuckets import Buckets
from sidecar.storage.rocks.events.columns import DICT, Block, Column

_OWN = {"event": "name", "user_id": "user", "session_id": "session", "service": "service"}
_KIND = {"name": "n", "user": "u", "service": "s"}  # registry kinds of the coded own fields


class Source(Protocol):
    """What a scan needs of the store (storage's EventColumns)."""

    def blocks(self, from_ns: int, to_ns: int, columns: Sequence[str]) -> Iterable[Block]: ...
    def code(self, kind: str, text: str) -> int | None: ...
    def texts(self, kind: str) -> dict[int, str]: ...
    @property
    def rollups(self) -> RollupSource: ...
    @property
    def dimensions(self) -> tuple[str, ...]: ...


def column_of(name: str) -> str:
    """The stored column of a filter or breakdown name: an own field's, or ``p.<property>``."""
    return _OWN.get(name, "p." + name)


def display(key: tuple[str, Any] | None) -> Any:
    """A breakdown value as the answer shows it: what the event sent (3.0 as 3), or None."""
    if key is None:
        return None
    kind, value = key
    if kind == "n" and float(value).is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _key(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", float(value))
    return ("s", value)


@dataclass(slots=True)
class ValueIds:
    """Global ids of breakdown values; id 0 is 'no such property'."""

    ids: dict[tuple[str, Any], int] = field(default_factory=dict)
    keys: list[tuple[str, Any] | None] = field(default_factory=lambda: [None])
    # Per registry kind (user, service, ...): value id by code, -1 where not looked up yet; a
    # breakdown or correlation by user_id meets each of 200k codes in thousands of blocks.
    by_code: dict[str, np.ndarray] = field(default_factory=dict)

    def id(self, key: tuple[str, Any]) -> int:
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = len(self.keys)
            self.keys.append(key)
        return found


@dataclass(slots=True)
class Frame:
    ts: np.ndarray
    name: np.ndarray
    user: np.ndarray
    measure: np.ndarray | None  # float64, NaN where the property is absent or not a number
    groups: list[np.ndarray]  # per breakdown name: value ids
    values: list[ValueIds]
    matched: np.ndarray | None = None  # funnels: bit k set when the event passes step k
    active: np.ndarray | None = None  # funnels: bucket << 32 | user of users' stepless events
    numbers: list[np.ndarray] = field(default_factory=list)  # load(numbers=...): float64 each

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, mask: np.ndarray) -> Frame:
        return Frame(
            self.ts[mask],
            self.name[mask],
            self.user[mask],
            None if self.measure is None else self.measure[mask],
            [g[mask] for g in self.groups],
            self.values,
            None if self.matched is None else self.matched[mask],
            self.active,
            [x[mask] for x in self.numbers],
        )


def _join(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def _joined(parts: list[tuple[np.ndarray, ...]], width: int) -> list[np.ndarray]:
    """Each column of the per-block tuples, concatenated: times int64, then codes (and step bits)
    uint32; empty arrays of those types when no block matched."""
    kinds = [np.int64, *([np.uint32] * (width - 1))]
    return [_join([p[i] for p in parts], kinds[i]) for i in range(width)]


class Scan:
    """One question's scan: filters judged against codes once, blocks masked and gathered."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._code_sets: dict[tuple[int, str], np.ndarray] = {}
        self._texts: dict[str, dict[int, str]] = {}

    def _text_of(self, kind: str, code: int) -> str:
        """A code's text from a snapshot of the registry, taken again for a code newer than it."""
        texts = self._texts.get(kind)
        if texts is None or code not in texts:
            texts = self._texts[kind] = self._source.texts(kind)
        return texts.get(code, "")

    def load(
        self,
        from_ns: int,
        to_ns: int,
        names: Sequence[str] | None,
        filters: Sequence[Filter],
        measure: str | None = None,
        breakdown: Sequence[str] = (),
        numbers: Sequence[str] = (),
    ) -> Frame:
        """Events in ``[from_ns, to_ns)`` named one of ``names`` (None: any) passing every filter;
        ``measure`` and each of ``numbers`` come as float64 (NaN: absent or not a number)."""
        name_codes = None
        if names is not None:
            found = [self._source.code("n", n) for n in names]
            name_codes = np.array([c for c in found if c is not None], dtype=np.uint32)
        columns = {"name", "user"} | {f.column for f in filters} | {column_of(b) for b in breakdown}
        columns |= {column_of(n) for n in numbers}
        if measure is not None:
            columns.add(column_of(measure))
        values = [ValueIds() for _ in breakdown]
        parts: list[tuple[np.ndarray, ...]] = []
        measures: list[np.ndarray] = []
        groups: list[list[np.ndarray]] = [[] for _ in breakdown]
        extra: list[list[np.ndarray]] = [[] for _ in numbers]
        for block in self._source.blocks(from_ns, to_ns, sorted(columns)):
            ts = block.columns["ts"].values
            mask = (ts >= from_ns) & (ts < to_ns)
            name = self._codes(block, "name")
            if name_codes is not None:
                mask &= np.isin(name, name_codes)
            for f in filters:
                if not mask.any():
                    break
                mask &= self._filter_mask(f, block)
            if not mask.any():
                continue
            parts.append((ts[mask], name[mask], self._codes(block, "user")[mask]))
            if measure is not None:
                measures.append(self._numbers(block, column_of(measure))[mask])
            for i, b in enumerate(breakdown):
                groups[i].append(self._value_ids(block, column_of(b), values[i], mask))
            for i, n in enumerate(numbers):
                extra[i].append(self._numbers(block, column_of(n))[mask])
        ts, name, user = _joined(parts, 3)
        return Frame(
            ts,
            name,
            user,
            _join(measures, np.float64) if measure is not None else None,
            [_join(g, np.int64) for g in groups],
            values,
            numbers=[_join(x, np.float64) for x in extra],
        )

    def load_steps(
        self,
        from_ns: int,
        to_ns: int,
        steps: Sequence[tuple[str | None, Sequence[Filter]]],
        keep_all: bool,
        breakdown: Sequence[str] = (),
        active: Buckets | None = None,
        require_user: bool = True,
    ) -> Frame:
        """Events in ``[from_ns, to_ns)`` (with a user id, unless not ``require_user``), with
        ``matched``: bit k set when the event passes step k (an event name, None for any, and
        filters). Events that pass no step are kept only if ``keep_all``; otherwise, given
        ``active`` buckets, the frame's ``active`` holds ``bucket << 32 | user`` of each user's
        bucket with such an event."""
        columns = {"name", "user"} | {column_of(b) for b in breakdown}
        for _, filters in steps:
            columns |= {f.column for f in filters}
        step_codes = [
            None
            if name is None
            else np.array([c for c in [self._source.code("n", name)] if c is not None], dtype=np.uint32)
            for name, _ in steps
        ]
        values = [ValueIds() for _ in breakdown]
        parts: list[tuple[np.ndarray, ...]] = []
        groups: list[list[np.ndarray]] = [[] for _ in breakdown]
        pairs: list[np.ndarray] = []
        for block in self._source.blocks(from_ns, to_ns, sorted(columns)):
            ts = block.columns["ts"].values
            user = self._codes(block, "user")
            base = (ts >= from_ns) & (ts < to_ns)
            if require_user:
                base &= user != 0
            if not base.any():
                continue
            name = self._codes(block, "name")
            matched = np.zeros(block.rows, dtype=np.uint32)
            for k, ((_, filters), codes) in enumerate(zip(steps, step_codes, strict=True)):
                mask = base.copy() if codes is None else base & np.isin(name, codes)
                for f in filters:
                    if not mask.any():
                        break
                    mask &= self._filter_mask(f, block)
                matched |= mask.astype(np.uint32) << np.uint32(k)
            keep = base if keep_all else matched != 0
            if active is not None and not keep_all:
                rest = base & (matched == 0)
                bucket = active.index(ts[rest]).astype(np.int64)
                pairs.append(np.unique((bucket << 32) | user[rest].astype(np.int64)))
            if not keep.any():
                continue
            parts.append((ts[keep], name[keep], user[keep], matched[keep]))
            for i, b in enumerate(breakdown):
                groups[i].append(self._value_ids(block, column_of(b), values[i], keep))
        seen = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, dtype=np.int64)
        ts, name, user, matched = _joined(parts, 4)
        return Frame(
            ts,
            name,
            user,
            None,
            [_join(g, np.int64) for g in groups],
            values,
            matched,
            seen if active is not None else None,
        )

    # -- per block ----------------------------------------------------------------------------
    @staticmethod
    def _codes(block: Block, column: str) -> np.ndarray:
        col = block.columns.get(column)
        return col.values if col is not None else np.zeros(block.rows, dtype=np.uint32)

    def _filter_mask(self, f: Filter, block: Block) -> np.ndarray:
        column = f.column
        col = block.columns.get(column)
        if col is None:  # no event of the block has it
            return np.full(block.rows, f.matches(None))
        if column in _KIND:
            return self._coded_mask(f, column, col.values)
        if col.kind == DICT:
            assert col.entries is not None
            table = np.array([f.matches(None), *(f.matches(e) for e in col.entries)], dtype=bool)
            return table[col.values]
        return self._number_mask(f, col)

    def _coded_mask(self, f: Filter, column: str, codes: np.ndarray) -> np.ndarray:
        """A filter on event, user_id or service: the codes whose text passes, found once."""
        present = codes != 0
        if f.op in ("exists", "not_exists"):
            return present if f.op == "exists" else ~present
        if f.op in ("=", "!=", "in", "not_in"):
            wanted = f.value if f.op in ("in", "not_in") else [f.value]
            found = [self._source.code(_KIND[column], str(v)) for v in wanted if isinstance(v, str)]
            hit = np.isin(codes, np.array([c for c in found if c is not None], dtype=np.uint32))
            return hit if f.op in ("=", "in") else ~hit
        key = (id(f), column)
        matching = self._code_sets.get(key)
        if matching is None:
            texts = self._texts[_KIND[column]] = self._source.texts(_KIND[column])
            matching = np.array([c for c, t in texts.items() if f.matches(t)], dtype=np.uint32)
            self._code_sets[key] = matching
        return np.isin(codes, matching)

    @staticmethod
    def _number_mask(f: Filter, col: Column) -> np.ndarray:
        values = col.values
        absent = np.isnan(values)
        unique = np.unique(values[~absent])
        passing = np.array([v for v in unique.tolist() if f.matches(v)], dtype=np.float64)
        hit = np.isin(values, passing)
        return hit | absent if f.matches(None) else hit

    @staticmethod
    def _numbers(block: Block, column: str) -> np.ndarray:
        """A property as float64, NaN where absent or not a number (strings and bools are not)."""
        col = block.columns.get(column)
        if col is None:
            return np.full(block.rows, math.nan)
        if col.kind != DICT:
            return col.values
        assert col.entries is not None
        numbers = [float(e) if type(e) in (int, float) else math.nan for e in col.entries]
        table = np.array([math.nan, *numbers], dtype=np.float64)
        return table[col.values]

    def _value_ids(self, block: Block, column: str, ids: ValueIds, rows: np.ndarray) -> np.ndarray:
        """The value ids of ``column`` on the block's ``rows`` (a mask): only those are looked up."""
        col = block.columns.get(column)
        if col is None:
            return np.zeros(int(np.count_nonzero(rows)), dtype=np.int64)
        values = col.values[rows]
        if column in _KIND:
            return self._coded_ids(_KIND[column], values, ids)
        if col.kind == DICT:
            assert col.entries is not None
            table = np.array([0, *(ids.id(_key(e)) for e in col.entries)], dtype=np.int64)
            return table[values]
        unique, inverse = np.unique(values, return_inverse=True)
        table = np.array([0 if math.isnan(v) else ids.id(("n", v)) for v in unique.tolist()], dtype=np.int64)
        return table[inverse]

    def _coded_ids(self, kind: str, codes: np.ndarray, ids: ValueIds) -> np.ndarray:
        """Value ids of registry codes through a table by code: each code's text is looked up
        once per question, not once per block it appears in."""
        table = ids.by_code.get(kind)
        top = int(codes.max(initial=0))
        if table is None or table.size <= top:
            grown = np.full(max(top + 1, 2 * (0 if table is None else table.size)), -1, dtype=np.int64)
            grown[0] = 0  # code 0: no value
            if table is not None:
                grown[: table.size] = table
            table = ids.by_code[kind] = grown
        unique = np.unique(codes)
        new = unique[table[unique] < 0]
        for code in new.tolist():
            table[code] = ids.id(("s", self._text_of(kind, code)))
        return table[codes]
