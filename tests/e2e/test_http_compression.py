"""Compressed bodies on the OTLP/HTTP address, every route: a gzip or deflate stream that is cut
short, fails its checksum or has bytes after its end is a 400 naming the encoding (so the exporter
hears of it instead of a 200 for data that was never stored); whole streams, concatenated gzip
members included, are stored.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Callable

import pytest
from google.rpc import code_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.e2e.harness import (
    JSON,
    PROTOBUF,
    Sidecar,
    http_request,
    jaeger_id,
    make_request,
    make_span,
    new_trace_id,
    to_otlp_json,
)
from tests.e2e.test_receiver_errors import decode_status

MS = 1_000_000


def _gzip_bad_crc(data: bytes) -> bytes:
    body = bytearray(gzip.compress(data))
    body[-8] ^= 0xFF  # first byte of the CRC-32
    return bytes(body)


# name -> (Content-Encoding, how a whole body is broken)
BROKEN: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip header only": ("gzip", lambda d: gzip.compress(d)[:10]),
    "gzip without its trailer": ("gzip", lambda d: gzip.compress(d)[:-8]),
    "gzip cut one byte short": ("gzip", lambda d: gzip.compress(d)[:-1]),
    "gzip with a wrong CRC": ("gzip", _gzip_bad_crc),
    "gzip with trailing garbage": ("gzip", lambda d: gzip.compress(d) + b"junk"),
    "deflate without its checksum": ("deflate", lambda d: zlib.compress(d)[:-4]),
    "deflate header only": ("deflate", lambda d: zlib.compress(d)[:2]),
    "deflate with trailing garbage": ("deflate", lambda d: zlib.compress(d) + b"junk"),
}


def traces_body(trace_id: bytes, content_type: str) -> bytes:
    span = make_span(trace_id, "zipped", time.time_ns() - 10 * MS, MS)
    request = make_request("compression", [span])
    if content_type == JSON:
        return json.dumps(to_otlp_json(request)).encode()
    return request.SerializeToString()


def logs_body() -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="compression")))
    rec = rl.scope_logs.add().log_records.add(time_unix_nano=time.time_ns(), severity_number=9)
    rec.body.string_value = "zipped log line"
    return req.SerializeToString()


def metrics_body() -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="compression")))
    metric = rm.scope_metrics.add().metrics.add(name="zipped_gauge")
    metric.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=1.5)
    return req.SerializeToString()


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_stream_on_traces_is_400_and_nothing_stored(
    sidecar: Sidecar, case: str, content_type: str
) -> None:
    encoding, broken = BROKEN[case]
    trace_id = new_trace_id()
    status, hdrs, raw = sidecar.post_traces(
        broken(traces_body(trace_id, content_type)), content_type, encoding
    )
    assert status == 400, (case, raw)
    assert hdrs["content-type"].startswith(content_type)
    code, message = decode_status(hdrs["content-type"], raw)
    assert code == code_pb2.INVALID_ARGUMENT
    assert message.startswith(f"{encoding} body is truncated or corrupt"), message
    assert sidecar.get_json(f"/api/traces/{jaeger_id(trace_id)}")[0] == 404


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/logs", logs_body), ("/v1/metrics", metrics_body)], ids=["logs", "metrics"]
)
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_stream_on_logs_and_metrics_is_400(
    sidecar: Sidecar, path: str, body: Callable[[], bytes], case: str
) -> None:
    encoding, broken = BROKEN[case]
    headers = {"Content-Type": PROTOBUF, "Content-Encoding": encoding}
    status, hdrs, raw = http_request("POST", sidecar.http_url + path, broken(body()), headers)
    assert status == 400, (case, raw)
    code, message = decode_status(hdrs["content-type"], raw)
    assert code == code_pb2.INVALID_ARGUMENT
    assert message.startswith(f"{encoding} body is truncated or corrupt"), message
    # The same body whole is accepted, so the 400 is about the stream.
    whole = gzip.compress(body()) if encoding == "gzip" else zlib.compress(body())
    assert http_request("POST", sidecar.http_url + path, whole, headers)[0] == 200


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_stream_on_events_is_400(sidecar: Sidecar, case: str) -> None:
    encoding, broken = BROKEN[case]
    name = f"zipped-{case.replace(' ', '-')}"
    data = json.dumps({"event": name}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    status, _, raw = http_request("POST", f"{sidecar.http_url}/v1/events", broken(data), headers)
    assert status == 400, (case, raw)
    answer = json.loads(raw)
    assert answer["accepted"] == 0
    (error,) = answer["errors"]
    assert error["reason"].startswith(f"{encoding} body is truncated or corrupt"), error


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_whole_streams_are_stored(sidecar: Sidecar, content_type: str) -> None:
    for encoding, compress in [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda d: zlib.compress(d, wbits=-zlib.MAX_WBITS)),  # raw deflate, as browsers send
    ]:
        trace_id = new_trace_id()
        status, _, raw = sidecar.post_traces(
            compress(traces_body(trace_id, content_type)), content_type, encoding
        )
        assert status == 200, (encoding, raw)
        assert len(sidecar.jaeger_trace(jaeger_id(trace_id))["spans"]) == 1

    # Two gzip members one after the other are one body (as Go's gzip reader, the Collector's, reads them).
    trace_id = new_trace_id()
    body = traces_body(trace_id, PROTOBUF)
    status, _, raw = sidecar.post_traces(gzip.compress(body[:7]) + gzip.compress(body[7:]), PROTOBUF, "gzip")
    assert status == 200, raw
    assert len(sidecar.jaeger_trace(jaeger_id(trace_id))["spans"]) == 1


def test_empty_body_with_an_encoding_is_an_empty_request(sidecar: Sidecar) -> None:
    status, _, raw = sidecar.post_traces(b"", PROTOBUF, "gzip")
    assert status == 200, raw
