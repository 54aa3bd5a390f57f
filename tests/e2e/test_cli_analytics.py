"""``sidecar events trends|funnel|retention|durations|summary`` against a live sidecar: the CLI's
JSON is the API's answer to the same request, tables show it, CSV is the API's CSV, bad flags exit 2."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.cli.main import main
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import Sidecar, http_request
from tests.e2e.test_trends import post

DAY0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
RANGE = ["--from", "2026-11-02T00:00:00Z", "--to", "2026-11-05T00:00:00Z"]


def at(hours: float) -> int:
    return int((DAY0 + dt.timedelta(hours=hours)).timestamp() * 1e9)


@pytest.fixture(scope="module")
def api(module_sidecar_factory: SidecarFactory) -> Iterator[tuple[Sidecar, str]]:
    sc = module_sidecar_factory("cli-analytics")
    events: list[dict[str, Any]] = []
    for u in range(6):
        for h, name, props in (
            (1 + u, "start_task", {"rec": f"r{u}", "amount": 10 * u}),
            (1.5 + u, "finish_task", {"rec": f"r{u}"}),
            (30 + u, "login", {}),
            (2 + u, "pay", {"amount": 5.5 * (u + 1), "screen": "main" if u % 2 else "cart"}),
        ):
            if u == 5 and name == "finish_task":
                continue
            events.append(
                {"name": name, "ts_ns": at(h), "id": f"c{u}{name}", "user_id": f"u{u}", "properties": props}
            )
    events.append({"name": "signup", "ts_ns": at(0.5), "id": "s0", "user_id": "u0", "properties": {}})
    post(sc, events)
    yield sc, sc.api_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def posted(sc: Sidecar, route: str, body: dict[str, Any], fmt: str | None = None) -> Any:
    url = f"{sc.api_url}/api/events/{route}" + (f"?format={fmt}" if fmt else "")
    status, _, raw = http_request(
        "POST", url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, raw
    return raw.decode() if fmt else json.loads(raw)


def test_trends_json_table_and_csv(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sc, url = api
    argv = [
        "events",
        "trends",
        "--api",
        url,
        *RANGE,
        "--event",
        "pay",
        "--measure",
        "p50",
        "--property",
        "amount",
    ]
    code, out, _ = run(capsys, *argv, "--breakdown", "screen", "--json")
    body = {
        "series": [{"event": "pay", "measure": "p50", "property": "amount", "filters": []}],
        "interval": "day",
        "timezone": "UTC",
        "breakdown": ["screen"],
        "breakdown_limit": 10,
        "from": "2026-11-02T00:00:00Z",
        "to": "2026-11-05T00:00:00Z",
    }
    assert code == 0 and json.loads(out) == posted(sc, "trends", body)
    code, out, _ = run(capsys, *argv)
    lines = out.splitlines()
    assert lines[0].split() == ["T", "p50(amount)"]
    assert lines[1].split() == ["2026-11-02T00:00:00Z", "19.25"] and lines[2].split()[1] == "-"
    code, out, _ = run(capsys, *argv, "--csv")
    assert code == 0 and out.startswith("t,event,measure,property,value\r\n")
    code, out, _ = run(capsys, "events", "trends", "--api", url, *RANGE, "--filter", "amount>20", "--json")
    # start_task amounts 30, 40, 50 and pay amounts 22, 27.5, 33
    assert code == 0 and sum(p["value"] for p in json.loads(out)["series"][0]["points"]) == 6


def test_funnel_retention_durations_summary(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, url = api
    code, out, _ = run(
        capsys,
        "events",
        "funnel",
        "--api",
        url,
        *RANGE,
        "--step",
        "start_task",
        "--step",
        "finish_task",
        "--window",
        "1h",
        "--json",
    )
    levels = [lv["users"] for lv in json.loads(out)["buckets"][0]["levels"]]
    assert code == 0 and levels == [0, 1, 5]
    code, out, _ = run(
        capsys, "events", "funnel", "--api", url, *RANGE, "--step", "start_task", "--step", "finish_task"
    )
    assert code == 0 and "1:start_task" in out.splitlines()[0] and "83.3%" in out
    code, out, _ = run(
        capsys,
        "events",
        "retention",
        "--api",
        url,
        *RANGE,
        "--start-event",
        "start_task",
        "--return-event",
        "login",
        "--period",
        "day",
        "--periods",
        "3",
        "--json",
    )
    cohorts = json.loads(out)["cohorts"]
    assert code == 0 and [c["size"] for c in cohorts] == [6, 0, 0] and cohorts[0]["returned"] == [0, 6, 0]
    code, out, _ = run(
        capsys,
        "events",
        "durations",
        "--api",
        url,
        *RANGE,
        "--start-event",
        "start_task",
        "--end-event",
        "finish_task",
        "--correlate-by",
        "rec",
    )
    assert code == 0 and out.splitlines()[-1].split() == ["all", "5", "1800", "1800", "1800", "1800"]
    code, out, _ = run(capsys, "events", "summary", "--api", url, *RANGE, "--json")
    assert code == 0 and json.loads(out)["events"] == {
        "finish_task": 5,
        "login": 6,
        "pay": 6,
        "signup": 1,
        "start_task": 6,
    }
    code, out, _ = run(capsys, "events", "summary", "--api", url, *RANGE, "--csv")
    assert out.startswith("name,value\r\nunique_users,6\r\n")


def test_request_file_and_bad_flags(api: Any, capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    _, url = api
    body = {
        "series": [{"measure": "unique_users"}],
        "interval": "total",
        "from": "2026-11-02T00:00:00Z",
        "to": "2026-11-05T00:00:00Z",
    }
    request = tmp_path / "q.json"
    request.write_text(json.dumps(body))
    code, out, _ = run(capsys, "events", "trends", "--api", url, "--request", str(request), "--json")
    assert code == 0 and json.loads(out)["series"][0]["points"][0]["value"] == 6
    code, _, err = run(capsys, "events", "funnel", "--api", url, "--step", "only-one")
    assert code == 2 and "--step" in err
    code, _, err = run(capsys, "events", "retention", "--api", url, "--start-event", "a")
    assert code == 2 and "--return-event" in err
    code, _, err = run(capsys, "events", "trends", "--api", url, "--measure", "median")
    assert code == 2 and "--measure" in err and "p95" in err
    code, _, err = run(capsys, "events", "trends", "--filter", "=x")
    assert code == 2 and "--filter" in err


def test_since_starts_at_the_start_of_the_first_bucket(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A relative range is snapped down to its interval's start in the request's zone, so the first
    point is a whole bucket; ``total`` keeps the exact start."""
    _, url = api

    def first(*flags: str) -> tuple[dt.datetime, Any]:
        code, out, err = run(capsys, "events", *flags, "--api", url, "--json")
        assert code == 0, err
        answer = json.loads(out)
        return dt.datetime.fromisoformat(answer["from"]), answer

    for zone in ("UTC", "Europe/Warsaw", "Asia/Kolkata"):
        tz = zoneinfo.ZoneInfo(zone)
        start, answer = first("trends", "--since", "2d", "--timezone", zone)
        local = start.astimezone(tz)
        assert (local.hour, local.minute, local.second) == (0, 0, 0), answer["from"]
        assert (
            answer["series"][0]["points"][0]["t"] == answer["from"]
            and len(answer["series"][0]["points"]) == 3
        )
        start, _ = first("trends", "--since", "3h", "--interval", "hour", "--timezone", zone)
        assert start.astimezone(tz).minute == 0 and start.second == 0
        start, _ = first("trends", "--since", "20d", "--interval", "week", "--timezone", zone)
        local = start.astimezone(tz)
        assert local.weekday() == 0 and local.hour == 0
        start, answer = first(
            "retention",
            "--since",
            "40d",
            "--start-event",
            "a",
            "--return-event",
            "b",
            "--timezone",
            zone,
            "--period",
            "month",
        )
        local = start.astimezone(tz)
        assert (local.day, local.hour) == (1, 0) and answer["cohorts"][0]["t"] == answer["from"]
        start, _ = first("funnel", "--since", "90s", "--interval", "minute", "--step", "a", "--step", "b")
        assert start.second == 0
    start, _ = first("trends", "--since", "2d", "--interval", "total")
    assert abs(start.timestamp() - (time.time() - 2 * 86400)) < 60  # not snapped


def test_ignored_flags_are_refused(
    api: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = api
    code, _, err = run(capsys, "events", "summary", "--api", url, "--timezone", "Mars/Base", "--since", "1h")
    assert code == 2 and "--timezone" in err
    code, _, err = run(capsys, "events", "trends", "--api", url, "--timezone", "Mars/Base")
    assert code == 2 and "--timezone" in err and "Mars/Base" in err
    code, _, err = run(capsys, "events", "trends", "--api", url, "--json", "--csv")
    assert code == 2 and "--csv" in err and "--json" in err
    body = {"series": [{"measure": "count"}], "interval": "total", "from": RANGE[1], "to": RANGE[3]}
    for flags in (
        ["--since", "2d", "--event", "pay"],
        ["--from", "2026-11-03T00:00:00Z"],
        ["--interval", "day"],
    ):
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(body)))
        code, out, err = run(capsys, "events", "trends", "--api", url, "--request", "-", *flags)
        assert code == 2 and out == "" and all(f in err for f in flags if f.startswith("--")), err
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(body)))
    code, out, _ = run(capsys, "events", "trends", "--api", url, "--request", "-", "--json")
    assert code == 0 and json.loads(out)["series"][0]["points"][0]["value"] == 24


def test_malformed_arguments_exit_2_before_any_request(capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = ["--api", "http://127.0.0.1:9"]  # a request would fail with exit 1
    code, _, err = run(capsys, "events", "funnel", *nowhere, "--step", "a", "--step", "b", "--window", "1x")
    assert code == 2 and "--window" in err and "ms, s, m, h" in err and "d = 24h" in err
    code, _, err = run(capsys, "events", "trends", *nowhere, "--filter", "amount>abc")
    assert code == 2 and "--filter" in err and "number" in err
    code, _, err = run(capsys, "events", "trends", *nowhere, "--filter", "screen~(")
    assert code == 2 and "--filter" in err
    code, _, err = run(capsys, "events", "trends", *nowhere, "--measure", "p95")
    assert code == 2 and "--property" in err


def test_funnel_windows_the_api_takes(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, url = api
    for window in ("7d", "1d12h", "3600", "90m"):
        code, out, err = run(
            capsys,
            "events",
            "funnel",
            "--api",
            url,
            *RANGE,
            "--step",
            "start_task",
            "--step",
            "finish_task",
            "--window",
            window,
            "--json",
        )
        assert code == 0 and [lv["users"] for lv in json.loads(out)["buckets"][0]["levels"]] == [0, 1, 5], err


def test_tables_show_buckets_in_the_request_zone(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, url = api
    argv = ["events", "trends", "--api", url, *RANGE, "--timezone", "Europe/Warsaw"]
    code, out, _ = run(capsys, *argv, "--breakdown", "screen")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "T",
        "count",
        "screen=null",
        "count",
        "screen=cart",
        "count",
        "screen=main",
    ]
    assert [line.split()[0] for line in lines[1:]] == [
        "2026-11-02T00:00:00+01:00",
        "2026-11-03T00:00:00+01:00",
        "2026-11-04T00:00:00+01:00",
        "2026-11-05T00:00:00+01:00",
    ]
    code, out, _ = run(capsys, *argv, "--json")
    assert json.loads(out)["series"][0]["points"][0]["t"] == "2026-11-01T23:00:00Z"
    code, out, _ = run(capsys, *argv, "--csv")
    assert out.splitlines()[1].startswith("2026-11-01T23:00:00Z,")
    code, out, _ = run(
        capsys,
        "events",
        "funnel",
        "--api",
        url,
        *RANGE,
        "--timezone",
        "Europe/Warsaw",
        "--interval",
        "day",
        "--step",
        "pay",
        "--step",
        "login",
        "--breakdown",
        "amount",
    )
    assert code == 0 and out.splitlines()[1].startswith("2026-11-02T00:00:00+01:00")
    code, out, _ = run(
        capsys,
        "events",
        "funnel",
        "--api",
        url,
        *RANGE,
        "--step",
        "finish_task",
        "--step",
        "login",
        "--breakdown",
        "screen",
    )
    assert code == 0 and "screen=null" in out and "None" not in out
