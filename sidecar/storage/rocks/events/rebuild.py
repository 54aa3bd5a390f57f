"""``sidecar events rebuild-rollups``: the rollups recomputed from the events' column blocks.

Rollups are derived data: dropping and rebuilding them never touches a raw event. Run it with the
server stopped (the data directory's lock sees to it), since the server's writer caches would not
know of the rebuilt keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rocksdict import WriteBatch

from sidecar.storage.rocks.db import RocksStore
from sidecar.storage.rocks.events.columns import DICT, HEADER, HEADER_STRUCT, scan_blocks
from sidecar.storage.rocks.events.rollups import RollupWriter, WriteRows, drop_all
from sidecar.storage.rocks.partitions import EVENTS


def rebuild(
    store: RocksStore, dimensions: tuple[str, ...] = (), on_block: Callable[[int], None] | None = None
) -> int:
    """Drop every rollup and recompute them from the column blocks, oldest partition first; the
    raw events are only read. ``on_block(events)`` hears of progress. Returns events rolled up."""
    drop_all(store)
    writer = RollupWriter(store)
    total = 0
    for part in store.partitions(EVENTS, newest_first=False):
        for block in scan_blocks(part, None):
            rows = WriteRows(dimensions=dimensions)
            props: list[tuple[str, Any]] = [
                (name[2:], col) for name, col in block.columns.items() if name.startswith("p.")
            ]
            ts = block.columns["ts"].values.tolist()
            names = block.columns["name"].values.tolist()
            users = block.columns["user"].values.tolist() if "user" in block.columns else [0] * block.rows
            for i in range(block.rows):
                numbers: dict[str, Any] = {}  # and the dimensions' values, numbers or not
                for key, col in props:
                    if col.kind == DICT:
                        code = int(col.values[i])
                        value = col.entries[code - 1] if code else None
                        if type(value) in (int, float) or key in dimensions:
                            numbers[key] = value
                    elif col.values[i] == col.values[i]:  # not NaN: present
                        numbers[key] = float(col.values[i])
                rows.add(ts[i], names[i], users[i], numbers)
            batch = WriteBatch(raw_mode=True)
            writer.add(rows, batch, store_write_ns(total))
            store.db.write(batch)
            writer.after_write()
            total += block.rows
            if on_block is not None:
                on_block(block.rows)
    return total


def store_write_ns(seq: int) -> int:
    """A distinct, increasing 'write time' per rebuilt block, so its deltas' keys never collide."""
    return 10**18 + seq


def stored_events(store: RocksStore) -> int:
    """How many events the column blocks hold, from their headers alone (for a progress bar)."""
    return sum(
        HEADER_STRUCT.unpack_from(header)[2]
        for part in store.partitions(EVENTS)
        for _, header in part.items(HEADER)
    )
