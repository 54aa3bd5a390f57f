"""The hot path of trace ingest: one request's bytes shaped for the store.

Both receivers call :func:`prepare_traces` with protobuf bytes (OTLP-JSON is converted to protobuf
first) and hand the result to the storage writer. Everything a write needs per trace (chunk bytes,
summary figures, index terms, edge halves) is gathered here, in the receiving thread, by the
compiled core's one pass over the bytes, so the writer thread only merges small per-trace records.
This module holds what the core is given: how a Resource names its service, how records are
built, and which attributes name a client span's peer.
"""

from __future__ import annotations

from hashlib import blake2b

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sidecar.core._wire import TraceShaper, WireError
from sidecar.ingest.peers import DATABASE, PEER_PREFIXES, peer_of_hits
from sidecar.otlp.conventions import NO_SERVICE_NAME, UNKNOWN_SERVICE
from sidecar.otlp.shadow import ShadowResource, ShadowScope
from sidecar.storage.prepared import PreparedTraces, ResourceInfo, ScopeColumns, ScopeInfo, SpanSeries

_MAX_ERROR_MESSAGES = 5
_SERVICE_NAME_KEY = b"\x0a\x0cservice.name"


class RequestDecodeError(ValueError):
    """The request body is not a decodable OTLP message (maps to 400 / INVALID_ARGUMENT)."""


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


_SHAPER = TraceShaper(resource_info, scope_info, ScopeColumns, PEER_PREFIXES, peer_of_hits, DATABASE)


def prepare_traces(body: bytes, *, well_formed: bool = False) -> PreparedTraces:
    """Decode, validate and group one ExportTraceServiceRequest.

    The compiled core (``sidecar.core._wire.TraceShaper``) does it in one pass over the bytes:
    invalid spans are dropped and described (partial success), the rest are grouped into trace
    parts with their chunk bytes, summary figures, index terms and edge halves. Raises
    RequestDecodeError when the bytes are not a valid OTLP request. The shadow schemas leave
    nested messages undecoded, so unless the caller built the bytes itself (``well_formed``) the
    official schema checks them once: stored bytes must always decode again (no corrupt nested
    attribute, no invalid UTF-8), or a stored trace could not be read back.
    """
    try:
        if not well_formed:
            ExportTraceServiceRequest.FromString(body)
        problems, parts, terms, columns, accepted, series = _SHAPER.shape(body)
    except (DecodeError, WireError) as exc:
        raise RequestDecodeError(f"cannot decode ExportTraceServiceRequest: {exc}") from exc

    messages = [
        f"resourceSpans[{rs_index}].scopeSpans[{ss_index}].spans[{span_index}]: {problem}"
        for rs_index, ss_index, span_index, problem in problems[:_MAX_ERROR_MESSAGES]
    ]
    return PreparedTraces(parts, terms, accepted, len(problems), messages, columns, SpanSeries(*series))
