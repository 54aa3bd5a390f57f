"""What a refused export looks like, to the client and in the log (issue 6, item 3).

* Every error on the OTLP/HTTP port, 404/405/415 included, is a ``google.rpc.Status`` in the
  request's encoding (CONTRACTS §1.5); JSON when the request is in neither OTLP encoding.
* At the default ``info`` level each kind of refusal (400/404/413/415, INVALID_ARGUMENT,
  RESOURCE_EXHAUSTED, backpressure, partial success) is logged at ``warning``: one line at once,
  then at most one line per reason per 10 s with the count, never with payload values.

Live sidecars, real HTTP and gRPC, and the real rate limiter on a real event loop.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from aiohttp import web
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from sidecar.receivers.http_log import HttpServerLog
from sidecar.receivers.rejections import RateLimitedLog
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    EXPORT_PATH,
    HOST,
    JSON,
    PROTOBUF,
    RecordingExporter,
    Sidecar,
    gzip_body,
    http_request,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
    to_otlp_json,
)

MS = 1_000_000
MIB = 1 << 20
GARBAGE = b"\xff" * 16 + b"definitely not protobuf"
SECRET = "attr-secret-7c1d0e"  # an attribute value: must never reach the log
SECRET_NUMBER = "98765432109876543210987"  # an out-of-range intValue the 400 message quotes
INTERVAL_S = 10.0
DROPPED = "invalid spans dropped (bad IDs or timestamps), the response names them"
WARNING = " WARNING sidecar.receivers: "


def warnings(sc: Sidecar) -> list[str]:
    return [line.split(WARNING, 1)[1] for line in sc.stderr_text().splitlines() if WARNING in line]


def lines_for(sc: Sidecar, reason: str) -> list[str]:
    return [line for line in warnings(sc) if line.startswith(reason + " (")]


def wait_for(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def decode_status(content_type: str, raw: bytes) -> tuple[int, str]:
    if content_type.startswith(PROTOBUF):
        status = status_pb2.Status.FromString(raw)
        return status.code, status.message
    assert content_type.startswith(JSON), content_type
    body = json.loads(raw)
    assert set(body) == {"code", "message"}, body
    return body["code"], body["message"]


def mixed_request(service: str) -> bytes:
    """Two valid spans carrying SECRET plus three invalid ones: a partial success."""
    trace_id, root = new_trace_id(), new_span_id()
    t0 = time.time_ns() - 5_000 * MS
    secret = {"customer.secret": SECRET}
    spans = [
        make_span(trace_id, "ok-root", t0, 20 * MS, span_id=root, kind=Span.SPAN_KIND_SERVER, attrs=secret),
        make_span(new_trace_id()[:15], "short-trace-id", t0, MS, attrs=secret),
        make_span(trace_id, "zero-span-id", t0, MS, span_id=bytes(8), parent=root),
        make_span(trace_id, "ok-child", t0 + MS, 5 * MS, parent=root, attrs=secret),
        make_span(trace_id, "ends-before-start", t0, MS, parent=root),
    ]
    spans[-1].end_time_unix_nano = t0 - 1
    return make_request(service, spans).SerializeToString()


def json_with_secret_number() -> bytes:
    body = to_otlp_json(make_request("json-bad", [make_span(new_trace_id(), "x", time.time_ns(), MS)]))
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] = [{"key": "n", "value": {"intValue": SECRET_NUMBER}}]
    return json.dumps(body).encode()


# ---------------------------------------------------------------------------------------------
# The rate limiter itself, on a real event loop with a real logger


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def collected() -> Iterator[tuple[logging.Logger, _Collect]]:
    logger = logging.getLogger("tests.e2e.rate_limited_log")
    handler = _Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)


def test_rate_limited_log_one_line_per_reason_per_interval_with_counts(
    collected: tuple[logging.Logger, _Collect],
) -> None:
    logger, out = collected

    async def scenario() -> None:
        limiter = RateLimitedLog(logger, interval_s=0.3)
        for _ in range(5):
            limiter.event("reason A", 2)
        limiter.event("reason B")
        assert out.lines == [
            "reason A (1 request, 2 spans; further ones are counted and reported at most every 0.3 s)",
            "reason B (1 request; further ones are counted and reported at most every 0.3 s)",
        ]
        await asyncio.sleep(0.5)  # the held-back four are reported when A's interval ends
        assert len(out.lines) == 3
        assert re.fullmatch(r"reason A \(4 requests, 8 spans in the last 0\.3\d* s\)", out.lines[2])
        await asyncio.sleep(0.4)  # A is quiet for a whole interval: its next event is logged at once
        limiter.event("reason A")
        assert out.lines[3].startswith("reason A (1 request; further ones")
        limiter.event("reason A")
        limiter.event("reason A")
        limiter.flush()  # shutdown: report what is held back now, and no timer fires later
        assert re.fullmatch(r"reason A \(2 requests in the last 0\.\d+ s\)", out.lines[4]), out.lines
        await asyncio.sleep(0.5)
        assert len(out.lines) == 5, out.lines

    asyncio.run(scenario())


def test_rate_limited_log_costs_nothing_when_its_level_is_off(
    collected: tuple[logging.Logger, _Collect],
) -> None:
    logger, out = collected
    logger.setLevel(logging.ERROR)
    limiter = RateLimitedLog(logger, interval_s=0.0)
    limiter.event("reason A", 3)
    limiter.flush()
    assert out.lines == []


# ---------------------------------------------------------------------------------------------
# Error bodies in the request's encoding


@pytest.mark.parametrize(
    ("method", "content_type", "answer_type"),
    [("GET", None, JSON), ("PUT", PROTOBUF, PROTOBUF), ("DELETE", JSON, JSON), ("PATCH", "text/plain", JSON)],
)
def test_405_is_a_status_in_the_request_encoding_and_keeps_allow(
    sidecar: Sidecar, method: str, content_type: str | None, answer_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, hdrs, raw = http_request(method, sidecar.traces_url, b"x" if method != "GET" else None, headers)
    assert status == 405
    assert hdrs["allow"] == "POST"
    assert hdrs["content-type"].startswith(answer_type)
    code, message = decode_status(hdrs["content-type"], raw)
    assert code == code_pb2.UNIMPLEMENTED
    assert "POST" in message and method in message


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "application/grpc"])
def test_415_for_a_content_type_is_a_json_status(sidecar: Sidecar, content_type: str) -> None:
    """Neither OTLP encoding, so JSON (the Collector's fallback encoding, readable with curl)."""
    status, hdrs, raw = sidecar.post_traces(b"hello", content_type)
    assert status == 415
    assert hdrs["content-type"].startswith(JSON)
    code, message = decode_status(hdrs["content-type"], raw)
    assert code == code_pb2.INVALID_ARGUMENT
    assert PROTOBUF in message and JSON in message and content_type in message


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_415_for_a_content_encoding_is_a_status_in_the_request_encoding(
    sidecar: Sidecar, content_type: str
) -> None:
    status, hdrs, raw = sidecar.post_traces(b"hello", content_type, encoding="br")
    assert status == 415
    assert hdrs["content-type"].startswith(content_type)
    code, message = decode_status(hdrs["content-type"], raw)
    assert code == code_pb2.INVALID_ARGUMENT
    assert "gzip" in message


@pytest.mark.parametrize(
    ("method", "path", "content_type", "answer_type"),
    [
        ("POST", "/v1/trace", PROTOBUF, PROTOBUF),
        ("POST", "/", JSON, JSON),
        ("GET", "/", None, JSON),
        ("POST", "/v1/traces/", PROTOBUF, PROTOBUF),
    ],
)
def test_404_is_a_status_in_the_request_encoding(
    sidecar: Sidecar, method: str, path: str, content_type: str | None, answer_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = b"" if method == "POST" else None
    status, hdrs, raw = http_request(method, sidecar.http_url + path, body, headers)
    assert status == 404
    assert hdrs["content-type"].startswith(answer_type)
    code, message = decode_status(hdrs["content-type"], raw)
    assert code == code_pb2.UNIMPLEMENTED
    assert "/v1/traces" in message


# ---------------------------------------------------------------------------------------------
# Warning log lines, at the default level


@pytest.fixture(scope="module")
def small(module_sidecar_factory: SidecarFactory) -> Sidecar:
    """Default log level (info); 1 MiB limits on both transports, so oversized requests are cheap."""
    return module_sidecar_factory(
        "limits",
        env={
            "SIDECAR_RECEIVERS__OTLP__HTTP__MAX_REQUEST_BODY_SIZE_MIB": "1",
            "SIDECAR_RECEIVERS__OTLP__GRPC__MAX_RECV_MSG_SIZE_MIB": "1",
        },
    )


def grpc_export(sc: Sidecar, body: bytes) -> tuple[grpc.StatusCode, bytes]:
    with grpc.insecure_channel(sc.grpc_endpoint) as channel:
        call = channel.unary_unary(EXPORT_PATH, request_serializer=None, response_deserializer=None)
        try:
            return grpc.StatusCode.OK, call(body, timeout=10)
        except grpc.RpcError as err:
            return err.code(), b""


def sdk_export_to(url: str) -> bool:
    """One span through the real OTel HTTP exporter at ``url``; True if it reported success."""
    exporter = RecordingExporter(HttpSpanExporter(endpoint=url, timeout=10))
    provider = TracerProvider(resource=Resource.create({"service.name": "wrong-url"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("e2e").start_as_current_span("lost") as span:
        span.set_attribute("customer.secret", SECRET)
    provider.shutdown()
    return all(r.name == "SUCCESS" for _, r in exporter.results)


def test_refusals_are_logged_once_per_reason_then_counted(small: Sidecar) -> None:
    oversized = make_request(
        "big", [make_span(new_trace_id(), "big", time.time_ns(), MS, attrs={"pad": "x" * (MIB + 1000)})]
    ).SerializeToString()
    good = make_request("fine", [make_span(new_trace_id(), "fine", time.time_ns() - MS, MS)])
    small.export(good)
    assert grpc_export(small, good.SerializeToString())[0] == grpc.StatusCode.OK
    assert warnings(small) == []  # success logs nothing

    def http(body: bytes, content_type: str = PROTOBUF, encoding: str | None = None) -> Callable[[], int]:
        return lambda: small.post_traces(body, content_type, encoding)[0]

    def grpc_code(body: bytes) -> Callable[[], grpc.StatusCode]:
        return lambda: grpc_export(small, body)[0]

    def partial_http() -> bool:
        status, _, raw = small.post_traces(mixed_request("partial-http"))
        rejected = ExportTraceServiceResponse.FromString(raw).partial_success.rejected_spans
        return status == 200 and rejected == 3

    def partial_grpc() -> bool:
        code, raw = grpc_export(small, mixed_request("partial-grpc"))
        return code == grpc.StatusCode.OK and ExportTraceServiceResponse.FromString(raw).HasField(
            "partial_success"
        )

    def json_secret() -> int:
        status, _, raw = small.post_traces(json_with_secret_number(), JSON)
        assert SECRET_NUMBER in json.loads(raw)["message"]  # the client is told; the log must not be
        return status

    # reason prefix -> (one event, its expected result, spans per event)
    cases: dict[str, tuple[Callable[[], object], object, int]] = {
        "OTLP/HTTP export rejected, 400 body is not a valid ExportTraceServiceRequest": (
            http(GARBAGE),
            400,
            0,
        ),
        "OTLP/HTTP export rejected, 400 body is not valid OTLP-JSON": (json_secret, 400, 0),
        "OTLP/HTTP export rejected, 400 corrupt gzip body": (http(b"not gzip", encoding="gzip"), 400, 0),
        "OTLP/HTTP export rejected, 413 body over receivers.otlp.http.max_request_body_size_mib "
        "(after decompression)": (http(gzip_body(oversized), encoding="gzip"), 413, 0),
        f"OTLP/HTTP export rejected, 415 unsupported Content-Type (use {PROTOBUF} or {JSON})": (
            http(b"x", "text/plain"),
            415,
            0,
        ),
        "OTLP/HTTP export rejected, 415 unsupported Content-Encoding (use gzip or deflate)": (
            http(b"x", encoding="br"),
            415,
            0,
        ),
        "OTLP/HTTP export rejected, 404 POST to an unknown path (the traces path is /v1/traces, "
        "the logs path is /v1/logs, the metrics path is /v1/metrics)": (
            lambda: sdk_export_to(small.http_url + "/"),  # the classic: base URL without /v1/traces
            False,
            0,
        ),
        f"OTLP/HTTP export partly rejected: {DROPPED}": (
            partial_http,
            True,
            3,
        ),
        "OTLP/gRPC export rejected, INVALID_ARGUMENT: body is not a valid ExportTraceServiceRequest": (
            grpc_code(GARBAGE),
            grpc.StatusCode.INVALID_ARGUMENT,
            0,
        ),
        "OTLP/gRPC export rejected, RESOURCE_EXHAUSTED: request over "
        "receivers.otlp.grpc.max_recv_msg_size_mib (or no readable request message)": (
            grpc_code(oversized),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            0,
        ),
        f"OTLP/gRPC export partly rejected: {DROPPED}": (
            partial_grpc,
            True,
            3,
        ),
    }
    started = time.monotonic()
    for reason, (send, expected, _) in cases.items():
        for _ in range(3):
            assert send() == expected, reason
    # Not exports, not logged: a GET, and requests to the right path that succeed.
    assert http_request("GET", small.traces_url)[0] == 405

    def first_lines_logged() -> bool:
        return all(lines_for(small, reason) for reason in cases)

    wait_for(first_lines_logged, 5)
    assert time.monotonic() - started < INTERVAL_S, "too slow to see the burst inside one interval"
    for reason, (_, _, spans) in cases.items():
        (line,) = lines_for(small, reason)  # one line for three events
        counted = f"1 request, {spans} spans" if spans else "1 request"
        assert line.startswith(f"{reason} ({counted}; further ones are counted"), line
    assert len(warnings(small)) == len(cases), warnings(small)

    # When the interval is over, one more line per reason tells how many were held back.
    wait_for(lambda: all(len(lines_for(small, r)) == 2 for r in cases), INTERVAL_S + 5)
    for reason, (_, _, spans) in cases.items():
        line = lines_for(small, reason)[1]
        counted = f"2 requests, {2 * spans} spans" if spans else "2 requests"
        assert re.fullmatch(rf"{re.escape(reason)} \({counted} in the last 1\d(\.\d+)? s\)", line), line
    log = small.stderr_text()
    assert SECRET not in log and SECRET_NUMBER not in log
    assert "Traceback" not in log


@pytest.fixture(scope="module")
def tiny_queue(module_sidecar_factory: SidecarFactory) -> Sidecar:
    """A write queue of one span: nearly every concurrent export meets backpressure."""
    return module_sidecar_factory(
        "tiny-queue",
        env={"SIDECAR_INGEST__MAX_QUEUE_SPANS": "1", "SIDECAR_INGEST__MAX_BATCH_SPANS": "1"},
    )


def test_backpressure_is_logged_for_both_transports(tiny_queue: Sidecar) -> None:
    t0 = time.time_ns() - 10 * MS

    def body() -> bytes:
        trace_id = new_trace_id()
        spans = [make_span(trace_id, f"s{i}", t0, MS, attrs={"customer.secret": SECRET}) for i in range(50)]
        return make_request("busy", spans).SerializeToString()

    def one(i: int) -> object:
        if i % 2:
            return tiny_queue.post_traces(body())[0]
        return grpc_export(tiny_queue, body())[0]

    seen: set[object] = set()
    with ThreadPoolExecutor(32) as pool:
        for _ in range(20):
            seen |= set(pool.map(one, range(64)))
            if {503, grpc.StatusCode.UNAVAILABLE} <= seen:
                break
    assert {503, grpc.StatusCode.UNAVAILABLE} <= seen, seen

    reasons = [
        "OTLP/HTTP export refused, 503 write queue full, backpressure (ingest.max_queue_spans)",
        "OTLP/gRPC export refused, UNAVAILABLE: write queue full, backpressure (ingest.max_queue_spans)",
    ]
    wait_for(lambda: all(lines_for(tiny_queue, r) for r in reasons), 5)
    for reason in reasons:
        (line, *later) = lines_for(tiny_queue, reason)
        assert line.startswith(f"{reason} (1 request, 50 spans; further ones are counted"), line
        assert all(" in the last " in x for x in later), later  # only interval summaries follow
    assert SECRET not in tiny_queue.stderr_text()


# ---------------------------------------------------------------------------------------------
# A request without a Content-Type


@pytest.mark.parametrize("headers", [{}, {"Content-Type": ""}], ids=["no-header", "empty-header"])
def test_415_without_a_content_type_says_it_is_missing(sidecar: Sidecar, headers: dict[str, str]) -> None:
    """Not aiohttp's 'application/octet-stream', a type the client never sent."""
    conn = http.client.HTTPConnection(HOST, sidecar.http_port, timeout=10)  # urllib would add one
    try:
        conn.request("POST", "/v1/traces", body=b"hello", headers=headers)
        resp = conn.getresponse()
        status, content_type, raw = resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()
    assert status == 415
    assert content_type.startswith(JSON)
    assert decode_status(content_type, raw) == (
        code_pb2.INVALID_ARGUMENT,
        f"missing Content-Type; use {PROTOBUF} or {JSON}",
    )
    reason = f"OTLP/HTTP export rejected, 415 missing Content-Type (use {PROTOBUF} or {JSON})"
    wait_for(lambda: bool(lines_for(sidecar, reason)), 5)


# ---------------------------------------------------------------------------------------------
# A gRPC client on an HTTP port: one rate-limited warning, not a traceback per retry


def grpc_call_to_port(port: int) -> grpc.StatusCode:
    """An OTLP/gRPC export (HTTP/2) sent to ``port``, as an exporter with the wrong endpoint does."""
    # A connection of its own: channels to one address otherwise share one, and its backoff.
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(f"{HOST}:{port}", options=options) as channel:
        call = channel.unary_unary(EXPORT_PATH, request_serializer=None, response_deserializer=None)
        try:
            call(b"", timeout=10)
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def held_back(lines: list[str]) -> int:
    """The number of requests a reason's lines stand for."""
    counts = [re.search(r"\((\d+) requests?\b", line) for line in lines]
    assert all(counts), lines
    return sum(int(m.group(1)) for m in counts if m)


def test_grpc_client_on_the_http_ports_is_one_warning_per_interval(sidecar_factory: SidecarFactory) -> None:
    sc = sidecar_factory("grpc-on-http")
    attempts = 4
    for port in (sc.http_port, sc.api_port):
        for _ in range(attempts):
            assert grpc_call_to_port(port) == grpc.StatusCode.UNAVAILABLE
    otlp_http = (
        "OTLP/HTTP port got a request that is not HTTP/1.1 "
        f"(an OTLP/gRPC client on the HTTP port? use {sc.grpc_port})"
    )
    api = (
        "query API port got a request that is not HTTP/1.1 "
        f"(a gRPC client on the query API port? the API is HTTP/JSON; OTLP/gRPC goes to {sc.grpc_port})"
    )

    def api_lines() -> list[str]:
        marker = " WARNING sidecar.api: "
        found = [x.split(marker, 1)[1] for x in sc.stderr_text().splitlines() if marker in x]
        assert all(x.startswith(api + " (") for x in found), found
        return found

    wait_for(lambda: bool(lines_for(sc, otlp_http)) and bool(api_lines()), 5)
    for first in (lines_for(sc, otlp_http)[0], api_lines()[0]):
        assert first.endswith("(1 request; further ones are counted and reported at most every 10 s)"), first
    code, _ = sc.stop()  # shutdown reports the held-back count
    assert code == 0
    for lines in (lines_for(sc, otlp_http), api_lines()):
        assert len(lines) == 2, lines  # well inside one interval: the first event, then the rest
        assert held_back(lines) == attempts, lines  # one connection each
    assert warnings(sc) == lines_for(sc, otlp_http)
    log = sc.stderr_text()
    assert "Traceback" not in log and "aiohttp.server" not in log and " ERROR " not in log
    assert "PRI" not in log and "\\x00" not in log  # none of the HTTP/2 bytes


def test_a_handler_bug_is_still_an_error_with_its_traceback() -> None:
    """The gRPC-client filter takes unreadable requests only; a server bug keeps its ERROR line."""
    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    server_log = logging.getLogger("aiohttp.server")
    server_log.addHandler(capture)
    warned: list[str] = []
    limiter_log = logging.getLogger("tests.e2e.http_server_log")
    limiter_log.propagate = False
    limiter_log.setLevel(logging.WARNING)
    limiter = logging.Handler()
    limiter.emit = lambda record: warned.append(record.getMessage())  # type: ignore[method-assign]
    limiter_log.addHandler(limiter)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a bug in a handler")

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/boom", boom)
        runner = web.AppRunner(
            app, access_log=None, logger=HttpServerLog(RateLimitedLog(limiter_log), "not HTTP/1.1")
        )
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            loop = asyncio.get_running_loop()
            status, _, _ = await loop.run_in_executor(None, http_request, "GET", f"http://{HOST}:{port}/boom")
            assert status == 500
            assert await loop.run_in_executor(None, grpc_call_to_port, port) == grpc.StatusCode.UNAVAILABLE
        finally:
            await runner.cleanup()

    try:
        asyncio.run(scenario())
    finally:
        server_log.removeHandler(capture)
        limiter_log.removeHandler(limiter)
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in records]
    assert errors[0].getMessage().startswith("Error handling request")
    assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], RuntimeError)
    assert warned == ["not HTTP/1.1 (1 request; further ones are counted and reported at most every 10 s)"]
