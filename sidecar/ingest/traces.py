"""The hot path of trace ingest: one pass over a decoded request, shaping it for the store.

Both receivers call :func:`prepare_traces` with protobuf bytes (OTLP-JSON is converted to protobuf
first) and hand the result to the storage writer. Everything a write needs per trace (chunk parts,
summary deltas, index terms) is gathered here, in the receiving thread, in one loop over the spans,
so the writer only merges small per-trace records.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from itertools import repeat

from google.protobuf.message import DecodeError

from sidecar.otlp.shadow import RawTraceRequest, ShadowResource, ShadowScope, TraceRequest

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_MAX_ERROR_MESSAGES = 5
_SPAN_KIND_SERVER, _SPAN_KIND_CLIENT, _SPAN_KIND_PRODUCER, _SPAN_KIND_CONSUMER = 2, 3, 4, 5
_STATUS_ERROR = 2
UNKNOWN_SERVICE = "OTLPResourceNoServiceName"
_SERVICE_NAME_KEY = b"\x0a\x0cservice.name"
_consume = deque(maxlen=0).extend  # runs an iterator to the end in C


class RequestDecodeError(ValueError):
    """The request body is not a decodable OTLP message (maps to 400 / INVALID_ARGUMENT)."""


@dataclass(slots=True)
class ResourceInfo:
    """A distinct resource of a request: its bytes are stored once and referenced by chunks."""

    encoded: bytes
    service: str
    attributes: list[bytes]


@dataclass(slots=True)
class ScopeInfo:
    encoded: bytes
    attributes: list[bytes]


@dataclass(slots=True)
class TracePart:
    """The spans of one trace that share a resource and a scope within one request."""

    trace_id: bytes
    resource: ResourceInfo
    scope: ScopeInfo
    spans: list[bytes] = field(default_factory=list)
    start: int = 1 << 64
    end: int = 0
    min_duration: int = 1 << 64
    max_duration: int = 0
    errors: int = 0
    # Root candidate: (has_parent, start, name); a span without parent beats any other, then earliest.
    root: tuple[bool, int, bytes] | None = None
    operations: set[tuple[bytes, int]] = field(default_factory=set)
    clients: list[bytes] = field(default_factory=list)  # span ids of CLIENT/PRODUCER spans
    servers: list[bytes] = field(default_factory=list)  # parent ids of SERVER/CONSUMER spans


@dataclass(slots=True)
class PreparedTraces:
    parts: list[TracePart]
    # service name -> encoded span attribute (KeyValue) -> trace ids carrying it (with repeats)
    terms: dict[str, defaultdict[bytes, list[bytes]]]
    accepted: int
    rejected: int
    messages: list[str]

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        shown = "; ".join(self.messages)
        more = self.rejected - len(self.messages)
        return f"{self.rejected} span(s) rejected: {shown}" + (f"; and {more} more" if more > 0 else "")


def _service_name(attributes: list[bytes]) -> str:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    for kv in attributes:
        if kv.startswith(_SERVICE_NAME_KEY):
            value = KeyValue.FromString(kv).value
            if value.WhichOneof("value") == "string_value" and value.string_value:
                return value.string_value
            return "unknown_service"
    return UNKNOWN_SERVICE if not attributes else "unknown_service"


def _span_problem(tid: bytes, sid: bytes, start: int, end: int) -> str:
    if len(tid) != 16:
        return f"trace_id must be 16 bytes, got {len(tid)}"
    if tid == _ZERO_TRACE:
        return "trace_id must not be all zeros"
    if len(sid) != 8:
        return f"span_id must be 8 bytes, got {len(sid)}"
    if sid == _ZERO_SPAN:
        return "span_id must not be all zeros"
    if not start:
        return "start_time_unix_nano is missing"
    if not end:
        return "end_time_unix_nano is missing"
    return f"end_time_unix_nano {end} is before start_time_unix_nano {start}"


def prepare_traces(body: bytes) -> PreparedTraces:
    """Decode, validate and group one ExportTraceServiceRequest.

    Invalid spans are dropped and described (partial success); the rest are kept. Raises
    RequestDecodeError when the bytes are not a protobuf request at all.
    """
    try:
        request = TraceRequest.FromString(body)
        raw_request = RawTraceRequest.FromString(body)
    except DecodeError as exc:
        raise RequestDecodeError(f"cannot decode ExportTraceServiceRequest: {exc}") from exc

    parts: list[TracePart] = []
    messages: list[str] = []
    accepted = rejected = 0
    resources: dict[bytes, ResourceInfo] = {}
    scopes: dict[bytes, ScopeInfo] = {}
    terms: dict[str, defaultdict[bytes, list[bytes]]] = {}
    for rs_index, (rs, raw_rs) in enumerate(
        zip(request.resource_spans, raw_request.resource_spans, strict=True)
    ):
        resource = resources.get(rs.resource)
        if resource is None:
            attrs = list(ShadowResource.FromString(rs.resource).attributes)
            resource = resources[rs.resource] = ResourceInfo(rs.resource, _service_name(attrs), attrs)
        service_terms = terms.get(resource.service)
        if service_terms is None:
            service_terms = terms[resource.service] = defaultdict(list)
        term_list = service_terms.__getitem__
        for ss_index, (ss, raw_ss) in enumerate(zip(rs.scope_spans, raw_rs.scope_spans, strict=True)):
            scope = scopes.get(ss.scope)
            if scope is None:
                scope = scopes[ss.scope] = ScopeInfo(
                    ss.scope, list(ShadowScope.FromString(ss.scope).attributes)
                )
            raw_spans = raw_ss.spans
            group: dict[bytes, TracePart] = {}
            for index, span in enumerate(ss.spans):
                tid = span.trace_id
                sid = span.span_id
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                if (
                    len(tid) != 16
                    or tid == _ZERO_TRACE
                    or len(sid) != 8
                    or sid == _ZERO_SPAN
                    or not start
                    or end < start
                ):
                    rejected += 1
                    if len(messages) < _MAX_ERROR_MESSAGES:
                        where = f"resourceSpans[{rs_index}].scopeSpans[{ss_index}].spans[{index}]"
                        messages.append(f"{where}: {_span_problem(tid, sid, start, end)}")
                    continue
                part = group.get(tid)
                if part is None:
                    part = group[tid] = TracePart(tid, resource, scope)
                part.spans.append(raw_spans[index])
                if start < part.start:
                    part.start = start
                if end > part.end:
                    part.end = end
                duration = end - start
                if duration > part.max_duration:
                    part.max_duration = duration
                if duration < part.min_duration:
                    part.min_duration = duration
                name = span.name
                kind = span.kind
                part.operations.add((name, kind))
                # Per attribute, all in C: find the term's trace list and append this trace.
                _consume(map(list.append, map(term_list, span.attributes), repeat(tid)))
                if span.status.code == _STATUS_ERROR:
                    part.errors += 1
                parent = span.parent_span_id
                candidate = (bool(parent), start, name)
                if part.root is None or candidate < part.root:
                    part.root = candidate
                if kind in (_SPAN_KIND_SERVER, _SPAN_KIND_CONSUMER):
                    if parent:
                        part.servers.append(parent)
                elif kind in (_SPAN_KIND_CLIENT, _SPAN_KIND_PRODUCER):
                    part.clients.append(sid)
            accepted += sum(len(p.spans) for p in group.values())
            parts.extend(group.values())
    return PreparedTraces(parts, terms, accepted, rejected, messages)
