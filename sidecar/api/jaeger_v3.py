"""Jaeger api_v3 over HTTP (grpc-gateway JSON): OTLP-JSON traces, used by Jaeger UI and Grafana's v3 mode."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from sidecar.api import params
from sidecar.api.context import ApiContext
from sidecar.otlp.json_codec import encode_json
from sidecar.query.params import format_trace_id_full
from sidecar.storage.api import TraceQuery, TraceSummary


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def error(status: int, message: str) -> web.Response:
    grpc_code = {400: 3, 404: 5}.get(status, 13)
    return reply(
        {
            "error": {
                "grpcCode": grpc_code,
                "httpCode": status,
                "message": message,
                "httpStatus": {400: "Bad Request", 404: "Not Found"}.get(status, "Error"),
            }
        },
        status,
    )


def _otlp_result(blobs: list[bytes]) -> dict[str, Any]:
    data = TracesData()
    for blob in blobs:
        data.MergeFromString(blob)  # repeated field 1 concatenates: traces simply add up
    return {"result": encode_json(data)}


def summary_json(s: TraceSummary) -> dict[str, Any]:
    return {
        "traceId": format_trace_id_full(s.trace_id),
        "rootServiceName": s.root_service,
        "rootOperationName": s.root_name,
        "minStartTimeUnixNano": str(s.start_ns),
        "maxEndTimeUnixNano": str(s.end_ns),
        "spanCount": s.span_count,
        "errorSpanCount": s.error_count,
        "orphanSpanCount": 0,
        "services": [
            {"name": x.name, "spanCount": x.span_count, "errorSpanCount": x.error_count} for x in s.services
        ],
    }


class JaegerV3:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def services(self, request: web.Request) -> web.Response:
        return reply({"services": await self.ctx.run(self.ctx.query.get_services)})

    async def operations(self, request: web.Request) -> web.Response:
        try:
            service = params.text(request.query, "service")
            if service is None:
                raise params.BadParam.required("service")
            kind = params.span_kind(request.query, "spanKind", "span_kind")
        except params.BadParam as exc:
            return error(400, str(exc))
        ops = await self.ctx.run(self.ctx.query.get_operations, service, kind)
        unique = {(op.name, op.span_kind or "internal") for op in ops}
        return reply({"operations": [{"name": n, "spanKind": k} for n, k in sorted(unique)]})

    async def trace(self, request: web.Request) -> web.Response:
        try:
            tid = params.trace_id(request.match_info["trace_id"], "trace_id")
        except params.BadParam as exc:
            return error(400, str(exc))
        stored = await self.ctx.run(self.ctx.query.get_trace, tid)
        if stored is None:
            return error(404, "No traces found")
        return reply(_otlp_result([stored.traces_data]))

    def _query(self, request: web.Request) -> TraceQuery:
        """Search parameters in either spelling (Jaeger UI: camelCase, Grafana: snake_case); errors
        name the spelling the client used."""
        q = request.query
        start = params.rfc3339(q, "query.startTimeMin", "query.start_time_min")
        end = params.rfc3339(q, "query.startTimeMax", "query.start_time_max")
        if start is None:
            raise params.BadParam.required("query.start_time_min", " (RFC 3339; or query.startTimeMin)")
        if end is None:
            raise params.BadParam.required("query.start_time_max", " (RFC 3339; or query.startTimeMax)")
        limit = params.search_limit(
            q,
            "query.searchDepth",
            "query.search_depth",
            "query.num_traces",
            default=params.JAEGER_DEFAULT_LIMIT,
            low=1,
            maximum=self.ctx.max_limit,
        )
        return params.build_query(
            service=params.text(q, "query.serviceName", "query.service_name"),
            operation=params.text(q, "query.operationName", "query.operation_name"),
            tag_list=params.tags(q, ("query.attributes",), None),
            start=start,
            end=end,
            min_duration=params.duration(q, "query.durationMin", "query.duration_min"),
            max_duration=params.duration(q, "query.durationMax", "query.duration_max"),
            limit=limit,
        )

    async def find_traces(self, request: web.Request) -> web.Response:
        try:
            query = self._query(request)
        except params.BadParam as exc:
            return error(400, str(exc))
        found = await self.ctx.run(self.ctx.query.find_traces, query, load=True)
        blobs = [stored.traces_data for _, stored in found if stored]
        if not blobs:
            return error(404, "No traces found")
        return reply(_otlp_result(blobs))

    async def trace_summaries(self, request: web.Request) -> web.Response:
        try:
            query = self._query(request)
        except params.BadParam as exc:
            return error(400, str(exc))
        found = await self.ctx.run(self.ctx.query.find_traces, query)
        return reply({"summaries": [summary_json(s) for s, _ in found]})
