"""Whatever bytes arrive, ingest either rejects the request or stores spans that read back."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from sidecar.ingest.traces import RequestDecodeError, prepare_traces
from sidecar.query.jaeger_json import traces_to_jaeger
from tests.unit.test_storage import Store, kv, request, span

TID = bytes(range(1, 17))


def valid_body(n: int = 40) -> bytes:
    spans = [
        span(TID, i, f"op-{i % 4}", i, 5, parent=i - 1 if i > 1 else 0, user__id=f"u{i}", n=i)
        for i in range(1, n + 1)
    ]
    return request("svc", *spans, region="eu")


def test_invalid_utf8_inside_an_attribute_rejects_the_request() -> None:
    body = valid_body().replace(b"\x0a\x02u1J", b"\x0a\x02\xff\xfeJ", 1)  # user.id value: not UTF-8
    assert body != valid_body()
    with pytest.raises(RequestDecodeError):
        prepare_traces(body)


def test_corrupt_nested_attribute_rejects_the_request() -> None:
    req = ExportTraceServiceRequest.FromString(valid_body(2))
    req.resource_spans[0].scope_spans[0].spans[0].attributes.append(kv("ok", "x"))
    body = req.SerializeToString().replace(b"\x0a\x02ok", b"\x0a\x09ok", 1)  # key length runs past the end
    with pytest.raises(RequestDecodeError):
        prepare_traces(body)


def test_mutated_requests_are_rejected_or_read_back(tmp_path: Path) -> None:
    """A small fuzz: random byte flips never crash ingest, and what is stored decodes again."""
    store = Store(tmp_path / "db")
    rnd = random.Random(3)
    base = valid_body()
    stored = 0
    try:
        for _ in range(200):
            body = bytearray(base)
            for _ in range(rnd.randint(1, 3)):
                body[rnd.randrange(len(body))] = rnd.randrange(256)
            try:
                prepared = prepare_traces(bytes(body))
            except RequestDecodeError:
                continue
            trace_ids = [part.trace_id for part in prepared.parts]  # released once merged
            store.writer.submit(prepared).result(10)
            for trace_id in trace_ids:
                trace = store.reader.get_trace(trace_id)
                assert trace is not None
                traces_to_jaeger(TracesData.FromString(trace.traces_data).resource_spans)
                stored += 1
    finally:
        store.close()
    assert stored > 0  # some mutations stay valid OTLP (e.g. flipped timestamps or IDs)
