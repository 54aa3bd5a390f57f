"""Log queries: severity names, the JSON shape of a record, and the paged search the routes run.

The routes parse the query string into a :class:`LogFilter`; this module holds what the API, the CLI
and a live tail share, so that they agree on names, shapes and columns.
"""

from __future__ import annotations

import json
from typing import Any

from sidecar.storage.rocks.logs.reader import LogEntry, LogFilter, LogPage, LogReader

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000  # refused above, never clamped
# The first SeverityNumber of each OTLP range (TRACE 1-4, DEBUG 5-8, ... FATAL 21-24).
SEVERITIES = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}
ALIASES = {"warning": 13, "err": 17, "critical": 21}  # Python logging's and syslog's spellings
# Fixed CSV columns; one column per attribute key follows, from the registry of the keys the
# query's service (or every service) carried, so the header needs no pass over the rows.
CSV_FIELDS = (
    "timestamp",
    "severity_number",
    "severity_text",
    "service",
    "scope",
    "body",
    "trace_id",
    "span_id",
    "event_name",
)


def parse_severity(value: str) -> int:
    """A number 1-24 or a name (any case); ValueError says which are allowed."""
    name = value.strip().lower()
    number = SEVERITIES.get(name, ALIASES.get(name))
    if number is not None:
        return number
    if value.isascii() and value.isdigit() and 1 <= int(value) <= 24:
        return int(value)
    raise ValueError(f"expected 1-24 or one of {', '.join(SEVERITIES)}, got {value[:40]!r}")


def entry_json(e: LogEntry) -> dict[str, Any]:
    return {
        "time_unix_nano": e.time_ns,
        "observed_time_unix_nano": e.observed_ns,
        "severity_number": e.severity_number,
        "severity_text": e.severity_text,
        "body": e.body,
        "attributes": e.attributes,
        "trace_id": e.trace_id,
        "span_id": e.span_id,
        "service": e.service,
        "scope": e.scope,
        "event_name": e.event_name,
    }


def csv_row(e: LogEntry, time_text: str, keys: list[str]) -> list[object]:
    """One CSV row: the fixed fields, then each attribute of ``keys`` (maps and lists as JSON)."""
    attrs = e.attributes
    return [
        time_text,
        e.severity_number,
        e.severity_text,
        e.service,
        e.scope,
        e.body,
        e.trace_id,
        e.span_id,
        e.event_name,
        *(_cell_value(attrs.get(key)) for key in keys),
    ]


def _cell_value(value: object) -> object:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) else value


def search(reader: LogReader, query: LogFilter, limit: int, cursor: str | None) -> LogPage:
    """One page after the (hex) cursor; storage's BadCursor propagates for a foreign cursor."""
    return reader.page(query, limit, bytes.fromhex(cursor) if cursor else None)
