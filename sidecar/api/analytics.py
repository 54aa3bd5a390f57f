"""Event analytics routes: ``POST /api/events/trends`` and ``/funnels`` (JSON in, JSON or CSV out).

A request is checked whole before any read, and a bad one gets 400 naming the field by its path
(``series[0].filters[1].op``). CSV comes with ``?format=csv`` or ``Accept: text/csv``, one row
per point: for trends ``t,event,measure,property``, one column per breakdown name, then ``value``;
for funnels ``t``, the breakdown names, then per level ``level,event,users_at_level,users,
conversion_from_previous,conversion_from_first,median_seconds,avg_seconds`` (level 0 first).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sidecar.api import params
from sidecar.api.context import ApiContext
from sidecar.api.csv_format import to_csv
from sidecar.api.native import error
from sidecar.query.analytics.durations import DurationsRequest, parse_durations, run_durations
from sidecar.query.analytics.funnels import FunnelRequest, parse_funnel, run_funnel
from sidecar.query.analytics.geo import GeoRequest, parse_geo, run_geo
from sidecar.query.analytics.request import BadRequest
from sidecar.query.analytics.retention import RetentionRequest, parse_retention, run_retention
from sidecar.query.analytics.summary import HOUR_NS, run_summary
from sidecar.query.analytics.timebuckets import BadBuckets, parse_time
from sidecar.query.analytics.trends import TrendsRequest, parse_trends, run_trends
from sidecar.storage.rocks.events.columns import EventColumns

EVENT_COLUMNS = web.AppKey("event_columns", EventColumns)
MAX_BODY_BYTES = 1 << 20


def wants_csv(request: web.Request) -> bool | None:
    """True for CSV, False for JSON, None for a ``format`` that is neither."""
    fmt = request.query.get("format")
    if fmt is not None:
        return {"csv": True, "json": False}.get(fmt)
    accept = request.headers.get("Accept", "")
    return "text/csv" in accept and "application/json" not in accept


async def read_json(request: web.Request) -> Any:
    """The decoded body; BadRequest for a body that is not JSON."""
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("body", f"larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest("body", f"not JSON: {exc}") from None


def trends_csv(answer: dict[str, Any], req: TrendsRequest) -> str:
    breakdown = req.breakdown
    rows = (
        [
            point["t"],
            s["event"],
            s["measure"],
            s["property"],
            *((s["breakdown"] or {}).get(name) for name in breakdown),
            point["value"],
        ]
        for s in answer["series"]
        for point in s["points"]
    )
    return to_csv(["t", "event", "measure", "property", *breakdown, "value"], rows)


def funnel_csv(answer: dict[str, Any], req: FunnelRequest) -> str:
    breakdown = req.breakdown
    rows = []
    for entry in answer["buckets"]:
        head = [entry["t"], *((entry.get("breakdown") or {}).get(name) for name in breakdown)]
        levels = entry["levels"]
        rows.append([*head, 0, None, levels[0]["users"], None, None, None, None, None])
        for k, step in enumerate(entry["steps"], 1):
            rows.append(
                [
                    *head,
                    k,
                    step["event"],
                    levels[k]["users"],
                    step["users"],
                    step["conversion_from_previous"],
                    step["conversion_from_first"],
                    step["median_seconds"],
                    step["avg_seconds"],
                ]
            )
    header = ["t", *breakdown, "level", "event", "users_at_level", "users"]
    header += ["conversion_from_previous", "conversion_from_first", "median_seconds", "avg_seconds"]
    return to_csv(header, rows)


def retention_csv(answer: dict[str, Any], req: RetentionRequest) -> str:
    rows = (
        [cohort["t"], cohort["size"], k, n]
        for cohort in answer["cohorts"]
        for k, n in enumerate(cohort["returned"])
    )
    return to_csv(["t", "size", "period", "returned"], rows)


_STATS = ["count", "avg_seconds", "p50_seconds", "p95_seconds", "p99_seconds"]


def durations_csv(answer: dict[str, Any], req: DurationsRequest) -> str:
    return to_csv(["t", *_STATS], ([p["t"], *(p[k] for k in _STATS)] for p in answer["points"]))


def geo_csv(answer: dict[str, Any], req: GeoRequest) -> str:
    keys = ["lat", "lon", "count", "unique_users"]
    return to_csv(keys, ([c[k] for k in keys] for c in answer["cells"]))


def summary_csv(answer: dict[str, Any]) -> str:
    rows = [["unique_users", answer["unique_users"]], *([k, v] for k, v in answer["events"].items())]
    return to_csv(["name", "value"], rows)


def _summary_range(request: web.Request) -> tuple[int, int]:
    """``from`` defaults to an hour before ``to``, and ``to`` to now."""
    to_ns = _time_param(request, "to")
    from_ns = _time_param(request, "from")
    to_ns = time.time_ns() if to_ns is None else to_ns
    from_ns = to_ns - HOUR_NS if from_ns is None else from_ns
    if from_ns >= to_ns:
        raise params.BadParam("from", "must be before 'to'")
    return from_ns, to_ns


def _time_param(request: web.Request, name: str) -> int | None:
    """A query-string time as the analytics bodies take it: RFC 3339 or Unix seconds."""
    value = params.text(request.query, name)
    if value is None:
        return None
    try:
        return parse_time(name, value)
    except BadBuckets as exc:
        raise params.BadParam(name, exc.reason) from None


Parse = Callable[[Any], Any]
Run = Callable[[EventColumns, Any], dict[str, Any]]
Csv = Callable[[dict[str, Any], Any], str]


class AnalyticsApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def trends(self, request: web.Request) -> web.Response:
        return await self._answer(request, parse_trends, run_trends, trends_csv)

    async def funnels(self, request: web.Request) -> web.Response:
        return await self._answer(request, parse_funnel, run_funnel, funnel_csv)

    async def retention(self, request: web.Request) -> web.Response:
        return await self._answer(request, parse_retention, run_retention, retention_csv)

    async def durations(self, request: web.Request) -> web.Response:
        return await self._answer(request, parse_durations, run_durations, durations_csv)

    async def geo(self, request: web.Request) -> web.Response:
        return await self._answer(request, parse_geo, run_geo, geo_csv)

    async def summary(self, request: web.Request) -> web.Response:
        return await self._answer(
            request,
            _summary_range,
            lambda source, span: run_summary(source, *span),
            lambda answer, _: summary_csv(answer),
            known=("from", "to", "format"),
            from_body=False,
        )

    async def _answer(
        self,
        request: web.Request,
        parse: Parse,
        run: Run,
        csv: Csv,
        known: tuple[str, ...] = ("format",),
        from_body: bool = True,
    ) -> web.Response:
        """The one way every analytics route reads its request (a JSON body, or the query string),
        answers errors and picks a format."""
        try:
            params.known_only(request.query, known)
        except params.BadParam as exc:
            return error(400, str(exc))
        csv_out = wants_csv(request)
        if csv_out is None:
            return error(400, "parameter 'format': must be json or csv")
        source = request.app.get(EVENT_COLUMNS)
        if source is None:
            return error(503, "this server does not store events")
        try:
            req = parse(await read_json(request)) if from_body else parse(request)
        except (BadRequest, params.BadParam) as exc:
            return error(400, str(exc))
        answer = await self.ctx.run(run, source, req)
        if csv_out:
            return web.Response(text=csv(answer, req), content_type="text/csv")
        return web.Response(text=json.dumps(answer), content_type="application/json")
