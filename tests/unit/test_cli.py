"""CLI behaviour in-process that needs no running sidecar: argument validation (exit 2 before any
request), an unreachable API, --version, formatting helpers and how ``serve`` hands over its config.

What the query commands send and print against a real query API is tested end to end, against a
live sidecar: tests/e2e/test_cli_trace_view.py and tests/e2e/test_cli_live.py.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import sys
import tomllib
import types
from pathlib import Path

import pytest

from sidecar.cli.main import main
from sidecar.cli.output import human_duration
from sidecar.config.model import Config


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SIDECAR_* settings or proxies from the developer's shell may leak into the tests."""
    for name in list(os.environ):
        if name.startswith("SIDECAR_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


def test_get_rejects_non_hex_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["traces", "get", "not-a-trace"]) == 2
    assert "hex trace ID" in capsys.readouterr().err


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


def test_page_size_bound_is_the_events_api_maximum() -> None:
    """``--page-size`` is checked against a copy of the API's maximum; the two must not drift."""
    from sidecar.api.events import MAX_LIMIT
    from sidecar.cli.argtypes import MAX_EVENTS_PAGE

    assert MAX_EVENTS_PAGE == MAX_LIMIT
