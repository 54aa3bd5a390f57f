"""``GET /api/events``: stored business events, newest (or oldest) first, a page at a time.

Filters narrow by ``name``, ``user_id``, ``session_id``, ``service``, repeated ``prop.KEY=VALUE``
(numbers compare by value) and time; ``user_id`` reads
that user's index, so one user's first events (``user_id=U&order=asc``) is a range read. The answer
ends with ``next_cursor``; passing it back as ``cursor`` continues strictly after the last event, so
walking the cursors gives every matching event once while new ones arrive.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from sidecar.api import params
from sidecar.api.context import ApiContext
from sidecar.api.csv_format import columns, output_format, rfc3339
from sidecar.api.csv_format import to_csv as csv_text
from sidecar.api.native import error
from sidecar.query.params import shown
from sidecar.storage.rocks.events.reader import BadCursor, EventReader, StoredEvent

# Set by the server next to the API context: the API app also runs without an events store (tests).
EVENT_READER = web.AppKey("event_reader", EventReader)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
ORDERS = ("asc", "desc")
CSV_FIELDS = ("timestamp", "name", "user_id", "session_id", "service", "id")
KNOWN = ("name", "user_id", "session_id", "service", "from", "to", "order", "limit", "cursor", "format")


def query_args(q: MultiMapping[str]) -> dict[str, Any]:
    """The reader's arguments from the query string; BadParam names the parameter at fault, an
    unknown one too (``user=42`` for ``user_id=42`` would otherwise list everyone's events)."""
    params.known_only(q, KNOWN, ("prop.",))
    order = params.text(q, "order") or "desc"
    if order not in ORDERS:
        raise params.BadParam("order", f"must be asc or desc, got {shown(order)}")
    cursor = params.text(q, "cursor")
    if cursor is not None:
        try:
            bytes.fromhex(cursor)
        except ValueError:
            raise params.bad_cursor() from None
    args: dict[str, Any] = {
        name: params.text(q, name) for name in ("name", "user_id", "session_id", "service")
    }
    args.update(
        from_ns=params.unix_ns_or_rfc3339(q, "from"),
        to_ns=params.unix_ns_or_rfc3339(q, "to"),
        order=order,
        limit=params.integer(q, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
        after_cursor=cursor,
        props=[(name.removeprefix("prop."), value) for name, value in q.items() if name.startswith("prop.")],
    )
    if any(not key for key, _ in args["props"]):
        raise params.BadParam("prop.", "name the property: prop.KEY=VALUE")
    if args["from_ns"] is not None and args["to_ns"] is not None and args["from_ns"] > args["to_ns"]:
        raise params.BadParam("from", "is after 'to'")
    return args


class EventsApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def list_events(self, request: web.Request) -> web.Response:
        try:
            args = query_args(request.query)
            fmt = output_format(request.query)
        except params.BadParam as exc:
            return error(400, str(exc))
        reader = request.app.get(EVENT_READER)
        if reader is None:
            return error(503, "this server does not store events")
        try:
            page = await self.ctx.run(reader.list_events, **args)
        except BadCursor:
            return error(400, str(params.bad_cursor()))
        headers = {"X-Next-Cursor": page.next_cursor} if page.next_cursor else None
        if fmt == "ndjson":
            text = "".join(json.dumps(e.to_json()) + "\n" for e in page.events)
            return web.Response(text=text, content_type="application/x-ndjson", headers=headers)
        if fmt == "csv":
            keys = reader.property_keys(args["name"])
            return web.Response(text=to_csv(page.events, keys), content_type="text/csv", headers=headers)
        body = {"data": [e.to_json() for e in page.events], "next_cursor": page.next_cursor}
        return web.Response(text=json.dumps(body), content_type="application/json")


def to_csv(events: list[StoredEvent], keys: list[str]) -> str:
    """RFC 4180 CSV: a header (the fixed fields, then ``keys``, known from the registry up front)
    and one row per event; a property outside ``keys`` has no column."""
    rows = (
        [rfc3339(e.ts_ns), e.name, e.user_id, e.session_id, e.service, e.id]
        + [e.properties.get(k) for k in keys]
        for e in events
    )
    return csv_text(columns(CSV_FIELDS, keys, "properties."), rows)
