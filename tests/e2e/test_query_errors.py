"""Query-parameter errors end to end, over real HTTP against live sidecars.

Bad input gets 400 in the route's own envelope (Jaeger v1, api_v3, native; CONTRACTS §2.1, §2.6), and
the message names the parameter as the client spelled it (an alias stays that alias) and the real
reason. The requests Grafana and Jaeger UI send still succeed, and no garbage gets a 500.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sidecar.cli.main import main
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    Sidecar,
    http_request,
    jaeger_id,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
    query_string,
)

MS = 1_000_000
S = 1_000 * MS
SERVICE = "qe-shop"
KINDS = ("server", "client", "producer", "consumer", "internal")
ERROR, OK = Status.STATUS_CODE_ERROR, Status.STATUS_CODE_OK


def rfc3339(ns: int) -> str:
    when = dt.datetime.fromtimestamp(ns // S, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % S:09d}Z"


@dataclass
class Seed:
    now: int
    trace_id: bytes
    start: int

    @property
    def jaeger(self) -> str:
        return jaeger_id(self.trace_id)

    def v3_window(self, lo: str = "query.start_time_min", hi: str = "query.start_time_max") -> dict[str, str]:
        return {lo: rfc3339(self.now - 3600 * S), hi: rfc3339(self.now + 60 * S)}


@pytest.fixture(scope="module")
def seed(sidecar: Sidecar) -> Seed:
    """One trace: a SERVER span "GET /item" (20 ms, http.status_code=200) over a CLIENT span."""
    now = time.time_ns()
    tid, root = new_trace_id(), new_span_id()
    start = now - 30 * S
    spans = [
        make_span(
            tid,
            "GET /item",
            start,
            20 * MS,
            span_id=root,
            kind=Span.SPAN_KIND_SERVER,
            attrs={"http.status_code": 200},
        ),
        make_span(tid, "call db", start + MS, 5 * MS, parent=root, kind=Span.SPAN_KIND_CLIENT),
    ]
    sidecar.export(make_request(SERVICE, spans))
    return Seed(now, tid, start)


@pytest.fixture(scope="module")
def capped(module_sidecar_factory: SidecarFactory) -> Sidecar:
    """A sidecar whose api.max_search_limit is 5, holding 7 one-span traces of service qe-many."""
    sc = module_sidecar_factory(
        "capped", env={"SIDECAR_API__MAX_SEARCH_LIMIT": "5", "SIDECAR_API__DEFAULT_SEARCH_LIMIT": "3"}
    )
    now = time.time_ns()
    for i in range(7):
        sc.export(make_request("qe-many", [make_span(new_trace_id(), "tick", now - (60 - i) * S, MS)]))
    return sc


# ---------------------------------------------------------------------------------------------
# Envelopes


def get_raw(sidecar: Sidecar, path_and_query: str) -> tuple[int, Any]:
    """GET a path whose query string is sent exactly as written (for bad percent escapes)."""
    status, headers, raw = http_request("GET", sidecar.api_url + path_and_query)
    assert headers["content-type"].startswith("application/json"), (status, raw[:200])
    return status, json.loads(raw)


def bad_request(sidecar: Sidecar, path: str, params: dict[str, Any] | None = None) -> str:
    """GET that must answer 400 in the route's own error envelope; returns the message."""
    status, body = sidecar.get_json(path, params)
    assert status == 400, body
    if path.startswith("/api/v3/"):
        assert set(body) == {"error"}, body
        assert body["error"]["httpCode"] == 400
        return str(body["error"]["message"])
    if path.startswith("/api/trace-summaries"):
        assert body == {"error": {"code": 400, "message": body["error"]["message"]}}
        return str(body["error"]["message"])
    (err,) = body["errors"]
    assert body == {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [err]}
    assert set(err) == {"code", "msg"} and err["code"] == 400
    return str(err["msg"])


def native_error(sidecar: Sidecar, params: dict[str, Any]) -> str:
    return bad_request(sidecar, "/api/trace-summaries", params)


def v1_ok(sidecar: Sidecar, path: str, params: dict[str, Any] | None = None) -> Any:
    status, body = sidecar.get_json(path, params)
    assert status == 200, body
    assert body["errors"] is None
    return body["data"]


def v1_search_ids(sidecar: Sidecar, params: dict[str, Any]) -> set[str]:
    return {t["traceID"] for t in v1_ok(sidecar, "/api/traces", params)}


# ---------------------------------------------------------------------------------------------
# spanKind


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/operations", "spanKind"),
        ("/api/v3/operations", "spanKind"),
        ("/api/v3/operations", "span_kind"),
    ],
)
@pytest.mark.parametrize("kind", ["bogus", "SERVER", "span_kind_server", " server"])
def test_unknown_span_kind_is_400(sidecar: Sidecar, seed: Seed, path: str, name: str, kind: str) -> None:
    msg = bad_request(sidecar, path, {"service": SERVICE, name: kind})
    assert msg == (
        f"parameter '{name}': must be one of server, client, producer, consumer, internal "
        f"(or empty for all), got {kind!r}"
    )


def test_every_span_kind_still_filters(sidecar: Sidecar, seed: Seed) -> None:
    expected = {"server": ["GET /item"], "client": ["call db"]}
    for kind in KINDS:
        v1 = v1_ok(sidecar, "/api/operations", {"service": SERVICE, "spanKind": kind})
        assert v1 == [{"name": n, "spanKind": kind} for n in expected.get(kind, [])]
        for name in ("spanKind", "span_kind"):
            status, body = sidecar.get_json("/api/v3/operations", {"service": SERVICE, name: kind})
            assert status == 200
            assert body == {"operations": [{"name": n, "spanKind": kind} for n in expected.get(kind, [])]}
    everything = v1_ok(sidecar, "/api/operations", {"service": SERVICE, "spanKind": ""})
    assert {op["name"] for op in everything} == {"GET /item", "call db"}


# ---------------------------------------------------------------------------------------------
# Negative durations


@pytest.mark.parametrize("value", ["-5ms", "-1h", "-0.5s", "-1ns"])
@pytest.mark.parametrize("name", ["minDuration", "maxDuration"])
def test_v1_negative_duration_is_400(sidecar: Sidecar, name: str, value: str) -> None:
    msg = bad_request(sidecar, "/api/traces", {"service": SERVICE, name: value})
    assert msg == f"parameter '{name}': must not be negative, got {value!r}"


@pytest.mark.parametrize("name", ["minDuration", "maxDuration", "minTraceDuration", "maxTraceDuration"])
def test_native_negative_duration_is_400(sidecar: Sidecar, name: str) -> None:
    assert native_error(sidecar, {name: "-5ms"}) == f"parameter '{name}': must not be negative, got '-5ms'"


@pytest.mark.parametrize(
    "name", ["query.durationMin", "query.duration_min", "query.durationMax", "query.duration_max"]
)
@pytest.mark.parametrize("path", ["/api/v3/traces", "/api/v3/trace-summaries"])
def test_v3_negative_duration_is_400(sidecar: Sidecar, seed: Seed, path: str, name: str) -> None:
    msg = bad_request(sidecar, path, {**seed.v3_window(), name: "-5ms"})
    assert msg == f"parameter '{name}': must not be negative, got '-5ms'"


def test_zero_and_positive_durations_still_pass(sidecar: Sidecar, seed: Seed) -> None:
    search = {"service": SERVICE, "minDuration": "0", "maxDuration": "1s"}
    assert v1_search_ids(sidecar, search) == {seed.jaeger}
    assert v1_search_ids(sidecar, {"service": SERVICE, "minDuration": "15ms"}) == {seed.jaeger}
    status, body = sidecar.get_json(
        "/api/trace-summaries", {"service": SERVICE, "minTraceDuration": "0", "maxDuration": "+1h"}
    )
    assert status == 200 and [s["traceID"] for s in body["data"]] == [seed.trace_id.hex()]


# ---------------------------------------------------------------------------------------------
# Tags: values must be strings


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("1", '{"a": "1"}'),
        ("1.5", '{"a": "1.5"}'),
        ("true", '{"a": "true"}'),
        ("null", '{"a": "null"}'),
        ('{"x": "y"}', None),
        ('["a"]', None),
    ],
)
def test_non_string_tag_values_are_400(sidecar: Sidecar, seed: Seed, value: str, hint: str | None) -> None:
    raw = f'{{"a": {value}}}'
    messages = [
        bad_request(sidecar, "/api/traces", {"service": SERVICE, "tags": raw}),
        native_error(sidecar, {"tags": raw}),
        bad_request(sidecar, "/api/v3/traces", {**seed.v3_window(), "query.attributes": raw}),
        bad_request(sidecar, "/api/v3/trace-summaries", {**seed.v3_window(), "query.attributes": raw}),
    ]
    for msg, name in zip(messages, ["tags", "tags", "query.attributes", "query.attributes"], strict=True):
        assert msg.startswith(f"parameter '{name}': values must be strings: 'a' is {value}"), msg
        if hint:
            assert msg.endswith(f"write it as {hint}"), msg


def test_string_tag_values_still_match(sidecar: Sidecar, seed: Seed) -> None:
    """Grafana turns its logfmt input into a JSON object of strings, numbers included."""
    tags = json.dumps({"http.status_code": "200"})
    assert v1_search_ids(sidecar, {"service": SERVICE, "tags": tags}) == {seed.jaeger}
    status, body = sidecar.get_json(
        "/api/v3/trace-summaries",
        {**seed.v3_window(), "query.serviceName": SERVICE, "query.attributes": tags},
    )
    assert status == 200 and [s["traceId"] for s in body["summaries"]] == [seed.trace_id.hex()]


# ---------------------------------------------------------------------------------------------
# Tags: `error` is true or false; anything else used to be read as false and return every trace

PAY = "qe-payments"
# Every search route and the tag parameters it reads: (path, name, JSON object or key:value pair).
TAG_ROUTES = [
    ("/api/traces", "tag", False),
    ("/api/traces", "tags", True),
    ("/api/trace-summaries", "tag", False),
    ("/api/trace-summaries", "tags", True),
    ("/api/v3/traces", "query.attributes", True),
    ("/api/v3/trace-summaries", "query.attributes", True),
]


@dataclass
class Payments:
    failed: str  # full hex trace IDs
    fine: str


@pytest.fixture(scope="module")
def payments(sidecar: Sidecar) -> Payments:
    """Service qe-payments: one trace whose SERVER span failed, one whose SERVER span is OK."""
    now = time.time_ns()
    failed, fine = new_trace_id(), new_trace_id()
    spans = [
        make_span(failed, "charge", now - 20 * S, 5 * MS, kind=Span.SPAN_KIND_SERVER, status=ERROR),
        make_span(fine, "charge", now - 10 * S, 5 * MS, kind=Span.SPAN_KIND_SERVER, status=OK),
    ]
    sidecar.export(make_request(PAY, spans))
    return Payments(failed.hex(), fine.hex())


def tag_params(seed: Seed, path: str, name: str, as_json: bool, key: str, value: str) -> dict[str, str]:
    """A search of qe-payments on ``path`` filtering on one tag, sent the way ``name`` takes it."""
    tag = json.dumps({key: value}) if as_json else f"{key}:{value}"
    if path.startswith("/api/v3/"):
        return {**seed.v3_window(), "query.serviceName": PAY, name: tag}
    return {"service": PAY, name: tag}


def found(sidecar: Sidecar, path: str, params: dict[str, str]) -> set[str]:
    """Full hex IDs of the traces a search answers (api_v3's 404 "No traces found" is none)."""
    status, body = sidecar.get_json(path, params)
    if path == "/api/v3/traces":
        if status == 404:
            return set()
        assert status == 200, body
        return {
            span["traceId"].lower()
            for rs in body["result"]["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
        }
    assert status == 200, body
    if path == "/api/v3/trace-summaries":
        return {s["traceId"] for s in body["summaries"]}
    return {t["traceID"].rjust(32, "0") for t in body["data"]}


@pytest.mark.parametrize(("path", "name", "as_json"), TAG_ROUTES)
@pytest.mark.parametrize("value", ["junk", "0", "1", "", "ture", "yes", "true!"])
def test_error_tag_other_than_true_or_false_is_400(
    sidecar: Sidecar, seed: Seed, payments: Payments, path: str, name: str, as_json: bool, value: str
) -> None:
    msg = bad_request(sidecar, path, tag_params(seed, path, name, as_json, "error", value))
    assert msg == f"parameter '{name}': tag 'error' must be true or false, got {value!r}"


def test_error_tag_pair_with_equals_sign_is_checked_too(sidecar: Sidecar, payments: Payments) -> None:
    msg = native_error(sidecar, {"service": PAY, "tag": "error=ture"})
    assert msg == "parameter 'tag': tag 'error' must be true or false, got 'ture'"


@pytest.mark.parametrize(("path", "name", "as_json"), TAG_ROUTES)
def test_error_tag_true_or_false_in_any_case_still_filters(
    sidecar: Sidecar, seed: Seed, payments: Payments, path: str, name: str, as_json: bool
) -> None:
    for value in ("true", "TRUE", " True "):
        assert found(sidecar, path, tag_params(seed, path, name, as_json, "error", value)) == {
            payments.failed
        }, value
    for value in ("false", "FALSE", "False\t"):
        assert found(sidecar, path, tag_params(seed, path, name, as_json, "error", value)) == {
            payments.fine
        }, value


@pytest.mark.parametrize(("path", "name", "as_json"), TAG_ROUTES)
def test_unknown_span_status_and_kind_match_nothing(
    sidecar: Sidecar, seed: Seed, payments: Payments, path: str, name: str, as_json: bool
) -> None:
    """Jaeger refuses no span.status or span.kind value (CONTRACTS §2.2), so neither does the sidecar."""
    both = {payments.failed, payments.fine}
    for key, value, expected in [
        ("span.status", "error", {payments.failed}),
        ("span.status", "OK", {payments.fine}),
        ("span.status", "junk", set()),
        ("span.kind", "server", both),
        ("span.kind", "junk", set()),
    ]:
        assert found(sidecar, path, tag_params(seed, path, name, as_json, key, value)) == expected, (
            key,
            value,
        )


def test_cli_search_with_a_misspelt_error_tag_is_refused(
    sidecar: Sidecar, payments: Payments, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trial's ``sidecar traces search --tag error=ture`` listed the non-error traces."""
    code = main(["traces", "search", "--service", PAY, "--tag", "error=ture", "--api", sidecar.api_url])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        "sidecar: API error (HTTP 400): parameter 'tags': tag 'error' must be true or false, got 'ture'\n"
    )


# ---------------------------------------------------------------------------------------------
# lookback: /api/dependencies takes milliseconds > 0; /api/traces ignores the UI's lookback


@pytest.mark.parametrize("value", ["0", "-1", "-3600000"])
def test_dependencies_lookback_must_be_positive(sidecar: Sidecar, value: str) -> None:
    msg = bad_request(sidecar, "/api/dependencies", {"endTs": time.time_ns() // MS, "lookback": value})
    assert msg == f"parameter 'lookback': must be at least 1 ms, got {value!r}"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"lookback": "1h"}, "not an integer: '1h'"),
        ({"lookback": "9" * 30}, "must be at most 9223372036854 ms"),
        ({"endTs": "-1"}, "'-1' is out of range"),
        ({"endTs": "99999999999999999999999999"}, "out of range: ms since the epoch"),
        ({"endTs": "soon"}, "expected an integer (ms since the epoch), got 'soon'"),
    ],
)
def test_dependencies_bad_window(sidecar: Sidecar, params: dict[str, str], reason: str) -> None:
    msg = bad_request(sidecar, "/api/dependencies", params)
    (name,) = params
    assert msg.startswith(f"parameter '{name}': ") and reason in msg, msg


def test_dependencies_valid_windows_still_pass(sidecar: Sidecar, seed: Seed) -> None:
    now_ms = time.time_ns() // MS
    for params in ({}, {"endTs": now_ms, "lookback": 3_600_000}, {"lookback": 1}, {"endTs": 0}):
        assert isinstance(v1_ok(sidecar, "/api/dependencies", params), list)


@pytest.mark.parametrize("lookback", ["1h", "custom", "2d", "", "-1", "bogus", "%ff"])
def test_search_ignores_the_uis_lookback(sidecar: Sidecar, seed: Seed, lookback: str) -> None:
    """Jaeger UI and Grafana send lookback=1h or custom with start/end; Jaeger ignores it."""
    window = {"service": SERVICE, "start": (seed.now - 3600 * S) // 1000, "end": (seed.now + S) // 1000}
    without = sidecar.get("/api/traces", window)
    status, _, raw = http_request(
        "GET", f"{sidecar.api_url}/api/traces?{query_string(window)}&lookback={lookback}"
    )
    assert (status, raw) == without
    assert [t["traceID"] for t in json.loads(raw)["data"]] == [seed.jaeger]


# ---------------------------------------------------------------------------------------------
# limit above the maximum: refused, saying the maximum


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/traces", "limit"),
        ("/api/trace-summaries", "limit"),
        ("/api/v3/traces", "query.searchDepth"),
        ("/api/v3/traces", "query.search_depth"),
        ("/api/v3/trace-summaries", "query.num_traces"),
    ],
)
@pytest.mark.parametrize("value", ["1501", "100000", "99999999999999999999999999"])
def test_limit_above_maximum_is_400(sidecar: Sidecar, seed: Seed, path: str, name: str, value: str) -> None:
    base: dict[str, Any] = seed.v3_window() if path.startswith("/api/v3/") else {"service": SERVICE}
    msg = bad_request(sidecar, path, {**base, name: value})
    assert (
        msg == f"parameter '{name}': must be at most 1500 (the server's api.max_search_limit), got {value!r}"
    )


def test_limit_at_maximum_still_passes(sidecar: Sidecar, seed: Seed) -> None:
    assert v1_search_ids(sidecar, {"service": SERVICE, "limit": 1500}) == {seed.jaeger}
    assert v1_search_ids(sidecar, {"service": SERVICE, "limit": 0}) == {seed.jaeger}  # Jaeger: 0 = default
    status, body = sidecar.get_json("/api/trace-summaries", {"service": SERVICE, "limit": 1500})
    assert status == 200 and body["limit"] == 1500
    status, body = sidecar.get_json(
        "/api/v3/trace-summaries",
        {**seed.v3_window(), "query.serviceName": SERVICE, "query.searchDepth": 1500},
    )
    assert status == 200 and len(body["summaries"]) == 1


def test_configured_maximum_is_the_one_named(capped: Sidecar) -> None:
    msg = bad_request(capped, "/api/traces", {"service": "qe-many", "limit": 6})
    assert msg == "parameter 'limit': must be at most 5 (the server's api.max_search_limit), got '6'"
    assert "at most 5 " in native_error(capped, {"limit": 6})
    assert len(v1_ok(capped, "/api/traces", {"service": "qe-many", "limit": 5})) == 5


def test_jaeger_default_limit_stays_under_a_smaller_maximum(capped: Sidecar) -> None:
    """Jaeger's default of 100 traces must not exceed a configured maximum of 5."""
    assert len(v1_ok(capped, "/api/traces", {"service": "qe-many"})) == 5
    assert len(v1_ok(capped, "/api/traces", {"service": "qe-many", "limit": 0})) == 5
    now = time.time_ns()
    window = {"query.start_time_min": rfc3339(now - 3600 * S), "query.start_time_max": rfc3339(now + S)}
    status, body = capped.get_json("/api/v3/trace-summaries", window)
    assert status == 200 and len(body["summaries"]) == 5
    status, body = capped.get_json("/api/trace-summaries", {})
    assert status == 200 and body["limit"] == 3 and len(body["data"]) == 3


# ---------------------------------------------------------------------------------------------
# Messages: the parameter as sent and the real reason, said once


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/traces", {"service": SERVICE, "minDuration": "abc"}),
        ("/api/trace-summaries", {"maxTraceDuration": "abc"}),
        ("/api/v3/traces", {"query.durationMin": "abc"}),
        ("/api/traces", {"service": SERVICE, "start": "abc"}),
        ("/api/v3/trace-summaries", {"query.start_time_max": "abc"}),
        ("/api/traces", {"traceID": "abcx"}),
        ("/api/dependencies", {"lookback": "abc"}),
        ("/api/operations", {"service": SERVICE, "spanKind": "abc"}),
    ],
)
def test_bad_value_is_quoted_once(sidecar: Sidecar, seed: Seed, path: str, params: dict[str, str]) -> None:
    if path.startswith("/api/v3/"):
        params = {**seed.v3_window(), **params}
    msg = bad_request(sidecar, path, params)
    bad_name = next(k for k, v in params.items() if "abc" in v)
    assert msg.startswith(f"parameter '{bad_name}': "), msg
    assert msg.count("abc") == 1, msg


def test_duration_message_says_what_is_expected(sidecar: Sidecar) -> None:
    msg = bad_request(sidecar, "/api/traces", {"service": SERVICE, "minDuration": "abc"})
    assert msg == (
        "parameter 'minDuration': invalid duration 'abc': "
        "expected a number and a unit, e.g. 150ms, 1.5s or 1h30m"
    )


@pytest.mark.parametrize("since", ["-1h", "0", "-1ns"])
def test_since_must_be_positive(sidecar: Sidecar, since: str) -> None:
    assert native_error(sidecar, {"since": since}) == (
        f"parameter 'since': must be a positive duration such as 1h, got {since!r}"
    )


def test_since_conflicts(sidecar: Sidecar, seed: Seed) -> None:
    msg = native_error(sidecar, {"since": "1h", "start": seed.start // 1000})
    assert msg == "parameter 'since': give either 'start' or 'since', not both"
    two_hours_ago = (time.time_ns() - 7200 * S) // 1000
    msg = native_error(sidecar, {"since": "1h", "end": two_hours_ago})
    assert msg == "parameter 'since': looks back from now, so the window starts after 'end'"
    status, body = sidecar.get_json("/api/trace-summaries", {"since": "1h", "service": SERVICE})
    assert status == 200 and [s["traceID"] for s in body["data"]] == [seed.trace_id.hex()]


@pytest.mark.parametrize("name", ["start", "end"])
@pytest.mark.parametrize(
    "value", ["99999999999999999999999999", "-99999999999999999999999999", "9223372036854776"]
)
def test_huge_times_are_out_of_range_not_reversed(sidecar: Sidecar, name: str, value: str) -> None:
    for msg in (
        bad_request(sidecar, "/api/traces", {"service": SERVICE, name: value}),
        native_error(sidecar, {name: value}),
    ):
        assert msg.startswith(f"parameter '{name}': '{value}' is out of range: µs since the epoch"), msg
        assert "after" not in msg


@pytest.mark.parametrize("name", ["query.startTimeMin", "query.start_time_max"])
def test_v3_time_beyond_int64_is_out_of_range(sidecar: Sidecar, seed: Seed, name: str) -> None:
    params = {**seed.v3_window("query.startTimeMin", "query.start_time_max"), name: "9999-12-31T00:00:00Z"}
    msg = bad_request(sidecar, "/api/v3/trace-summaries", params)
    assert msg == (
        f"parameter '{name}': '9999-12-31T00:00:00Z' is out of range: "
        "times must lie between 1677-09-21 and 2262-04-11"
    )


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        ("query.start_time_min", "query.start_time_max"),
        ("query.startTimeMin", "query.startTimeMax"),
        ("query.startTimeMin", "query.start_time_max"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v3/traces", "/api/v3/trace-summaries"])
def test_v3_reversed_window_names_the_spelling_sent(
    sidecar: Sidecar, seed: Seed, path: str, lo: str, hi: str
) -> None:
    params = {lo: rfc3339(seed.now), hi: rfc3339(seed.now - 3600 * S)}
    assert bad_request(sidecar, path, params) == f"parameter '{lo}': must not be after '{hi}'"


def test_v3_missing_window_names_both_spellings(sidecar: Sidecar, seed: Seed) -> None:
    msg = bad_request(sidecar, "/api/v3/traces", {"query.startTimeMax": rfc3339(seed.now)})
    assert msg == "parameter 'query.start_time_min' is required (RFC 3339; or query.startTimeMin)"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/traces", {"operation": "GET /item"}),
        ("/api/operations", {"spanKind": "server"}),
        ("/api/v3/operations", {"spanKind": "server"}),
    ],
)
def test_missing_service_in_jaegers_wording(sidecar: Sidecar, path: str, params: dict[str, str]) -> None:
    """CONTRACTS §2.2: 400 ``parameter 'service' is required``."""
    assert bad_request(sidecar, path, params) == "parameter 'service' is required"


def test_v1_and_native_reversed_window(sidecar: Sidecar, seed: Seed) -> None:
    window = {"start": seed.now // 1000, "end": (seed.now - 3600 * S) // 1000}
    assert bad_request(sidecar, "/api/traces", {"service": SERVICE, **window}) == (
        "parameter 'start': must not be after 'end'"
    )
    assert native_error(sidecar, window) == "parameter 'start': must not be after 'end'"
    future = (time.time_ns() + 3600 * S) // 1000
    assert native_error(sidecar, {"start": future}) == (
        "parameter 'start': must not be after now (the default when no end is given)"
    )


@pytest.mark.parametrize(("path", "name"), [("/api/traces/{}", "traceID"), ("/api/v3/traces/{}", "trace_id")])
@pytest.mark.parametrize("bad", ["xyz", "12345678901234567890123456789012345", "%ff"])
def test_trace_id_message_gives_the_real_reason(sidecar: Sidecar, path: str, name: str, bad: str) -> None:
    msg = bad_request(sidecar, path.format(urllib.parse.quote(bad)))
    assert msg == (
        f"parameter '{name}': invalid trace ID {bad!r}: expected 1-32 hex characters or base64 of 16 bytes"
    )


def test_short_hex_trace_id_is_an_id_not_an_error(sidecar: Sidecar) -> None:
    """Jaeger prints IDs without leading zeros, so "abc" is the ID 0...0abc: unknown, not malformed."""
    status, body = sidecar.get_json("/api/traces/abc")
    assert status == 404 and body["errors"] == [{"code": 404, "msg": "trace not found"}]
    status, body = sidecar.get_json("/api/v3/traces/abc")
    assert status == 404 and body["error"]["message"] == "No traces found"
    status, body = sidecar.get_json("/api/traces", {"traceID": "abc"})
    assert status == 200 and body["errors"] == [
        {"code": 404, "msg": "trace not found", "traceID": "0000000000000abc"}
    ]


# ---------------------------------------------------------------------------------------------
# What Grafana and Jaeger UI send still works


def test_grafana_and_jaeger_ui_requests_still_succeed(sidecar: Sidecar, seed: Seed) -> None:
    start_us, end_us = (seed.now - 3600 * S) // 1000, (seed.now + S) // 1000
    grafana_search = {
        "service": SERVICE,
        "operation": "GET /item",
        "tags": json.dumps({"http.status_code": "200"}),
        "minDuration": "1ms",
        "maxDuration": "1s",
        "limit": 20,
        "start": start_us,
        "end": end_us,
    }
    assert v1_search_ids(sidecar, grafana_search) == {seed.jaeger}
    # Older Jaeger UI search: empty optional values and the time picker's lookback
    ui_search = {**grafana_search, "minDuration": "", "maxDuration": "", "tags": "", "lookback": "1h"}
    assert v1_search_ids(sidecar, ui_search) == {seed.jaeger}
    # Grafana's trace-by-ID time hints are in milliseconds
    (trace,) = v1_ok(
        sidecar, f"/api/traces/{seed.jaeger}", {"start": start_us // 1000, "end": end_us // 1000}
    )
    assert trace["traceID"] == seed.jaeger
    v1_ok(sidecar, "/api/dependencies", {"endTs": end_us // 1000, "lookback": (end_us - start_us) // 1000})
    # Jaeger UI's search page (api_v3, camelCase, ISO times with milliseconds)
    ui_v3 = {
        "query.serviceName": SERVICE,
        "query.startTimeMin": dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC).isoformat(
            timespec="milliseconds"
        ),
        "query.startTimeMax": dt.datetime.fromtimestamp(end_us / 1e6, dt.UTC).isoformat(
            timespec="milliseconds"
        ),
        "query.searchDepth": 20,
        "query.attributes": json.dumps({"http.status_code": "200"}),
    }
    status, body = sidecar.get_json("/api/v3/trace-summaries", ui_v3)
    assert status == 200 and [s["traceId"] for s in body["summaries"]] == [seed.trace_id.hex()]
    status, body = sidecar.get_json("/api/v3/operations", {"service": SERVICE})
    assert status == 200 and len(body["operations"]) == 2


# ---------------------------------------------------------------------------------------------
# Garbage: 400 (or a plain answer) naming a parameter that was sent, never a 500


GARBAGE = [
    "",
    "%ff",
    "%ff%fe%00",
    "%00",
    "%C0%AF",  # overlong UTF-8
    "%E2%80%AE1h",  # right-to-left override
    "9" * 400,
    "-" + "9" * 400,
    "1e309",
    "NaN",
    "%2B",
    "%20",
    "x" * 4000,
    "%7B%22a%22%3A%7B%7D%7D",  # {"a":{}}
    "%5B%5D",  # []
    "1h%00",
    "%3A",  # ":"
]

ROUTES: dict[str, tuple[str, ...]] = {
    "/api/services": ("prettyPrint",),
    "/api/operations?service=qe-shop": ("spanKind", "service"),
    "/api/traces?service=qe-shop": (
        "operation",
        "tags",
        "tag",
        "start",
        "end",
        "minDuration",
        "maxDuration",
        "limit",
        "lookback",
        "traceID",
    ),
    "/api/traces/{id}": ("start", "end", "raw"),
    "/api/dependencies": ("endTs", "lookback", "service"),
    "/api/v3/services": ("x",),
    "/api/v3/operations?service=qe-shop": ("spanKind", "span_kind"),
    "/api/v3/traces?{window}": (
        "query.service_name",
        "query.operationName",
        "query.attributes",
        "query.start_time_min",
        "query.startTimeMax",
        "query.durationMin",
        "query.duration_max",
        "query.searchDepth",
        "query.num_traces",
    ),
    "/api/v3/trace-summaries?{window}": ("query.search_depth", "query.start_time_max", "query.attributes"),
    "/api/v3/traces/{id}": ("start_time", "rawTraces"),
    "/api/trace-summaries": (
        "service",
        "tags",
        "tag",
        "start",
        "end",
        "since",
        "minDuration",
        "maxTraceDuration",
        "limit",
    ),
}


def _message(body: Any) -> str:
    if "errors" in body:
        return str(body["errors"][0]["msg"])
    return str(body["error"]["message"])


@pytest.mark.parametrize("route", list(ROUTES))
def test_garbage_never_500(sidecar: Sidecar, seed: Seed, route: str) -> None:
    window = urllib.parse.urlencode(seed.v3_window())
    base = route.format(id=seed.jaeger, window=window)
    sep = "&" if "?" in base else "?"
    answered = set()
    for name in ROUTES[route]:
        for value in GARBAGE:
            for query in (f"{name}={value}", f"{name}={value}&{name}=1", f"{name}=&{name}={value}"):
                path = f"{base}{sep}{query}"
                status, body = get_raw(sidecar, path)
                assert status in (200, 400, 404), (path, status, body)
                answered.add(status)
                if status == 400:
                    msg = _message(body)
                    assert msg.startswith(f"parameter '{name}': "), (path, msg)
                    assert len(msg) < 300, (path, msg)
    assert sidecar.running, sidecar.stderr_text()
    assert 200 in answered or 404 in answered  # the route also answered, not only refused


@pytest.mark.parametrize(
    "path",
    [
        "/api/traces/%ff%fe",
        "/api/v3/traces/%ff",
        "/api/services/%ff%00/operations",
        "/api/traces/" + "a" * 4000,
    ],
)
def test_garbage_paths_never_500(sidecar: Sidecar, path: str) -> None:
    status, body = get_raw(sidecar, path)
    assert status in (200, 400, 404), (status, body)
    if status == 400:
        assert _message(body).startswith(("parameter 'traceID': ", "parameter 'trace_id': "))
