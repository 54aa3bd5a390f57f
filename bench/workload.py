"""Deterministic, realistic OTLP trace data, pre-serialized as ``ExportTraceServiceRequest`` bytes.

Whole traces are generated first (a SERVER root in ``frontend``; CLIENT spans whose SERVER children
live in another service; INTERNAL and database spans), then their spans are handed to per-service
(per-replica) "BatchSpanProcessor" buffers in end-time order. A buffer that reaches 512 spans becomes
one request: one Resource, one or two instrumentation scopes. Same ``seed`` and ``base_ns`` -> same bytes
(``base_ns`` defaults to the start of the previous hour, so traces fall in default search windows).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from bench.topology import SERVICES, Service
from bench.traces import CLIENT, INTERNAL, SERVER, USER_DIGITS, Node, TraceShaper, Value

SPANS_PER_REQUEST = 512
USER_NEEDLE = b"\x0a\x07user.id\x12\x0c\x0a\x0auser-"  # KeyValue{key, AnyValue{string "user-NNNNN"}}
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"


class Patch(NamedTuple):
    """One trace inside one request body: byte offsets of its trace id and of its user.id digits."""

    trace_id: bytes
    user: int
    trace_id_at: tuple[int, ...]
    user_at: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TraceInfo:
    trace_id: bytes
    user: str
    spans: int
    services: tuple[str, ...]
    error: bool
    last_request: int  # index of the request that completes the trace


@dataclass(slots=True)
class Workload:
    requests: list[bytes]
    request_spans: list[int]
    # Per request, per trace: where its id and its user.id digits are - lets a replay re-key traces.
    patches: list[list[Patch]]
    traces: list[TraceInfo]  # complete traces only (every span is in some request)
    seed: int
    base_ns: int
    span_kinds: Counter[int] = field(default_factory=Counter)
    error_spans: int = 0
    attributes: int = 0
    events: int = 0
    # Per request: byte offsets of every 8-byte timestamp (span start/end, event time) and the
    # latest span end, so a replay can move the request to "just now" like a live exporter's.
    time_fields: list[tuple[int, ...]] = field(default_factory=list)
    request_end_ns: list[int] = field(default_factory=list)

    @property
    def spans(self) -> int:
        return sum(self.request_spans)

    @property
    def bytes(self) -> int:
        return sum(len(r) for r in self.requests)

    def stats(self) -> dict[str, float]:
        spans = max(self.spans, 1)
        return {
            "requests": len(self.requests),
            "spans": self.spans,
            "bytes": self.bytes,
            "bytes_per_span": round(self.bytes / spans, 1),
            "complete_traces": len(self.traces),
            "spans_per_trace": round(sum(t.spans for t in self.traces) / max(len(self.traces), 1), 2),
            "attributes_per_span": round(self.attributes / spans, 2),
            "error_span_fraction": round(self.error_spans / spans, 4),
            "events_per_span": round(self.events / spans, 3),
            "server_fraction": round(self.span_kinds[SERVER] / spans, 3),
            "client_fraction": round(self.span_kinds[CLIENT] / spans, 3),
        }


def _any(value: Value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    return AnyValue(string_value=value)


_KV_CACHE: dict[tuple[str, type, Value], KeyValue] = {}


def _kv(key: str, value: Value) -> KeyValue:
    cache_key = (key, type(value), value)
    kv = _KV_CACHE.get(cache_key)
    if kv is None:
        kv = KeyValue(key=key, value=_any(value))
        if len(_KV_CACHE) < 50_000:
            _KV_CACHE[cache_key] = kv
    return kv


def _kvs(attrs: dict[str, Value]) -> list[KeyValue]:
    return [_kv(k, v) for k, v in attrs.items()]


class _Encoder:
    """Resources per service replica, spans and requests as protobuf (shares the shaper's rng)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.resources = {(s.name, r): self._resource(s, r) for s in SERVICES for r in range(s.replicas)}

    def _resource(self, s: Service, replica: int) -> Resource:
        suffix = "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        return Resource(
            attributes=_kvs(
                {
                    "service.name": s.name,
                    "service.version": s.version,
                    "host.name": f"ip-10-0-{self.rng.randrange(1, 4)}-{self.rng.randrange(2, 250)}",
                    "k8s.pod.name": f"{s.name}-{self.rng.randrange(16**9):09x}-{suffix}",
                    "telemetry.sdk.language": s.language,
                    "telemetry.sdk.name": "opentelemetry",
                    "telemetry.sdk.version": s.sdk_version,
                    "k8s.namespace.name": "shop",
                }
            )
        )

    def scope_of(self, node: Node) -> tuple[str, str]:
        s = node.service
        return s.app_scope if node.kind == INTERNAL and s.app_scope else s.instrumentation

    # -- protobuf --------------------------------------------------------------------------
    def span(self, trace_id: bytes, node: Node) -> Span:
        events = []
        if node.exception is not None:
            kind, message = node.exception
            events.append(
                Span.Event(
                    time_unix_nano=node.start + node.duration - 1000,
                    name="exception",
                    attributes=_kvs(
                        {
                            "exception.type": kind,
                            "exception.message": message,
                            "exception.stacktrace": f"{kind}: {message}\n  at {node.service.name}."
                            f"{node.name.replace(' ', '_')} (handlers:{self.rng.randrange(40, 900)})\n"
                            "  at dispatch (server:212)\n  at run (main:57)",
                        }
                    ),
                )
            )
        if node.event is not None:
            events.append(
                Span.Event(
                    time_unix_nano=node.start + 1000, name=node.event[0], attributes=_kvs(node.event[1])
                )
            )
        parent = node.parent
        remote = node.kind == SERVER and parent is not None
        return Span(
            trace_id=trace_id,
            span_id=node.span_id,
            parent_span_id=parent.span_id if parent is not None else b"",
            flags=0x301 if remote else 0x101,
            name=node.name,
            kind=node.kind,
            start_time_unix_nano=node.start,
            end_time_unix_nano=node.start + node.duration,
            attributes=_kvs(node.attrs),
            events=events,
            status=Status(code=Status.STATUS_CODE_ERROR, message=node.exception[1] if node.exception else "")
            if node.error
            else None,
        )

    def request(
        self, key: tuple[str, int], spans: list[tuple[tuple[str, str], Span]]
    ) -> tuple[bytes, list[bytes]]:
        """The request body and the trace id of each span in serialized order."""
        by_scope: dict[tuple[str, str], list[Span]] = {}
        for scope, span in spans:
            by_scope.setdefault(scope, []).append(span)
        scope_spans = [
            ScopeSpans(scope=InstrumentationScope(name=n, version=v), spans=s, schema_url=SCHEMA_URL)
            for (n, v), s in by_scope.items()
        ]
        rs = ResourceSpans(resource=self.resources[key], scope_spans=scope_spans, schema_url=SCHEMA_URL)
        order = [span.trace_id for group in by_scope.values() for span in group]
        return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString(), order


def _patches(body: bytes, order: list[bytes], users: dict[bytes, str]) -> list[Patch]:
    """Offsets of each span's trace id and user.id digits (spans serialize trace_id before attributes)."""
    found: dict[bytes, tuple[list[int], list[int]]] = {}
    at = 0
    for trace_id in order:
        at = body.index(b"\x0a\x10" + trace_id, at) + 2
        user_at = body.index(USER_NEEDLE, at) + len(USER_NEEDLE)
        ids, user = found.setdefault(trace_id, ([], []))
        ids.append(at)
        user.append(user_at)
        at += 16
    return [Patch(t, int(users[t][-USER_DIGITS:]), tuple(i), tuple(u)) for t, (i, u) in found.items()]


def _fields(body: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, value offset, value end) of each field in body[start:end]."""
    out = []
    at = start
    while at < end:
        tag, at = _varint(body, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, nxt = _varint(body, at)
        elif wire == 1:
            nxt = at + 8
        elif wire == 2:
            size, at = _varint(body, at)
            nxt = at + size
        elif wire == 5:
            nxt = at + 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        out.append((number, wire, at, nxt))
        at = nxt
    return out


def _varint(body: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = body[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def time_offsets(body: bytes) -> tuple[int, ...]:
    """Offsets of Span.start/end_time_unix_nano (fields 7, 8) and Span.Event.time_unix_nano (1)."""
    found: list[int] = []
    for n1, _, a1, b1 in _fields(body, 0, len(body)):  # ExportTraceServiceRequest.resource_spans
        for n2, _, a2, b2 in _fields(body, a1, b1):  # ResourceSpans.scope_spans
            if n1 != 1 or n2 != 2:
                continue
            for n3, _, a3, b3 in _fields(body, a2, b2):  # ScopeSpans.spans
                if n3 != 2:
                    continue
                for n4, w4, a4, b4 in _fields(body, a3, b3):
                    if n4 in (7, 8) and w4 == 1:
                        found.append(a4)
                    elif n4 == 11 and w4 == 2:  # Span.events
                        found.extend(a5 for n5, w5, a5, _ in _fields(body, a4, b4) if n5 == 1 and w5 == 1)
    return tuple(found)


def default_base_ns() -> int:
    """Start of the previous whole hour: recent enough for default search windows, stable for an hour."""
    hour = 3600 * 1_000_000_000
    return (time.time_ns() // hour - 1) * hour


def build_workload(n_requests: int, seed: int = 1, base_ns: int | None = None) -> Workload:
    """``n_requests`` requests of 512 spans; the first trace starts at ``base_ns`` (default_base_ns())."""
    if base_ns is None:
        base_ns = default_base_ns()
    rng = random.Random(seed)
    gen = _Encoder(rng)
    shaper = TraceShaper(rng, base_ns)
    wl = Workload([], [], [], [], seed, base_ns)
    buffers: dict[tuple[str, int], list[tuple[int, tuple[str, str], Span, bytes]]] = {}
    pending: dict[bytes, tuple[str, int, tuple[str, ...], bool]] = {}
    users: dict[bytes, str] = {}
    left: dict[bytes, int] = {}
    while len(wl.requests) < n_requests:
        trace_id, user, nodes = shaper.trace()
        services = tuple(sorted({n.service.name for n in nodes}))
        pending[trace_id] = (user, len(nodes), services, any(n.error for n in nodes))
        users[trace_id] = user
        left[trace_id] = len(nodes)
        for node in sorted(nodes, key=lambda n: n.start + n.duration):
            span = gen.span(trace_id, node)
            wl.span_kinds[node.kind] += 1
            wl.error_spans += node.error
            wl.attributes += len(node.attrs)
            wl.events += len(span.events)
            key = (node.service.name, node.replica)
            buf = buffers.setdefault(key, [])
            buf.append((node.start + node.duration, gen.scope_of(node), span, trace_id))
            if len(buf) == SPANS_PER_REQUEST and len(wl.requests) < n_requests:
                body, order = gen.request(key, [(scope, s) for _, scope, s, _ in buf])
                wl.requests.append(body)
                wl.request_spans.append(len(buf))
                wl.patches.append(_patches(body, order, users))
                wl.time_fields.append(time_offsets(body))
                wl.request_end_ns.append(max(s.end_time_unix_nano for _, _, s, _ in buf))
                for *_, t in buf:
                    left[t] -= 1
                    if not left[t]:
                        wl.traces.append(TraceInfo(t, *pending.pop(t), len(wl.requests) - 1))
                        del left[t], users[t]
                buf.clear()
    # Spans still buffered were never sent: their stats must not count.
    for buf in buffers.values():
        for _, _, span, _ in buf:
            wl.span_kinds[span.kind] -= 1
            wl.error_spans -= span.status.code == Status.STATUS_CODE_ERROR
            wl.attributes -= len(span.attributes)
            wl.events -= len(span.events)
    return wl


def make_requests(n_requests: int, seed: int = 1, base_ns: int | None = None) -> list[bytes]:
    """Pre-serialized ``ExportTraceServiceRequest`` bodies, 512 spans each; same arguments, same bytes."""
    return build_workload(n_requests, seed, base_ns).requests


def workload_stats(requests: list[bytes]) -> dict[str, float]:
    """Spans and bytes per span of arbitrary request bodies (parsed with the official classes)."""
    spans = sum(
        len(ss.spans)
        for body in requests
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans
        for ss in rs.scope_spans
    )
    total = sum(len(b) for b in requests)
    return {
        "requests": len(requests),
        "spans": spans,
        "bytes": total,
        "bytes_per_span": round(total / max(spans, 1), 1),
    }
