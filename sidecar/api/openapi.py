"""OpenAPI 3.1 description of the query API, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any


def _param(
    name: str,
    description: str,
    schema: dict[str, Any] | None = None,
    required: bool = False,
    where: str = "query",
    repeated: bool = False,
) -> dict[str, Any]:
    schema = schema or {"type": "string"}
    if repeated:
        schema = {"type": "array", "items": schema}
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
        **({"explode": True} if repeated else {}),
    }


_DURATION = {"type": "string", "pattern": r"^[0-9.]+(ns|us|µs|ms|s|m|h)([0-9.]+(ns|us|µs|ms|s|m|h))*$"}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        }
    },
}
_SERVICE_STATS = {
    "type": "object",
    "required": ["name", "spanCount", "errorCount"],
    "properties": {
        "name": {"type": "string"},
        "spanCount": {"type": "integer"},
        "errorCount": {"type": "integer"},
    },
}
_SUMMARY = {
    "type": "object",
    "required": [
        "traceID",
        "rootServiceName",
        "rootOperationName",
        "startTime",
        "duration",
        "spanCount",
        "errorCount",
        "services",
    ],
    "properties": {
        "traceID": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "rootServiceName": {"type": "string"},
        "rootOperationName": {"type": "string"},
        "startTime": {"type": "integer", "description": "microseconds since the epoch"},
        "duration": {"type": "integer", "description": "microseconds"},
        "spanCount": {"type": "integer"},
        "errorCount": {"type": "integer"},
        "services": {"type": "array", "items": _SERVICE_STATS},
    },
}


def _jaeger(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["jaeger-v1"],
            "responses": {"200": {"description": "Jaeger envelope"}},
        }
    }


def openapi_document() -> dict[str, Any]:
    search_params = [
        _param("service", "Service name; optional, unlike Jaeger."),
        _param("operation", "Span name."),
        _param("tag", "Attribute filter key:value (or key=value); all must match.", repeated=True),
        _param("tags", 'JSON object of attribute filters, e.g. {"http.status_code":"500"}.'),
        _param("start", "Earliest trace time, µs since the epoch.", {"type": "integer"}),
        _param("end", "Latest trace time, µs since the epoch (default now).", {"type": "integer"}),
        _param("since", "Alternative to start: look back this long (Go duration, e.g. 1h).", _DURATION),
        _param("minDuration", "Some span lasts at least this long (Go duration).", _DURATION),
        _param("maxDuration", "Some span lasts at most this long (Go duration).", _DURATION),
        _param("minTraceDuration", "The whole trace lasts at least this long.", _DURATION),
        _param("maxTraceDuration", "The whole trace lasts at most this long.", _DURATION),
        _param("limit", "Maximum number of traces (default 20).", {"type": "integer", "minimum": 1}),
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "sidecar query API", "version": "1"},
        "paths": {
            "/api/trace-summaries": {
                "get": {
                    "summary": "Search traces by summary, newest first; no service required.",
                    "tags": ["native"],
                    "parameters": search_params,
                    "responses": {
                        "200": {
                            "description": "Matching trace summaries",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["data", "limit"],
                                        "properties": {
                                            "data": {"type": "array", "items": _SUMMARY},
                                            "limit": {"type": "integer"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": {
                            "description": "A parameter is invalid; the message names it.",
                            "content": {"application/json": {"schema": _ERROR}},
                        },
                    },
                }
            },
            "/api/services": _jaeger("Jaeger v1: service names"),
            "/api/services/{service}/operations": {
                "get": {
                    "summary": "Jaeger v1: operation names of a service",
                    "tags": ["jaeger-v1"],
                    "parameters": [_param("service", "Service name", required=True, where="path")],
                    "responses": {"200": {"description": "Jaeger envelope"}},
                }
            },
            "/api/operations": _jaeger("Jaeger v1: operations with span kind (service=, spanKind=)"),
            "/api/traces": _jaeger("Jaeger v1: search (service required) or fetch by repeated traceID"),
            "/api/traces/{traceID}": {
                "get": {
                    "summary": "Jaeger v1: one trace",
                    "tags": ["jaeger-v1"],
                    "parameters": [_param("traceID", "Hex trace ID", required=True, where="path")],
                    "responses": {
                        "200": {"description": "Jaeger envelope"},
                        "404": {"description": "trace not found"},
                    },
                }
            },
            "/api/dependencies": _jaeger("Jaeger v1: service dependency links (endTs=, lookback= in ms)"),
            "/api/v3/services": {
                "get": {
                    "summary": "api_v3 services",
                    "tags": ["jaeger-v3"],
                    "responses": {"200": {"description": "{services: []}"}},
                }
            },
            "/api/v3/operations": {
                "get": {
                    "summary": "api_v3 operations",
                    "tags": ["jaeger-v3"],
                    "responses": {"200": {"description": "{operations: []}"}},
                }
            },
            "/api/v3/traces": {
                "get": {
                    "summary": "api_v3 search, OTLP-JSON",
                    "tags": ["jaeger-v3"],
                    "responses": {"200": {"description": "{result: TracesData}"}},
                }
            },
            "/api/v3/traces/{trace_id}": {
                "get": {
                    "summary": "api_v3 trace by id, OTLP-JSON",
                    "tags": ["jaeger-v3"],
                    "parameters": [_param("trace_id", "Hex trace ID", required=True, where="path")],
                    "responses": {
                        "200": {"description": "{result: TracesData}"},
                        "404": {"description": "not found"},
                    },
                }
            },
            "/api/v3/trace-summaries": {
                "get": {
                    "summary": "api_v3 trace summaries",
                    "tags": ["jaeger-v3"],
                    "responses": {"200": {"description": "{summaries: []}"}},
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: store open, receivers listening",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
        },
    }
