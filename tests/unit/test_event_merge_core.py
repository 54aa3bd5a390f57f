"""The compiled events merge (sidecar/core/_event_merge.pyx) against what it replaced.

The record, its index keys and the column blocks must stay byte for byte what the Python merge
wrote (stores from before read unchanged): the record and keys against a layout built here with
``struct`` and ``json``, the property JSON and the column helpers against plain-Python oracles
on random properties (unicode, escapes, big integers, non-finite floats, bools next to 1 and 1.0).
"""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from rocksdict import WriteBatch

from sidecar.core._event_merge import compact_json, dictionary_codes, gather_properties, numeric_properties
from sidecar.ingest.events import Event
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.events.merge import EventBatch, EventMerge
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.partitions import EVENTS
from tests.unit.test_wire_core import FAST

_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
keys = st.text(max_size=12)
scalars = st.one_of(
    st.text(max_size=12),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [0, 1, 1.0, True, -0.0, 1e16, 1e-7, 2**63 - 1, -(2**63), 2**63, "é\u2028😀", 'a"b', "\\", "\x1f"]
    ),
)
properties = st.dictionaries(keys, scalars, max_size=8)


@FAST
@given(properties)
def test_compact_json_is_the_json_encoders_text_or_leaves_it_to_it(props: dict[str, Any]) -> None:
    made = compact_json(props)
    needs_encoder = any(
        any(c in text for c in '"\\') or any(ord(c) < 0x20 for c in text)
        for text in [*props, *(v for v in props.values() if isinstance(v, str))]
    ) or any(
        (type(v) is float and not math.isfinite(v)) or (type(v) is int and not -(2**63) <= v < 2**63)
        for v in props.values()
    )
    if needs_encoder:
        assert made is None
    else:
        assert made == _JSON(props).encode()


def _gathered(props_in: list[dict[str, Any]], order: list[int]) -> dict[str, tuple[list[int], list[Any]]]:
    present: dict[str, tuple[list[int], list[Any]]] = {}
    for row, i in enumerate(order):
        for key, value in props_in[i].items():
            found = present.setdefault(key, ([], []))
            if value is not None:
                found[0].append(row)
                found[1].append(value)
    return present


@FAST
@given(
    st.lists(
        st.dictionaries(st.sampled_from("abcde"), st.one_of(st.none(), scalars), max_size=4), max_size=12
    ),
    st.randoms(),
)
def test_column_helpers_match_their_plain_python(props_in: list[dict[str, Any]], rnd: Any) -> None:
    order = list(range(len(props_in)))
    rnd.shuffle(order)
    got = gather_properties(props_in, order)
    want = _gathered(props_in, order)
    assert list(got) == list(want)
    for key, (rows, values) in want.items():
        assert got[key][0] == rows
        assert [(type(v), v if v == v else "nan") for v in got[key][1]] == [
            (type(v), v if v == v else "nan") for v in values
        ]
    values = [v for p in props_in for v in p.values()]
    codes, entries = dictionary_codes(values)
    index: dict[tuple[type, Any], int] = {}
    expect_entries: list[Any] = []
    expect_codes: list[int] = []
    for v in values:
        if v is None:
            expect_codes.append(0)
            continue
        tag = (type(v), v)
        if tag not in index:
            expect_entries.append(v)
            index[tag] = len(expect_entries)
        expect_codes.append(index[tag])
    assert codes == struct.pack(f"<{len(values)}I", *expect_codes)
    assert [(type(v), repr(v)) for v in entries] == [(type(v), repr(v)) for v in expect_entries]
    rows = [(0, 7 + i % 2, 0, 0, None, p) for i, p in enumerate(props_in)]
    numbers: dict[tuple[int, str], list[tuple[int, float]]] = {}
    numeric_properties(rows, 5, numbers)
    expect: dict[tuple[int, str], list[tuple[int, float]]] = {}
    for at, (_, name, _, _, _, p) in enumerate(rows, 5):
        for key, v in p.items():
            if type(v) in (int, float):
                expect.setdefault((name, key), []).append((at, float(v)))
    assert {k: [(r, repr(x)) for r, x in v] for k, v in numbers.items()} == {
        k: [(r, repr(x)) for r, x in v] for k, v in expect.items()
    }


def test_records_and_index_keys_keep_their_layout(tmp_path: Path) -> None:
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    registry = EventRegistry(store.db)
    merge = EventMerge(store, registry)
    ts = 1_714_640_000_123_456_789
    ns = time.time_ns()
    props = {"plan": "pro", "n": 3, "x": 0.1, "vip": True, "cité": "Łódź", "big": 10**30, "q": 'say "hi"'}
    events = [
        Event("paid", ts, "u1", "sess-ü", "web", "order-1", props),
        Event("paid", ts + 1, None, None, None, None, {}),
        Event("paid", ts + 2, "u1", None, None, "order-1", {}),  # a duplicate within the write
    ]
    item = EventBatch(events)
    try:
        batch = WriteBatch(raw_mode=True)
        merge.merge([item], batch, ns)
        store.db.write(batch)
        merge.after_write()
        assert item.duplicates == 1
        eids = [struct.pack(">QQI", ts, ns, 0), struct.pack(">QQI", ts + 1, ns, 1)]
        assert item.stored == eids
        part = store.partitions(EVENTS)[0]
        session, ident = "sess-ü".encode(), b"order-1"
        want = struct.pack(">IIIH", 1, 1, 1, len(session)) + session + bytes([len(ident)]) + ident
        assert part.data[b"V" + eids[0]] == want + _JSON(props).encode()
        assert part.data[b"V" + eids[1]] == struct.pack(">IIIH", 1, 0, 0, 0) + b"\x00{}"
        assert part.data[b"N\x00\x00\x00\x01" + eids[1]] == b""
        assert part.data[b"U\x00\x00\x00\x01" + eids[0]] == b""
        assert part.data.get(b"U\x00\x00\x00\x01" + eids[1]) is None  # no user: no U key
        assert part.data[b"Iorder-1"] == eids[0]
        assert registry.keys_of(1) == sorted(props)
    finally:
        del merge
        store.close()
