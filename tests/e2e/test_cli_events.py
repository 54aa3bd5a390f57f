"""``sidecar events list|export`` against a live sidecar: events in over ``POST /v1/events``, the CLI's
output compared with what ``GET /api/events`` answers for the same filters.

The data set: 14 events, one every 5 hours back from about now (so they span ~3 days), with names
signup/view/pay in turn, users u0..u2, sessions s0/s1, services web/api, properties
``plan`` (free/pro), ``amount`` (10 * i) and, on one event, a formula-looking ``note``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sidecar.cli.events import CsvPages
from sidecar.cli.main import main
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import Sidecar, free_ports, http_request, subprocess_env

HOUR = 3600
NOW = int(time.time())
COUNT = 14
NAMES = ("signup", "view", "pay")


def event(i: int) -> dict[str, Any]:
    props: dict[str, Any] = {"plan": "pro" if i % 2 else "free", "amount": 10 * i}
    if i == 4:
        props["note"] = "=HYPERLINK(1)"
    return {
        "id": f"cli-ev-{i:02d}",
        "name": NAMES[i % 3],
        "timestamp": NOW - (COUNT - i) * 5 * HOUR,
        "user_id": f"u{i % 3}",
        "session_id": f"s{i % 2}",
        "service": "web" if i < 7 else "api",
        "properties": props,
    }


def post(sidecar: Sidecar, events: list[dict[str, Any]]) -> None:
    body = "".join(json.dumps(e) + "\n" for e in events).encode()
    status, _, answer = http_request(
        "POST", f"{sidecar.http_url}/v1/events", body, {"Content-Type": "application/x-ndjson"}
    )
    assert status == 200, answer
    assert json.loads(answer)["accepted"] == len(events)


@pytest.fixture(scope="module")
def api(sidecar: Sidecar) -> str:
    post(sidecar, [event(i) for i in range(COUNT)])
    return sidecar.api_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def api_ids(sidecar: Sidecar, params: dict[str, Any]) -> list[str]:
    status, doc = sidecar.get_json("/api/events", params)
    assert status == 200, doc
    return [e["id"] for e in doc["data"]]


def cli_ids(capsys: pytest.CaptureFixture[str], api: str, *argv: str) -> list[str]:
    code, out, err = run(capsys, "events", "list", "--json", "--api", api, *argv)
    assert code == 0, err
    return [e["id"] for e in json.loads(out)["data"]]


def rfc3339(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@pytest.mark.parametrize(
    ("argv", "params", "expected"),
    [
        ((), {}, COUNT),
        (("--name", "pay"), {"name": "pay"}, 4),
        (("--user", "u1"), {"user_id": "u1"}, 5),
        (("--session", "s0"), {"session_id": "s0"}, 7),
        (("--service", "api"), {"service": "api"}, 7),
        (("--prop", "plan=pro"), {"prop.plan": "pro"}, 7),
        (("--prop", "plan=pro", "--prop", "amount=30"), {"prop.plan": "pro", "prop.amount": "30"}, 1),
        (("--order", "asc", "--limit", "3"), {"order": "asc", "limit": 3}, 3),
        (("--user", "u0", "--order", "asc"), {"user_id": "u0", "order": "asc"}, 5),
        (
            ("--from", rfc3339(NOW - 30 * HOUR), "--to", str(NOW - 10 * HOUR)),
            {"from": (NOW - 30 * HOUR) * 10**9, "to": (NOW - 10 * HOUR) * 10**9},
            4,
        ),
    ],
)
def test_list_filters_match_the_api(
    sidecar: Sidecar,
    api: str,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    params: dict[str, Any],
    expected: int,
) -> None:
    want = api_ids(sidecar, params)
    assert len(want) == expected
    assert cli_ids(capsys, api, *argv) == want


def test_since_takes_days(sidecar: Sidecar, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``1d`` is 24h: the events of the last day, i.e. those within 24 hours of now (5h apart)."""
    day = cli_ids(capsys, api, "--since", "1d")
    assert day == cli_ids(capsys, api, "--since", "24h")
    assert day == [f"cli-ev-{i:02d}" for i in range(COUNT - 1, COUNT - 5, -1)]  # 5, 10, 15, 20 h ago
    assert len(cli_ids(capsys, api, "--since", "1d12h")) == 7  # up to 35 h ago
    assert len(cli_ids(capsys, api, "--since", "7d")) == COUNT


def test_list_table(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "events", "list", "--name", "view", "--service", "web", "--api", api)
    assert code == 0 and err == ""
    header, *rows = out.splitlines()
    assert header.split() == ["TIME", "(UTC)", "NAME", "USER", "SERVICE", "PROPERTIES"]
    assert len(rows) == 2  # events 4 and 1, newest first
    time_4 = rfc3339(event(4)["timestamp"]).replace("Z", ".000Z")
    assert rows[0].split() == [time_4, "view", "u1", "web", "amount=40", "note==HYPERLINK(1)", "plan=free"]
    assert rows[1].split()[1:] == ["view", "u1", "web", "amount=10", "plan=pro"]


def test_list_notes_when_more_match(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "events", "list", "--limit", "2", "--api", api)
    assert code == 0 and len(out.splitlines()) == 3
    assert "sidecar: showing 2 events; more may match" in err
    code, out, err = run(capsys, "events", "list", "--name", "nothing-like-this", "--api", api)
    assert (code, out, err) == (0, "", "no events found\n")


def test_list_json_is_the_api_answer(sidecar: Sidecar, api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "events", "list", "--json", "--limit", "5", "--api", api)
    assert code == 0
    assert json.loads(out) == sidecar.get_json("/api/events", {"limit": 5})[1]


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_export_walks_every_page(
    sidecar: Sidecar, api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str, order: str
) -> None:
    """Pages of 3 give the same bytes as one page of everything: each event once, the header once."""
    out = tmp_path / f"events.{fmt}"
    argv = ["events", "export", "--format", fmt, "--output", str(out), "--page-size", "3", "--order", order]
    code, stdout, err = run(capsys, *argv, "--api", api)
    assert (code, stdout, err) == (0, "", "")  # not a terminal: no progress output
    status, whole = sidecar.get("/api/events", {"format": fmt, "order": order, "limit": 10_000})
    assert status == 200
    assert out.read_bytes() == whole
    assert not (tmp_path / f"events.{fmt}.part").exists()
    if fmt == "csv":
        lines = whole.decode().split("\r\n")
        assert lines[0] == "timestamp,name,user_id,session_id,service,id,amount,note,plan"
        assert lines.count(lines[0]) == 1
        assert "'=HYPERLINK(1)" in whole.decode()
        ids = [line.split(",")[5] for line in lines[1:] if line]
    else:
        ids = [json.loads(line)["id"] for line in whole.decode().splitlines()]
    assert sorted(ids) == [f"cli-ev-{i:02d}" for i in range(COUNT)]


def test_export_filters_and_empty_result(
    sidecar: Sidecar, api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "pay.csv"
    argv = ["events", "export", "--name", "pay", "--since", "7d", "--format", "csv", "--output", str(out)]
    assert run(capsys, *argv, "--page-size", "1", "--api", api)[0] == 0
    _, whole = sidecar.get("/api/events", {"format": "csv", "name": "pay", "limit": 10_000})
    assert out.read_bytes() == whole and len(whole.splitlines()) == 5
    empty = tmp_path / "none.ndjson"
    argv = ["events", "export", "--user", "nobody", "--format", "ndjson", "--output", str(empty)]
    assert run(capsys, *argv, "--api", api)[0] == 0
    assert empty.read_bytes() == b""


def export_on_a_terminal(api: str, out: Path, *argv: str) -> str:
    """Run ``events export`` in a subprocess whose stderr is a pseudo-terminal; what it drew there."""
    master, slave = pty.openpty()
    command = ["events", "export", "--format", "ndjson", "--output", str(out), "--api", api, *argv]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=subprocess_env(),
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and stdout == b""
    return b"".join(chunks).decode()


def test_export_progress_on_a_terminal(api: str, tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: the progress line is drawn and ends with the page count."""
    out = tmp_path / "all.ndjson"
    shown = export_on_a_terminal(api, out, "--page-size", "5")
    assert f"\rexported {COUNT} events (3 pages)" in shown
    assert f"sidecar: exported {COUNT} events to {out}" in shown
    assert len(out.read_text().splitlines()) == COUNT


def test_export_progress_says_1_page_and_1_event(api: str, tmp_path: Path) -> None:
    """Singular where the count is one: not "(1 pages)" or "1 events"."""
    out = tmp_path / "all.ndjson"
    shown = export_on_a_terminal(api, out, "--page-size", "10000")  # the largest page the API gives
    assert f"\rexported {COUNT} events (1 page)" in shown and "pages" not in shown
    one = tmp_path / "one.ndjson"
    shown = export_on_a_terminal(api, one, "--prop", "amount=40")  # event 4 alone
    assert "\rexported 1 event (1 page)" in shown
    assert f"sidecar: exported 1 event to {one}" in shown
    assert len(one.read_text().splitlines()) == 1


NOWHERE = f"http://127.0.0.1:{free_ports(1)[0]}"  # a request would fail with exit 1, not 2


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["list", "--since", "7x"], "--since"),
        (["list", "--since", "0d"], "--since"),
        (["list", "--since", "-1h"], "--since"),
        (["list", "--from", "tomorrow"], "--from"),
        (["list", "--from", "2024-01-02T15:04:05"], "--from"),  # no zone
        (["list", "--to", "99999999999999"], "--to"),
        (["list", "--from", "1704207845", "--to", "1704207845"], "--from"),
        (["list", "--since", "1d", "--from", "1704207845"], "--from"),
        (["list", "--prop", "plan"], "--prop"),
        (["list", "--limit", "0"], "--limit"),
        (["list", "--order", "up"], "--order"),
        (["export", "--format", "xml", "--output", "x"], "--format"),
        (["export", "--format", "csv"], "--output"),
        (["export", "--format", "csv", "--output", "/no/such/dir/x.csv"], "--output"),
        (["export", "--format", "csv", "--output", "x", "--page-size", "-3"], "--page-size"),
        (["export", "--format", "csv", "--output", "x", "--page-size", "0"], "--page-size"),
        (["export", "--format", "csv", "--output", "x", "--page-size", "10001"], "--page-size"),
        (["export", "--format", "csv", "--output", "x", "--page-size", "20000"], "--page-size"),
    ],
)
def test_bad_arguments_exit_2_before_any_request(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    code, out, err = run(capsys, "events", *argv, "--api", NOWHERE)
    assert code == 2 and out == ""
    assert flag in err
    assert "cannot reach" not in err


def test_server_400_exits_1_with_its_message(
    api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "events", "list", "--limit", "20000", "--api", api)
    assert (code, out) == (1, "")
    assert err.startswith("sidecar: API error (HTTP 400): ") and "limit" in err


def test_page_size_above_the_api_maximum_names_the_flag(
    api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Checked by the CLI, not refused by the server as its 'limit': the user typed --page-size."""
    target = tmp_path / "big.csv"
    argv = ["events", "export", "--format", "csv", "--output", str(target), "--page-size", "20000"]
    code, out, err = run(capsys, *argv, "--api", api)
    assert (code, out) == (2, "")
    assert "argument --page-size: expected an integer from 1 to 10000, got '20000'" in err
    assert "'limit'" not in err and "API error" not in err
    assert list(tmp_path.iterdir()) == []


def test_unreachable_api_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "events", "list", "--api", NOWHERE)
    assert code == 1 and err.startswith(f"sidecar: cannot reach the API at {NOWHERE}")


def test_csv_pages_keep_the_first_header() -> None:
    """A property key first seen mid-export widens later pages' headers; their rows are mapped onto
    the first header's columns, so the file stays rectangular (the new key has no column)."""
    out = io.StringIO()
    pages = CsvPages(out)
    assert pages.write(io.StringIO('a,b\r\n1,"x,\r\ny"\r\n', newline="")) == 1
    assert pages.write(io.StringIO("a,b\r\n2,z\r\n", newline="")) == 1
    assert pages.write(io.StringIO("a,new,b\r\n3,n,w\r\n4,,\r\n", newline="")) == 2
    assert pages.write(io.StringIO("", newline="")) == 0
    assert out.getvalue() == 'a,b\r\n1,"x,\r\ny"\r\n2,z\r\n3,w\r\n4,\r\n'


def test_export_while_events_arrive(
    sidecar_factory: SidecarFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A writer adds events (with a property key the export has not seen) while the export walks
    pages of one: every event stored before it started is there, none twice, every row as wide as
    the one header."""
    own = sidecar_factory("arriving")
    post(own, [event(i) for i in range(COUNT)])
    done = threading.Event()

    def writer() -> None:
        part = tmp_path / "all.csv.part"
        while not done.wait(0.001):  # start once the first page (and so the header) is written
            if part.exists() and part.stat().st_size:
                break
        for i in range(40):
            late = {
                "id": f"late-{i:02d}",
                "name": "late",
                "timestamp": int(time.time()),
                "properties": {"k": i},
            }
            post(own, [late])
            if done.is_set():
                return

    out = tmp_path / "all.csv"
    thread = threading.Thread(target=writer)
    argv = ["events", "export", "--order", "asc", "--format", "csv", "--output", str(out), "--page-size", "1"]
    thread.start()
    try:
        code, _, err = run(capsys, *argv, "--api", own.api_url)
    finally:
        done.set()
        thread.join(30)
    assert code == 0, err
    header, *rows = list(csv.reader(io.StringIO(out.read_text(), newline="")))
    assert header[:6] == ["timestamp", "name", "user_id", "session_id", "service", "id"]
    assert all(len(row) == len(header) for row in rows)
    ids = [row[5] for row in rows]
    assert len(ids) == len(set(ids))
    assert {f"cli-ev-{i:02d}" for i in range(COUNT)} <= set(ids)
    assert "k" not in header  # the writer started after the first page fixed the header
    assert all(row[5].startswith("late-") for row in rows if row[1] == "late")  # columns kept in place
