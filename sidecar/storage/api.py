"""Storage contracts (after Jaeger's spanstore.Writer / Reader): what the rest of the code may rely on.

Receivers and the query layer depend on these protocols, never on RocksDB. Each method states what
it returns when nothing matches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sidecar.storage.prepared import PreparedTraces


# Tags Jaeger derives from span fields rather than attributes: never in an attribute index, always
# checked against the span itself.
DERIVED_TAGS = frozenset(
    {
        "error",
        "span.kind",
        "span.status",
        "otel.status_code",
        "otel.status_description",
        "otel.scope.name",
        "otel.scope.version",
        "otel.library.name",
        "otel.library.version",
        "scope.name",
        "scope.version",
        "w3c.tracestate",
    }
)


def wants_error(value: str) -> bool:
    """Jaeger's ``error`` tag: ``true`` asks for ERROR spans, any other value for the rest."""
    return value.strip().lower() == "true"


class StorageError(Exception):
    """Base class for storage failures."""


class Overloaded(StorageError):
    """The write queue is full; the client should retry later (OTLP 503 / UNAVAILABLE)."""


class StoreClosed(StorageError):
    """The store is shutting down and accepts no more writes."""


@dataclass(frozen=True, slots=True)
class ServiceStats:
    name: str
    span_count: int
    error_count: int


@dataclass(frozen=True, slots=True)
class TraceSummary:
    trace_id: bytes
    root_service: str
    root_name: str
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    services: tuple[ServiceStats, ...]
    min_span_ns: int
    max_span_ns: int
    operations: frozenset[str] = frozenset()

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """A search. ``tags`` values are strings compared like Jaeger does (``500`` matches int 500)."""

    service: str | None = None
    operation: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    start_ns: int = 0
    end_ns: int = (1 << 63) - 1
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    min_trace_duration_ns: int | None = None
    max_trace_duration_ns: int | None = None
    limit: int = 20  # for direct callers (tests); the API always passes its configured limit


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    span_kind: str  # lowercase Jaeger name, "" when unspecified


@dataclass(frozen=True, slots=True)
class DependencyLink:
    parent: str
    child: str
    call_count: int


@dataclass(slots=True)
class StoredTrace:
    """A trace as stored: OTLP ``TracesData`` bytes plus its summary."""

    summary: TraceSummary | None
    traces_data: bytes
    chunks: int = 0


class SpanWriter(Protocol):
    def submit(self, prepared: PreparedTraces) -> Future[None]:
        """Queue spans; the future resolves once they are durable (in the WAL).

        Raises Overloaded when the queue is full and StoreClosed during shutdown. The future fails
        with StoreClosed when shutdown ran out of time before writing them (never acknowledged, so
        the client sends them again), and with the storage error when the write failed.
        """
        ...

    def submit_async(self, prepared: PreparedTraces) -> asyncio.Future[None]:
        """submit() for callers on an event loop: the future belongs to the running loop."""
        ...


class SpanReader(Protocol):
    def get_trace(self, trace_id: bytes) -> StoredTrace | None:
        """All stored spans of one trace; None when unknown."""
        ...

    def find_candidates(self, query: TraceQuery) -> Iterator[tuple[int, TraceSummary]]:
        """Traces that may match, each once, as (arrival ns, summary) by arrival, newest first.

        A span arrives after it starts, so once arrivals are older than the start of the
        ``limit``-th newest trace found, no later candidate can start after it.

        The index and the summary decide service, operation, the first indexable tag, time range,
        trace duration and the span-duration bounds. The caller verifies what they cannot decide
        (several span-level predicates that must hold on one span) and stops when it has enough.
        """
        ...

    def get_services(self) -> list[str]:
        """Service names, sorted; [] when none."""
        ...

    def get_operations(self, service: str, span_kind: str | None = None) -> list[Operation]:
        """Operations of a service, optionally of one span kind; [] for an unknown service."""
        ...

    def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        """Calls between services in the window, summed per (parent, child); [] when none."""
        ...
