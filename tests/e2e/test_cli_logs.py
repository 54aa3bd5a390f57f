"""``sidecar logs search|tail`` against a live ``sidecar serve``, logs sent over OTLP/HTTP: each filter,
the line format, JSON output, exit 2 before any request, exit 1 with the server's message, and a tail
in a subprocess that prints a record sent after it opened and exits 130 on Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from sidecar.cli.main import main
from tests.e2e.harness import Sidecar, free_ports, subprocess_env
from tests.e2e.test_log_queries import send

NOW = time.time_ns()
MIN = 60 * 10**9
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SVC = "cli-logs"


@pytest.fixture(scope="module")
def api(sidecar: Sidecar) -> str:
    send(
        sidecar,
        SVC,
        [
            {"body": "old startup", "time": NOW - 120 * MIN, "severity": 9},
            {"body": "cart loaded", "time": NOW - 5 * MIN, "severity": 9},
            {"body": "payment DECLINED order 17", "time": NOW - 4 * MIN, "severity": 17},
            {"body": "slow query 250ms", "time": NOW - 3 * MIN, "severity": 13, "trace": TRACE},
            {"body": "debug detail", "time": NOW - 2 * MIN, "severity": 5, "trace": TRACE},
        ],
    )
    send(
        sidecar, "cli-logs-other", [{"body": "payment declined elsewhere", "time": NOW - MIN, "severity": 17}]
    )
    return sidecar.api_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def bodies(capsys: pytest.CaptureFixture[str], api: str, *argv: str) -> list[str]:
    code, out, err = run(capsys, "logs", "search", "--json", "--api", api, *argv)
    assert code == 0, err
    return [r["body"] for r in json.loads(out)["data"]]


def test_each_filter(capsys: pytest.CaptureFixture[str], api: str) -> None:
    assert bodies(capsys, api, "--service", SVC) == [
        "debug detail",
        "slow query 250ms",
        "payment DECLINED order 17",
        "cart loaded",
        "old startup",
    ]
    assert bodies(capsys, api, "--service", SVC, "--severity", "warn") == [
        "slow query 250ms",
        "payment DECLINED order 17",
    ]
    assert bodies(capsys, api, "--service", SVC, "--severity", "17") == ["payment DECLINED order 17"]
    assert bodies(capsys, api, "--service", SVC, "--grep", "declined") == ["payment DECLINED order 17"]
    assert set(bodies(capsys, api, "--grep", "payment declined")) >= {
        "payment DECLINED order 17",
        "payment declined elsewhere",
    }
    assert bodies(capsys, api, "--service", SVC, "--regex", r"\d+ms$") == ["slow query 250ms"]
    assert bodies(capsys, api, "--trace-id", TRACE.upper()) == ["debug detail", "slow query 250ms"]
    assert "old startup" not in bodies(capsys, api, "--service", SVC, "--since", "1h")
    assert len(bodies(capsys, api, "--service", SVC, "--since", "1h")) == 4
    assert bodies(capsys, api, "--service", SVC, "--limit", "2") == ["debug detail", "slow query 250ms"]


def test_lines_and_more_note(capsys: pytest.CaptureFixture[str], api: str) -> None:
    code, out, err = run(capsys, "logs", "search", "--api", api, "--service", SVC, "--limit", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("  DEBUG  cli-logs  debug detail  trace=4bf92f35")
    assert lines[1].endswith("  WARN   cli-logs  slow query 250ms  trace=4bf92f35")
    assert lines[0][:4].isdigit() and lines[0][23] == "Z"
    assert "more may match" in err
    code, out, err = run(capsys, "logs", "search", "--api", api, "--service", "nobody-here")
    assert (code, out) == (0, "")
    assert "no log records found" in err


def test_json_is_the_api_answer(capsys: pytest.CaptureFixture[str], api: str, sidecar: Sidecar) -> None:
    code, out, err = run(capsys, "logs", "search", "--json", "--api", api, "--service", SVC)
    assert code == 0, err
    status, doc = sidecar.get_json("/api/logs", {"service": SVC})
    assert status == 200
    assert json.loads(out) == doc


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--severity", "loud"], "--severity"),
        (["--severity", "25"], "--severity"),
        (["--regex", "("], "--regex"),
        (["--trace-id", "xyz"], "--trace-id"),
        (["--since", "soon"], "--since"),
        (["--limit", "0"], "--limit"),
        (["--api", "ftp://x"], "--api"),
    ],
)
def test_bad_flags_exit_2_before_any_request(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    (port,) = free_ports(1)  # nothing listens there: a request would fail with exit 1
    code, out, err = run(capsys, "logs", "search", "--api", f"http://127.0.0.1:{port}", *argv)
    assert code == 2
    assert flag in err
    assert out == ""


def test_server_400_exits_1_with_its_message(capsys: pytest.CaptureFixture[str], api: str) -> None:
    code, out, err = run(capsys, "logs", "search", "--api", api, "--limit", "20000")
    assert code == 1
    assert out == ""
    assert "API error (HTTP 400)" in err and "limit" in err


def test_unreachable_api_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    (port,) = free_ports(1)
    code, _, err = run(capsys, "logs", "search", "--api", f"http://127.0.0.1:{port}")
    assert code == 1
    assert "cannot reach the API" in err


def test_tail_prints_new_records_until_ctrl_c(sidecar: Sidecar, api: str) -> None:
    svc = "cli-logs-tail"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sidecar",
            "logs",
            "tail",
            "--api",
            api,
            "--service",
            svc,
            "--severity",
            "warn",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            # the tail sees records written after it opened: send until one shows up
            send(sidecar, svc, [{"body": "ignored info", "time": time.time_ns(), "severity": 9}])
            send(sidecar, svc, [{"body": "tail me", "time": time.time_ns(), "severity": 13, "trace": TRACE}])
            time.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert lines, "the tail printed nothing"
        assert "  WARN   cli-logs-tail  tail me  trace=4bf92f35" in lines[0]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        reader.join(timeout=5)
        assert all("tail me" in line for line in lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tail_bad_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "logs", "tail", "--regex", "[")
    assert code == 2
    assert "--regex" in err


@pytest.mark.parametrize("argv", [["--since", "1h"], ["--limit", "5"], ["--limit=5"], ["--since"]])
def test_tail_refuses_since_and_limit_with_a_hint(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    (port,) = free_ports(1)  # nothing listens there: a request would fail with exit 1
    code, out, err = run(capsys, "logs", "tail", "--api", f"http://127.0.0.1:{port}", *argv)
    assert (code, out) == (2, "")
    assert err.startswith("usage: sidecar logs tail ")
    assert "follows new records from now and takes no --since or --limit" in err
    assert "sidecar logs search --since" in err
    assert "unrecognized arguments" not in err


def test_severity_warning_is_warn(capsys: pytest.CaptureFixture[str], api: str) -> None:
    warn = bodies(capsys, api, "--service", SVC, "--severity", "warn")
    assert warn == ["slow query 250ms", "payment DECLINED order 17"]
    assert bodies(capsys, api, "--service", SVC, "--severity", "warning") == warn
    assert bodies(capsys, api, "--service", SVC, "--severity", "WARNING") == warn


def test_a_reader_that_stops_early_gets_no_traceback(api: str) -> None:
    """``sidecar logs search | head -1``: the pipe closes under the CLI, which stops quietly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "logs", "search", "--api", api, "--service", SVC],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env({}),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as head does once it has its line: every write now fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
