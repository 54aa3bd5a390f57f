"""The query commands against a live sidecar: real spans in over OTLP, the CLI's output out.

The data set (timestamps relative to "now", so the default windows hold it):

    cli-shop  GET /checkout  SERVER 120ms  3 h ago, http.method=GET http.route=/checkout customer.note=<300 n>
              └ charge       CLIENT  70ms  peer.service=bank, status ERROR "card declined",
                                           event "exception" 10ms in: exception.type, exception.message
    cli-bank    └ authorize  SERVER  10ms  (so cli-shop -> cli-bank is a dependency, counted on arrival)
    cli-window  three one-span traces "tick" at now-300s, now-200s and now-100s
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sidecar.cli.main import main
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    Sidecar,
    jaeger_id,
    make_request,
    make_span,
    merge_requests,
    new_span_id,
    new_trace_id,
    subprocess_env,
)

MS = 1_000_000
S = 1_000 * MS
NOTE = "n" * 300
MAXIMUM = "the server's maximum (api.max_search_limit)"


@dataclass
class Data:
    now: int
    checkout: str  # Jaeger spelling of the checkout trace's ID
    checkout_start: int  # ns
    ticks: list[str]  # the cli-window traces' full IDs, oldest first
    tick_starts: list[int]  # their start times, ns


def export_ticks(sidecar: Sidecar, service: str, starts: list[int]) -> list[str]:
    ids = [new_trace_id() for _ in starts]
    spans = [make_span(tid, "tick", start, MS) for tid, start in zip(ids, starts, strict=True)]
    sidecar.export(make_request(service, spans))
    return [tid.hex() for tid in ids]


@pytest.fixture(scope="module")
def data(sidecar: Sidecar) -> Data:
    now = time.time_ns()
    tid, root, charge = new_trace_id(), new_span_id(), new_span_id()
    t0 = now - 3 * 3600 * S
    shop = make_request(
        "cli-shop",
        [
            make_span(
                tid,
                "GET /checkout",
                t0,
                120 * MS,
                span_id=root,
                kind=Span.SPAN_KIND_SERVER,
                attrs={"http.method": "GET", "http.route": "/checkout", "customer.note": NOTE},
            ),
            make_span(
                tid,
                "charge",
                t0 + 40 * MS,
                70 * MS,
                span_id=charge,
                parent=root,
                kind=Span.SPAN_KIND_CLIENT,
                attrs={"peer.service": "bank"},
                status=Status.STATUS_CODE_ERROR,
                status_message="card declined",
                events=[
                    (
                        "exception",
                        t0 + 50 * MS,
                        {"exception.type": "ValueError", "exception.message": "insufficient funds"},
                    )
                ],
            ),
        ],
    )
    bank = make_request(
        "cli-bank",
        [make_span(tid, "authorize", t0 + 45 * MS, 10 * MS, parent=charge, kind=Span.SPAN_KIND_SERVER)],
    )
    sidecar.export(merge_requests(shop, bank))
    starts = [now - 300 * S, now - 200 * S, now - 100 * S]
    return Data(now, jaeger_id(tid), t0, export_ticks(sidecar, "cli-window", starts), starts)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_on_terminal(argv: list[str], columns: int) -> tuple[int, str]:
    """``python -m sidecar`` with stdout on a pseudo-terminal ``columns`` wide; returns (status, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {
        k: v
        for k, v in subprocess_env({"PYTHONIOENCODING": "utf-8"}).items()
        if k not in ("COLUMNS", "LINES")
    }
    chunks: list[bytes] = []
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", *argv], stdin=subprocess.DEVNULL, stdout=slave, env=env
        )
        os.close(slave)
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(30)
    finally:
        os.close(master)
    return code, b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


def under(lines: list[str], operation: str) -> list[str]:
    """The detail lines (``| ...``) printed under the span row of ``operation``."""
    start = next(i for i, line in enumerate(lines) if f" {operation} " in line)
    details = []
    for line in lines[start + 1 :]:
        if not line.lstrip().startswith("| "):
            break
        details.append(line.lstrip()[2:])
    return details


# ---------------------------------------------------------------------------------------------
# traces get


def test_get_shows_status_tags_and_events(
    sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "traces", "get", data.checkout, "--api", sidecar.api_url)
    assert code == 0
    lines = out.splitlines()
    assert (
        "started "
        + dt.datetime.fromtimestamp(data.checkout_start // S, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        in lines[0]
    )
    assert under(lines, "GET /checkout") == [
        f"tags: http.method=GET http.route=/checkout customer.note={NOTE}"
    ]
    assert under(lines, "charge") == [
        "status: card declined",
        "tags: peer.service=bank",  # span.kind, otel.status_code, error, otel.scope.* are derived: hidden
        'event exception at 50.000ms: exception.type=ValueError exception.message="insufficient funds"',
    ]
    assert under(lines, "authorize") == []
    charge_row = next(line for line in lines if " charge " in line)
    detail = next(line for line in lines if "| status:" in line)
    assert detail.index("|") == charge_row.index("charge")  # details line up with their span's operation


def test_get_full_shows_everything(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "traces", "get", data.checkout, "--full", "--api", sidecar.api_url)
    assert code == 0
    lines = out.splitlines()
    charge = under(lines, "charge")
    tags = next(line for line in charge if line.startswith("tags: ")).split()
    for tag in ("peer.service=bank", "span.kind=client", "otel.status_code=ERROR", "error=true"):
        assert tag in tags
    assert "otel.scope.name=e2e-tests" in tags and 'otel.status_description="card' in tags
    assert any(line.startswith("reference: CHILD_OF ") for line in charge)
    processes = lines[lines.index("Process tags:") + 1 :]
    assert {line.split(":")[0].strip() for line in processes} == {"cli-shop", "cli-bank"}


def test_get_cuts_details_to_the_terminal_only(sidecar: Sidecar, data: Data) -> None:
    code, out = run_on_terminal(["traces", "get", data.checkout, "--api", sidecar.api_url], columns=80)
    assert code == 0
    lines = out.splitlines()
    (tags,) = under(lines, "GET /checkout")
    assert tags.startswith("tags: http.method=GET") and tags.endswith("…")
    assert all(len(line) <= 80 for line in lines if "| " in line)
    assert max(len(line) for line in lines) > 80  # the table itself is never cut
    assert under(lines, "charge")[0] == "status: card declined"

    code, out = run_on_terminal(
        ["traces", "get", data.checkout, "--full", "--api", sidecar.api_url], columns=80
    )
    assert code == 0
    assert f"customer.note={NOTE}" in out  # --full never cuts


# ---------------------------------------------------------------------------------------------
# services, operations, dependencies


def test_services(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "services", "--api", sidecar.api_url)
    assert code == 0
    assert out.splitlines() == ["cli-bank", "cli-shop", "cli-window"]
    code, out, _ = run(capsys, "services", "--json", "--api", sidecar.api_url)
    assert code == 0 and sorted(json.loads(out)) == ["cli-bank", "cli-shop", "cli-window"]


def test_operations(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "operations", "cli-shop", "--api", sidecar.api_url)
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["OPERATION", "SPAN", "KIND"],
        ["GET", "/checkout", "server"],
        ["charge", "client"],
    ]
    code, out, err = run(capsys, "operations", "no-such-service", "--api", sidecar.api_url)
    assert code == 0 and out == ""
    assert "no operations found for service 'no-such-service'" in err and "sidecar services" in err


def test_dependencies(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dependencies", "--api", sidecar.api_url)  # the server's default: a day
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["PARENT", "CHILD", "CALLS"],
        ["cli-shop", "cli-bank", "1"],
    ]
    # the server counts calls per hour of arrival, so any window ending now holds this one
    code, out, _ = run(capsys, "dependencies", "--since", "1m", "--json", "--api", sidecar.api_url)
    assert code == 0 and json.loads(out) == [{"parent": "cli-shop", "child": "cli-bank", "callCount": 1}]


# ---------------------------------------------------------------------------------------------
# traces search


def rfc3339(ns: int, offset_hours: int = 0) -> str:
    zone = dt.timezone(dt.timedelta(hours=offset_hours))
    return dt.datetime.fromtimestamp(ns / S, zone).isoformat(timespec="microseconds").replace("+00:00", "Z")


def found(capsys: pytest.CaptureFixture[str], sidecar: Sidecar, *argv: str) -> list[str]:
    code, out, err = run(
        capsys, "traces", "search", "--service", "cli-window", "--json", "--api", sidecar.api_url, *argv
    )
    assert code == 0, err
    return [summary["traceID"] for summary in json.loads(out)]


def test_search_start_end(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    oldest, middle, newest = data.ticks
    now = data.now
    assert found(capsys, sidecar) == [newest, middle, oldest]
    assert found(capsys, sidecar, "--start", rfc3339(now - 250 * S), "--end", rfc3339(now - 150 * S, 2)) == [
        middle
    ]
    assert found(capsys, sidecar, "--start", f"{(now - 150 * S) / S:.3f}") == [newest]
    assert found(capsys, sidecar, "--end", str((now - 250 * S) // S)) == [oldest]
    # --since with --end: the window ends at --end, not now
    assert found(capsys, sidecar, "--since", "2m", "--end", rfc3339(now - 150 * S)) == [middle]
    assert found(capsys, sidecar, "--since", "150s") == [newest]


def test_search_start_column_is_utc(sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "traces", "search", "--service", "cli-window", "--api", sidecar.api_url)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[2:4] == ["START", "(UTC)"]
    starts = [row.split()[1] for row in rows]
    expected = [
        dt.datetime.fromtimestamp(ns // S, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for ns in data.tick_starts
    ]
    assert starts == expected[::-1]
    # what the column shows is valid input for --start
    assert found(capsys, sidecar, "--start", starts[0]) == [data.ticks[-1]]


@pytest.mark.parametrize(
    ("limit", "rows", "note"),
    [
        ("1", 1, "sidecar: showing the newest trace; more match, raise --limit to see them\n"),
        ("2", 2, "sidecar: showing the newest 2 traces; more match, raise --limit to see them\n"),
        ("3", 3, ""),  # exactly as many as asked: nothing was left out
        ("5", 3, ""),
    ],
)
def test_search_limit_note(
    sidecar: Sidecar, data: Data, capsys: pytest.CaptureFixture[str], limit: str, rows: int, note: str
) -> None:
    code, out, err = run(
        capsys, "traces", "search", "--service", "cli-window", "--limit", limit, "--api", sidecar.api_url
    )
    assert code == 0
    assert len(out.splitlines()) == 1 + rows
    assert err == note
    assert len(found(capsys, sidecar, "--limit", limit)) == rows


def test_search_limit_note_at_server_limits(
    sidecar_factory: SidecarFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    small = sidecar_factory(
        "small-limits", env={"SIDECAR_API__DEFAULT_SEARCH_LIMIT": "2", "SIDECAR_API__MAX_SEARCH_LIMIT": "3"}
    )
    now = time.time_ns()
    export_ticks(small, "ticks", [now - 3 * S, now - 2 * S, now - S])
    code, out, err = run(capsys, "traces", "search", "--api", small.api_url)
    assert code == 0 and len(out.splitlines()) == 3
    assert (
        err
        == "sidecar: showing the newest 2 traces, the server's default limit; more may match, use --limit N\n"
    )
    # --limit 3 is the maximum: the client cannot ask for one more, so it cannot tell
    code, out, err = run(capsys, "traces", "search", "--limit", "3", "--api", small.api_url)
    assert code == 0 and len(out.splitlines()) == 4
    assert err == f"sidecar: showing the newest 3 traces, {MAXIMUM}; more may match\n"
