"""Registries of services, operations and attribute keys.

They live in the default column family as one small key per entry and are loaded whole at
start-up, so opening a store costs O(services + operations + keys), never a scan of span data
(the restart trap in jaeger#7547). Only the writer thread adds entries; readers see plain dicts.
"""

from __future__ import annotations

import threading

from rocksdict import ColumnFamily, Rdict, ReadOptions, WriteBatch

from sidecar.storage.rocks import keys

SPAN_KINDS = ("", "internal", "server", "client", "producer", "consumer")  # index = OTLP SpanKind
MAX_ATTRIBUTE_KEYS = 10_000


class Registry:
    def __init__(self, db: Rdict) -> None:
        self.services: dict[int, str] = {}
        self.service_ids: dict[str, int] = {}
        # operation id -> (service id, name, kinds bitmask over OTLP SpanKind values)
        self.operations: dict[int, tuple[int, str, int]] = {}
        self.operation_ids: dict[tuple[int, bytes], int] = {}
        self.attribute_keys: set[str] = set()
        self._lock = threading.Lock()
        self._load(db)

    def _load(self, db: Rdict) -> None:
        ro = ReadOptions()
        ro.set_iterate_upper_bound(keys.REG_ATTRIBUTE_KEY + b"\xff")
        it = db.iter(ro)
        it.seek(keys.REG_ATTRIBUTE_KEY)
        while it.valid():
            self.attribute_keys.add(it.key()[1:].decode("utf-8", "replace"))
            it.next()
        for prefix in (keys.REG_SERVICE, keys.REG_OPERATION):
            ro = ReadOptions()
            ro.set_iterate_upper_bound(keys.prefix_end(prefix))
            it = db.iter(ro)
            it.seek(prefix)
            while it.valid():
                key, value = it.key(), it.value()
                ident = keys.read_u32(key, 1)
                if prefix == keys.REG_SERVICE:
                    name = value.decode("utf-8", "replace")
                    self.services[ident] = name
                    self.service_ids[name] = ident
                else:
                    service, kinds = keys.read_u32(value), value[4]
                    raw_name = value[5:]
                    self.operations[ident] = (service, raw_name.decode("utf-8", "replace"), kinds)
                    self.operation_ids[(service, raw_name)] = ident
                it.next()
        del it

    # -- writer side -------------------------------------------------------------------------
    def service_id(self, name: str, batch: WriteBatch, default_cf: ColumnFamily) -> int:
        ident = self.service_ids.get(name)
        if ident is None:
            with self._lock:
                ident = len(self.services) + 1
                self.services[ident] = name
                self.service_ids[name] = ident
            batch.put(keys.REG_SERVICE + keys.u32(ident), name.encode(), default_cf)
        return ident

    def operation_id(
        self, service: int, name: bytes, kind: int, batch: WriteBatch, default_cf: ColumnFamily
    ) -> int:
        ident = self.operation_ids.get((service, name))
        bit = 1 << kind if 0 <= kind < 8 else 1
        if ident is not None:
            entry = self.operations[ident]
            if entry[2] & bit:
                return ident
            kinds = entry[2] | bit
            self.operations[ident] = (service, entry[1], kinds)
        else:
            kinds = bit
            with self._lock:
                ident = len(self.operations) + 1
                self.operations[ident] = (service, name.decode("utf-8", "replace"), kinds)
                self.operation_ids[(service, name)] = ident
        batch.put(keys.REG_OPERATION + keys.u32(ident), keys.u32(service) + bytes([kinds]) + name, default_cf)
        return ident

    def note_attribute_key(self, key: str, batch: WriteBatch, default_cf: ColumnFamily) -> None:
        if key in self.attribute_keys or len(self.attribute_keys) >= MAX_ATTRIBUTE_KEYS:
            return
        self.attribute_keys.add(key)
        batch.put(keys.REG_ATTRIBUTE_KEY + key.encode(), b"", default_cf)

    # -- reader side -------------------------------------------------------------------------
    def service_names(self) -> list[str]:
        return sorted(self.service_ids)

    def operations_of(self, service_id: int) -> list[tuple[int, str, int]]:
        return [
            (op, name, kinds) for op, (svc, name, kinds) in list(self.operations.items()) if svc == service_id
        ]

    def operation_ids_named(self, name: str, service_id: int | None) -> list[int]:
        return [
            op
            for op, (svc, op_name, _) in list(self.operations.items())
            if op_name == name and (service_id is None or svc == service_id)
        ]
