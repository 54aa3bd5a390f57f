"""CLI behaviour in-process: request parameters, output formatting, errors and exit codes.

A tiny stdlib HTTP server stands in for the sidecar's query API; it serves canned JSON so these
tests check only what the client sends and how it renders answers.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import sys
import threading
import tomllib
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sidecar.cli.main import main
from sidecar.cli.output import human_duration, utc_time
from sidecar.config.model import Config

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_700_000_000_000_000  # µs


class FakeApi:
    """Canned responses by path; records every request target it receives."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        self.url = ""

    def reply(self, path: str, status: int, body: object) -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.routes[path] = (status, raw)

    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.requests[-1]).query)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SIDECAR_* settings or proxies from the developer's shell may leak into the tests."""
    for name in list(os.environ):
        if name.startswith("SIDECAR_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append(self.path)
            status, body = fake.routes.get(urlsplit(self.path).path, (404, b"404 page not found"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def span(
    span_id: str, op: str, pid: str, start: int, dur: int, parent: str | None = None, **tags: object
) -> dict[str, object]:
    refs = [{"refType": "CHILD_OF", "traceID": TRACE_ID, "spanID": parent}] if parent else []
    return {
        "traceID": TRACE_ID,
        "spanID": span_id,
        "operationName": op,
        "references": refs,
        "startTime": T0 + start,
        "duration": dur,
        "tags": [{"key": k, "type": "bool", "value": v} for k, v in tags.items()],
        "logs": [],
        "processID": pid,
    }


TRACE = {
    "traceID": TRACE_ID,
    "spans": [  # deliberately out of order: the CLI must rebuild the tree
        span("00000000000000d4", "db.query", "p3", 45_000, 10_000, parent="00000000000000c3"),
        span("00000000000000c3", "charge", "p3", 40_000, 70_000, parent="00000000000000a1", error=True),
        span("00000000000000a1", "GET /checkout", "p1", 0, 120_000),
        span("00000000000000b2", "cart.get", "p2", 5_000, 30_000, parent="00000000000000a1", error=False),
    ],
    "processes": {
        "p1": {"serviceName": "frontend", "tags": []},
        "p2": {"serviceName": "cart", "tags": []},
        "p3": {"serviceName": "payments", "tags": []},
    },
}

SUMMARIES = [
    {
        "traceID": TRACE_ID,
        "rootServiceName": "frontend",
        "rootOperationName": "GET /checkout",
        "startTime": T0,
        "duration": 12_345,
        "spanCount": 4,
        "errorCount": 1,
        "services": [{"name": "frontend", "spanCount": 1, "errorCount": 0}],
    },
    {
        "traceID": "0af7651916cd43dd8448eb211c80319c",
        "rootServiceName": "cart",
        "rootOperationName": "cart.get",
        "startTime": T0 + 3_000_000,
        "duration": 1_200_000,
        "spanCount": 17,
        "errorCount": 0,
        "services": [{"name": "cart", "spanCount": 17, "errorCount": 0}],
    },
]


def test_get_prints_span_tree(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.reply(f"/api/traces/{TRACE_ID}", 200, {"data": [TRACE], "errors": None})
    assert main(["traces", "get", TRACE_ID.upper(), "--api", api.url + "/"]) == 0
    assert api.requests == [f"/api/traces/{TRACE_ID}"]
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"Trace {TRACE_ID}: 4 spans, 3 services, 1 error, duration 120.0ms")
    header, *rows = lines[2:]
    assert header.split() == ["SPAN", "ID", "SERVICE", "OPERATION", "START", "(ms)", "DURATION", "(ms)"]
    assert [row.split()[0][-2:] for row in rows] == ["a1", "b2", "c3", "d4"]  # depth-first, by start time
    operations = [row[header.index("OPERATION") : header.index("START (ms)")].rstrip() for row in rows]
    assert operations == ["GET /checkout", "  cart.get", "  charge", "    db.query"]
    assert rows[2].split()[1:] == ["payments", "charge", "40.000", "70.000", "ERROR"]
    assert rows[1].split()[-2:] == ["5.000", "30.000"]  # error=false is not an error
    assert sum("ERROR" in row for row in rows) == 1


def test_get_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.reply(f"/api/traces/{TRACE_ID}", 200, {"data": [TRACE], "errors": None})
    assert main(["traces", "get", TRACE_ID, "--json", "--api", api.url]) == 0
    assert json.loads(capsys.readouterr().out) == TRACE


def test_get_not_found(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]}
    api.reply(f"/api/traces/{TRACE_ID}", 404, body)
    assert main(["traces", "get", TRACE_ID, "--api", api.url]) == 1
    assert f"trace {TRACE_ID} not found" in capsys.readouterr().err


def test_get_server_error_message(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"data": None, "errors": [{"code": 500, "msg": "storage closed"}]}
    api.reply(f"/api/traces/{TRACE_ID}", 500, body)
    assert main(["traces", "get", TRACE_ID, "--api", api.url]) == 1
    err = capsys.readouterr().err
    assert "HTTP 500" in err and "storage closed" in err


def test_get_rejects_non_hex_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["traces", "get", "not-a-trace"]) == 2
    assert "hex trace ID" in capsys.readouterr().err


def test_search_sends_params_and_prints_table(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.reply("/api/trace-summaries", 200, {"data": SUMMARIES, "limit": 5})
    argv = ["traces", "search", "--service", "frontend", "--operation", "GET /checkout"]
    argv += ["--tag", "http.status_code=500", "--tag", "peer=a=b", "--min-duration", "100ms"]
    argv += ["--max-duration", "2s", "--since", "1h", "--limit", "5", "--api", api.url]
    assert main(argv) == 0
    assert api.query() == {
        "service": ["frontend"],
        "operation": ["GET /checkout"],
        "tag": ["http.status_code:500", "peer:a=b"],
        "minDuration": ["100ms"],
        "maxDuration": ["2s"],
        "since": ["1h"],
        "limit": ["6"],  # one more than shown, to tell whether more match
    }
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TRACE", "ID", "START", "(UTC)", "DURATION", "SPANS", "ERRORS", "ROOT"]
    assert lines[1].split() == [TRACE_ID, utc_time(T0), "12.3ms", "4", "1", "frontend:", "GET", "/checkout"]
    second = [SUMMARIES[1]["traceID"], utc_time(T0 + 3_000_000), "1.20s", "17", "0", "cart:", "cart.get"]
    assert lines[2].split() == second
    assert len(lines) == 3


def test_search_without_filters_sends_no_params(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.reply("/api/trace-summaries", 200, {"data": [], "limit": 20})
    assert main(["traces", "search", "--api", api.url]) == 0
    assert api.requests == ["/api/trace-summaries"]
    captured = capsys.readouterr()
    assert captured.out == "" and "no traces found" in captured.err


def test_search_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.reply("/api/trace-summaries", 200, {"data": SUMMARIES, "limit": 20})
    assert main(["traces", "search", "--json", "--api", api.url]) == 0
    assert json.loads(capsys.readouterr().out) == SUMMARIES


def test_api_url_from_env(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api.reply("/api/trace-summaries", 200, {"data": [], "limit": 20})
    monkeypatch.setenv("SIDECAR_API_URL", api.url)
    assert main(["traces", "search"]) == 0
    assert api.requests == ["/api/trace-summaries"]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, {"errors": [{"code": 400, "msg": "unknown service"}]}, "unknown service"),
        (400, {"error": {"message": "limit too large"}}, "limit too large"),
        (502, "upstream went away", "upstream went away"),
    ],
)
def test_search_http_errors(
    api: FakeApi, capsys: pytest.CaptureFixture[str], status: int, body: object, message: str
) -> None:
    api.reply("/api/trace-summaries", status, body)
    assert main(["traces", "search", "--api", api.url]) == 1
    err = capsys.readouterr().err
    assert f"HTTP {status}" in err and message in err


def test_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # bound but not listening: connecting is refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert main(["traces", "search", "--api", url]) == 1
    assert f"sidecar: cannot reach the API at {url}: " in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["traces", "search", "--tag", "novalue"],
        ["traces", "search", "--tag", "=v"],
        ["traces", "search", "--min-duration", "100"],
        ["traces", "search", "--limit", "0"],
        ["traces", "search", "--api", "localhost:16686"],
        ["traces"],
        [],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["traces", "search", "--since", "yesterday"], "argument --since: invalid duration 'yesterday'"),
        (["traces", "search", "--since", "0s"], "argument --since: must be greater than zero"),
        (["traces", "search", "--since", "5d"], "argument --since: unknown unit 'd'"),
        (["traces", "search", "--min-duration=-1s"], "argument --min-duration: must not be negative"),
        (["traces", "search", "--start", "tomorrow"], "argument --start: expected an RFC 3339 time"),
        (["traces", "search", "--end", "2024-02-30T00:00:00Z"], "argument --end: expected an RFC 3339 time"),
        (["traces", "search", "--end", "2024-01-02T03:04:05"], "argument --end: expected an RFC 3339 time"),
        (
            ["traces", "search", "--start", "1700000000000000"],
            "argument --start: '1700000000000000' is out of",
        ),
        (
            ["traces", "search", "--start", "1", "--since", "1h"],
            "argument --since: not allowed with argument --start",
        ),
        (
            ["traces", "search", "--start", "2024-01-02T00:00:00Z", "--end", "1704067200"],
            "--start (2024-01-02T00:00:00Z) is after --end (2024-01-01T00:00:00Z)",
        ),
        (["dependencies", "--since", "yesterday"], "argument --since: invalid duration 'yesterday'"),
        (["operations"], "the following arguments are required: SERVICE"),
    ],
)
def test_malformed_input_exits_2_before_any_request(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """The API URL refuses connections: reaching it would exit 1 with "cannot reach"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert main([*argv, "--api", f"http://127.0.0.1:{sock.getsockname()[1]}"]) == 2
    err = capsys.readouterr().err
    assert message in err and "cannot reach" not in err


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    assert importlib.metadata.version("sidecar") == pyproject["project"]["version"]
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"sidecar {pyproject['project']['version']}\n"


def test_human_duration() -> None:
    assert [human_duration(us) for us in (850, 12_345, 999_999, 1_200_000, 125_000_000, 3_720_000_000)] == [
        "850µs",
        "12.3ms",
        "1.00s",
        "1.20s",
        "2m05s",
        "1h02m",
    ]


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """Replace sidecar.server so serve tests never bind ports; records the configs it was given."""
    calls: list[Config] = []
    module = types.ModuleType("sidecar.server")

    def serve(config: Config) -> int:
        calls.append(config)
        return 0

    module.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sidecar.server", module)
    return calls


def test_serve_config_error_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_server: list[Config]
) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text("storage:\n  trace:\n    retention_days: 3\nlog_level: loud\n", encoding="utf-8")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sidecar: config error:\n")
    assert "storage.trace.retention_days: unknown key" in err and "log_level:" in err
    assert fake_server == []


def test_serve_flag_error_exits_2(capsys: pytest.CaptureFixture[str], fake_server: list[Config]) -> None:
    assert main(["serve", "--otlp-grpc", "nope"]) == 2
    assert "receivers.otlp.grpc.endpoint: invalid endpoint 'nope'" in capsys.readouterr().err
    assert fake_server == []


def test_serve_passes_merged_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_server: list[Config]
) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text("log_level: debug\napi:\n  endpoint: 127.0.0.1:26686\n", encoding="utf-8")
    monkeypatch.setenv("SIDECAR_CONFIG", str(config))
    monkeypatch.setenv("SIDECAR_DATA_DIR", "/from/env")
    argv = ["serve", "--otlp-grpc", "127.0.0.1:5317", "--otlp-http", "[::1]:5318", "--log-level", "warning"]
    assert main(argv) == 0
    (loaded,) = fake_server
    assert loaded.log_level == "warning"
    assert loaded.data_dir == "/from/env"
    assert loaded.api.endpoint == "127.0.0.1:26686"
    assert loaded.receivers.otlp.grpc.endpoint == "127.0.0.1:5317"
    assert loaded.receivers.otlp.http.endpoint == "[::1]:5318"
