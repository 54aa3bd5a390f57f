"""``sidecar events trends|funnel|retention|durations|summary`` against a live sidecar: the CLI's
JSON is the API's answer to the same request, tables show it, CSV is the API's CSV, bad flags exit 2."""

from __future__ import annotations

import datetime as dt
import json
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
    assert code == 1 and "series[0].measure" in err
    code, _, err = run(capsys, "events", "trends", "--filter", "=x")
    assert code == 2 and "--filter" in err
