"""The native trace search: summaries only, no service required (Jaeger cannot search without one)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from sidecar.api import params
from sidecar.api.context import ApiContext
from sidecar.query.params import format_trace_id_full
from sidecar.storage.api import TraceSummary


def error(status: int, message: str) -> web.Response:
    body = {"error": {"code": status, "message": message}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def summary_json(s: TraceSummary) -> dict[str, Any]:
    return {
        "traceID": format_trace_id_full(s.trace_id),
        "rootServiceName": s.root_service,
        "rootOperationName": s.root_name,
        "startTime": s.start_ns // 1000,
        "duration": s.duration_ns // 1000,
        "spanCount": s.span_count,
        "errorCount": s.error_count,
        "services": [
            {"name": x.name, "spanCount": x.span_count, "errorCount": x.error_count} for x in s.services
        ],
    }


class NativeSearch:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def trace_summaries(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = params.search_limit(
                q, "limit", default=self.ctx.default_limit, low=1, maximum=self.ctx.max_limit
            )
            end = params.micros(q, "end")
            query = params.build_query(
                service=params.text(q, "service"),
                operation=params.text(q, "operation"),
                tag_list=params.tags(q, ("tags",), "tag"),
                start=self._start(q, end),
                end=end,
                min_duration=params.duration(q, "minDuration"),
                max_duration=params.duration(q, "maxDuration"),
                min_trace_duration=params.duration(q, "minTraceDuration"),
                max_trace_duration=params.duration(q, "maxTraceDuration"),
                limit=limit,
            )
        except params.BadParam as exc:
            return error(400, str(exc))
        found = await self.ctx.run(self.ctx.query.find_traces, query)
        body = {"data": [summary_json(s) for s, _ in found], "limit": limit}
        return web.Response(text=json.dumps(body), content_type="application/json")

    @staticmethod
    def _start(q: MultiMapping[str], end: params.Named | None) -> params.Named | None:
        """``start`` (µs) or ``since`` (a look-back from now), not both: one would be ignored."""
        start = params.micros(q, "start")
        since = params.duration(q, "since", positive=True)
        if since is None:
            return start
        if start is not None:
            raise params.BadParam("since", "give either 'start' or 'since', not both")
        start_ns = time.time_ns() - since[1]
        if end is not None and start_ns > end[1]:
            raise params.BadParam("since", "looks back from now, so the window starts after 'end'")
        return "since", start_ns
