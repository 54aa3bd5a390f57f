"""OpenAPI 3.1 description of the query API, served at /api/openapi.json.

Every route that :func:`sidecar.api.app.setup_routes` registers is described here with the
parameters its handler reads and the answers it really gives, in each API's own error shape.
``tests/e2e/test_openapi.py`` compares this document with the app's router and with live answers,
so a route or parameter cannot be added without being documented. The search limits come from the
running configuration, which is why the document is built per call.
"""

from __future__ import annotations

from typing import Any

from sidecar.api.csv_format import FORMATS
from sidecar.api.events import DEFAULT_LIMIT, MAX_LIMIT, ORDERS
from sidecar.api.params import JAEGER_DEFAULT_LIMIT, SPAN_KINDS
from sidecar.config.model import ApiConfig
from sidecar.query.analytics.filters import OPS
from sidecar.query.analytics.funnels import MODES
from sidecar.query.analytics.measures import MEASURES
from sidecar.query.analytics.timebuckets import INTERVALS
from sidecar.query.logs import DEFAULT_LIMIT as LOG_DEFAULT_LIMIT
from sidecar.query.logs import MAX_LIMIT as LOG_MAX_LIMIT
from sidecar.query.params import MAX_NS

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_NUMBER: Schema = {"type": "number"}
_BOOL: Schema = {"type": "boolean"}
_UNITS = "ns|us|µs|μs|ms|s|m|h"
# Go durations without a sign (negative bounds are refused): 0, 150ms, 1.5s, 1h15m30s.
_DURATION: Schema = {"type": "string", "pattern": rf"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)({_UNITS}))+)$"}
# Hex of 1-32 digits (leading zeros optional, as Jaeger prints them) or base64 of 16 bytes.
_TRACE_ID: Schema = {"type": "string", "pattern": r"^([0-9a-fA-F]{1,32}|[A-Za-z0-9+/_-]{22}={0,2})$"}
_RFC3339: Schema = {"type": "string", "format": "date-time"}
_TAGS_JSON: Schema = {
    "type": "string",
    "contentMediaType": "application/json",
    "contentSchema": {"type": "object", "additionalProperties": {"type": "string"}},
}
# The `error` tag asks for spans with (true) or without (false) status ERROR; anything else is a 400.
_ERROR_TAG_DOC = "The `error` tag takes only `true` or `false` (any case); another value is refused with 400."
_TAGS_DOC = (
    'JSON object of attribute filters, values all strings (`{"http.status_code":"500"}`); all must match. '
    + _ERROR_TAG_DOC
)
_TAG_PAIR_DOC = "Attribute filter `key:value` (or `key=value`); all must match. " + _ERROR_TAG_DOC
_TAG_PAIR: Schema = {"type": "string", "pattern": r"^([^:]+:.*|[^:=]+=.*)$"}
_SPAN_KIND: Schema = {"type": "string", "enum": list(SPAN_KINDS)}
# Times the int64 nanoseconds of the store can hold (years 1677 to 2262); endTs is never negative.
_MICROS: Schema = {"type": "integer", "minimum": -(2**63 // 1_000), "maximum": MAX_NS // 1_000}
_MILLIS: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_NS // 1_000_000}
_UNIX_TIME_DOC = (
    "RFC 3339, or Unix seconds (a fraction allowed); an integer of ms, µs or ns is read by magnitude."
)
_TRACE_ID_DOC = "Trace ID: 1-32 hex digits (leading zeros optional) or base64 of 16 bytes; not all zeros."


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _object(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


def _param(
    name: str,
    description: str,
    schema: Schema = _STRING,
    *,
    required: bool = False,
    where: str = "query",
    repeated: bool = False,
    example: Any = None,
) -> dict[str, Any]:
    if repeated:
        schema = _array(schema)
    param: dict[str, Any] = {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }
    if repeated:
        param["explode"] = True
    if example is not None:
        param["example"] = example
    return param


def _answer(description: str, schema: Schema, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"application/json": media}}


def _get(
    op_id: str, tag: str, summary: str, parameters: list[dict[str, Any]], **responses: dict[str, Any]
) -> dict[str, Any]:
    """A path item answering GET and HEAD (aiohttp's ``add_get`` serves both)."""
    get: dict[str, Any] = {"operationId": op_id, "tags": [tag], "summary": summary}
    if parameters:
        get["parameters"] = parameters
    get["responses"] = {code.removeprefix("s"): answer for code, answer in responses.items()}
    head = {
        "operationId": f"{op_id}Head",
        "tags": [tag],
        "summary": f"Headers of GET without the body: {summary}",
        **({"parameters": parameters} if parameters else {}),
        "responses": {
            code: {"description": answer["description"]} for code, answer in get["responses"].items()
        },
    }
    return {"get": get, "head": head}


_TRACE_ID_PATH = _param(
    "trace_id", _TRACE_ID_DOC, _TRACE_ID, where="path", example="4bf92f3577b34da6a3ce929d0e0e4736"
)

# --- Jaeger v1 -------------------------------------------------------------------------------------

_PRETTY = _param("prettyPrint", "`true` indents the JSON answer.", _BOOL)
_V1_BAD = _answer("A parameter is invalid; `errors[0].msg` names it.", _ref("JaegerErrorEnvelope"))


def _envelope(data: Schema, example: list[Any] | None = None, counted: bool = False) -> Schema:
    """Jaeger's structuredResponse: ``total`` counts services/operations, 0 elsewhere."""
    schema = _object(
        ["data", "total", "limit", "offset", "errors"],
        data=data,
        total=_INT,
        limit={"const": 0},
        offset={"const": 0},
        errors={"type": ["array", "null"], "items": _ref("JaegerError")},
    )
    if example is not None:
        schema["examples"] = [
            {
                "data": example,
                "total": len(example) if counted else 0,
                "limit": 0,
                "offset": 0,
                "errors": None,
            }
        ]
    return schema


def _v1_paths(max_limit: int) -> dict[str, Any]:
    jaeger_default = min(JAEGER_DEFAULT_LIMIT, max_limit)  # a default never exceeds the maximum
    service = _param("service", "Service name (resource `service.name`).", required=True, example="frontend")
    search = [
        _param(
            "service", "Service name; required unless `traceID` is given (400 otherwise).", example="frontend"
        ),
        _param("operation", "Span name; omit for all operations."),
        _param(
            "tags",
            _TAGS_DOC,
            _TAGS_JSON,
            repeated=True,
            example=['{"http.status_code":"500"}'],
        ),
        _param("tag", _TAG_PAIR_DOC, _TAG_PAIR, repeated=True),
        _param("start", "Earliest span start, µs since the epoch (default: 2 days before `end`).", _MICROS),
        _param("end", "Latest span start, µs since the epoch (default: now).", _MICROS),
        _param(
            "minDuration", "Some span lasts at least this long (Go duration: `150ms`, `1.5s`).", _DURATION
        ),
        _param(
            "maxDuration",
            "Some span lasts at most this long (Go duration); not below `minDuration`.",
            _DURATION,
        ),
        _param(
            "limit",
            f"Number of traces, newest first; 0 or absent means {jaeger_default}. At most "
            f"{max_limit} (`api.max_search_limit`); a larger value answers 400.",
            {"type": "integer", "minimum": 0, "maximum": max_limit, "default": jaeger_default},
        ),
        _param(
            "traceID",
            "Fetch these traces instead of searching; unknown IDs are listed in `errors` "
            "with `traceID` set while the status stays 200.",
            _TRACE_ID,
            repeated=True,
        ),
        _param("lookback", "Sent by Jaeger UI and Grafana (`1h`, `custom`); ignored, `start` rules."),
        _param("raw", "Skip Jaeger's adjusters; ignored, no adjusters run.", _BOOL),
        _PRETTY,
    ]
    return {
        "/api/services": _get(
            "jaegerServices",
            "jaeger-v1",
            "Service names",
            [_PRETTY],
            s200=_answer(
                "Service names; `total` counts them", _envelope(_array(_STRING), ["frontend"], counted=True)
            ),
        ),
        "/api/services/{service}/operations": _get(
            "jaegerServiceOperations",
            "jaeger-v1",
            "Operation (span) names of a service, all span kinds",
            [_param("service", "Service name, URL-escaped.", where="path", example="frontend"), _PRETTY],
            s200=_answer(
                "Unique names; `total` counts them; `[]` for an unknown service",
                _envelope(_array(_STRING), ["GET /cart"], counted=True),
            ),
        ),
        "/api/operations": _get(
            "jaegerOperations",
            "jaeger-v1",
            "Operations of a service with their span kind",
            [service, _param("spanKind", "Only this span kind; omit for all.", _SPAN_KIND), _PRETTY],
            s200=_answer(
                "Operations; `total` counts them; `spanKind` is empty for unspecified kinds",
                _envelope(
                    _array(_ref("JaegerOperation")),
                    [{"name": "GET /cart", "spanKind": "server"}],
                    counted=True,
                ),
            ),
            s400=_V1_BAD,
        ),
        "/api/traces": _get(
            "jaegerSearch",
            "jaeger-v1",
            "Search traces (service required) or fetch by repeated traceID",
            search,
            s200=_answer(
                "Traces, newest first; `[]` when nothing matches", _envelope(_array(_ref("JaegerTrace")))
            ),
            s400=_V1_BAD,
        ),
        "/api/traces/{trace_id}": _get(
            "jaegerTrace",
            "jaeger-v1",
            "One trace (Jaeger UI trace view, Grafana trace by ID)",
            [
                _TRACE_ID_PATH,
                _param("start", "Time hint (Jaeger: µs, Grafana: ms); accepted and ignored.", _INT),
                _param("end", "Time hint (Jaeger: µs, Grafana: ms); accepted and ignored.", _INT),
                _param("raw", "Skip Jaeger's adjusters; ignored, no adjusters run.", _BOOL),
                _PRETTY,
            ],
            s200=_answer(
                "A one-element `data`",
                _envelope(_array(_ref("JaegerTrace")) | {"minItems": 1, "maxItems": 1}),
            ),
            s400=_V1_BAD,
            s404=_answer("No such trace: `errors[0].msg` is `trace not found`", _ref("JaegerErrorEnvelope")),
        ),
        "/api/dependencies": _get(
            "jaegerDependencies",
            "jaeger-v1",
            "Service dependency links (Grafana's and Jaeger UI's graph)",
            [
                _param("endTs", "End of the window, **ms** since the epoch (default: now).", _MILLIS),
                _param(
                    "lookback",
                    "Length of the window in **ms** (default 24 h).",
                    {"type": "integer", "minimum": 1, "maximum": MAX_NS // 1_000_000, "default": 86_400_000},
                ),
                _param("service", "Only links with this service as parent or child."),
                _PRETTY,
            ],
            s200=_answer(
                "Links, one per parent/child pair",
                _envelope(
                    _array(_ref("JaegerDependencyLink")),
                    [{"parent": "frontend", "child": "cart", "callCount": 12}],
                ),
            ),
            s400=_V1_BAD,
        ),
    }


# --- Jaeger api_v3 ---------------------------------------------------------------------------------

_V3_BAD = _answer("A parameter is invalid; `error.message` names it.", _ref("V3Error"))
_V3_NONE = _answer("Nothing found: `error.message` is `No traces found`.", _ref("V3Error"))


def _v3_search_params(max_limit: int) -> list[dict[str, Any]]:
    jaeger_default = min(JAEGER_DEFAULT_LIMIT, max_limit)
    return [
        _param(
            "query.startTimeMin",
            "Earliest span start, RFC 3339 with up to ns. This or "
            "`query.start_time_min` is required (400 otherwise).",
            _RFC3339,
            example="2026-12-01T10:00:00Z",
        ),
        _param("query.start_time_min", "Alias of `query.startTimeMin` (Grafana's spelling).", _RFC3339),
        _param(
            "query.startTimeMax",
            "Latest span start, RFC 3339; not before the minimum. This or "
            "`query.start_time_max` is required (400 otherwise).",
            _RFC3339,
            example="2026-12-01T11:00:00Z",
        ),
        _param("query.start_time_max", "Alias of `query.startTimeMax`.", _RFC3339),
        _param("query.serviceName", "Service name; omit for all services."),
        _param("query.service_name", "Alias of `query.serviceName`."),
        _param("query.operationName", "Span name."),
        _param("query.operation_name", "Alias of `query.operationName`."),
        _param(
            "query.attributes",
            _TAGS_DOC,
            _TAGS_JSON,
        ),
        _param("query.durationMin", "Some span lasts at least this long (Go duration).", _DURATION),
        _param("query.duration_min", "Alias of `query.durationMin`.", _DURATION),
        _param("query.durationMax", "Some span lasts at most this long (Go duration).", _DURATION),
        _param("query.duration_max", "Alias of `query.durationMax`.", _DURATION),
        _param(
            "query.searchDepth",
            f"Number of traces, newest first (default {jaeger_default}, at most {max_limit}, "
            "`api.max_search_limit`; a larger value answers 400).",
            {"type": "integer", "minimum": 1, "maximum": max_limit, "default": jaeger_default},
        ),
        _param(
            "query.search_depth",
            "Alias of `query.searchDepth`.",
            {"type": "integer", "minimum": 1, "maximum": max_limit},
        ),
        _param(
            "query.num_traces",
            "Alias of `query.searchDepth`.",
            {"type": "integer", "minimum": 1, "maximum": max_limit},
        ),
        _param("query.rawTraces", "Skip Jaeger's adjusters; ignored, no adjusters run.", _BOOL),
        _param("query.raw_traces", "Alias of `query.rawTraces`; ignored.", _BOOL),
    ]


def _v3_paths(max_limit: int) -> dict[str, Any]:
    search = _v3_search_params(max_limit)
    hint = "Time hint, RFC 3339; accepted and ignored."
    return {
        "/api/v3/services": _get(
            "v3Services",
            "jaeger-v3",
            "Service names",
            [],
            s200=_answer(
                "Always a list, `[]` when empty",
                _object(["services"], services=_array(_STRING)),
                {"services": ["frontend"]},
            ),
        ),
        "/api/v3/operations": _get(
            "v3Operations",
            "jaeger-v3",
            "Operations of a service with their span kind",
            [
                _param(
                    "service", "Service name; required (400 otherwise).", required=True, example="frontend"
                ),
                _param("spanKind", "Only this span kind; omit for all.", _SPAN_KIND),
                _param("span_kind", "Alias of `spanKind`.", _SPAN_KIND),
            ],
            s200=_answer(
                "Operations; an unspecified kind is reported as `internal`",
                _object(["operations"], operations=_array(_ref("JaegerOperation"))),
                {"operations": [{"name": "GET /cart", "spanKind": "server"}]},
            ),
            s400=_V3_BAD,
        ),
        "/api/v3/traces": _get(
            "v3FindTraces",
            "jaeger-v3",
            "Search traces; OTLP-JSON of all matches",
            search,
            s200=_answer("Matching traces' resource spans, concatenated", _ref("V3TracesResult")),
            s400=_V3_BAD,
            s404=_V3_NONE,
        ),
        "/api/v3/traces/{trace_id}": _get(
            "v3Trace",
            "jaeger-v3",
            "One trace as OTLP-JSON",
            [
                _TRACE_ID_PATH,
                _param("startTime", hint, _RFC3339),
                _param("start_time", hint, _RFC3339),
                _param("endTime", hint, _RFC3339),
                _param("end_time", hint, _RFC3339),
                _param("rawTraces", "Ignored, no adjusters run.", _BOOL),
                _param("raw_traces", "Ignored, no adjusters run.", _BOOL),
            ],
            s200=_answer("The trace", _ref("V3TracesResult")),
            s400=_V3_BAD,
            s404=_V3_NONE,
        ),
        "/api/v3/trace-summaries": _get(
            "v3TraceSummaries",
            "jaeger-v3",
            "Search traces; one summary each (Jaeger UI search page)",
            search,
            s200=_answer(
                "Summaries, newest first; `[]` when nothing matches",
                _object(["summaries"], summaries=_array(_ref("V3TraceSummary"))),
            ),
            s400=_V3_BAD,
        ),
    }


# --- native and operational ------------------------------------------------------------------------


def _native_paths(default_limit: int, max_limit: int) -> dict[str, Any]:
    params = [
        _param("service", "Service name; optional, unlike Jaeger."),
        _param("operation", "Span name."),
        _param("tag", _TAG_PAIR_DOC, _TAG_PAIR, repeated=True),
        _param(
            "tags",
            _TAGS_DOC,
            _TAGS_JSON,
            repeated=True,
        ),
        _param("start", "Earliest span start, µs since the epoch (default: 2 days before `end`).", _MICROS),
        _param("end", "Latest span start, µs since the epoch (default: now).", _MICROS),
        _param(
            "since",
            "Instead of `start`: look back this long from now (positive Go duration, e.g. `1h`); "
            "not together with `start`.",
            _DURATION,
        ),
        _param("minDuration", "Some span lasts at least this long (Go duration).", _DURATION),
        _param("maxDuration", "Some span lasts at most this long (Go duration).", _DURATION),
        _param("minTraceDuration", "The whole trace lasts at least this long (Go duration).", _DURATION),
        _param("maxTraceDuration", "The whole trace lasts at most this long (Go duration).", _DURATION),
        _param(
            "limit",
            f"Number of traces, newest first (default {default_limit}, "
            f"`api.default_search_limit`; at most {max_limit}, `api.max_search_limit`; a larger value "
            "answers 400).",
            {"type": "integer", "minimum": 1, "maximum": max_limit, "default": default_limit},
        ),
    ]
    summaries = _object(["data", "limit"], data=_array(_ref("TraceSummary")), limit=_INT)
    return {
        "/api/trace-summaries": _get(
            "nativeTraceSummaries",
            "native",
            "Search trace summaries, newest first; no service required",
            params,
            s200=_answer("Matching trace summaries and the limit applied", summaries),
            s400=_answer("A parameter is invalid; `error.message` names it.", _ref("Error")),
        ),
        "/healthz": _get(
            "healthz",
            "operations",
            "Liveness",
            [],
            s200=_answer("The process answers", _object(["status"], status={"const": "alive"})),
        ),
        "/readyz": _get(
            "readyz",
            "operations",
            "Readiness: the store is open and every enabled receiver listens",
            [],
            s200=_answer("Ready", _ref("Readiness"), {"status": "ready", "store": True, "otlp_grpc": True}),
            s503=_answer("Not ready (starting or shutting down)", _ref("Readiness")),
        ),
        "/api/openapi.json": _get(
            "openapi",
            "operations",
            "This document",
            [],
            s200=_answer("OpenAPI 3.1", {"type": "object", "required": ["openapi", "paths"]}),
        ),
        "/": _get(
            "landing",
            "operations",
            "A short HTML page: what this address is, how to point Grafana and Jaeger UI at it",
            [],
            s200={"description": "The page", "content": {"text/html": {"schema": _STRING}}},
        ),
    }


def _components() -> dict[str, Schema]:
    key_value = _object(
        ["key", "type", "value"],
        key=_STRING,
        type={"enum": ["string", "bool", "int64", "float64", "binary"]},
        value={"description": "JSON-native; int64 beyond ±(2^53-1) as a decimal string, binary as base64"},
    )
    span = _object(
        [
            "traceID",
            "spanID",
            "operationName",
            "references",
            "startTime",
            "duration",
            "tags",
            "logs",
            "processID",
            "warnings",
        ],
        traceID=_STRING,
        spanID={"type": "string", "pattern": "^[0-9a-f]{16}$"},
        flags=_INT,
        operationName=_STRING,
        references=_array(
            _object(
                ["refType", "traceID", "spanID"],
                refType={"enum": ["CHILD_OF", "FOLLOWS_FROM"]},
                traceID=_STRING,
                spanID=_STRING,
            )
        ),
        startTime=_INT | {"description": "µs since the epoch"},
        duration=_INT | {"description": "µs"},
        tags=_array(_ref("JaegerKeyValue")),
        logs=_array(_object(["timestamp", "fields"], timestamp=_INT, fields=_array(_ref("JaegerKeyValue")))),
        processID=_STRING,
        warnings={"type": ["array", "null"], "items": _STRING},
    )
    return {
        "Error": _object(["error"], error=_object(["code", "message"], code=_INT, message=_STRING)),
        "JaegerError": _object(["code", "msg"], code=_INT, msg=_STRING, traceID=_STRING),
        "JaegerErrorEnvelope": _object(
            ["data", "total", "limit", "offset", "errors"],
            data={"type": "null"},
            total={"const": 0},
            limit={"const": 0},
            offset={"const": 0},
            errors=_array(_ref("JaegerError")) | {"minItems": 1},
        )
        | {
            "examples": [
                {
                    "data": None,
                    "total": 0,
                    "limit": 0,
                    "offset": 0,
                    "errors": [{"code": 400, "msg": "parameter 'limit': not an integer: 'x'"}],
                }
            ]
        },
        "JaegerKeyValue": key_value,
        "JaegerSpan": span,
        "JaegerTrace": _object(
            ["traceID", "spans", "processes", "warnings"],
            traceID={
                "type": "string",
                "pattern": "^[0-9a-f]{16}([0-9a-f]{16})?$",
                "description": "16 hex digits when the high 64 bits are zero, else 32",
            },
            spans=_array(_ref("JaegerSpan")),
            processes={
                "type": "object",
                "additionalProperties": _object(
                    ["serviceName", "tags"], serviceName=_STRING, tags=_array(_ref("JaegerKeyValue"))
                ),
            },
            warnings={"type": ["array", "null"], "items": _STRING},
        ),
        "JaegerOperation": _object(["name", "spanKind"], name=_STRING, spanKind=_STRING),
        "JaegerDependencyLink": _object(
            ["parent", "child", "callCount"], parent=_STRING, child=_STRING, callCount=_INT
        ),
        "V3Error": _object(
            ["error"],
            error=_object(
                ["httpCode", "message"],
                grpcCode=_INT,
                httpCode=_INT,
                message=_STRING,
                httpStatus=_STRING,
            ),
        )
        | {
            "examples": [
                {
                    "error": {
                        "grpcCode": 3,
                        "httpCode": 400,
                        "httpStatus": "Bad Request",
                        "message": "parameter 'query.search_depth': not an integer: 'x'",
                    }
                }
            ]
        },
        "V3TracesResult": _object(
            ["result"],
            result=_object(
                ["resourceSpans"],
                resourceSpans=_array(
                    {
                        "type": "object",
                        "description": "OTLP-JSON ResourceSpans: hex IDs, "
                        "integer enums, int64 nanoseconds as strings",
                    }
                ),
            ),
        ),
        "V3TraceSummary": _object(
            [
                "traceId",
                "rootServiceName",
                "rootOperationName",
                "minStartTimeUnixNano",
                "maxEndTimeUnixNano",
                "spanCount",
                "errorSpanCount",
                "orphanSpanCount",
                "services",
            ],
            traceId={"type": "string", "pattern": "^[0-9a-f]{32}$"},
            rootServiceName=_STRING,
            rootOperationName=_STRING,
            minStartTimeUnixNano={"type": "string", "pattern": "^[0-9]+$"},
            maxEndTimeUnixNano={"type": "string", "pattern": "^[0-9]+$"},
            spanCount=_INT,
            errorSpanCount=_INT,
            orphanSpanCount=_INT,
            services=_array(
                _object(
                    ["name", "spanCount", "errorSpanCount"], name=_STRING, spanCount=_INT, errorSpanCount=_INT
                )
            ),
        ),
        "TraceSummary": _object(
            [
                "traceID",
                "rootServiceName",
                "rootOperationName",
                "startTime",
                "duration",
                "spanCount",
                "errorCount",
                "services",
            ],
            traceID={"type": "string", "pattern": "^[0-9a-f]{32}$"},
            rootServiceName=_STRING,
            rootOperationName=_STRING,
            startTime=_INT | {"description": "µs since the epoch"},
            duration=_INT | {"description": "µs"},
            spanCount=_INT,
            errorCount=_INT,
            services=_array(
                _object(["name", "spanCount", "errorCount"], name=_STRING, spanCount=_INT, errorCount=_INT)
            ),
        ),
        "Readiness": {
            "type": "object",
            "required": ["status", "store"],
            "properties": {"status": {"enum": ["ready", "not ready"]}, "store": _BOOL},
            "additionalProperties": _BOOL | {"description": "one flag per enabled receiver"},
        },
    }


def _events_paths() -> dict[str, Any]:
    """``GET /api/events`` (sidecar/api/events.py): stored business events, a page at a time."""
    when = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ].+)$"}
    params = [
        _param("name", "Event name."),
        _param("user_id", "User id; reads that user's index (one user's timeline is a range read)."),
        _param("session_id", "Session id."),
        _param("service", "Service that sent the event."),
        _param(
            "prop.KEY",
            "Repeatable, one per property: `prop.amount=100` keeps events whose property `amount` "
            "equals 100 (numbers by value, bools as true/false). `KEY` is the property's name; any "
            "other unknown parameter is a 400.",
        ),
        _param(
            "from",
            "Earliest event time, inclusive: " + _UNIX_TIME_DOC,
            when,
        ),
        _param(
            "to",
            "Latest event time, exclusive: " + _UNIX_TIME_DOC,
            when,
        ),
        _param(
            "order", "`desc` (newest first, the default) or `asc`.", {"type": "string", "enum": list(ORDERS)}
        ),
        _param(
            "limit",
            f"Events per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}; a larger value answers 400).",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        ),
        _param(
            "cursor",
            "`next_cursor` of the previous page: the next page starts strictly after its last event.",
            {"type": "string", "pattern": "^([0-9a-f]{2})+$"},
        ),
        _param(
            "format",
            "`json` (default), `ndjson` (one event per line) or `csv` (RFC 4180: a header of the fixed "
            "fields, then one column per property key the events of `name` carry; a cell starting with "
            "`=`, `+`, `-`, `@`, tab or CR gets a leading `'`). For ndjson and csv the next page's cursor "
            "is in the `X-Next-Cursor` header.",
            {"type": "string", "enum": list(FORMATS)},
        ),
    ]
    event = _object(
        ["name", "timestamp_ns", "user_id", "session_id", "service", "id", "properties"],
        name=_STRING,
        timestamp_ns=_INT,
        user_id={"type": ["string", "null"]},
        session_id={"type": ["string", "null"]},
        service={"type": ["string", "null"]},
        id={"type": ["string", "null"]},
        properties={"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
    )
    page = _object(["data", "next_cursor"], data=_array(event), next_cursor={"type": ["string", "null"]})
    ok = _answer("A page of events; `next_cursor` is null on the last page", page)
    ok["content"]["application/x-ndjson"] = {"schema": _STRING}
    ok["content"]["text/csv"] = {"schema": _STRING}
    return {
        "/api/events": _get(
            "listEvents",
            "events",
            "Stored business events matching every filter, newest first unless `order=asc`; "
            "`prop.KEY=VALUE` (repeatable) also filters by property, numbers by value",
            params,
            s200=ok,
            s400=_answer("A parameter is invalid; `error.message` names it.", _ref("Error")),
        ),
    }


def _post(op_id: str, tag: str, summary: str, body: Schema, **responses: dict[str, Any]) -> dict[str, Any]:
    """A path item answering POST with a JSON body."""
    post: dict[str, Any] = {
        "operationId": op_id,
        "tags": [tag],
        "summary": summary,
        "parameters": [
            _param("format", "`json` (default) or `csv`; `Accept: text/csv` asks for CSV too.", _FORMAT)
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {code.removeprefix("s"): answer for code, answer in responses.items()},
    }
    return {"post": post}


_FORMAT: Schema = {"type": "string", "enum": ["json", "csv"]}
_WHEN: Schema = {"oneOf": [{"type": "string"}, {"type": "number"}]}


def _analytics_paths() -> dict[str, Any]:
    """``POST /api/events/trends`` (sidecar/api/analytics.py)."""
    scalar: Schema = {"type": ["string", "number", "boolean"]}
    a_filter = _object(
        ["property"],
        property=_STRING,
        op={"type": "string", "enum": list(OPS), "default": "="},
        value={"oneOf": [scalar, _array(scalar)]},
    )
    series = _object(
        [],
        event={"type": ["string", "null"]},
        measure={"type": "string", "enum": list(MEASURES), "default": "count"},
        property={"type": ["string", "null"]},
        filters=_array(a_filter),
    )
    request = _object(
        ["series", "from", "to"],
        series=_array(series),
        interval={"type": "string", "enum": list(INTERVALS), "default": "day"},
        **{"from": _WHEN, "to": _WHEN},
        timezone={"type": "string", "default": "UTC"},
        breakdown={"oneOf": [{"type": "null"}, _STRING, _array(_STRING)]},
        breakdown_limit={"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
        approximate={"type": "boolean", "default": False},
    )
    point = _object(["t", "value"], t=_STRING, value={"type": ["number", "null"]})
    out_series = _object(
        ["event", "measure", "property", "breakdown", "exact", "points"],
        event={"type": ["string", "null"]},
        measure=_STRING,
        property={"type": ["string", "null"]},
        breakdown={"type": ["object", "null"]},
        exact=_BOOL,
        points=_array(point),
    )
    answer = _object(
        ["interval", "timezone", "from", "to", "series"],
        interval=_STRING,
        timezone=_STRING,
        series=_array(out_series),
        **{"from": _STRING, "to": _STRING},
    )
    ok = _answer(
        "One value per bucket per series; CSV: `t,event,measure,property`, breakdowns, `value`", answer
    )
    ok["content"]["text/csv"] = {"schema": _STRING}
    bad = _answer("A field is invalid; `error.message` starts with its path.", _ref("Error"))
    step = _object([], event={"type": ["string", "null"]}, filters=_array(a_filter))
    funnel = _object(
        ["steps", "from", "to"],
        steps=_array(step),
        window={"oneOf": [_STRING, {"type": "number"}], "default": "1d"},
        mode={"type": "string", "enum": list(MODES), "default": "ordered"},
        interval={"type": "string", "enum": list(INTERVALS), "default": "day"},
        **{"from": _WHEN, "to": _WHEN},
        timezone={"type": "string", "default": "UTC"},
        breakdown={"oneOf": [{"type": "null"}, _STRING, _array(_STRING)]},
        breakdown_limit={"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
    )
    maybe = {"type": ["number", "null"]}
    step_out = _object(
        ["event", "users"],
        event={"type": ["string", "null"]},
        users=_INT,
        conversion_from_previous=maybe,
        conversion_from_first=maybe,
        median_seconds=maybe,
        avg_seconds=maybe,
    )
    entry = _object(
        ["t", "levels", "steps"],
        t=_STRING,
        breakdown={"type": "object"},
        levels=_array(_object(["level", "users"], level=_INT, users=_INT)),
        steps=_array(step_out),
    )
    funnel_answer = _object(["buckets"], buckets=_array(entry), mode=_STRING, interval=_STRING)
    funnel_ok = _answer("Per bucket (and breakdown value): users per level and per step", funnel_answer)
    funnel_ok["content"]["text/csv"] = {"schema": _STRING}
    window = {"from": _WHEN, "to": _WHEN}
    retention = _object(
        ["start_event", "return_event", "from", "to"],
        start_event=_STRING,
        return_event=_STRING,
        period={"type": "string", "enum": ["day", "week", "month"], "default": "week"},
        periods={"type": "integer", "minimum": 1, "maximum": 400, "default": 8},
        timezone={"type": "string", "default": "UTC"},
        filters=_array(a_filter),
        **window,
    )
    cohort = _object(["t", "size", "returned"], t=_STRING, size=_INT, returned=_array(_INT))
    retention_ok = _answer(
        "Per cohort period: its size and the users back in each later period",
        _object(["cohorts"], cohorts=_array(cohort)),
    )
    durations = _object(
        ["start_event", "end_event", "correlate_by", "from", "to"],
        start_event=_STRING,
        end_event=_STRING,
        correlate_by=_STRING,
        interval={"type": "string", "enum": list(INTERVALS), "default": "day"},
        timezone={"type": "string", "default": "UTC"},
        **window,
    )
    stats = {k: maybe for k in ("avg_seconds", "p50_seconds", "p95_seconds", "p99_seconds")}
    durations_ok = _answer(
        "Paired durations overall and per bucket of the start",
        _object(
            ["count", "points"],
            count=_INT,
            points=_array(_object(["t", "count"], t=_STRING, count=_INT, **stats)),
            **stats,
        ),
    )
    geo = _object(
        ["from", "to"],
        event={"type": ["string", "null"]},
        filters=_array(a_filter),
        lat_property={"type": "string", "default": "lat"},
        lon_property={"type": "string", "default": "lon"},
        precision={"type": "number", "exclusiveMinimum": 0, "maximum": 180, "default": 1},
        **window,
    )
    cell = _object(
        ["lat", "lon", "count", "unique_users"], lat=_NUMBER, lon=_NUMBER, count=_INT, unique_users=_INT
    )
    geo_ok = _answer(
        "Cells by south-west corner; events without coordinates in `missing`",
        _object(["cells", "missing"], cells=_array(cell), missing=_INT),
    )
    summary_ok = _answer(
        "Events per name and distinct users; CSV `name,value`, `unique_users` first",
        _object(
            ["from", "to", "unique_users", "events"],
            unique_users=_INT,
            events={"type": "object", "additionalProperties": _INT},
            **{"from": _STRING, "to": _STRING},
        ),
    )
    for answer in (retention_ok, durations_ok, geo_ok, summary_ok):
        answer["content"]["text/csv"] = {"schema": _STRING}
    when_doc = "RFC 3339 or Unix seconds"
    return {
        "/api/events/retention": _post(
            "eventRetention",
            "analytics",
            "Cohorts by the period of each user's first start event; users returning in each later period",
            retention,
            s200=retention_ok,
            s400=bad,
        ),
        "/api/events/durations": _post(
            "eventDurations",
            "analytics",
            "Seconds from the first start to the first end at or after it, per correlation value",
            durations,
            s200=durations_ok,
            s400=bad,
        ),
        "/api/events/geo": _post(
            "eventGeo",
            "analytics",
            "Events and distinct users per latitude/longitude cell",
            geo,
            s200=geo_ok,
            s400=bad,
        ),
        "/api/events/summary": _get(
            "eventSummary",
            "analytics",
            "Events per name and distinct users over a range (default: the last hour)",
            [
                _param("from", f"Start, inclusive ({when_doc}); default one hour before `to`."),
                _param("to", f"End, exclusive ({when_doc}); default now."),
                _param("format", "`json` (default) or `csv`.", _FORMAT),
            ],
            s200=summary_ok,
            s400=bad,
        ),
        "/api/events/funnels": _post(
            "eventFunnels",
            "analytics",
            "Users per level of an ordered (ClickHouse windowFunnel), strict or unordered funnel, "
            "per calendar bucket, with conversions and median/average seconds from step 1",
            funnel,
            s200=funnel_ok,
            s400=bad,
        ),
        "/api/events/trends": _post(
            "eventTrends",
            "analytics",
            "Counts, distinct users, DAU/WAU/MAU, sums and exact percentiles of events per calendar "
            "bucket in a time zone, with filters and a top-N breakdown",
            request,
            s200=ok,
            s400=bad,
        ),
    }


def _logs_paths() -> dict[str, Any]:
    """``GET /api/logs`` and ``GET /api/logs/tail`` (sidecar/api/logs.py): stored OTLP log records."""
    when = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ].+)$"}
    filters = [
        _param("service", "Service (resource `service.name`) that sent the record."),
        _param(
            "severity_min",
            "Lowest severity: a SeverityNumber 1-24 or a name (`trace`, `debug`, `info`, `warn`, `error`, "
            "`fatal`, any case).",
            {"type": "string", "pattern": "^([1-9]|1[0-9]|2[0-4]|[A-Za-z]+)$"},
            example="warn",
        ),
        _param("q", "Case-insensitive substring of the body."),
        _param(
            "regex", "RE2 regular expression (Loki's syntax) searched in the body; one RE2 refuses is a 400."
        ),
        _param("trace_id", "Trace ID, 32 hex digits.", {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}),
        _param("span_id", "Span ID, 16 hex digits.", {"type": "string", "pattern": "^[0-9a-fA-F]{16}$"}),
        _param(
            "attr.KEY",
            "Repeatable, one per attribute: `attr.http.route=/cart` keeps records whose attribute "
            "equals the value (numbers by value). `KEY` is the attribute's name; any other unknown "
            "parameter is a 400.",
        ),
        _param(
            "from",
            "Earliest record time, inclusive: " + _UNIX_TIME_DOC,
            when,
        ),
        _param(
            "to",
            "Latest record time, exclusive: " + _UNIX_TIME_DOC,
            when,
        ),
    ]
    page_params = [
        *filters,
        _param(
            "limit",
            f"Records per page (default {LOG_DEFAULT_LIMIT}, at most {LOG_MAX_LIMIT}; a larger value "
            "answers 400).",
            {"type": "integer", "minimum": 1, "maximum": LOG_MAX_LIMIT, "default": LOG_DEFAULT_LIMIT},
        ),
        _param(
            "cursor",
            "`next_cursor` of the previous page: the next page starts strictly after its last record, so "
            "walking the cursors gives every match once while new records arrive.",
            {"type": "string", "pattern": "^([0-9a-f]{2})+$"},
        ),
        _param(
            "format",
            "`json` (default), `ndjson` (one record per line) or `csv` (RFC 4180: a header of the fixed "
            "fields, then one column per attribute key the service's records carried; a cell "
            "starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`). For ndjson and csv the "
            "next page's cursor is in `X-Next-Cursor`.",
            {"type": "string", "enum": list(FORMATS)},
        ),
    ]
    record = _object(
        [
            "time_unix_nano",
            "observed_time_unix_nano",
            "severity_number",
            "severity_text",
            "body",
            "attributes",
            "trace_id",
            "span_id",
            "service",
            "scope",
            "event_name",
        ],
        time_unix_nano=_INT,
        observed_time_unix_nano=_INT,
        severity_number=_INT,
        severity_text=_STRING,
        body=_STRING,
        attributes={"type": "object"},
        trace_id=_STRING,
        span_id=_STRING,
        service=_STRING,
        scope=_STRING,
        event_name=_STRING,
    )
    page = _object(["data", "next_cursor"], data=_array(record), next_cursor={"type": ["string", "null"]})
    ok = _answer("A page of records; `next_cursor` is null when no more can follow", page)
    ok["content"]["application/x-ndjson"] = {"schema": _STRING}
    ok["content"]["text/csv"] = {"schema": _STRING}
    bad = _answer("A parameter is invalid; `error.message` names it.", _ref("Error"))
    tail_ok = {
        "description": "Server-Sent Events: each record written after the stream opened and matching "
        "every filter, as one `data:` JSON line (the record shape of GET /api/logs)",
        "content": {"text/event-stream": {"schema": _STRING}},
    }
    return {
        "/api/logs": _get(
            "searchLogs",
            "logs",
            "Stored log records matching every filter, newest first; `attr.KEY=VALUE` (repeatable) also "
            "filters by attribute, numbers by value",
            page_params,
            s200=ok,
            s400=bad,
        ),
        "/api/logs/tail": _get(
            "tailLogs",
            "logs",
            "A live tail: records written from now on that match the filters of GET /api/logs",
            filters,
            s200=tail_ok,
            s400=bad,
        ),
    }


def openapi_document(
    default_limit: int = ApiConfig.default_search_limit, max_limit: int = ApiConfig.max_search_limit
) -> dict[str, Any]:
    """The document for a server with these ``api.default_search_limit`` / ``api.max_search_limit``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sidecar query API",
            "version": "1",
            "description": (
                "Jaeger's query API (v1 JSON as of Jaeger v2.20.0, and api_v3 over HTTP) plus a native "
                "summary search. Each API answers errors in its own shape. An unknown path answers 404 "
                'and a known path with another method 405 (with `Allow`), both as `{"error": {"code", '
                '"message"}}`.'
            ),
        },
        "paths": {
            **_native_paths(default_limit, max_limit),
            **_v1_paths(max_limit),
            **_v3_paths(max_limit),
            **_events_paths(),
            **_analytics_paths(),
            **_logs_paths(),
        },
        "components": {"schemas": _components()},
    }
