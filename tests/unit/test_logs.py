"""Log ingest and the log store on a real RocksDB directory: prepare, blocks, skip headers, reader."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from sidecar.config.model import LogsStorageConfig, StorageConfig
from sidecar.ingest.logs import prepare_logs
from sidecar.ingest.traces import RequestDecodeError
from sidecar.pipeline.consumer import StoreConsumer
from sidecar.receivers.export import Exporter, ExportResult
from sidecar.receivers.signals import LOGS as LOGS_ROW
from sidecar.receivers.status import Outcome
from sidecar.storage.prepared_logs import PreparedLogs
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.logs import merge
from sidecar.storage.rocks.logs.reader import LogReader
from sidecar.storage.rocks.logs.writer import LogWriter
from sidecar.storage.rocks.partitions import LOGS, TRACES
from sidecar.storage.rocks.retention import Retention
from sidecar.storage.rocks.write_queue import WriteQueue

NOW = time.time_ns()
TRACE = bytes(range(16))
SPAN = bytes(range(8))


def kv(key: str, value: Any) -> KeyValue:
    item = KeyValue(key=key)
    if isinstance(value, str):
        item.value.string_value = value
    elif isinstance(value, float):
        item.value.double_value = value
    else:
        item.value.int_value = value
    return item


def request(service: str, records: list[LogRecord], scope: str = "app") -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", service))
    sl = rl.scope_logs.add()
    sl.scope.name = scope
    sl.log_records.extend(records)
    return req


def record(body: str, severity: int = 9, t: int = NOW, **fields: Any) -> LogRecord:
    rec = LogRecord(time_unix_nano=t, severity_number=severity, **fields)  # type: ignore[arg-type]
    rec.body.string_value = body
    return rec


def prepare(req: ExportLogsServiceRequest) -> PreparedLogs:
    return prepare_logs(req.SerializeToString())


# -- prepare --------------------------------------------------------------------------------------


def test_invalid_records_are_named_and_the_rest_kept() -> None:
    prepared = prepare(
        request(
            "svc",
            [
                record("ok"),
                record("short trace", trace_id=b"abc"),
                record("short span", trace_id=TRACE, span_id=b"12"),
                record("bad severity", severity=99),
                record("no ids, fine"),
            ],
        )
    )
    assert (prepared.accepted, prepared.rejected) == (2, 3)
    assert prepared.error_message() == (
        "3 log record(s) rejected: "
        "resourceLogs[0].scopeLogs[0].logRecords[1]: trace_id must be 16 bytes or empty, got 3; "
        "resourceLogs[0].scopeLogs[0].logRecords[2]: span_id must be 8 bytes or empty, got 2; "
        "resourceLogs[0].scopeLogs[0].logRecords[3]: severity_number must be 0..24, got 99"
    )
    assert [g.bodies for g in prepared.groups] == [["ok", "no ids, fine"]]


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(RequestDecodeError):
        prepare_logs(b"\xff" * 20)


def test_time_falls_back_to_observed_then_receive_time() -> None:
    before = time.time_ns()
    prepared = prepare(
        request("svc", [record("a", t=5), record("b", t=0, observed_time_unix_nano=7), record("c", t=0)])
    )
    times = prepared.groups[0].times
    assert times[:2] == [5, 7] and times[2] >= before


def test_events_from_event_name_or_the_older_attribute() -> None:
    named = record("", t=11, event_name="paid")
    named.attributes.extend([kv("user.id", "42"), kv("amount", 9.5), kv("event.name", "ignored")])
    legacy = record("", t=12)
    legacy.attributes.extend([kv("event.name", "signup"), kv("enduser.id", "u7"), kv("plan", "pro")])
    prepared = prepare(request("shop", [named, legacy, record("just a log")]))
    assert [(e.name, e.user_id, e.properties, e.service, e.time_ns) for e in prepared.events] == [
        ("paid", "42", {"amount": 9.5}, "shop", 11),
        ("signup", "u7", {"plan": "pro"}, "shop", 12),
    ]
    assert prepared.accepted == 3  # events stay log records too


# -- the store --------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RocksStore]:
    s = RocksStore(str(tmp_path / "db"), StoreOptions())
    yield s
    s.close()


def write(store: RocksStore, *requests: ExportLogsServiceRequest) -> None:
    queue = WriteQueue(store)
    writer = LogWriter(queue, 100_000, 1_000_000)
    queue.start()
    try:
        for req in requests:
            writer.submit(prepare(req)).result()
    finally:
        queue.close()


def keys_with(store: RocksStore, prefix: bytes) -> list[bytes]:
    return [k for part in store.partitions(LOGS) for k in part.data.keys() if k.startswith(prefix)]  # noqa: SIM118 (an Rdict iterates its items)


def test_records_come_back_whole_and_filtered(store: RocksStore) -> None:
    rec = record("payment declined for order 17", severity=17, trace_id=TRACE, span_id=SPAN)
    rec.attributes.append(kv("order.id", 17))
    write(
        store,
        request("checkout", [record("cart loaded", t=NOW - 10), rec]),
        request("search", [record("query took 3 ms", severity=5, t=NOW - 100)]),
    )
    reader = LogReader(store)
    assert [e.body for e in reader.scan()] == [
        "query took 3 ms",
        "payment declined for order 17",
        "cart loaded",
    ]
    (entry,) = reader.scan(service="checkout", severity_min=13)
    assert (entry.time_ns, entry.severity_number, entry.attributes, entry.service, entry.scope) == (
        NOW,
        17,
        {"order.id": 17},
        "checkout",
        "app",
    )
    assert (entry.trace_id, entry.span_id) == (TRACE.hex(), SPAN.hex())
    assert [e.body for e in reader.scan(text="DECLINED")] == ["payment declined for order 17"]
    assert [e.body for e in reader.scan(from_ns=NOW - 5, to_ns=NOW + 1)] == ["payment declined for order 17"]
    assert reader.scan(from_ns=NOW - 5, to_ns=NOW) == []  # to is exclusive
    assert reader.scan(service="nobody") == []
    assert len(reader.scan(limit=2)) == 2
    assert [e.body for e in reader.get_trace_logs(TRACE)] == ["payment declined for order 17"]
    assert reader.get_trace_logs(bytes(16)) == []


def test_headers_let_a_search_skip_blocks(store: RocksStore) -> None:
    write(
        store,
        request("a", [record(f"routine line {i}") for i in range(50)]),
        request("b", [record("the needle xq7z appears once", severity=21)]),
        request("a", [record(f"other line {i}", severity=13) for i in range(50)]),
    )
    reader = LogReader(store)
    assert [e.body for e in reader.scan(text="xq7z")] == ["the needle xq7z appears once"]
    assert (reader.last_scan.headers, reader.last_scan.opened) == (3, 1)  # the bloom ruled out two
    assert len(reader.scan(service="a", severity_min=13, limit=1000)) == 50
    assert reader.last_scan.opened == 1  # by service, then by the severities present
    assert reader.scan(text="absent-word") == [] and reader.last_scan.opened == 0
    # The day's time range (W) holds every record's time: a later window reads no header at all.
    assert reader.scan(from_ns=NOW + 1) == [] and reader.last_scan.headers == 0
    assert len(reader.scan(from_ns=NOW, limit=1000)) == 101


def test_blocks_not_keys_per_record_and_resource_once(store: RocksStore) -> None:
    many = [record(f"line {i}", trace_id=TRACE if i % 100 == 0 else b"") for i in range(2500)]
    write(store, request("bulk", many), request("bulk", [record("again")]))
    # One write of 2500 records: three blocks (BLOCK_RECORDS each), then one for the second write.
    assert len(keys_with(store, merge.BLOCK)) == len(keys_with(store, merge.HEADER)) == 4
    assert len(keys_with(store, merge.BLOB)) == 2  # one resource, one scope, stored once
    assert len(keys_with(store, merge.TRACE_INDEX)) == 3  # the trace's records sit in three blocks
    reader = LogReader(store)
    assert [e.body for e in reader.get_trace_logs(TRACE)] == [f"line {i}" for i in range(0, 2500, 100)]
    assert len(reader.scan(limit=10_000)) == 2501


def test_zlib_blocks_read_back(store: RocksStore) -> None:
    data = b"some block bytes" * 10
    for codec in (merge.RAW, merge.ZLIB):
        assert merge.decode_block(merge.encode_block(data, codec)) == data
    assert len(merge.encode_block(data, merge.ZLIB)) < len(data)


def test_the_filter_never_misses_a_substring() -> None:
    texts = [f"user=u{i} status={200 + i % 3} path=/api/items/{i * 7}" for i in range(300)]
    bloom = merge.build_filter(texts)
    for text in texts:
        assert merge.may_contain(bloom, merge.needle_trigrams(text[3:20].upper()))


def test_log_retention_is_independent_of_traces(store: RocksStore) -> None:
    today = NOW // keys.DAY_NS
    for day in (today - 10, today - 3, today):
        store.partition_for_write(day, TRACES)
        store.partition_for_write(day, LOGS)
    config = StorageConfig(logs=LogsStorageConfig(retention_days=2))  # traces keep 7
    dropped = Retention.from_config(store, config, clock=lambda: NOW).check()
    assert sorted(dropped) == sorted(
        [TRACES.partition_name(today - 10), LOGS.partition_name(today - 10), LOGS.partition_name(today - 3)]
    )
    assert [p.day for p in store.partitions(LOGS)] == [today]
    assert [p.day for p in store.partitions(TRACES)] == [today, today - 3]


# -- the receivers' side: the generic exporter over the logs row ------------------------------------


def test_a_full_log_queue_answers_unavailable_and_names_its_setting(store: RocksStore) -> None:
    """Backpressure counts log records apart from spans; the answer is the retryable 503/UNAVAILABLE."""
    queue = WriteQueue(store)  # not started: what is queued stays queued
    writer = LogWriter(queue, max_batch_records=10, max_queue_records=10)
    exporter = Exporter(LOGS_ROW, StoreConsumer(writer))
    body = request("busy", [record(f"r{i}") for i in range(6)]).SerializeToString()

    async def two_exports() -> tuple[ExportResult, ExportResult]:
        first = asyncio.ensure_future(exporter.export(body))
        await asyncio.sleep(0)  # the first request is queued, waiting for the WAL
        second = await exporter.export(body)
        queue.start()  # now the first one is written and answered
        return await first, second

    first, second = asyncio.run(two_exports())
    queue.close()
    assert (first.outcome, first.accepted) == (Outcome.OK, 6)
    assert (second.outcome, second.refused) == (Outcome.UNAVAILABLE, 6)
    assert "ingest.max_queue_log_records" in second.reason
    assert second.message.endswith("write queue holds 6 log records (limit 10)")


def test_a_resent_request_is_stored_once(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    sent = request("resend", [record("paid", t=NOW), record("shipped", t=NOW + 1)])
    untimed = request("resend", [record("heartbeat", t=0)])
    store = RocksStore(path, StoreOptions())
    try:
        queue = WriteQueue(store)
        writer = LogWriter(queue, 100_000, 1_000_000)
        together = [writer.submit(prepare(sent)) for _ in range(2)]  # one write: queue not started
        queue.start()
        for future in together:
            future.result()
        writer.submit(prepare(sent)).result()  # a later write, from the cache
        for _ in range(2):
            writer.submit(prepare(untimed)).result()  # no time at all: two heartbeats are two
        queue.close()
    finally:
        store.close()
    store = RocksStore(path, StoreOptions())  # a new writer, its cache empty: read from the store
    try:
        write(store, sent)
        assert sorted(e.body for e in LogReader(store).scan()) == [
            "heartbeat",
            "heartbeat",
            "paid",
            "shipped",
        ]
    finally:
        store.close()


def test_attribute_keys_per_service_survive_a_restart(tmp_path: Path) -> None:
    """The CSV header's columns: every key a service's records carried, read without a scan."""
    path = str(tmp_path / "db")
    long_key = "k" * 200  # a two-byte length on the wire: read the slow way
    a = record("a", attributes=[kv("http.route", "/x"), kv("n", 1)])
    b = record("b", attributes=[kv(long_key, "v")])
    store = RocksStore(path, StoreOptions())
    try:
        write(store, request("svc-a", [a, record("plain")]))
        write(store, request("svc-b", [b]))
        reader = LogReader(store)
        assert reader.attribute_keys("svc-a") == ["http.route", "n"]
        assert reader.attribute_keys("svc-b") == [long_key]
        assert reader.attribute_keys(None) == ["http.route", long_key, "n"]
        assert reader.attribute_keys("nobody") == []
    finally:
        store.close()
    store = RocksStore(path, StoreOptions())
    try:
        assert LogReader(store).attribute_keys(None) == ["http.route", long_key, "n"]
    finally:
        store.close()


def test_a_hex_id_search_opens_only_the_block_that_holds_it(store: RocksStore) -> None:
    """Every block holds every hex trigram, so the bloom passes them all; the bytes check does not."""
    rnd = random.Random(7)
    ids = [[f"{rnd.getrandbits(64):016x}" for _ in range(200)] for _ in range(4)]
    # Records carry binary fields (trace and span IDs, times): bytes >= 0x80 beside ASCII bodies.
    write(
        store,
        *(
            request("api", [record(f"GET /x req_id={i} done", trace_id=rnd.randbytes(16)) for i in block])
            for block in ids
        ),
    )
    reader = LogReader(store)
    wanted = ids[2][17]
    assert [e.body for e in reader.scan(text=wanted.upper())] == [f"GET /x req_id={wanted} done"]
    assert (reader.last_scan.headers, reader.last_scan.opened) == (4, 1)


def test_a_kelvin_sign_body_still_matches_its_lowercase_needle(store: RocksStore) -> None:
    """U+212A lowercases to an ASCII 'k' in Python, which bytes.lower() cannot see: such a block
    goes the decode path, so the case-insensitive search stays exact."""
    write(store, request("kelvin", [record("temperature 300\u212a reached"), record("other")]))
    assert [e.body for e in LogReader(store).scan(text="300k")] == ["temperature 300\u212a reached"]


def test_bodies_that_are_not_one_string_are_still_searched_by_their_text(store: RocksStore) -> None:
    """A map body renders as JSON: its number 31337 is a varint in the bytes, not the text '31337'."""
    structured = LogRecord(time_unix_nano=NOW, severity_number=9)
    structured.body.kvlist_value.CopyFrom(
        KeyValueList(values=[KeyValue(key="port", value=AnyValue(int_value=31337))])
    )
    write(store, request("mixed", [record("plain text line"), structured]))
    reader = LogReader(store)
    found = reader.scan(text="31337")
    assert len(found) == 1 and "31337" in found[0].body
    assert reader.scan(text="plain TEXT")[0].body == "plain text line"
