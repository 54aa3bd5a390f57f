"""Concurrent senders (one thread each) and the loop that drives them and samples 1-second windows.

Both transports send the pre-serialized bytes as they are: gRPC through an identity-serialized
``unary_unary`` callable, HTTP over a keep-alive ``http.client`` connection. Retryable failures
(UNAVAILABLE, 503 and the like) are retried like an SDK exporter would. What is sent (the gRPC method,
the HTTP path and content type, how an answer says how many items it refused) is a ``Payload``:
OTLP spans (the default), OTLP log records, or NDJSON business events; counts are of those items.
"""

from __future__ import annotations

import http.client
import itertools
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from bench import proc
from bench.server import Sidecar

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_RETRYABLE_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
_RETRYABLE_HTTP = {429, 502, 503, 504}
_ATTEMPTS = 5
_BACKOFF_S = 0.05


class Stream(Protocol):
    def take(self) -> tuple[int, bytes, int] | None:
        """(seq, body, items) of the next request, or None once a finite stream is spent; thread-safe."""
        ...


def _span_rejects(response: bytes) -> int:
    return ExportTraceServiceResponse.FromString(response).partial_success.rejected_spans


def _log_rejects(response: bytes) -> int:
    return ExportLogsServiceResponse.FromString(response).partial_success.rejected_log_records


def _event_rejects(response: bytes) -> int:
    """Events not newly stored: refused ones and duplicates (an ``id`` already stored)."""
    answer = json.loads(response)
    return int(answer["rejected"]) + int(answer["duplicates"])


@dataclass(frozen=True, slots=True)
class Payload:
    grpc_method: str | None
    http_path: str
    content_type: str
    rejects: Callable[[bytes], int]  # items of a 200 / OK answer that were not stored


SPANS = Payload(EXPORT, "/v1/traces", "application/x-protobuf", _span_rejects)
LOGS = Payload(
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "/v1/logs",
    "application/x-protobuf",
    _log_rejects,
)
EVENTS = Payload(None, "/v1/events", "application/x-ndjson", _event_rejects)


@dataclass(slots=True)
class SenderStats:
    payload: Payload = SPANS
    items: int = 0
    requests: int = 0
    rejected: int = 0
    dropped: int = 0  # requests given up after retries or a permanent error
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)  # seqs acknowledged

    def ok(self, seq: int, items: int, response: bytes, latency: float) -> None:
        rejected = 0
        if response:  # an empty OTLP response is the common, all-accepted case
            rejected = self.payload.rejects(response)
        self.rejected += rejected
        self.items += items - rejected
        self.requests += 1
        self.latencies.append(latency)
        self.acked.append(seq)


Sender = Callable[[Sidecar, Stream, threading.Event, SenderStats], None]


def grpc_sender(server: Sidecar, stream: Stream, stop: threading.Event, st: SenderStats) -> None:
    method = st.payload.grpc_method
    if method is None:
        raise ValueError(f"{st.payload.http_path} has no gRPC method")
    with grpc.insecure_channel(server.grpc_target, options=[("grpc.max_send_message_length", -1)]) as channel:
        export = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        while not stop.is_set() and (item := stream.take()) is not None:
            seq, body, items = item
            for _ in range(_ATTEMPTS):
                t0 = time.perf_counter()
                try:
                    response = export(body, timeout=60)
                except grpc.RpcError as exc:
                    code = exc.code()  # type: ignore[attr-defined]
                    st.errors[f"grpc {code.name}"] += 1
                    if code not in _RETRYABLE_GRPC or stop.is_set():
                        st.dropped += 1
                        break
                    time.sleep(_BACKOFF_S)
                else:
                    st.ok(seq, items, response, time.perf_counter() - t0)
                    break
            else:
                st.dropped += 1


def http_sender(server: Sidecar, stream: Stream, stop: threading.Event, st: SenderStats) -> None:
    conn: http.client.HTTPConnection | None = None
    headers = {"Content-Type": st.payload.content_type}
    try:
        while not stop.is_set() and (item := stream.take()) is not None:
            seq, body, items = item
            for _ in range(_ATTEMPTS):
                t0 = time.perf_counter()
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
                    conn.request("POST", st.payload.http_path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    st.errors[type(exc).__name__] += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                else:
                    if resp.status == 200:
                        st.ok(seq, items, data, time.perf_counter() - t0)
                        break
                    st.errors[f"http {resp.status}"] += 1
                    if resp.status not in _RETRYABLE_HTTP:
                        st.dropped += 1
                        break
                if stop.is_set():
                    st.dropped += 1
                    break
                time.sleep(_BACKOFF_S)
            else:
                st.dropped += 1
    finally:
        if conn is not None:
            conn.close()


SENDERS: dict[str, Sender] = {"grpc": grpc_sender, "http": http_sender}


@dataclass(slots=True)
class DriveResult:
    transport: str
    senders: int
    wall_s: float
    items: int  # acknowledged (and not refused) inside the measured window: spans, records or events
    items_total: int  # including requests in flight at the deadline
    requests: int
    windows: list[int]  # items acknowledged in each 1-second window
    server_cpu_s: float
    client_cpu_s: float
    machine_cpu_s: float  # every process on the machine (server and client included)
    steal_cpu_s: float  # taken by the hypervisor for other guests
    rejected: int
    dropped: int
    errors: dict[str, int]
    latency_p50_ms: float
    latency_p99_ms: float
    acked: list[int]

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0

    @property
    def median_window(self) -> float:
        return float(statistics.median(self.windows)) if self.windows else 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def drive(
    transport: str,
    server: Sidecar,
    stream: Stream,
    senders: int,
    duration: float | None = None,
    until_items: int | None = None,
    on_start: Callable[[], None] | None = None,
    payload: Payload = SPANS,
) -> DriveResult:
    """Send from ``senders`` threads for ``duration`` seconds, until ``until_items`` are acknowledged, or
    until a finite ``stream`` is spent and every sender has finished."""
    stop = threading.Event()
    stats = [SenderStats(payload) for _ in range(senders)]
    sender = SENDERS[transport]
    threads = [
        threading.Thread(target=sender, args=(server, stream, stop, st), name=f"sender-{i}", daemon=True)
        for i, st in enumerate(stats)
    ]
    if on_start is not None:
        on_start()  # before our threads exist: a fork now cannot catch a gRPC thread mid-call
    cpu0, client0 = server.cpu_seconds(), proc.self_cpu_seconds()
    machine0, steal0 = proc.machine_cpu_seconds()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    samples = [0]
    tick = t0
    try:
        while True:
            tick += 1.0
            time.sleep(max(0.0, tick - time.monotonic()))
            if server.proc.poll() is not None:
                raise RuntimeError(f"sidecar died (exit {server.proc.returncode}); see {server.log_path}")
            samples.append(sum(s.items for s in stats))
            if duration is not None and tick - t0 >= duration - 1e-6:
                break
            if until_items is not None and samples[-1] >= until_items:
                break
            if not any(t.is_alive() for t in threads):  # a finite stream, all sent
                break
        wall = time.monotonic() - t0
        cpu1, client1 = server.cpu_seconds(), proc.self_cpu_seconds()
        machine1, steal1 = proc.machine_cpu_seconds()
    finally:
        stop.set()
        for t in threads:
            t.join(90)
    latencies = [x for s in stats for x in s.latencies]
    errors: Counter[str] = Counter()
    for s in stats:
        errors.update(s.errors)
    return DriveResult(
        transport=transport,
        senders=senders,
        wall_s=wall,
        items=samples[-1],
        items_total=sum(s.items for s in stats),
        requests=sum(s.requests for s in stats),
        windows=[b - a for a, b in itertools.pairwise(samples)],
        server_cpu_s=cpu1 - cpu0,
        client_cpu_s=client1 - client0,
        machine_cpu_s=machine1 - machine0,
        steal_cpu_s=steal1 - steal0,
        rejected=sum(s.rejected for s in stats),
        dropped=sum(s.dropped for s in stats),
        errors=dict(errors),
        latency_p50_ms=_percentile(latencies, 0.5) * 1000,
        latency_p99_ms=_percentile(latencies, 0.99) * 1000,
        acked=sorted(x for s in stats for x in s.acked),
    )
