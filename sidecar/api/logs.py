"""``GET /api/logs`` (a page of stored records, newest first) and ``GET /api/logs/tail`` (a live
Server-Sent Events tail with the same filters).

Walking ``next_cursor`` gives every match once while new records arrive; see the reader's cursor.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from sidecar.api import params
from sidecar.api.context import ApiContext
from sidecar.api.csv_format import columns, output_format, rfc3339, to_csv
from sidecar.api.native import error
from sidecar.query.logs import (
    CSV_FIELDS,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    csv_row,
    entry_json,
    parse_severity,
    search,
)
from sidecar.query.params import shown
from sidecar.query.regex import compile_regex
from sidecar.storage.rocks.logs.reader import BadCursor, LogFilter, LogReader

# Set by the server next to the API context: the API app also runs without a log store (tests).
LOG_READER = web.AppKey("log_reader", LogReader)
TAIL_POLL_S = 0.5
_HEX_ID = re.compile(r"[0-9a-fA-F]+")


def _hex(q: MultiMapping[str], name: str, size: int) -> str | None:
    value = params.text(q, name)
    if value is None:
        return None
    if len(value) != size * 2 or not _HEX_ID.fullmatch(value):
        raise params.BadParam(name, f"expected {size * 2} hex digits, got {shown(value)}")
    return value.lower()


FILTERS = ("service", "severity_min", "q", "regex", "trace_id", "span_id", "from", "to")
PAGING = ("limit", "cursor", "format")


def log_filter(q: MultiMapping[str], paging: bool = True) -> LogFilter:
    """The filters from the query string; BadParam names the parameter at fault, unknown ones too
    (the tail takes no ``limit``, ``cursor`` or ``format``)."""
    params.known_only(q, FILTERS + PAGING if paging else FILTERS, ("attr.",))
    severity = params.text(q, "severity_min")
    try:
        severity_min = parse_severity(severity) if severity is not None else 0
    except ValueError as exc:
        raise params.BadParam("severity_min", str(exc)) from None
    pattern = params.text(q, "regex")
    try:
        regex = compile_regex(pattern) if pattern is not None else None
    except ValueError as exc:
        raise params.BadParam("regex", str(exc)) from None
    attrs = [(name.removeprefix("attr."), value) for name, value in q.items() if name.startswith("attr.")]
    if any(not key for key, _ in attrs):
        raise params.BadParam("attr.", "name the attribute: attr.KEY=VALUE")
    from_ns, to_ns = params.unix_ns_or_rfc3339(q, "from"), params.unix_ns_or_rfc3339(q, "to")
    if from_ns is not None and to_ns is not None and from_ns > to_ns:
        raise params.BadParam("from", "is after 'to'")
    return LogFilter(
        service=params.text(q, "service"),
        severity_min=severity_min,
        text=params.text(q, "q"),
        regex=regex,
        trace_id=_hex(q, "trace_id", 16),
        span_id=_hex(q, "span_id", 8),
        attrs=attrs,
        from_ns=from_ns,
        to_ns=to_ns,
    )


class LogsApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._stopping = asyncio.Event()

    async def close_tails(self, app: web.Application) -> None:
        """on_shutdown: open tails end now rather than hold the shutdown until its timeout."""
        self._stopping.set()

    async def search(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            query = log_filter(q)
            limit = params.integer(q, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
            cursor = params.text(q, "cursor")
            if (cursor is not None and not _HEX_ID.fullmatch(cursor)) or len(cursor or "") % 2:
                raise params.bad_cursor()
            fmt = output_format(q)
        except params.BadParam as exc:
            return error(400, str(exc))
        reader = request.app.get(LOG_READER)
        if reader is None:
            return error(503, "this server does not store logs")
        try:
            page = await self.ctx.run(search, reader, query, limit, cursor)
        except BadCursor:
            return error(400, str(params.bad_cursor()))
        next_cursor = page.next_cursor.hex() if page.next_cursor else None
        headers = {"X-Next-Cursor": next_cursor} if next_cursor else None
        if fmt == "ndjson":
            text = "".join(json.dumps(entry_json(e)) + "\n" for e in page.entries)
            return web.Response(text=text, content_type="application/x-ndjson", headers=headers)
        if fmt == "csv":
            keys = reader.attribute_keys(query.service)
            rows = (csv_row(e, rfc3339(e.time_ns), keys) for e in page.entries)
            text = to_csv(columns(CSV_FIELDS, keys, "attributes."), rows)
            return web.Response(text=text, content_type="text/csv", headers=headers)
        body: dict[str, Any] = {"data": [entry_json(e) for e in page.entries], "next_cursor": next_cursor}
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def tail(self, request: web.Request) -> web.StreamResponse:
        """Polls for blocks written since the last look; a disconnect or shutdown cancels the loop."""
        try:
            query = log_filter(request.query, paging=False)
        except params.BadParam as exc:
            return error(400, str(exc))
        reader = request.app.get(LOG_READER)
        if reader is None:
            return error(503, "this server does not store logs")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        mark = await self.ctx.run(reader.mark)
        await response.write(b": tail open\n\n")  # the client knows from here on it sees new records
        idle = 0
        try:
            while not self._stopping.is_set():
                try:
                    await asyncio.wait_for(self._stopping.wait(), TAIL_POLL_S)
                    break
                except TimeoutError:
                    pass
                if request.transport is None or request.transport.is_closing():
                    break  # the client left: stop polling now, not at the next write
                entries, mark = await self.ctx.run(reader.since, query, mark)
                idle += 1
                if entries:
                    data = "".join(f"data: {json.dumps(entry_json(e))}\n\n" for e in entries)
                    await response.write(data.encode())
                    idle = 0
                elif idle >= 30:  # a comment now and then keeps proxies from closing a quiet stream
                    await response.write(b": keepalive\n\n")
                    idle = 0
        except ConnectionResetError:
            pass  # the client left
        return response
