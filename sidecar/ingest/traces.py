"""The hot path of trace ingest: one pass over a decoded request, shaping it for the store.

Both receivers call :func:`prepare_traces` with protobuf bytes (OTLP-JSON is converted to protobuf
first) and hand the result to the storage writer. Everything a write needs per trace (chunk bytes,
summary deltas, index terms) is gathered here, in the receiving thread, so the writer thread
only merges small per-trace records. Python's cost is per operation, not per byte: spans are
handled column by column with comprehensions and C-level map() calls, and Python-level loops run
per trace rather than per span wherever possible.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from hashlib import blake2b
from itertools import compress, count, repeat
from operator import add, sub
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sidecar.core._wire import WireError, span_problems
from sidecar.ingest.peers import DATABASE, peer_of
from sidecar.otlp.conventions import NO_SERVICE_NAME, UNKNOWN_SERVICE
from sidecar.otlp.shadow import (
    ChunkGroup,
    RawTraceRequest,
    ShadowResource,
    ShadowScope,
    ShadowStatus,
    TraceRequest,
)
from sidecar.storage.prepared import PreparedTraces, ResourceInfo, ScopeColumns, ScopeInfo, TracePart

_MAX_ERROR_MESSAGES = 5
_SERVER_KINDS = frozenset({2, 5})  # SERVER, CONSUMER: the callee side of an edge
_CLIENT_KINDS = frozenset({3, 4})  # CLIENT, PRODUCER: the caller side
_EDGE_KINDS = _SERVER_KINDS | _CLIENT_KINDS
_STATUS_ERROR = 2
_NO_PEER = ("", "")
_SERVICE_NAME_KEY = b"\x0a\x0cservice.name"
_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend  # runs an iterator to the end in C


class RequestDecodeError(ValueError):
    """The request body is not a decodable OTLP message (maps to 400 / INVALID_ARGUMENT)."""


def _is_error(status: bytes) -> bool:
    return ShadowStatus.FromString(status).code == _STATUS_ERROR


def _chunk_group(message: Any, resource_ref: bytes, scope_ref: bytes, spans: list[bytes]) -> bytes:
    """Encode with a reused message: building one from keyword arguments costs three times more."""
    message.Clear()
    message.resource_ref = resource_ref
    message.scope_ref = scope_ref
    message.spans.extend(spans)
    group = message.SerializeToString()
    size = len(group)
    if size < 0x80:
        return b"\x0a" + bytes((size,)) + group
    return b"\x0a" + _varint(size) + group


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def content_ref(data: bytes) -> bytes:
    return blake2b(data, digest_size=16).digest()


def _service_name(attributes: list[bytes]) -> str:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    for kv in attributes:
        if kv.startswith(_SERVICE_NAME_KEY):
            value = KeyValue.FromString(kv).value
            if value.WhichOneof("value") == "string_value" and value.string_value:
                return value.string_value
            return UNKNOWN_SERVICE
    return UNKNOWN_SERVICE if attributes else NO_SERVICE_NAME


def resource_info(raw: bytes, seen: dict[bytes, ResourceInfo]) -> ResourceInfo:
    """A request's Resource, decoded once however many of its groups repeat the same bytes."""
    found = seen.get(raw)
    if found is None:
        attrs = list(ShadowResource.FromString(raw).attributes)
        found = seen[raw] = ResourceInfo(raw, _service_name(attrs), attrs, content_ref(raw))
    return found


def scope_info(raw: bytes, seen: dict[bytes, ScopeInfo]) -> ScopeInfo:
    """A request's InstrumentationScope, decoded once per distinct bytes."""
    found = seen.get(raw)
    if found is None:
        found = seen[raw] = ScopeInfo(raw, list(ShadowScope.FromString(raw).attributes), content_ref(raw))
    return found


def _scope_parts(
    spans: Sequence[Any],
    raw: list[bytes],
    rejected: list[int],
    resource: ResourceInfo,
    scope: ScopeInfo,
    term_list: Callable[[bytes], list[bytes]],
    out: list[TracePart],
    group_message: Any,
    columns: list[ScopeColumns],
) -> int:
    """Split one ScopeSpans into per-trace parts, column by column, leaving out ``rejected`` spans.

    Per-span work is a handful of list comprehensions and C-level map() calls; the Python loop runs
    per trace, not per span. Returns the number of spans kept.
    """
    if rejected:
        dropped = set(rejected)
        keep = [i for i in range(len(spans)) if i not in dropped]
        spans = [spans[i] for i in keep]
        raw = [raw[i] for i in keep]
    tids = [s.trace_id for s in spans]
    sids = [s.span_id for s in spans]
    starts = [s.start_time_unix_nano for s in spans]
    durations = list(map(sub, [s.end_time_unix_nano for s in spans], starts))
    names = [s.name for s in spans]
    kinds = [s.kind for s in spans]
    parents = [s.parent_span_id for s in spans]
    statuses = [s.status for s in spans]
    any_errors = any(statuses) and any(_is_error(st) for st in statuses if st)
    codes = [int(bool(st) and _is_error(st)) for st in statuses] if any_errors else statuses
    for span, tid in zip(spans, tids, strict=True):
        # Per attribute, all in C: find the term's trace list and append this trace.
        _consume(map(list.append, map(term_list, span.attributes), repeat(tid)))
    # Jaeger's tag search also matches span-event and span-link attributes; few spans have them.
    for span, tid in zip(spans, tids, strict=True):
        if span.events or span.links:
            for item in (*span.events, *span.links):
                _consume(map(list.append, map(term_list, item.attributes), repeat(tid)))
    by_trace: defaultdict[bytes, list[int]] = defaultdict(list)
    _consume(map(list.append, map(by_trace.__getitem__, tids), count()))
    any_edges = not _EDGE_KINDS.isdisjoint(kinds)
    peers: dict[int, tuple[str, str]] = {}
    if any_edges and not _CLIENT_KINDS.isdisjoint(kinds):
        # Attributes are read only for client spans, and only the few peer keys are decoded.
        for i in compress(count(), map(_CLIENT_KINDS.__contains__, kinds)):
            peer = peer_of(spans[i].attributes, kinds[i])
            if peer is not None:
                peers[i] = peer
    columns.append(
        ScopeColumns(resource, spans, names, kinds, statuses, starts, durations, tids, sids, parents, peers)
    )
    for tid, ix in by_trace.items():
        if len(ix) == 1:
            i = ix[0]
            root_i = i
            part = TracePart(
                tid,
                resource,
                scope,
                _chunk_group(group_message, resource.ref, scope.ref, [raw[i]]),
                1,
                starts[i],
                starts[i] + durations[i],
                durations[i],
                durations[i],
                codes[i] if any_errors else 0,
                None,
                {(names[i], kinds[i])},
                [sids[i]],
            )
        else:
            span_durations = list(map(durations.__getitem__, ix))
            ends_of = list(map(add, map(starts.__getitem__, ix), span_durations))
            root_i = min([i for i in ix if not parents[i]] or ix, key=starts.__getitem__)
            part = TracePart(
                tid,
                resource,
                scope,
                _chunk_group(group_message, resource.ref, scope.ref, list(map(raw.__getitem__, ix))),
                len(ix),
                min(map(starts.__getitem__, ix)),
                max(ends_of),
                min(span_durations),
                max(span_durations),
                sum(map(codes.__getitem__, ix)) if any_errors else 0,
                None,
                set(zip(map(names.__getitem__, ix), map(kinds.__getitem__, ix), strict=True)),
                list(map(sids.__getitem__, ix)),
            )
        part.root = (bool(parents[root_i]), starts[root_i], names[root_i])
        if peers:
            calls = [i for i in ix if kinds[i] in _CLIENT_KINDS]
            part.databases = [peers[i][0] for i in calls if peers.get(i, _NO_PEER)[1] == DATABASE]
            if part.databases:
                calls = [i for i in calls if peers.get(i, _NO_PEER)[1] != DATABASE]
            part.clients = [sids[i] for i in calls]
            part.peers = [peers.get(i, _NO_PEER)[0] for i in calls]
            part.servers = [parents[i] for i in ix if kinds[i] in _SERVER_KINDS and parents[i]]
        elif any_edges:
            part.clients = [sids[i] for i in ix if kinds[i] in _CLIENT_KINDS]
            part.servers = [parents[i] for i in ix if kinds[i] in _SERVER_KINDS and parents[i]]
        out.append(part)
    return len(tids)


def prepare_traces(body: bytes, *, well_formed: bool = False) -> PreparedTraces:
    """Decode, validate and group one ExportTraceServiceRequest.

    Invalid spans (found by the compiled core, ``sidecar.core._wire``) are dropped and described
    (partial success); the rest are kept. Raises
    RequestDecodeError when the bytes are not a valid OTLP request. The shadow schemas leave
    nested messages undecoded, so unless the caller built the bytes itself (``well_formed``) the
    official schema checks them once: stored bytes must always decode again (no corrupt nested
    attribute, no invalid UTF-8), or a stored trace could not be read back.
    """
    try:
        if not well_formed:
            ExportTraceServiceRequest.FromString(body)
        request = TraceRequest.FromString(body)
        raw_request = RawTraceRequest.FromString(body)
        # The compiled core checks every span's IDs and times in one pass over the bytes.
        problems = span_problems(body)
    except (DecodeError, WireError) as exc:
        raise RequestDecodeError(f"cannot decode ExportTraceServiceRequest: {exc}") from exc

    rejected_at: defaultdict[tuple[int, int], list[int]] = defaultdict(list)  # (resource, scope) -> spans
    for rs_index, ss_index, span_index, _ in problems:
        rejected_at[rs_index, ss_index].append(span_index)
    messages = [
        f"resourceSpans[{rs_index}].scopeSpans[{ss_index}].spans[{span_index}]: {problem}"
        for rs_index, ss_index, span_index, problem in problems[:_MAX_ERROR_MESSAGES]
    ]
    parts: list[TracePart] = []
    accepted = 0
    resources: dict[bytes, ResourceInfo] = {}
    scopes: dict[bytes, ScopeInfo] = {}
    terms: dict[str, defaultdict[bytes, list[bytes]]] = {}
    group_message = ChunkGroup()
    columns: list[ScopeColumns] = []
    no_rejects: list[int] = []
    for rs_index, (rs, raw_rs) in enumerate(
        zip(request.resource_spans, raw_request.resource_spans, strict=True)
    ):
        resource = resource_info(rs.resource, resources)
        service_terms = terms.get(resource.service)
        if service_terms is None:
            service_terms = terms[resource.service] = defaultdict(list)
        term_list = service_terms.__getitem__
        for ss_index, (ss, raw_ss) in enumerate(zip(rs.scope_spans, raw_rs.scope_spans, strict=True)):
            scope = scope_info(ss.scope, scopes)
            accepted += _scope_parts(
                list(ss.spans),
                list(raw_ss.spans),
                rejected_at.get((rs_index, ss_index), no_rejects),
                resource,
                scope,
                term_list,
                parts,
                group_message,
                columns,
            )
    # A resource whose spans were all rejected has an empty term map: it names no stored trace.
    terms = {service: lists for service, lists in terms.items() if lists}
    return PreparedTraces(parts, terms, accepted, len(problems), messages, columns)
