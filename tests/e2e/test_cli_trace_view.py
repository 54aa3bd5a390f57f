"""``sidecar traces get|search`` against a live sidecar: span trees, summaries, JSON, API errors.

Real spans go in over OTLP/HTTP; the CLI runs in-process with ``--api`` pointed at the sidecar. The
data set (timestamps relative to "now", T = now - 10 min):

    checkout  T       frontend  GET /checkout  SERVER 120ms  http.status_code=500 peer=a=b
                        payments  └ charge       10ms in, 70ms, status ERROR
                        payments      └ db.query 45ms in, 10ms
                        cart      └ cart.get     20ms in, 30ms, attribute error=false
              (the API lists spans by start time: GET /checkout, charge, cart.get, db.query;
               the tree puts db.query under charge, before cart.get)
    cart      T+3s    cart      cart.get 1.2s with 16 children "cache.lookup": 17 spans, no error
    decoys    one-span traces like checkout's root span, each failing exactly one search filter
              (operation, either tag, min/max duration, --since window, service)

A second sidecar, started only when a test needs it, holds no data at all.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sidecar.cli.main import main
from sidecar.config.model import ApiConfig
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    Sidecar,
    find_tag,
    http_request,
    jaeger_id,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
)

MS = 1_000_000
S = 1_000 * MS
ROOT_ATTRS = {"http.status_code": 500, "peer": "a=b"}
# Every filter of `traces search`; the checkout trace matches them all, each decoy all but one.
FILTERS: dict[str, list[str]] = {
    "service": ["--service", "frontend"],
    "operation": ["--operation", "GET /checkout"],
    "status-tag": ["--tag", "http.status_code=500"],
    "peer-tag": ["--tag", "peer=a=b"],  # only the first "=" splits: the value is "a=b"
    "min-duration": ["--min-duration", "100ms"],
    "max-duration": ["--max-duration", "2s"],
    "since": ["--since", "1h"],
}


@dataclass
class Data:
    start: int  # ns, the checkout trace's start
    checkout: str  # trace IDs as the API spells them
    cart: str
    cart_start: int  # ns
    spans: dict[str, str]  # operation -> span ID of the checkout trace
    decoys: dict[str, str]  # FILTERS key -> the trace that only that filter excludes

    @property
    def all_traces(self) -> set[str]:
        return {self.checkout, self.cart, *self.decoys.values()}


def export_decoy(
    sidecar: Sidecar,
    start: int,
    *,
    service: str = "frontend",
    name: str = "GET /checkout",
    duration: int = 150 * MS,
    attrs: Mapping[str, object] | None = None,
) -> str:
    """A one-span trace like checkout's root span but for the given changes; returns its ID."""
    tid = new_trace_id()
    span = make_span(
        tid, name, start, duration, kind=Span.SPAN_KIND_SERVER, attrs={**ROOT_ATTRS, **(attrs or {})}
    )
    sidecar.export(make_request(service, [span]))
    return jaeger_id(tid)


@pytest.fixture(scope="module")
def data(sidecar: Sidecar) -> Data:
    now = time.time_ns()
    t0 = now - 600 * S
    tid = new_trace_id()
    root, charge, cart_get, db_query = (new_span_id() for _ in range(4))
    # one request per service, children before their parents, as independent exporters may send them
    sidecar.export(
        make_request(
            "payments",
            [
                make_span(tid, "db.query", t0 + 45 * MS, 10 * MS, span_id=db_query, parent=charge),
                make_span(
                    tid,
                    "charge",
                    t0 + 10 * MS,
                    70 * MS,
                    span_id=charge,
                    parent=root,
                    kind=Span.SPAN_KIND_CLIENT,
                    status=Status.STATUS_CODE_ERROR,
                ),
            ],
        )
    )
    sidecar.export(
        make_request(
            "cart",
            [
                make_span(
                    tid,
                    "cart.get",
                    t0 + 20 * MS,
                    30 * MS,
                    span_id=cart_get,
                    parent=root,
                    attrs={"error": False},
                )
            ],
        )
    )
    sidecar.export(
        make_request(
            "frontend",
            [
                make_span(
                    tid,
                    "GET /checkout",
                    t0,
                    120 * MS,
                    span_id=root,
                    kind=Span.SPAN_KIND_SERVER,
                    attrs=ROOT_ATTRS,
                )
            ],
        )
    )

    cart_tid, cart_root = new_trace_id(), new_span_id()
    cart_start = t0 + 3 * S
    cart_spans = [make_span(cart_tid, "cart.get", cart_start, 1200 * MS, span_id=cart_root)]
    cart_spans += [
        make_span(cart_tid, "cache.lookup", cart_start + (1 + 50 * i) * MS, 10 * MS, parent=cart_root)
        for i in range(16)
    ]
    sidecar.export(make_request("cart", cart_spans))

    decoys = {
        "service": export_decoy(sidecar, t0 + 5 * S, service="backend"),
        "operation": export_decoy(sidecar, t0 + 6 * S, name="GET /cart"),
        "status-tag": export_decoy(sidecar, t0 + 7 * S, attrs={"http.status_code": 200}),
        "peer-tag": export_decoy(sidecar, t0 + 8 * S, attrs={"peer": "a"}),
        "min-duration": export_decoy(sidecar, t0 + 9 * S, duration=50 * MS),
        "max-duration": export_decoy(sidecar, t0 + 10 * S, duration=3 * S),
        "since": export_decoy(sidecar, now - 2 * 3600 * S),
    }
    spans = {"GET /checkout": root, "charge": charge, "cart.get": cart_get, "db.query": db_query}
    return Data(
        start=t0,
        checkout=jaeger_id(tid),
        cart=jaeger_id(cart_tid),
        cart_start=cart_start,
        spans={op: span_id.hex() for op, span_id in spans.items()},
        decoys=decoys,
    )


@pytest.fixture(scope="module")
def empty(module_sidecar_factory: SidecarFactory) -> Sidecar:
    """A sidecar that never received a span."""
    return module_sidecar_factory("empty")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // S, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_ids(capsys: pytest.CaptureFixture[str], api: str, *argv: str) -> list[str]:
    code, out, err = run(capsys, "traces", "search", "--json", "--api", api, *argv)
    assert code == 0, err
    return [summary["traceID"] for summary in json.loads(out)]


# ---------------------------------------------------------------------------------------------
# traces get


def test_get_prints_span_tree(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    api_spans = sidecar.jaeger_trace(data.checkout)["spans"]
    ids = data.spans
    # the API lists spans by start time, which is not the tree's order
    assert [span["spanID"] for span in api_spans] == [
        ids["GET /checkout"],
        ids["charge"],
        ids["cart.get"],
        ids["db.query"],
    ]
    (cart_get,) = (span for span in api_spans if span["spanID"] == ids["cart.get"])
    assert find_tag(cart_get["tags"], "error") == {"key": "error", "type": "bool", "value": False}

    # upper-case ID and a trailing slash on --api are both fine
    code, out, err = run(capsys, "traces", "get", data.checkout.upper(), "--api", sidecar.api_url + "/")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"Trace {data.checkout}: 4 spans, 3 services, 1 error, duration 120.0ms")
    assert lines[0].endswith(f", started {utc(data.start)}")
    header, *table = lines[2:]
    assert header.split() == ["SPAN", "ID", "SERVICE", "OPERATION", "START", "(ms)", "DURATION", "(ms)"]
    rows = [line for line in table if not line.lstrip().startswith("| ")]
    assert [line.strip() for line in table if line not in rows] == ["| tags: http.status_code=500 peer=a=b"]
    # the tree, not the API's order: depth first, children by start time
    assert [row.split()[0] for row in rows] == [
        ids["GET /checkout"],
        ids["charge"],
        ids["db.query"],
        ids["cart.get"],
    ]
    operations = [row[header.index("OPERATION") : header.index("START (ms)")].rstrip() for row in rows]
    assert operations == ["GET /checkout", "  charge", "    db.query", "  cart.get"]
    assert rows[0].split()[1:] == ["frontend", "GET", "/checkout", "0.000", "120.000"]
    assert rows[1].split()[1:] == ["payments", "charge", "10.000", "70.000", "ERROR"]
    assert rows[2].split()[1:] == ["payments", "db.query", "45.000", "10.000"]
    assert rows[3].split()[1:] == ["cart", "cart.get", "20.000", "30.000"]  # error=false is not an error
    assert sum("ERROR" in row for row in rows) == 1


def test_get_json(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "traces", "get", data.checkout, "--json", "--api", sidecar.api_url)
    assert code == 0 and err == ""
    assert json.loads(out) == sidecar.jaeger_trace(data.checkout)


def test_get_not_found(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    missing = new_trace_id().hex()
    assert sidecar.get(f"/api/traces/{missing}")[0] == 404
    code, out, err = run(capsys, "traces", "get", missing, "--api", sidecar.api_url)
    assert (code, out, err) == (1, "", f"sidecar: trace {missing} not found\n")


@pytest.mark.parametrize("trace_id", ["0", "0" * 32])
def test_get_refuses_an_all_zero_id_before_any_request(
    sidecar: Sidecar, trace_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sidecar.get(f"/api/traces/{trace_id}")[0] == 400  # what the server would answer
    code, out, err = run(capsys, "traces", "get", trace_id, "--api", "http://127.0.0.1:9")  # closed port
    assert (code, out) == (2, "") and "a trace ID is never all zeros" in err


def test_wrong_api_address_is_not_reported_as_a_missing_trace(
    sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]
) -> None:
    """--api pointed at the OTLP ports: say what the server said and hint at --api, never 'not found'."""
    code, out, err = run(capsys, "traces", "get", data.checkout, "--api", sidecar.http_url)
    assert (code, out) == (1, "")
    assert f"trace {data.checkout} not found" not in err
    assert err.startswith("sidecar: API error (HTTP 404): no OTLP endpoint at '/api/traces/"), err
    assert "is --api the query API address" in err and "{" not in err  # the Status message, not JSON
    code, out, err = run(capsys, "services", "--api", f"http://{sidecar.grpc_endpoint}")
    assert (code, out) == (1, "")
    assert "does not answer HTTP/1.1 (is it the OTLP/gRPC port?)" in err and err[:-1].isprintable(), err


@pytest.mark.parametrize("url", ["http://127.0.0.1:16686/a b", "http://127.0.0.1:16686/\x07"])
def test_api_url_with_spaces_or_control_characters_is_a_usage_error(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "services", "--api", url)
    assert code == 2 and "--api" in err


# ---------------------------------------------------------------------------------------------
# traces search


def test_search_filters(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    every = [arg for args in FILTERS.values() for arg in args]
    assert search_ids(capsys, sidecar.api_url, *every, "--limit", "5") == [data.checkout]
    for name, decoy in data.decoys.items():  # each filter reaches the server and does its part
        others = [arg for other, args in FILTERS.items() if other != name for arg in args]
        assert set(search_ids(capsys, sidecar.api_url, *others)) == {data.checkout, decoy}, name


def test_search_prints_table(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "traces", "search", "--service", "cart", "--api", sidecar.api_url)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["TRACE", "ID", "START", "(UTC)", "DURATION", "SPANS", "ERRORS", "ROOT"]
    assert lines[1].split() == [data.cart, utc(data.cart_start), "1.20s", "17", "0", "cart:", "cart.get"]
    checkout = [data.checkout, utc(data.start), "120.0ms", "4", "1", "frontend:", "GET", "/checkout"]
    assert lines[2].split() == checkout
    assert len(lines) == 3


def test_search_json(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "traces", "search", "--service", "cart", "--json", "--api", sidecar.api_url)
    assert code == 0 and err == ""
    status, body = sidecar.get_json("/api/trace-summaries", service="cart")
    assert status == 200
    assert json.loads(out) == body["data"]
    assert [summary["traceID"] for summary in body["data"]] == [data.cart, data.checkout]


def test_search_without_filters(
    sidecar: Sidecar, empty: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]
) -> None:
    """No options, no filters: every trace of the server's default window (well under its default limit)."""
    code, out, err = run(capsys, "traces", "search", "--json", "--api", sidecar.api_url)
    assert code == 0 and err == ""
    assert {summary["traceID"] for summary in json.loads(out)} == data.all_traces
    code, out, err = run(capsys, "traces", "search", "--api", empty.api_url)
    assert (code, out, err) == (0, "", "no traces found\n")


def test_api_url_from_env(
    sidecar: Sidecar,
    empty: Sidecar,
    data: Data,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SIDECAR_API_URL", sidecar.api_url)
    code, out, err = run(capsys, "traces", "search", "--service", "cart")
    assert code == 0 and err == ""
    assert [line.split()[0] for line in out.splitlines()[1:]] == [data.cart, data.checkout]
    monkeypatch.setenv("SIDECAR_API_URL", empty.api_url)
    assert run(capsys, "traces", "search", "--service", "cart") == (0, "", "no traces found\n")
    assert search_ids(capsys, sidecar.api_url, "--service", "cart") == [
        data.cart,
        data.checkout,
    ]  # --api wins


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Jaeger v1 envelope: {"errors": [{"msg": ...}]}
        (["operations", ""], "parameter 'service' is required"),
        # native envelope: {"error": {"message": ...}}
        (
            ["traces", "search", "--min-duration", "2s", "--max-duration", "1s"],
            "parameter 'maxDuration': must not be smaller than 'minDuration'",
        ),
        # asked for one more, refused, asked again for exactly --limit: the error names the user's number
        (
            ["traces", "search", "--limit", str(ApiConfig.max_search_limit + 1)],
            f"parameter 'limit': must be at most {ApiConfig.max_search_limit} "
            f"(the server's api.max_search_limit), got '{ApiConfig.max_search_limit + 1}'",
        ),
    ],
    ids=["v1-envelope", "native-envelope", "limit-above-maximum"],
)
def test_api_errors_exit_1(
    sidecar: Sidecar, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv, "--api", sidecar.api_url)
    assert (code, out, err) == (1, "", f"sidecar: API error (HTTP 400): {message}\n")


def test_api_error_with_plain_text_body(sidecar: Sidecar, capsys: pytest.CaptureFixture[str]) -> None:
    """A request line too long for the server's HTTP parser is refused before the app sees it, with a
    plain-text body; the CLI shows that text as the message."""
    service = "x" * 10_000
    url = f"{sidecar.api_url}/api/trace-summaries?{urllib.parse.urlencode({'service': service})}"
    status, headers, body = http_request("GET", url, headers={"Accept": "application/json"})
    assert status == 400 and headers["content-type"].startswith("text/plain"), (status, headers)
    text = body.decode().strip()
    with pytest.raises(ValueError):
        json.loads(text)
    code, out, err = run(capsys, "traces", "search", "--service", service, "--api", sidecar.api_url)
    assert (code, out, err) == (1, "", f"sidecar: API error (HTTP 400): {text}\n")


def test_a_start_in_the_future_without_end_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["traces", "search", "--start", "2200-01-01T00:00:00Z", "--api", "http://127.0.0.1:9"]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert "--start (2200-01-01T00:00:00Z) is in the future, and without --end the window ends now" in err


def test_tag_keys_and_values_with_colons(
    module_sidecar_factory: SidecarFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tag travels as Jaeger's `tags` JSON, so `k:colon=v:colon` is the key `k:colon`."""
    sidecar = module_sidecar_factory("cli-colon-tags")
    wanted, other = new_trace_id(), new_trace_id()
    now = time.time_ns()
    spans = [
        make_span(wanted, "op", now - S, MS, attrs={"k:colon": "v:colon", "url": "a=b"}),
        make_span(other, "op", now - S, MS, attrs={"k": "colon:v:colon"}),
    ]
    sidecar.export(make_request("colons", spans))
    for tag in ("k:colon=v:colon", "url=a=b"):
        ids = search_ids(capsys, sidecar.api_url, "--service", "colons", "--tag", tag)
        assert ids == [wanted.hex()], tag
