"""The keys each group of items has carried (event properties per name, log attributes per service).

CSV answers need their header before the first row, and a million-row export must not take a pass
over the rows to find it; so the writer notes every new key of a group as it stores the items, one
small key per entry in the default column family (``prefix | group | key``), loaded whole at
start-up. A group is the caller's bytes, of a fixed width or length-prefixed so that no group is
the prefix of another. Entries of a write that then failed are forgotten (``rollback``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from rocksdict import ColumnFamily, Rdict, ReadOptions, WriteBatch

from sidecar.storage.rocks import keys as keyspace

MAX_KEYS_PER_GROUP = 1_000  # past this a group's further keys get no CSV column


class KeyRegistry:
    """Keys per group; ``split`` cuts a stored key (without ``prefix``) into (group, key bytes)."""

    def __init__(self, db: Rdict, prefix: bytes, split: Callable[[bytes], tuple[bytes, bytes]]) -> None:
        self._prefix = prefix
        self.keys: dict[bytes, set[str]] = {}
        self._pending: list[tuple[bytes, str]] = []
        self._lock = threading.Lock()
        ro = ReadOptions()
        ro.set_iterate_upper_bound(keyspace.prefix_end(prefix))
        it = db.iter(ro)
        it.seek(prefix)
        while it.valid():
            group, key = split(it.key()[len(prefix) :])
            if key:
                self.keys.setdefault(group, set()).add(key.decode("utf-8", "replace"))
            it.next()
        del it

    def knows(self, group: bytes, keys: Iterable[str]) -> bool:
        """Whether every one of ``keys`` is noted for ``group`` already (the common case: no write)."""
        known = self.keys.get(group)
        return known is not None and known.issuperset(keys)

    def note(self, group: bytes, keys: Iterable[str], batch: WriteBatch, default_cf: ColumnFamily) -> None:
        """Put the keys of ``group`` not seen before into ``batch`` (up to MAX_KEYS_PER_GROUP)."""
        known = self.keys.get(group)
        if known is None:
            with self._lock:
                known = self.keys[group] = set()
        for key in keys:
            if key not in known and len(known) < MAX_KEYS_PER_GROUP:
                with self._lock:
                    known.add(key)
                self._pending.append((group, key))
                batch.put(self._prefix + group + key.encode(), b"", default_cf)

    def keys_of(self, groups: Iterable[bytes] | None) -> list[str]:
        """The keys of these groups (None: of every group), sorted."""
        with self._lock:
            chosen = list(self.keys.values()) if groups is None else [self.keys.get(g, set()) for g in groups]
            return sorted(set().union(*chosen))

    def commit(self) -> None:
        self._pending.clear()

    def rollback(self) -> None:
        with self._lock:
            for group, key in self._pending:
                self.keys[group].discard(key)
        self._pending.clear()
