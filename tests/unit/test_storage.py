"""The RocksDB store through its Writer/Reader contracts, on a real RocksDB directory."""

from __future__ import annotations

import functools
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, TracesData
from rocksdict import WriteBatch

from sidecar.config.model import StorageConfig
from sidecar.ingest.traces import prepare_traces
from sidecar.query.traces import TraceQueryService
from sidecar.storage.api import TraceQuery
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.reader import RocksReader
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.servicegraph import ServiceGraph, read_calls
from sidecar.storage.rocks.summary import Summary
from sidecar.storage.rocks.traces.writer import TraceWriter
from sidecar.storage.rocks.write_queue import WriteQueue

NOW = time.time_ns()
MS = 1_000_000


def kv(key: str, value: object) -> KeyValue:
    item = KeyValue(key=key)
    if isinstance(value, bool):
        item.value.bool_value = value
    elif isinstance(value, int):
        item.value.int_value = value
    else:
        item.value.string_value = str(value)
    return item


def span(
    tid: bytes,
    sid: int,
    name: str,
    start_ms: int,
    dur_ms: int,
    parent: int = 0,
    kind: int = 1,
    error: bool = False,
    **attrs: object,
) -> Span:
    s = Span(
        trace_id=tid,
        span_id=sid.to_bytes(8, "big"),
        name=name,
        kind=kind,
        start_time_unix_nano=NOW + start_ms * MS,
        end_time_unix_nano=NOW + (start_ms + dur_ms) * MS,
    )
    if parent:
        s.parent_span_id = parent.to_bytes(8, "big")
    if error:
        s.status.code = 2
    s.attributes.extend(kv(k.replace("__", "."), v) for k, v in attrs.items())
    return s


def request(service: str, *spans: Span, **resource: object) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", service)] + [kv(k, v) for k, v in resource.items()])
    ss = rs.scope_spans.add()
    ss.scope.name = "test-scope"
    ss.spans.extend(spans)
    return req.SerializeToString()


def sst_bytes(path: str) -> int:
    return sum(e.stat().st_size for e in os.scandir(path) if e.name.endswith(".sst"))


class Store:
    def __init__(self, path: Path, clock: object = time.time_ns) -> None:
        self.path = str(path)
        self.store = RocksStore(self.path, StoreOptions())
        self.registry = Registry(self.store.db)
        self.queue = WriteQueue(self.store, clock=clock)  # type: ignore[arg-type]
        self.writer = TraceWriter(
            self.queue,
            self.registry,
            10_000,
            100_000,
            reprepare=functools.partial(prepare_traces, well_formed=True),
        )
        self.queue.start()
        self.reader = RocksReader(self.store, self.registry)
        self.query = TraceQueryService(self.reader)

    def write(self, *bodies: bytes) -> None:
        for body in bodies:
            self.writer.submit(prepare_traces(body)).result(10)

    def find(self, **kw: object) -> list[bytes]:
        return [s.trace_id for s, _ in self.query.find_traces(TraceQuery(**kw))]  # type: ignore[arg-type]

    def close(self) -> None:
        self.queue.close()
        assert not self.queue.alive
        del self.queue, self.writer, self.reader, self.query
        self.store.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db")
    yield s
    s.close()


T1, T2, T3 = (bytes([i]) * 16 for i in (1, 2, 3))


def test_trace_by_id_assembles_all_writes(db: Store) -> None:
    db.write(
        request("api", span(T1, 1, "GET /a", 0, 50, kind=2)), request("db", span(T1, 2, "SELECT", 5, 10, 1))
    )
    stored = db.reader.get_trace(T1)
    assert stored is not None and stored.chunks == 2
    data = TracesData.FromString(stored.traces_data)
    names = sorted(s.name for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans)
    assert names == ["GET /a", "SELECT"]
    assert stored.summary is not None
    assert (stored.summary.span_count, stored.summary.root_service, stored.summary.root_name) == (
        2,
        "api",
        "GET /a",
    )
    assert stored.summary.duration_ns == 50 * MS
    assert db.reader.get_trace(T3) is None


def test_search_by_service_operation_tag_and_durations(db: Store) -> None:
    db.write(
        request("api", span(T1, 1, "GET /a", 0, 100, kind=2, http__status_code=500)),
        request("api", span(T2, 2, "GET /b", 10, 5, kind=2, http__status_code=200, user__id="u7")),
        request("worker", span(T3, 3, "job", 20, 2000, error=True, user__id="u7"), region="eu"),
    )
    assert db.find(service="api") == [T2, T1]  # newest start first
    assert db.find(service="api", operation="GET /b") == [T2]
    assert db.find(service="api", tags=(("http.status_code", "500"),)) == [T1]  # int matched as string
    assert db.find(tags=(("user.id", "u7"),)) == [T3, T2]  # no service: Jaeger cannot do this
    assert db.find(tags=(("region", "eu"),)) == [T3]  # resource attribute
    assert db.find(tags=(("resource.region", "eu"),)) == [T3]
    assert db.find(min_duration_ns=1000 * MS) == [T3]
    assert db.find(service="api", max_duration_ns=10 * MS) == [T2]
    assert db.find(min_trace_duration_ns=90 * MS, max_trace_duration_ns=200 * MS) == [T1]
    assert db.find(tags=(("error", "true"),)) == [T3]
    assert db.find(service="api", tags=(("user.id", "u7"), ("http.status_code", "500"))) == []
    assert db.find(service="nope") == []
    assert db.find(service="api", limit=1) == [T2]


def test_partial_success_with_a_fully_rejected_resource_keeps_the_rest(db: Store) -> None:
    req = ExportTraceServiceRequest.FromString(request("good", span(T1, 1, "op", 0, 1, a="x")))
    bad = ExportTraceServiceRequest.FromString(request("bad", span(bytes(16), 2, "op", 0, 1, a="y")))
    req.resource_spans.extend(bad.resource_spans)
    prepared = prepare_traces(req.SerializeToString())
    assert (prepared.accepted, prepared.rejected) == (1, 1)
    db.writer.submit(prepared).result(10)
    assert db.find(service="good", tags=(("a", "x"),)) == [T1]


def test_one_span_must_satisfy_operation_and_tags_together(db: Store) -> None:
    db.write(request("api", span(T1, 1, "GET /a", 0, 10, a="x"), span(T1, 2, "GET /b", 0, 10, 1, a="y")))
    assert db.find(service="api", operation="GET /a", tags=(("a", "x"),)) == [T1]
    assert db.find(service="api", operation="GET /a", tags=(("a", "y"),)) == []


def test_registries_survive_restart_without_scanning(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    s.write(request("api", span(T1, 1, "GET /a", 0, 10, kind=2), span(T1, 2, "call", 1, 2, 1, kind=3)))
    s.close()
    s = Store(tmp_path / "db")
    try:
        assert s.reader.get_services() == ["api"]
        assert [(o.name, o.span_kind) for o in s.reader.get_operations("api")] == [
            ("GET /a", "server"),
            ("call", "client"),
        ]
        assert [(o.name) for o in s.reader.get_operations("api", "client")] == ["call"]
        assert s.find(service="api") == [T1]
    finally:
        s.close()


def test_dependencies_pair_client_and_server_spans(db: Store) -> None:
    db.write(
        request("web", span(T1, 1, "GET /", 0, 100, kind=2), span(T1, 2, "call api", 1, 50, 1, kind=3)),
        request("api", span(T1, 3, "GET /api", 2, 40, 2, kind=2)),
    )
    links = db.reader.get_dependencies(time.time_ns() + 3_600 * 10**9, 2 * 3_600 * 10**9)
    assert [(x.parent, x.child, x.call_count) for x in links] == [("web", "api", 1)]


def test_service_graph_pairs_across_writes_and_counts_per_hour(tmp_path: Path) -> None:
    """Halves meet in later writes; totals add up per hour; a call inside one service is no edge."""
    store = RocksStore(str(tmp_path / "db"), StoreOptions())
    graph = ServiceGraph()
    hour = time.time_ns() // keys.HOUR_NS

    def write(clients: dict[bytes, int], servers: dict[bytes, int], ns: int) -> dict[tuple[int, int], int]:
        batch = WriteBatch(raw_mode=True)
        calls = graph.add(clients, servers, ns, store.partition_for_write(ns // keys.DAY_NS), batch)
        store.db.write(batch)
        return calls

    ns = hour * keys.HOUR_NS
    assert write({T1 + _sid(1): 7, T1 + _sid(2): 7}, {}, ns) == {}  # clients wait for their servers
    assert write({}, {T1 + _sid(1): 8, T1 + _sid(2): 7}, ns + 1) == {(7, 8): 1}  # 7 -> 7 is no edge
    assert write({T2 + _sid(1): 7}, {T2 + _sid(1): 8, T3 + _sid(5): 9}, ns + 2) == {(7, 8): 1}
    assert write({T3 + _sid(5): 8}, {}, ns + 3) == {(8, 9): 1}  # the server came first
    assert read_calls(store.partitions(), ns, ns + 10) == {(7, 8): 2, (8, 9): 1}
    assert read_calls(store.partitions(), ns + keys.HOUR_NS, ns + 2 * keys.HOUR_NS) == {}
    store.close()


def test_retention_drops_whole_partitions_and_frees_space(tmp_path: Path) -> None:
    day = time.time_ns() // keys.DAY_NS
    clock = {"ns": (day - 10) * keys.DAY_NS + 1}
    s = Store(tmp_path / "db", clock=lambda: clock["ns"])
    s.write(request("old", *[span(T1, i, "op", 0, 1, payload=os.urandom(1500).hex()) for i in range(1, 400)]))
    clock["ns"] = day * keys.DAY_NS + 1
    s.write(request("new", span(T2, 1, "op", 0, 1)))
    s.store.flush()
    before = sst_bytes(s.path)
    assert [p.day for p in s.store.partitions()] == [day, day - 10]
    assert s.store.drop_before(day - 7) == [keys.partition_name(day - 10)]
    assert s.reader.get_trace(T1) is None
    assert s.reader.get_trace(T2) is not None
    assert sst_bytes(s.path) < before - 500_000  # the old partition's files are gone at once
    s.close()


def test_key_parts_are_unambiguous() -> None:
    a = keys.attribute_posting_prefix(1, b"ab") + keys.rev(5)
    b = keys.attribute_posting_prefix(1, b"a") + b"b" + keys.rev(5)
    assert a != b
    long_kv = KeyValue(key="sql", value={"string_value": "x" * 500}).SerializeToString()
    assert len(keys.term(long_kv)) == 17 and keys.term(long_kv) != keys.term(long_kv + b"y")
    assert keys.prefix_end(b"A\x00\xff") == b"A\x01"
    assert keys.partition_day(keys.partition_name(20000)) == 20000


def test_writer_attribute_keys_match_the_reader_layout(db: Store) -> None:
    long_value = "v" * 300  # past MAX_TERM_BYTES: stored under its digest
    db.write(request("api", span(T1, 1, "op", 0, 1, short="s", long=long_value)))
    part = db.store.partitions()[0]
    svc = db.registry.service_ids["api"]
    for key, value in (("short", "s"), ("long", long_value)):
        prefix = keys.attribute_posting_prefix(svc, keys.term(kv(key, value).SerializeToString()))
        first_key = next(iter(part.data.keys(from_key=prefix)), b"")
        assert first_key.startswith(prefix), key
    del part


def test_summary_round_trip() -> None:
    s = Summary(1)
    s.add(3, 4, 1, 10, 20, 1, 9, (False, 10, b"root"))
    s.add(4, 1, 0, 5, 25, 2, 3, None)
    s.operations = {7, 9}
    d = Summary.decode(s.encode())
    assert (d.start, d.end, d.spans, d.errors, d.root_name, d.root_service) == (5, 25, 5, 1, b"root", 3)
    assert d.services == {3: [4, 1], 4: [1, 0]} and d.operations == {7, 9}


def test_summary_bytes_keep_the_stored_layout() -> None:
    """Summaries written before the compiled core took them over decode the same, and vice versa:
    the little-endian head "<QQQIIQQBQIH", the root name, then u16-counted services and operations."""
    head = struct.pack("<QQQIIQQBQIH", 7, 5, 25, 5, 1, 1, 9, 0, 10, 3, 4)
    operations = {7, 9}  # encoded in the set's own order, as before
    stored = head + b"root" + struct.pack("<H6IH2I", 2, 3, 4, 1, 4, 1, 0, 2, *operations)
    s = Summary(7)
    s.add(3, 4, 1, 10, 20, 1, 9, (False, 10, b"root"))
    s.add(4, 1, 0, 5, 25, 2, 3, None)
    s.operations = operations
    assert s.encode() == stored
    d = Summary.decode(stored)
    assert (d.first_seen, d.min_span, d.max_span, d.root_has_parent, d.root_start) == (7, 1, 9, False, 10)
    assert d.encode() == stored
    with pytest.raises(ValueError, match="cut short"):
        Summary.decode(stored[:-1])


def test_data_dir_is_a_real_rocksdb(db: Store) -> None:
    db.write(request("api", span(T1, 1, "op", 0, 1)))
    assert os.path.exists(os.path.join(db.path, "CURRENT"))


def _span_ids(db: Store, trace_id: bytes) -> list[bytes]:
    stored = db.reader.get_trace(trace_id)
    assert stored is not None
    data = TracesData.FromString(stored.traces_data)
    return sorted(s.span_id for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans)


def _counts(db: Store, trace_id: bytes) -> tuple[int, int, dict[str, tuple[int, int]]]:
    stored = db.reader.get_trace(trace_id)
    assert stored is not None and stored.summary is not None
    s = stored.summary
    return s.span_count, s.error_count, {x.name: (x.span_count, x.error_count) for x in s.services}


def _sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def test_a_resent_request_counts_once(db: Store) -> None:
    """An exporter's retry (same bytes again, in a later write) adds nothing."""
    body = request("api", span(T1, 1, "GET /a", 0, 50, kind=2), span(T1, 2, "fail", 5, 10, 1, error=True))
    db.write(body)
    db.write(body)
    db.write(body, body)  # and twice inside one write
    assert _span_ids(db, T1) == [_sid(1), _sid(2)]
    assert _counts(db, T1) == (2, 1, {"api": (2, 1)})
    assert db.find(service="api", tags=(("error", "true"),)) == [T1]


def test_a_request_with_old_and_new_spans_keeps_the_new_ones(db: Store) -> None:
    db.write(request("api", span(T1, 1, "GET /a", 0, 50, kind=2), span(T1, 2, "q", 5, 10, 1)))
    # A collector re-batched: span 2 again, plus new spans 3 (an error) and 4 in another service.
    db.write(
        request("api", span(T1, 2, "q", 5, 10, 1), span(T1, 3, "late", 20, 10, 1, error=True)),
        request("db", span(T1, 4, "SELECT", 6, 2, 2, kind=2)),
    )
    assert _span_ids(db, T1) == [_sid(n) for n in (1, 2, 3, 4)]
    assert _counts(db, T1) == (4, 1, {"api": (3, 1), "db": (1, 0)})
    assert db.find(service="api", operation="late") == [T1]


def test_duplicates_inside_one_request_count_once(db: Store) -> None:
    db.write(request("api", span(T1, 1, "GET /a", 0, 50, kind=2), span(T1, 1, "GET /a", 0, 50, kind=2)))
    assert _span_ids(db, T1) == [_sid(1)]
    assert _counts(db, T1)[0] == 1


def test_a_resend_after_restart_is_recognised_from_the_stored_chunks(tmp_path: Path) -> None:
    body = request("api", span(T1, 1, "GET /a", 0, 50, kind=2), span(T1, 2, "q", 5, 10, 1))
    first = Store(tmp_path / "db")
    first.write(body)
    first.close()
    second = Store(tmp_path / "db")  # empty writer cache: the check reads the chunks
    try:
        second.write(body, request("api", span(T1, 3, "new", 7, 1, 1)))
        assert _span_ids(second, T1) == [_sid(1), _sid(2), _sid(3)]
        assert _counts(second, T1)[0] == 3
    finally:
        second.close()


def test_resent_client_and_server_spans_count_one_call(db: Store) -> None:
    client = request("web", span(T1, 1, "GET /a", 0, 50, kind=2), span(T1, 2, "call api", 1, 40, 1, kind=3))
    server = request("api", span(T1, 3, "GET /api", 2, 30, 2, kind=2))
    db.write(client, server)
    db.write(server, client)
    links = db.reader.get_dependencies(time.time_ns() + 3_600_000_000_000, 86_400_000_000_000)
    assert [(d.parent, d.child, d.call_count) for d in links] == [("web", "api", 1)]


def test_a_request_resending_one_service_and_adding_another(db: Store) -> None:
    """One service's spans all resent, another's new, in one request: the new ones are stored."""
    db.write(request("api", span(T1, 1, "GET /a", 0, 50, kind=2, user__id="u1")))
    both = ExportTraceServiceRequest.FromString(
        request("api", span(T1, 1, "GET /a", 0, 50, kind=2, user__id="u1"))
    )
    both.MergeFromString(request("db", span(T1, 2, "SELECT", 5, 10, 1, table="orders")))
    db.write(both.SerializeToString())
    assert _span_ids(db, T1) == [_sid(1), _sid(2)]
    assert _counts(db, T1) == (2, 0, {"api": (1, 0), "db": (1, 0)})
    assert db.find(service="db", tags=(("table", "orders"),)) == [T1]
    assert db.find(service="api", tags=(("user.id", "u1"),)) == [T1]


def test_store_options_take_their_defaults_and_values_from_the_storage_config() -> None:
    """One source for each default: a store opened without a config runs as a sidecar without one."""
    assert StoreOptions() == StoreOptions.from_config(StorageConfig())
    custom = StorageConfig(block_cache_mib=64, compression="zstd", bloom_bits_per_key=0, wal_sync=True)
    assert StoreOptions.from_config(custom) == StoreOptions(
        block_cache_mib=64, compression="zstd", bloom_bits_per_key=0, wal_sync=True
    )
