"""What log ingest hands to the log writer: one request's records, validated and grouped.

Like ``prepared.py`` for traces, it sits on the storage side: ingest imports it, storage never
imports ingest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sidecar.storage.prepared import ResourceInfo, ScopeInfo


@dataclass(slots=True)
class LogGroup:
    """The kept records of one (resource, scope) of a request, column by column."""

    resource: ResourceInfo
    scope: ScopeInfo
    records: list[bytes]  # each LogRecord's original bytes
    times: list[int]  # time, else observed time, else receive time (ns)
    severities: list[int]
    trace_ids: list[bytes]  # b"" when the record names no trace
    bodies: list[str]  # body as text, for the token filter
    attribute_keys: set[bytes] = field(default_factory=set)  # of every record (CSV columns)
    plain_bodies: bool = True  # every body is one string, so its text is verbatim in the record bytes
    # Content hash of (resource, scope, records): an exporter's resent request repeats it exactly.
    digest: bytes = b""


@dataclass(slots=True)
class LogEvent:
    """A business event carried by a log record (``event_name``, or an ``event.name`` attribute)."""

    name: str
    user_id: str | None
    properties: dict[str, Any]
    service: str
    time_ns: int
    session_id: str | None = None  # from the ``session.id`` attribute


@dataclass(slots=True)
class PreparedLogs:
    groups: list[LogGroup]
    accepted: int
    rejected: int
    messages: list[str]
    events: list[LogEvent] = field(default_factory=list)

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        shown = "; ".join(self.messages)
        more = self.rejected - len(self.messages)
        return f"{self.rejected} log record(s) rejected: {shown}" + (f"; and {more} more" if more > 0 else "")
