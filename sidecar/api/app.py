"""The query API application: every route is listed in :func:`setup_routes`."""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.typedefs import Handler

from sidecar.api.analytics import AnalyticsApi
from sidecar.api.context import ApiContext
from sidecar.api.events import EventsApi
from sidecar.api.jaeger_v1 import JaegerV1
from sidecar.api.jaeger_v3 import JaegerV3
from sidecar.api.landing import landing
from sidecar.api.logs import LogsApi
from sidecar.api.native import NativeSearch
from sidecar.api.openapi import openapi_document
from sidecar.api.timing import RequestObserver, timing

CONTEXT = web.AppKey("context", ApiContext)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    health = request.app[CONTEXT].health
    body = {
        "status": "ready" if health.ready else "not ready",
        "store": health.store_open,
        **health.receivers,
    }
    return web.json_response(body, status=200 if health.ready else 503)


async def openapi(request: web.Request) -> web.Response:
    """The document states this server's search limits, so it is built from the context."""
    ctx = request.app[CONTEXT]
    document = openapi_document(ctx.default_limit, ctx.max_limit)
    return web.Response(text=json.dumps(document), content_type="application/json")


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown routes and wrong methods answer JSON too, never an HTML page or a bare 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {"error": {"code": exc.status, "message": exc.reason}}
        return web.json_response(
            body, status=exc.status, headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        )


def setup_routes(app: web.Application, ctx: ApiContext) -> None:
    v1, v3, native, logs = JaegerV1(ctx), JaegerV3(ctx), NativeSearch(ctx), LogsApi(ctx)
    r = app.router
    r.add_get("/", landing)  # exactly "/": other unknown paths keep the JSON 404
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/api/openapi.json", openapi)
    # Jaeger v1 (Grafana's Jaeger data source, Jaeger UI trace view)
    r.add_get("/api/services", v1.services)
    r.add_get("/api/services/{service}/operations", v1.service_operations)
    r.add_get("/api/operations", v1.operations)
    r.add_get("/api/traces", v1.search)
    r.add_get("/api/traces/{trace_id}", v1.trace)
    r.add_get("/api/dependencies", v1.dependencies)
    # Jaeger api_v3 (Jaeger UI search page, Grafana v3 mode)
    r.add_get("/api/v3/services", v3.services)
    r.add_get("/api/v3/operations", v3.operations)
    r.add_get("/api/v3/traces", v3.find_traces)
    r.add_get("/api/v3/traces/{trace_id}", v3.trace)
    r.add_get("/api/v3/trace-summaries", v3.trace_summaries)
    # Native
    r.add_get("/api/trace-summaries", native.trace_summaries)
    r.add_get("/api/events", EventsApi(ctx).list_events)
    analytics = AnalyticsApi(ctx)
    r.add_post("/api/events/trends", analytics.trends)
    r.add_post("/api/events/funnels", analytics.funnels)
    r.add_post("/api/events/retention", analytics.retention)
    r.add_post("/api/events/durations", analytics.durations)
    r.add_post("/api/events/geo", analytics.geo)
    r.add_get("/api/events/summary", analytics.summary)
    r.add_get("/api/logs", logs.search)
    r.add_get("/api/logs/tail", logs.tail)
    app.on_shutdown.append(logs.close_tails)


def build_api_app(ctx: ApiContext, observer: RequestObserver | None = None) -> web.Application:
    """``observer`` hears every request's route, status and latency (the sidecar's own metrics)."""
    middlewares = [timing(observer)] if observer is not None else []
    app = web.Application(middlewares=[*middlewares, errors_as_json])
    app[CONTEXT] = ctx
    setup_routes(app, ctx)
    return app
