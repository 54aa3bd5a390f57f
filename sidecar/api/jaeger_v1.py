"""Jaeger query v1 JSON API (as of Jaeger v2.20.0), read by Grafana's Jaeger data source and Jaeger UI."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from sidecar.api import params
from sidecar.api.context import ApiContext
from sidecar.api.logs import LOG_READER
from sidecar.query.jaeger_json import SpanLogs, traces_to_jaeger
from sidecar.query.params import MAX_NS, format_trace_id_jaeger

_MS = 1_000_000
_DAY_MS = 86_400_000


def envelope(
    request: web.Request,
    data: Any,
    total: int = 0,
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> web.Response:
    body = {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}
    indent = 2 if request.query.get("prettyPrint", "").lower() == "true" else None
    return web.Response(status=status, text=json.dumps(body, indent=indent), content_type="application/json")


def error(request: web.Request, status: int, message: str) -> web.Response:
    return envelope(request, None, errors=[{"code": status, "msg": message}], status=status)


def _jaeger_trace(traces_data: bytes, span_logs: SpanLogs | None = None) -> dict[str, Any] | None:
    converted = traces_to_jaeger(TracesData.FromString(traces_data).resource_spans, span_logs)
    return converted[0] if converted else None


class JaegerV1:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def services(self, request: web.Request) -> web.Response:
        names = await self.ctx.run(self.ctx.query.get_services)
        return envelope(request, names, total=len(names))

    async def service_operations(self, request: web.Request) -> web.Response:
        ops = await self.ctx.run(self.ctx.query.get_operations, request.match_info["service"])
        names = sorted({op.name for op in ops})
        return envelope(request, names, total=len(names))

    async def operations(self, request: web.Request) -> web.Response:
        service = params.text(request.query, "service")
        try:
            if not service:
                raise params.BadParam.required("service")
            kind = params.span_kind(request.query, "spanKind")
        except params.BadParam as exc:
            return error(request, 400, str(exc))
        ops = await self.ctx.run(self.ctx.query.get_operations, service, kind)
        data = [{"name": op.name, "spanKind": op.span_kind} for op in ops]
        return envelope(request, data, total=len(data))

    async def trace(self, request: web.Request) -> web.Response:
        try:
            tid = params.trace_id(request.match_info["trace_id"])
        except params.BadParam as exc:
            return error(request, 400, str(exc))
        stored = await self.ctx.run(self.ctx.query.get_trace, tid)
        span_logs: dict[str, list[Any]] = {}
        reader = request.app.get(LOG_READER)  # None when the server stores no logs
        if stored and reader is not None:
            for record in await self.ctx.run(reader.get_trace_logs, tid):
                if record.span_id:
                    span_logs.setdefault(record.span_id, []).append(record)
        trace = _jaeger_trace(stored.traces_data, span_logs or None) if stored else None
        if trace is None:
            return error(request, 404, "trace not found")
        return envelope(request, [trace])

    async def search(self, request: web.Request) -> web.Response:
        """Search, or fetch by repeated ``traceID``. ``lookback`` (``1h``, ``custom``) is what the
        UIs' time picker showed; Jaeger ignores it (``start``/``end`` carry the window), so do we."""
        q = request.query
        try:
            ids = [params.trace_id(v) for v in q.getall("traceID", []) if v]
            if ids:
                return await self._by_ids(request, ids)
            service = params.text(q, "service")
            if not service:
                raise params.BadParam.required("service")
            query = params.build_query(
                service=service,
                operation=params.text(q, "operation"),
                tag_list=params.tags(q, ("tags",), "tag"),
                start=params.micros(q, "start"),
                end=params.micros(q, "end"),
                min_duration=params.duration(q, "minDuration"),
                max_duration=params.duration(q, "maxDuration"),
                limit=params.search_limit(
                    q, "limit", default=params.JAEGER_DEFAULT_LIMIT, low=0, maximum=self.ctx.max_limit
                ),
            )
        except params.BadParam as exc:
            return error(request, 400, str(exc))
        found = await self.ctx.run(self.ctx.query.find_traces, query, load=True)
        traces = [t for _, stored in found if stored and (t := _jaeger_trace(stored.traces_data))]
        return envelope(request, traces)

    async def _by_ids(self, request: web.Request, ids: list[bytes]) -> web.Response:
        traces, errors = [], []
        for tid in ids:
            stored = await self.ctx.run(self.ctx.query.get_trace, tid)
            trace = _jaeger_trace(stored.traces_data) if stored else None
            if trace is None:
                errors.append({"code": 404, "msg": "trace not found", "traceID": format_trace_id_jaeger(tid)})
            else:
                traces.append(trace)
        return envelope(request, traces, errors=errors or None)

    async def dependencies(self, request: web.Request) -> web.Response:
        """The service graph of ``[endTs - lookback, endTs]``; both in milliseconds, as Grafana sends."""
        q = request.query
        try:
            end = params.millis(q, "endTs")
            lookback_ms = params.integer(
                q, "lookback", default=_DAY_MS, low=1, high=MAX_NS // _MS, unit=" ms"
            )
        except params.BadParam as exc:
            return error(request, 400, str(exc))
        end_ns = end[1] if end is not None else time.time_ns()
        links = await self.ctx.run(self.ctx.query.get_dependencies, end_ns, lookback_ms * _MS)
        wanted = params.text(q, "service")
        data = [
            {"parent": link.parent, "child": link.child, "callCount": link.call_count}
            for link in links
            if not wanted or wanted in (link.parent, link.child)
        ]
        return envelope(request, data)
