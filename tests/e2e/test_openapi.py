"""``/api/openapi.json`` held against the real thing.

* every (method, path) the app's router serves is in the document, and nothing else is;
* the document is valid OpenAPI 3.1 (``openapi-spec-validator``), and its examples fit its schemas;
* every documented status of every route is provoked on a live sidecar, and the body it answers
  validates against the schema documented for that status (so the three error shapes are right);
* every constraint the document states (integer bounds, enums, formats, patterns, JSON content) is
  the route's: a value outside it answers 400 in that API's error shape, naming the parameter;
* the search limits in the document are the running configuration's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.e2e.api_app import real_api_app, served_operations
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    Sidecar,
    attributes,
    http_request,
    jaeger_id,
    make_request,
    make_span,
    merge_requests,
    new_span_id,
    new_trace_id,
)

MS = 1_000_000
S = 1_000 * MS
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
FRONT, BACK = "openapi-front", "openapi-back"
UNKNOWN_ID = "5eed" * 8  # never exported
BAD = "x!"  # not an integer, time, duration, trace ID, tag pair or JSON
# Parameters documented as accepted and ignored (time hints): a bad value must not matter.
IGNORED = {
    ("/api/traces/{trace_id}", "start"),
    ("/api/traces/{trace_id}", "end"),
    ("/api/v3/traces/{trace_id}", "startTime"),
    ("/api/v3/traces/{trace_id}", "start_time"),
    ("/api/v3/traces/{trace_id}", "endTime"),
    ("/api/v3/traces/{trace_id}", "end_time"),
}


def rfc3339(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / S, dt.UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def spec(sidecar: Sidecar) -> dict[str, Any]:
    status, body = sidecar.get_json("/api/openapi.json")
    assert status == 200, body
    return body


@dataclass
class Loaded:
    now: int
    trace: bytes

    @property
    def window(self) -> dict[str, str]:
        return {
            "query.start_time_min": rfc3339(self.now - 60 * S),
            "query.start_time_max": rfc3339(self.now + 60 * S),
        }


@pytest.fixture(scope="module")
def loaded(sidecar: Sidecar) -> Loaded:
    """One trace across two services, with every attribute type, an event and a link, so each
    documented trace shape is checked against a full answer rather than an empty list."""
    now = time.time_ns()
    tid, root, call = new_trace_id(), new_span_id(), new_span_id()
    back = make_span(
        tid,
        "POST /cart",
        now - 9 * S,
        20 * MS,
        parent=call,
        kind=Span.SPAN_KIND_SERVER,
        attrs={"s": "x", "i": 2**60, "f": 0.5, "b": True, "raw": b"\x00\x01", "list": ["a", 1]},
        status=Status.STATUS_CODE_ERROR,
        status_message="out of stock",
        events=[("retry", now - 9 * S + MS, {"attempt": 2})],
    )
    back.links.add(trace_id=new_trace_id(), span_id=new_span_id(), attributes=attributes({"why": "batch"}))
    front = [
        make_span(tid, "GET /checkout", now - 10 * S, 50 * MS, span_id=root, kind=Span.SPAN_KIND_SERVER),
        make_span(
            tid, "call cart", now - 9 * S, 30 * MS, span_id=call, parent=root, kind=Span.SPAN_KIND_CLIENT
        ),
    ]
    sidecar.export(merge_requests(make_request(FRONT, front), make_request(BACK, [back])))
    return Loaded(now, tid)


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def conforms(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """Validate ``value`` against a schema of the document, resolving its ``#/components`` refs."""
    Draft202012Validator({**schema, "components": spec["components"]}).validate(value)


def error_message(body: dict[str, Any]) -> str:
    """The message of any of the three error shapes (Jaeger v1, api_v3, native)."""
    return str(body["errors"][0]["msg"] if "errors" in body else body["error"]["message"])


def url(sidecar: Sidecar, template: str, path_values: dict[str, str], query: dict[str, Any]) -> str:
    path = re.sub(r"{(\w+)}", lambda m: urllib.parse.quote(path_values[m.group(1)], safe=""), template)
    pairs = [(k, v) for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])]
    return f"{sidecar.api_url}{path}" + (f"?{urllib.parse.urlencode(pairs)}" if pairs else "")


# ---------------------------------------------------------------------------------------------
# The document against the router


def test_every_route_the_app_serves_is_documented(spec: dict[str, Any], tmp_path: Path) -> None:
    with real_api_app(tmp_path / "data") as app:
        served = served_operations(app)
    documented = {(method.upper(), path) for path, method, _ in operations(spec)}
    assert served, "the app serves no route"
    assert sorted(served - documented) == [], "served but missing from /api/openapi.json"
    assert sorted(documented - served) == [], "documented but not served"


def test_the_document_is_valid_openapi_31(spec: dict[str, Any]) -> None:
    validate_openapi(spec)  # raises OpenAPIValidationError with the offending JSON path
    assert spec["openapi"].startswith("3.1.")
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids)), "operationIds repeat"


def test_every_operation_documents_its_parameters_and_answers(spec: dict[str, Any]) -> None:
    for path, method, op in operations(spec):
        where = f"{method.upper()} {path}"
        params = op.get("parameters", [])
        path_params = sorted(p["name"] for p in params if p["in"] == "path")
        assert path_params == sorted(re.findall(r"{(\w+)}", path)), where
        names = [(p["name"], p["in"]) for p in params]
        assert len(names) == len(set(names)), f"{where}: a parameter repeats"
        for p in params:
            assert {"name", "in", "required", "description", "schema"} <= set(p), (where, p)
            assert p["description"].strip(), (where, p["name"])
            assert "type" in p["schema"], (where, p["name"])
            if "example" in p:
                conforms(spec, p["schema"], p["example"])
        answers = op["responses"]
        assert any(code.startswith("2") for code in answers), where
        for code, answer in answers.items():
            assert answer["description"].strip(), (where, code)
            if method == "get":
                assert answer.get("content"), f"{where} {code}: no documented body"
                for media in answer["content"].values():
                    assert "schema" in media, (where, code)
                    if "example" in media:
                        conforms(spec, media["schema"], media["example"])
    for name, schema in spec["components"]["schemas"].items():
        for example in schema.get("examples", []):
            conforms(spec, {"$ref": f"#/components/schemas/{name}"}, example)


# ---------------------------------------------------------------------------------------------
# The document against live answers


@dataclass
class Probe:
    path: str
    query: dict[str, Any]
    status: int
    path_values: dict[str, str] | None = None
    expect: Callable[[Any], bool] | None = None  # what a 200 must hold beyond its schema


def probes(d: Loaded) -> list[Probe]:
    full, short = d.trace.hex(), jaeger_id(d.trace)
    window = d.window
    return [
        Probe("/", {}, 200, expect=lambda page: "<html" in page),
        Probe("/healthz", {}, 200),
        Probe("/readyz", {}, 200),
        Probe("/api/openapi.json", {}, 200),
        Probe("/api/services", {}, 200, expect=lambda b: {FRONT, BACK} <= set(b["data"])),
        Probe(
            "/api/services/{service}/operations", {}, 200, {"service": FRONT}, lambda b: len(b["data"]) == 2
        ),
        Probe("/api/operations", {"service": BACK}, 200, expect=lambda b: b["data"]),
        Probe("/api/operations", {}, 400),
        Probe("/api/traces", {"service": BACK}, 200, expect=lambda b: len(b["data"][0]["spans"]) == 3),
        Probe(
            "/api/traces", {"traceID": [short, UNKNOWN_ID]}, 200, expect=lambda b: b["errors"][0]["traceID"]
        ),
        Probe("/api/traces", {}, 400),
        Probe("/api/traces/{trace_id}", {}, 200, {"trace_id": short}, lambda b: len(b["data"]) == 1),
        Probe("/api/traces/{trace_id}", {}, 400, {"trace_id": BAD}),
        Probe("/api/traces/{trace_id}", {}, 404, {"trace_id": UNKNOWN_ID}),
        Probe("/api/dependencies", {}, 200),
        Probe("/api/dependencies", {"endTs": BAD}, 400),
        Probe("/api/v3/services", {}, 200, expect=lambda b: FRONT in b["services"]),
        Probe("/api/v3/operations", {"service": FRONT}, 200, expect=lambda b: len(b["operations"]) == 2),
        Probe("/api/v3/operations", {}, 400),
        Probe("/api/v3/traces", {**window, "query.service_name": BACK}, 200, expect=lambda b: b["result"]),
        Probe("/api/v3/traces", {}, 400),
        Probe("/api/v3/traces", {**window, "query.service_name": "openapi-nobody"}, 404),
        Probe(
            "/api/v3/traces/{trace_id}", {}, 200, {"trace_id": full}, lambda b: b["result"]["resourceSpans"]
        ),
        Probe("/api/v3/traces/{trace_id}", {}, 400, {"trace_id": BAD}),
        Probe("/api/v3/traces/{trace_id}", {}, 404, {"trace_id": UNKNOWN_ID}),
        Probe(
            "/api/v3/trace-summaries",
            {**window, "query.serviceName": FRONT},
            200,
            expect=lambda b: b["summaries"],
        ),
        Probe("/api/v3/trace-summaries", {"query.serviceName": FRONT}, 400),
        Probe(
            "/api/trace-summaries", {"service": BACK}, 200, expect=lambda b: b["data"][0]["spanCount"] == 3
        ),
        Probe("/api/trace-summaries", {"limit": BAD}, 400),
        Probe("/api/events", {"order": "asc"}, 200, expect=lambda b: b["next_cursor"] is None),
        Probe("/api/events", {"limit": BAD}, 400),
        Probe("/api/events/summary", {}, 200, expect=lambda b: b["unique_users"] == 0),
        Probe("/api/events/summary", {"from": BAD}, 400),
        Probe("/api/logs", {"severity_min": "warn"}, 200, expect=lambda b: "data" in b),
        Probe("/api/logs", {"limit": BAD}, 400),
        Probe("/api/logs/tail", {"trace_id": BAD}, 400),
    ]


def test_every_documented_answer_is_the_real_answer(
    sidecar: Sidecar, spec: dict[str, Any], loaded: Loaded
) -> None:
    covered: set[tuple[str, str]] = set()
    for probe in probes(loaded):
        target = url(sidecar, probe.path, probe.path_values or {}, probe.query)
        status, headers, raw = http_request("GET", target)
        where = f"GET {target} -> {status} {raw[:300]!r}"
        assert status == probe.status, where
        answer = spec["paths"][probe.path]["get"]["responses"].get(str(status))
        assert answer is not None, f"{where}: status not documented"
        media_type = headers["content-type"].split(";")[0].strip()
        assert media_type in answer["content"], f"{where}: {media_type} not documented"
        body = json.loads(raw) if media_type == "application/json" else raw.decode()
        conforms(spec, answer["content"][media_type]["schema"], body)
        if probe.expect is not None:
            assert probe.expect(body), where
        head_status, _, head_body = http_request("HEAD", target)
        assert (head_status, head_body) == (status, b""), f"HEAD {target}"
        covered.add((probe.path, str(status)))
    documented = {
        (path, code) for path, method, op in operations(spec) if method == "get" for code in op["responses"]
    }
    # 503 is readiness while starting or stopping, which a ready sidecar cannot show; the tail's 200 is
    # a stream that never ends (tests/e2e/test_log_queries.py reads it).
    unprovoked = documented - covered - {("/readyz", "503"), ("/api/logs/tail", "200")}
    assert sorted(unprovoked) == [], "documented answers never provoked"


def refused_values(schema: dict[str, Any]) -> list[str]:
    """Values the schema rules out and the route must refuse: text that does not parse where a
    value is parsed (integer, enum, time, duration, ID, tag pair, JSON), and integers one past a
    documented bound. Empty for a parameter taken as it comes (names, booleans)."""
    schema = schema.get("items", schema)
    parsed = {"enum", "format", "pattern", "contentMediaType"} & set(schema)
    if schema.get("type") != "integer":
        return [BAD] if parsed else []
    values = [BAD]
    if "minimum" in schema:
        values.append(str(schema["minimum"] - 1))
    if "maximum" in schema:
        values.append(str(schema["maximum"] + 1))
    return values


def same_meaning(a: str, b: str) -> bool:
    """Aliases differ only in spelling: query.startTimeMin and query.start_time_min."""
    return re.sub(r"([A-Z])", r"_\1", a).lower() == re.sub(r"([A-Z])", r"_\1", b).lower()


def test_every_documented_constraint_is_enforced_by_its_route(sidecar: Sidecar, spec: dict[str, Any]) -> None:
    """A value outside a parameter's documented schema answers 400 naming it: the route reads the
    parameter under that name, and the enum, format, pattern and bounds are the code's."""
    tried = 0
    for path, method, op in operations(spec):
        if method != "get":
            continue
        params = op.get("parameters", [])
        examples = {p["name"]: p["example"] for p in params if "example" in p}
        bad_answer = op["responses"].get("400")
        for p in params:
            name = p["name"]
            if (path, name) in IGNORED:
                assert "ignored" in p["description"], (path, name)
                continue
            for value in refused_values(p["schema"]):
                query = {k: v for k, v in examples.items() if not same_meaning(k, name)}
                path_values = {k: v for k, v in query.items() if "{" + k + "}" in path}
                query = {k: v for k, v in query.items() if k not in path_values}
                (path_values if p["in"] == "path" else query)[name] = value
                target = url(sidecar, path, path_values, query)
                status, raw = http_request("GET", target)[::2]
                assert status == 400, f"{target} -> {status} {raw[:300]!r}"
                assert bad_answer is not None, f"{path} answers 400 but does not document it"
                body = json.loads(raw)
                conforms(spec, bad_answer["content"]["application/json"]["schema"], body)
                if p["in"] == "query":
                    assert f"'{name}'" in error_message(body), (target, body)
                tried += 1
    assert tried >= 70, f"only {tried} refused values tried"


def test_the_search_limits_in_the_document_are_the_configured_ones(sidecar_factory: SidecarFactory) -> None:
    sidecar = sidecar_factory(
        env={"SIDECAR_API__DEFAULT_SEARCH_LIMIT": "7", "SIDECAR_API__MAX_SEARCH_LIMIT": "50"}
    )
    status, spec = sidecar.get_json("/api/openapi.json")
    assert status == 200, spec

    def limit(path: str, name: str) -> dict[str, Any]:
        (param,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name]
        return dict(param["schema"])

    assert limit("/api/trace-summaries", "limit") == {
        "type": "integer",
        "minimum": 1,
        "maximum": 50,
        "default": 7,
    }
    # Jaeger's default of 100 would exceed the maximum, so the default is the maximum.
    assert limit("/api/traces", "limit") == {"type": "integer", "minimum": 0, "maximum": 50, "default": 50}
    assert limit("/api/v3/traces", "query.searchDepth")["maximum"] == 50
    assert limit("/api/v3/trace-summaries", "query.num_traces")["maximum"] == 50
    # The configured maximum is the enforced one.
    assert sidecar.get("/api/trace-summaries", limit=50)[0] == 200
    assert sidecar.get("/api/trace-summaries", limit=51)[0] == 400
