"""Dictionary codes of event names, user ids and services (default column family, ``E|kind|code``).

Loaded whole at start-up, like the trace registries, so a record or index key carries a u32 and a
reader turns it back into text without a read. Codes are handed out by the writer thread only; a
code made for a write that then failed is forgotten (``rollback``), so no stored key ever points at
a code the store does not hold.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable

from rocksdict import ColumnFamily, Rdict, ReadOptions, WriteBatch

from sidecar.storage.rocks.key_registry import KeyRegistry

PREFIX = b"E"
KINDS = ("n", "u", "s")  # event name, user id, service
KEYS = b"Ek"  # Ek | name(4) | property key -> "": the keys each event name has carried (CSV headers)
_U32 = struct.Struct(">I")


class EventRegistry:
    def __init__(self, db: Rdict) -> None:
        self.codes: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
        self.texts: dict[str, dict[int, str]] = {kind: {} for kind in KINDS}
        self._pending: list[tuple[str, str, int]] = []
        self.keys = KeyRegistry(db, KEYS, lambda rest: (rest[:4], rest[4:]))
        self._lock = threading.Lock()
        ro = ReadOptions()
        ro.set_iterate_upper_bound(b"F")
        it = db.iter(ro)
        it.seek(PREFIX)
        while it.valid():
            key = it.key()
            kind = chr(key[1])
            if kind in self.codes and len(key) == 6:
                code, text = _U32.unpack_from(key, 2)[0], it.value().decode("utf-8", "replace")
                self.codes[kind][text] = code
                self.texts[kind][code] = text
            it.next()
        del it

    def code(self, kind: str, text: str, batch: WriteBatch, default_cf: ColumnFamily) -> int:
        """The code of ``text``, made (and put into ``batch``) on first sight; codes start at 1."""
        code = self.codes[kind].get(text)
        if code is None:
            with self._lock:
                code = len(self.texts[kind]) + 1
                self.codes[kind][text] = code
                self.texts[kind][code] = text
            self._pending.append((kind, text, code))
            batch.put(PREFIX + kind.encode() + _U32.pack(code), text.encode(), default_cf)
        return code

    def note_keys(self, name: int, keys: Iterable[str], batch: WriteBatch, default_cf: ColumnFamily) -> None:
        """Remember the property keys of event name ``name`` (see key_registry.py)."""
        group = _U32.pack(name)
        if not self.keys.knows(group, keys):
            self.keys.note(group, keys, batch, default_cf)

    def keys_of(self, name: int | None) -> list[str]:
        """Property keys of one event name (None: of every name), sorted."""
        return self.keys.keys_of(None if name is None else [_U32.pack(name)])

    def commit(self) -> None:
        self._pending.clear()
        self.keys.commit()

    def rollback(self) -> None:
        with self._lock:
            for kind, text, code in reversed(self._pending):
                self.codes[kind].pop(text, None)
                self.texts[kind].pop(code, None)
        self.keys.rollback()
        self._pending.clear()

    def text(self, kind: str, code: int) -> str | None:
        return self.texts[kind].get(code) if code else None
