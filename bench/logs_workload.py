"""Deterministic, realistic OTLP log data, pre-serialized as ``ExportLogsServiceRequest`` bytes.

Each request is one service's export of ``RECORDS_PER_REQUEST`` records: one Resource (service.name,
version, instance, environment), one scope, logfmt-style bodies of about 160 B, mostly INFO with
some DEBUG and WARN and about 1.5 % ERROR, a trace and span ID on a share of the records (several
records per trace), two attributes. Services get unequal shares of the volume, as in real systems.

``LogStream`` replays the pool endlessly like ``bench.stream.RequestStream``: timestamps moved so a
request ends "now", trace IDs XORed with a per-epoch mask (new traces every epoch). One request
(``needle_seq``) is sent in a variant whose ``NEEDLE_LINES`` records of ``NEEDLE_SERVICE`` carry a
token found nowhere else (a word, ``needle``) and one request ID (16 hex digits, ``needle_req_id``,
like every line's ``req_id``), so a search for either has exactly one right answer.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from bench.stream import Replay, retime
from bench.workload import _fields, default_base_ns

RECORDS_PER_REQUEST = 1000
# (service, share of the lines, paths its HTTP lines name)
SERVICES = (
    ("frontend", 0.28, ("/", "/product/{}", "/cart", "/api/recommend", "/static/app.js")),
    ("checkout", 0.20, ("/api/checkout", "/api/checkout/{}/confirm", "/api/shipping/quote")),
    ("cart", 0.17, ("/api/cart/{}", "/api/cart/{}/items", "/api/cart/{}/clear")),
    ("payment", 0.10, ("/api/pay/{}", "/api/refund/{}", "/api/pay/{}/3ds")),
    ("inventory", 0.14, ("/api/stock/{}", "/api/reserve/{}", "/api/sku/{}")),
    ("db-proxy", 0.11, ("/query", "/tx/{}", "/health")),
)
NEEDLE_SERVICE = "checkout"
NEEDLE_LINES = 5
# (severity number, text, weight)
SEVERITIES = ((5, "DEBUG", 0.10), (9, "INFO", 0.825), (13, "WARN", 0.06), (17, "ERROR", 0.015))
MESSAGES = {
    5: ("cache lookup", "query plan chosen", "retry budget ok", "pool stats"),
    9: (
        "request served",
        "cart updated",
        "order created",
        "stock reserved",
        "payment authorized",
        "quote sent",
    ),
    13: ("slow upstream", "retrying request", "cache miss storm", "deprecated header"),
    17: ("upstream timeout", "payment declined", "db deadlock", "connection reset by peer"),
}
TRACE_SHARE = 0.35  # records logged inside a traced request
SCOPES = ("app.http", "app.worker", "app.db")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")


@dataclass(frozen=True, slots=True)
class TraceLog:
    trace_id: bytes  # as generated (epoch 0)
    records: int
    request: int  # pool index of the request holding its records


@dataclass(slots=True)
class LogRequest:
    body: bytes
    service: str
    records: int
    end_ns: int
    time_at: tuple[int, ...]  # offsets of every record's time and observed time
    trace_at: list[tuple[bytes, tuple[int, ...]]]  # (trace id, offsets of its copies)


@dataclass(slots=True)
class LogWorkload:
    requests: list[LogRequest]
    traces: list[TraceLog]
    needle: str
    needle_req_id: str
    needle_index: int  # pool index of the request the needle variant replaces
    needle_request: LogRequest
    seed: int
    severities: dict[str, int] = field(default_factory=dict)

    def stats(self) -> dict[str, float | int | str | dict[str, int]]:
        records = sum(r.records for r in self.requests)
        sent = sum(len(r.body) for r in self.requests)
        return {
            "requests": len(self.requests),
            "records": records,
            "bytes_per_record": round(sent / records, 1),
            "records_per_trace": round(sum(t.records for t in self.traces) / max(len(self.traces), 1), 2),
            "severities": self.severities,
            "services": {s: sum(r.records for r in self.requests if r.service == s) for s, *_ in SERVICES},
        }


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _body(rng: random.Random, severity: int, paths: tuple[str, ...]) -> str:
    method = rng.choice(("GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"))
    path = rng.choice(paths).format(rng.randrange(1, 100_000))
    status = {5: 200, 9: rng.choice((200, 200, 200, 201, 204, 304)), 13: rng.choice((200, 429, 404))}.get(
        severity, rng.choice((500, 502, 503, 504))
    )
    duration = round(rng.lognormvariate(2.5, 1.0), 1)
    msg = rng.choice(MESSAGES[severity])
    level = {5: "debug", 9: "info", 13: "warn", 17: "error"}[severity]
    return (
        f"level={level} method={method} path={path} status={status} duration_ms={duration} "
        f'user=u_{rng.randrange(100_000)} msg="{msg}" req_id={rng.getrandbits(64):016x} '
        f"bytes={rng.randrange(120, 90_000)} region={rng.choice(REGIONS)}"
    )


def _offsets(body: bytes) -> tuple[list[int], dict[bytes, list[int]]]:
    """Offsets of LogRecord time fields (1, 11) and of each trace id (9), by walking the bytes."""
    times: list[int] = []
    traces: dict[bytes, list[int]] = {}
    for _, _, a1, b1 in _fields(body, 0, len(body)):  # ExportLogsServiceRequest.resource_logs
        for n2, _, a2, b2 in _fields(body, a1, b1):  # ResourceLogs.scope_logs
            if n2 != 2:
                continue
            for n3, _, a3, b3 in _fields(body, a2, b2):  # ScopeLogs.log_records
                if n3 != 2:
                    continue
                for n4, w4, a4, b4 in _fields(body, a3, b3):
                    if n4 in (1, 11) and w4 == 1:
                        times.append(a4)
                    elif n4 == 9 and b4 - a4 == 16:
                        traces.setdefault(body[a4:b4], []).append(a4)
    return times, traces


def _request(service: str, resource: Resource, scope: str, records: list[LogRecord]) -> LogRequest:
    body = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource,
                scope_logs=[
                    ScopeLogs(scope=InstrumentationScope(name=scope, version="1.4.2"), log_records=records)
                ],
            )
        ]
    ).SerializeToString()
    times, traces = _offsets(body)
    end = max(r.time_unix_nano for r in records)
    return LogRequest(
        body, service, len(records), end, tuple(times), [(t, tuple(a)) for t, a in traces.items()]
    )


def build_log_workload(n_requests: int, seed: int = 1) -> LogWorkload:
    rng = random.Random(seed)
    base = default_base_ns()
    names = [s for s, *_ in SERVICES]
    weights = [w for _, w, _ in SERVICES]
    paths = {s: p for s, _, p in SERVICES}
    resources = {
        (s, i): Resource(
            attributes=[
                _kv("service.name", s),
                _kv("service.version", f"2.{rng.randrange(3, 9)}.{rng.randrange(20)}"),
                _kv("service.instance.id", f"{s}-{rng.getrandbits(24):06x}-{i}"),
                _kv("deployment.environment", "production"),
                _kv("host.name", f"node-{rng.randrange(1, 13):02d}"),
            ]
        )
        for s in names
        for i in range(3)
    }
    sev_numbers = [n for n, _, _ in SEVERITIES]
    sev_text = {n: t for n, t, _ in SEVERITIES}
    sev_weights = [w for *_, w in SEVERITIES]
    wl = LogWorkload([], [], "", "", 0, None, seed)  # type: ignore[arg-type]
    now = base
    built: list[tuple[str, Resource, str, list[LogRecord]]] = []
    sent = dict.fromkeys(names, 0)
    for index in range(n_requests):
        # The service furthest below its share: the pool holds each service's share of the lines.
        service = max(names, key=lambda n: weights[names.index(n)] * (index + 1) - sent[n])
        sent[service] += 1
        scope = rng.choice(SCOPES)
        records: list[LogRecord] = []
        trace_id = span_id = b""
        left = 0
        for _ in range(RECORDS_PER_REQUEST):
            now += rng.randrange(200_000, 2_000_000)
            sev = rng.choices(sev_numbers, sev_weights)[0]
            wl.severities[sev_text[sev]] = wl.severities.get(sev_text[sev], 0) + 1
            if not left and rng.random() < TRACE_SHARE / 4:  # a traced request logs 4 lines on average
                trace_id, span_id, left = rng.randbytes(16), rng.randbytes(8), rng.randint(2, 6)
                wl.traces.append(TraceLog(trace_id, left, index))
            rec = LogRecord(
                time_unix_nano=now,
                observed_time_unix_nano=now + rng.randrange(50_000, 900_000),
                severity_number=sev,  # type: ignore[arg-type]
                severity_text=sev_text[sev],
                body=AnyValue(string_value=_body(rng, sev, paths[service])),
                attributes=[
                    _kv("logger", f"{scope}.{rng.choice(('handler', 'client', 'pool'))}"),
                    _kv("thread.name", f"worker-{rng.randrange(16)}"),
                ],
            )
            if left:
                rec.trace_id, rec.span_id, rec.flags = trace_id, span_id, 1
                left -= 1
            records.append(rec)
        if left:  # the trace's last lines were never written: it holds fewer records
            last = wl.traces.pop()
            wl.traces.append(TraceLog(last.trace_id, last.records - left, index))
        resource = resources[(service, rng.randrange(3))]
        built.append((service, resource, scope, records))
        wl.requests.append(_request(service, resource, scope, records))
    # The needle: a variant of one NEEDLE_SERVICE request with a token in a few of its lines.
    wl.needle_index = next(i for i, (s, *_) in enumerate(built) if s == NEEDLE_SERVICE)
    wl.needle = "orderref=" + "".join(rng.choice("ghjkmnpqrstvwxyz") for _ in range(12))
    wl.needle_req_id = f"{rng.getrandbits(64):016x}"
    service, resource, scope, records = built[wl.needle_index]
    planted = []
    for i in sorted(rng.sample(range(len(records)), NEEDLE_LINES)):
        rec = LogRecord()
        rec.CopyFrom(records[i])
        rec.body.string_value = (
            f'{rec.body.string_value.split(" msg=")[0]} msg="order lookup failed" {wl.needle} '
            f"req_id={wl.needle_req_id}"
        )
        planted.append(rec)
        records = [*records[:i], rec, *records[i + 1 :]]
    wl.needle_request = _request(service, resource, scope, records)
    return wl


class LogStream(Replay):
    """Endless log requests from a pool; request ``needle_seq`` is sent as the needle variant."""

    def __init__(self, workload: LogWorkload, needle_seq: int) -> None:
        super().__init__(workload.seed, len(workload.requests))
        self.workload = workload
        self.needle_seq = needle_seq
        if needle_seq % self.pool_size != workload.needle_index:
            raise ValueError("needle_seq must be a sequence number of the needle's pool request")

    def items(self, seq: int) -> int:
        return self.workload.requests[seq % self.pool_size].records

    def body(self, seq: int) -> bytes:
        epoch, index = divmod(seq, self.pool_size)
        req = self.workload.needle_request if seq == self.needle_seq else self.workload.requests[index]
        buf = bytearray(req.body)
        retime(buf, req.time_at, time.time_ns() - req.end_ns)
        if epoch:
            mask = self.mask(epoch)
            for trace_id, offsets in req.trace_at:
                new = self.trace_id(trace_id, mask)
                for at in offsets:
                    buf[at : at + 16] = new
        return bytes(buf)

    @staticmethod
    def trace_id(generated: bytes, mask: int) -> bytes:
        return (int.from_bytes(generated) ^ mask).to_bytes(16)

    def sent_traces(self, upto: int, k: int, rng: random.Random) -> list[tuple[bytes, TraceLog]]:
        """``k`` random traces (as sent, with what was generated) of requests ``[0, upto)``."""
        pool = [
            (e, t)
            for e in range(upto // self.pool_size + 1)
            for t in self.workload.traces
            if e * self.pool_size + t.request < upto
        ]
        picks = [rng.choice(pool) for _ in range(k)] if pool else []
        return [(self.trace_id(t.trace_id, self.mask(e)), t) for e, t in picks]
