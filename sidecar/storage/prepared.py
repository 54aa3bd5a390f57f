"""What ingest hands to a SpanWriter: one request's spans, validated and grouped by trace.

Defined on the storage side of the boundary (ingest imports it, storage never imports ingest), the
way Jaeger's model package sits below both its collector and its span stores. TracePart, made once
per trace and request, is the compiled core's type (``sidecar.core._wire``), which builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar.core._wire import TracePart
from sidecar.otlp.shadow import ShadowSpan

__all__ = ["PreparedTraces", "ResourceInfo", "ScopeColumns", "ScopeInfo", "SpanSeries", "TracePart"]


@dataclass(slots=True)
class ResourceInfo:
    """A distinct resource of a request: its bytes are stored once and referenced by chunks."""

    encoded: bytes
    service: str
    attributes: list[bytes]
    ref: bytes  # content hash: the key chunks use to point at the stored bytes


@dataclass(slots=True)
class ScopeInfo:
    encoded: bytes
    attributes: list[bytes]
    ref: bytes


@dataclass(slots=True)
class ScopeColumns:
    """One ScopeSpans' kept spans as the columns ingest built anyway, for the metrics taps.

    References, not copies: handing them on costs one object per scope. Names and statuses are the
    raw bytes (UTF-8 text, encoded Status); times are ns. Span attributes are decoded only when a
    tap asks (span metric dimensions): ``offsets`` holds each span's (start, end) in ``body``, as
    native int64 pairs.
    """

    resource: ResourceInfo
    body: bytes
    offsets: bytes
    names: list[bytes]
    kinds: list[int]
    statuses: list[bytes]
    starts: list[int]
    durations: list[int]
    trace_ids: list[bytes]
    span_ids: list[bytes]
    parents: list[bytes]
    peers: dict[int, tuple[str, str]]  # client span index -> (peer name, connection type)

    def span_attributes(self) -> list[list[bytes]]:
        """Each span's encoded attributes (KeyValue bytes), in column order."""
        offsets, body = memoryview(self.offsets).cast("q"), self.body
        pairs = zip(offsets[::2], offsets[1::2], strict=True)
        return [list(ShadowSpan.FromString(body[a:b]).attributes) for a, b in pairs]


@dataclass(slots=True)
class SpanSeries:
    """A request's kept spans grouped for span metrics by the compiled core, in column order (the
    ScopeColumns one after another): ``keys`` the distinct (service, span name as UTF-8 bytes,
    kind, status code 0..2), ``of`` each span's index into ``keys`` (native int32), ``durations``
    each span's duration in ns (native uint64)."""

    keys: list[tuple[str, bytes, int, int]]
    of: bytes
    durations: bytes


@dataclass(slots=True)
class PreparedTraces:
    parts: list[TracePart]
    # service name -> encoded span attribute (KeyValue) -> trace ids carrying it (with repeats)
    terms: dict[str, dict[bytes, list[bytes]]]
    accepted: int
    rejected: int
    messages: list[str]
    columns: list[ScopeColumns] = field(default_factory=list)
    series: SpanSeries | None = None

    def release_store_data(self) -> None:
        """Drop what only the store reads (parts, terms), once merged into a write: the taps get
        the batch after its acknowledgement and may be behind by many batches, and they read
        only the columns (a part's chunks and terms are most of a request's memory)."""
        self.parts = []
        self.terms = {}

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        shown = "; ".join(self.messages)
        more = self.rejected - len(self.messages)
        return f"{self.rejected} span(s) rejected: {shown}" + (f"; and {more} more" if more > 0 else "")
