"""The native trace search: summaries only, no service required (Jaeger cannot search without one)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

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
            start = params.micros(q, "start")
            since = params.duration(q, "since")
            if start is None and since is not None:
                start = time.time_ns() - since
            limit = params.integer(q, "limit", self.ctx.default_limit, 1, self.ctx.max_limit)
            query = params.build_query(
                service=q.get("service"),
                operation=q.get("operation"),
                tag_list=params.tags(q, ("tags",), "tag"),
                start_ns=start,
                end_ns=params.micros(q, "end"),
                min_duration=("minDuration", params.duration(q, "minDuration")),
                max_duration=("maxDuration", params.duration(q, "maxDuration")),
                min_trace_duration=params.duration(q, "minTraceDuration"),
                max_trace_duration=params.duration(q, "maxTraceDuration"),
                limit=limit,
            )
        except params.BadParam as exc:
            return error(400, str(exc))
        found = await self.ctx.run(self.ctx.query.find_traces, query)
        body = {"data": [summary_json(s) for s, _ in found], "limit": limit}
        return web.Response(text=json.dumps(body), content_type="application/json")
