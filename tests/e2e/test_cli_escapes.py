"""Terminal escapes in stored data against a live ``sidecar serve``: ingest takes no auth, so a log
body, event name, property, span name, tag or status may hold ESC/OSC/CSI sequences and newlines.
Every table and line printer (``logs search``, ``logs tail``, ``events list``, the analytics tables,
``traces get``, ``traces search``, ``services``) shows them as visible escapes (``\\x1b``, ``\\n``)
through ``sidecar.cli.output.printable``; ``--json`` and ``--csv`` stay the API's bytes.
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
from sidecar.cli.output import printable
from tests.e2e.harness import (
    Sidecar,
    http_request,
    jaeger_id,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
    subprocess_env,
)
from tests.e2e.test_log_queries import send

MS = 1_000_000
OSC = "\x1b]0;pwned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J"  # clears the screen
C1 = "\x9b"  # a one-byte CSI to some terminals
HOSTILE = f"{OSC}hi{CLEAR}there{C1}\x7f"
SHOWN = "\\x1b]0;pwned\\x07hi\\x1b[2Jthere\\x9b\\x7f"
SVC = f"esc{CLEAR}svc"  # a service name is the sender's to choose too


def raw_controls(text: str) -> list[str]:
    """Control characters (C0 but the newlines between lines, DEL, C1) in ``text``."""
    return [c for c in text if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F)]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class Data:
    trace = ""
    span = b""
    start = 0


@pytest.fixture(scope="module")
def data(sidecar: Sidecar) -> Data:
    now = time.time_ns()
    d = Data()
    tid, d.span = new_trace_id(), new_span_id()
    d.trace, d.start = jaeger_id(tid), now - 60_000 * MS
    root = make_span(
        tid,
        f"GET /{OSC}",
        d.start,
        100 * MS,
        span_id=d.span,
        attrs={"note": HOSTILE},
        status=2,
        status_message=f"failed{CLEAR}\nsecond line",
        events=[(f"ev{OSC}", d.start + 5 * MS, {"k": "v"})],
    )
    sidecar.export(make_request(SVC, [root]))
    send(
        sidecar,
        SVC,
        [
            {"body": HOSTILE, "time": now - 2 * MS, "severity": 17},
            {
                "body": "line one\nline two",
                "time": d.start + 10 * MS,
                "severity": 9,
                "trace": d.trace,
                "span": d.span.hex(),
            },
        ],
    )
    events = [
        {"name": f"esc{OSC}name", "id": "esc-1", "user_id": "u1", "properties": {"p": HOSTILE}},
        {"name": "esc.plain", "id": "esc-2", "user_id": "u2", "properties": {"screen": f"a{CLEAR}"}},
    ]
    body = "".join(json.dumps(e) + "\n" for e in events).encode()
    status, _, answer = http_request(
        "POST", f"{sidecar.http_url}/v1/events", body, {"Content-Type": "application/x-ndjson"}
    )
    assert status == 200 and json.loads(answer)["accepted"] == 2, answer
    return d


def test_printable_escapes_controls_and_nothing_else() -> None:
    assert printable(HOSTILE) == SHOWN
    assert printable("a\nb\tc\rd\x00") == "a\\nb\\tc\\rd\\x00"
    assert printable("héllo ☃ 100µs a\\nb") == "héllo ☃ 100µs a\\nb"  # text, and backslashes, as they are
    assert printable(printable(HOSTILE)) == SHOWN


def test_logs_search_lines(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "logs", "search", "--api", sidecar.api_url, "--service", SVC)
    assert code == 0, err
    assert raw_controls(out) == []
    lines = out.splitlines()
    assert len(lines) == 2  # a body's newline does not start a line
    assert lines[0].endswith(f"  ERROR  esc\\x1b[2Jsvc  {SHOWN}")
    assert "line one\\nline two" in lines[1]
    code, out, _ = run(capsys, "logs", "search", "--json", "--api", sidecar.api_url, "--service", SVC)
    assert code == 0 and json.loads(out)["data"][0]["body"] == HOSTILE


def test_logs_tail_lines(sidecar: Sidecar, data: Data) -> None:
    svc = "esc-tail"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "logs", "tail", "--api", sidecar.api_url, "--service", svc],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            send(sidecar, svc, [{"body": HOSTILE, "time": time.time_ns(), "severity": 13}])
            time.sleep(0.5)
        assert lines, "the tail printed nothing"
        text = lines[0].decode()
        assert text.rstrip("\n").endswith(f"  WARN   esc-tail  {SHOWN}")
        assert raw_controls(text) == []
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_events_list_table(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "events", "list", "--api", sidecar.api_url, "--user", "u1")
    assert code == 0, err
    assert raw_controls(out) == []
    _, row = out.splitlines()
    assert "esc\\x1b]0;pwned\\x07name  u1" in row and f"p={SHOWN}" in row
    code, out, _ = run(capsys, "events", "list", "--json", "--api", sidecar.api_url, "--user", "u1")
    assert code == 0 and json.loads(out)["data"][0]["properties"]["p"] == HOSTILE


def test_analytics_tables(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    api = sidecar.api_url
    code, out, err = run(capsys, "events", "summary", "--api", api, "--since", "1h")
    assert code == 0, err
    assert raw_controls(out) == [] and "esc\\x1b]0;pwned\\x07name" in out
    argv = [
        "events",
        "trends",
        "--api",
        api,
        "--event",
        "esc.plain",
        "--breakdown",
        "screen",
        "--since",
        "1h",
    ]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert raw_controls(out) == [] and "screen=a\\x1b[2J" in out.splitlines()[0]
    code, out, err = run(capsys, *argv, "--csv")  # the API's CSV, unchanged
    assert code == 0, err
    assert CLEAR in out


def test_traces_get_keeps_one_line_per_note(
    sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "traces", "get", data.trace, "--api", sidecar.api_url)
    assert code == 0, err
    assert raw_controls(out) == []
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith(data.span.hex()))
    assert "esc\\x1b[2Jsvc  GET /\\x1b]0;pwned\\x07" in row
    notes = [line.strip() for line in lines[lines.index(row) + 1 :]]
    assert notes[0] == "| status: failed\\x1b[2J\\nsecond line"
    assert notes[1] == f"| tags: note={SHOWN}"
    # The span event and the log record's multi-line body: one note line each, the tree intact.
    assert notes[2].startswith("| event ev\\x1b]0;pwned\\x07 at 5.000ms")
    assert notes[3].startswith("| event line one\\nline two at 10.000ms")
    assert len(notes) == 4
    code, out, _ = run(capsys, "traces", "get", data.trace, "--json", "--api", sidecar.api_url)
    assert code == 0 and json.loads(out)["spans"][0]["operationName"] == f"GET /{OSC}"


def test_traces_search_and_services(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "traces", "search", "--api", sidecar.api_url, "--service", SVC)
    assert code == 0, err
    assert raw_controls(out) == []
    assert out.splitlines()[1].endswith("esc\\x1b[2Jsvc: GET /\\x1b]0;pwned\\x07")
    code, out, err = run(capsys, "services", "--api", sidecar.api_url)
    assert code == 0, err
    assert raw_controls(out) == [] and "esc\\x1b[2Jsvc" in out.splitlines()
