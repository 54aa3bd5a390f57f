"""``sidecar events trends|funnel|retention|durations|summary``: the analytics routes from a shell.

Each command builds the route's JSON request from flags (or takes a whole request with
``--request FILE``, ``-`` for stdin), posts it and prints a table on a terminal, the API's JSON
with ``--json`` or its CSV with ``--csv``. Times: ``--since 30d`` (until now) or ``--from``/``--to``;
a ``--since`` range starts at the start of its first bucket (as PostHog's relative ranges do), so
the first point is a whole day, week or month rather than its tail labelled as the whole.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sidecar.cli import argtypes
from sidecar.cli.client import (
    ApiError,
    CliError,
    add_api_option,
    api_base,
    call,
    fetch_json,
    print_json,
)
from sidecar.cli.output import printable, render_table

DEFAULT_SINCE = "7d"
filter_arg = argtypes.analytics_filter


def _time(ns: int) -> str:
    seconds, rest = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (f".{rest:09d}Z" if rest else "Z")


def _snap(ns: int, interval: str | None, timezone: str) -> int:
    """The start of the bucket of ``interval`` holding ``ns``, on the calendar of ``timezone``, as
    sidecar.query.analytics.timebuckets lays buckets out; ``ns`` itself for ``total`` or none."""
    if interval not in ("minute", "hour", "day", "week", "month"):
        return ns
    seconds = ns // 10**9
    local = dt.datetime.fromtimestamp(seconds, zoneinfo.ZoneInfo(timezone))
    if interval in ("minute", "hour"):
        step = 60 if interval == "minute" else 3600
        offset = int(local.utcoffset().total_seconds()) if local.utcoffset() else 0  # type: ignore[union-attr]
        return ((seconds + offset) // step * step - offset) * 10**9
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "week":
        start -= dt.timedelta(days=start.weekday())
    elif interval == "month":
        start = start.replace(day=1)
    return int(start.timestamp()) * 10**9


def time_range(
    args: argparse.Namespace, interval: str | None = None, timezone: str = "UTC"
) -> dict[str, str]:
    """``from``/``to`` of the request: ``--from``/``--to``, else ``--since`` (default 7d) until now,
    its start moved back to the start of its ``interval`` in ``timezone`` (not for ``total``)."""
    now = time.time_ns()
    end = args.end if args.end is not None else now
    if args.start is not None:
        start = args.start
    else:
        start = _snap(end - argtypes.day_window_ns(args.since or DEFAULT_SINCE), interval, timezone)
    if start >= end:
        raise CliError("--from must be before --to", code=2)
    return {"from": _time(start), "to": _time(end)}


def _request(
    args: argparse.Namespace, build: Callable[[argparse.Namespace], dict[str, Any]]
) -> dict[str, Any]:
    fields: dict[str, tuple[str, Any]] = args.fields
    if args.request is None:
        for dest, (_, default) in fields.items():
            if getattr(args, dest) is None:
                setattr(args, dest, default)
        return build(args)
    given = [flag for dest, (flag, _) in fields.items() if getattr(args, dest) not in (None, [])]
    if given:
        raise CliError(
            f"--request gives the whole request; drop {', '.join(given)} (or leave out --request)", code=2
        )
    try:
        text = sys.stdin.read() if args.request == "-" else Path(args.request).read_text(encoding="utf-8")
        body = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CliError(
            f"--request: cannot read a JSON request from {args.request!r}: {exc}", code=2
        ) from None
    if not isinstance(body, dict):
        raise CliError("--request: the file must hold one JSON object", code=2)
    return body


def _run(
    args: argparse.Namespace,
    path: str,
    build: Callable[[argparse.Namespace], dict[str, Any]],
    table: Callable[[Mapping[str, Any]], str],
) -> int:
    api = api_base(args)
    body = _request(args, build)
    try:
        if args.csv:
            sys.stdout.write(
                call(api, path, [("format", "csv")], body, accept="text/csv").decode("utf-8", "replace")
            )
            return 0
        answer = fetch_json(api, path, body=body)
    except ApiError as exc:
        raise exc.cli_error() from None
    if args.json:
        print_json(answer)
    else:
        print(table(answer))
    return 0


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


# -- trends ----------------------------------------------------------------------------------------
def _trends_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.measure in argtypes.VALUE_MEASURES and not args.property:
        raise CliError(f"--measure {args.measure} needs --property, the numeric property to measure", code=2)
    series = {"event": args.event, "measure": args.measure, "filters": args.filters or []}
    if args.property:
        series["property"] = args.property
    body: dict[str, Any] = {"series": [series], "interval": args.interval, "timezone": args.timezone}
    if args.breakdown:
        body["breakdown"] = args.breakdown
        body["breakdown_limit"] = args.breakdown_limit
    return body | time_range(args, args.interval, args.timezone)


def _local(t: str, timezone: str) -> str:
    """A bucket start (RFC 3339 UTC, as the API gives it) on the request's clock:
    ``2026-11-27T23:00:00Z`` in Europe/Warsaw is ``2026-11-28T00:00:00+01:00``, the day it starts."""
    if timezone in ("UTC", "Etc/UTC"):
        return t
    try:
        return dt.datetime.fromisoformat(t).astimezone(zoneinfo.ZoneInfo(timezone)).isoformat()
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return t


def _value(value: object) -> str:
    """A breakdown value: ``null`` for events without the property, as the API writes it."""
    return "null" if value is None else str(value)


def _breakdown(values: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={_value(v)}" for k, v in values.items())


def trends_table(answer: Mapping[str, Any]) -> str:
    series = answer.get("series") or []
    if not series:
        return "no series"
    headers = ["T"]
    for s in series:
        label = s.get("measure", "")
        if s.get("property"):
            label += f"({s['property']})"
        if s.get("breakdown"):
            label += " " + _breakdown(s["breakdown"])
        headers.append(label)
    zone = answer.get("timezone") or "UTC"
    rows = [
        [_local(p["t"], zone), *(_num(s["points"][i]["value"]) for s in series)]
        for i, p in enumerate(series[0]["points"])
    ]
    return render_table(headers, rows, right=frozenset(range(1, len(headers))))


# -- funnel ----------------------------------------------------------------------------------------
def _funnel_body(args: argparse.Namespace) -> dict[str, Any]:
    if len(args.step) < 2:
        raise CliError("give at least two --step EVENT, in order (or the whole body with --request)", code=2)
    body: dict[str, Any] = {
        "steps": [{"event": step} for step in args.step],
        "window": args.window,
        "mode": args.mode,
        "interval": args.interval,
        "timezone": args.timezone,
    }
    if args.breakdown:
        body["breakdown"] = args.breakdown
    return body | time_range(args, args.interval, args.timezone)


def funnel_table(answer: Mapping[str, Any]) -> str:
    entries = answer.get("buckets") or []
    if not entries:
        return "no buckets"
    steps = entries[0]["steps"]
    headers = ["T", *(["BREAKDOWN"] if "breakdown" in entries[0] else []), "LEVEL 0"]
    for k, step in enumerate(steps, 1):
        headers += [f"{k}:{step['event'] or 'any'}", "CONV", "MEDIAN S"]
    zone = answer.get("timezone") or "UTC"
    rows = []
    for e in entries:
        row = [_local(e["t"], zone)]
        if "breakdown" in e:
            row.append(_breakdown(e["breakdown"]))
        row.append(str(e["levels"][0]["users"]))
        for step in e["steps"]:
            conv = step["conversion_from_first"]
            row += [str(step["users"]), "-" if conv is None else f"{conv:.1%}", _num(step["median_seconds"])]
        rows.append(row)
    first = 2 if "breakdown" in entries[0] else 1
    return render_table(headers, rows, right=frozenset(range(first, len(headers))))


# -- retention -------------------------------------------------------------------------------------
def _retention_body(args: argparse.Namespace) -> dict[str, Any]:
    check_required(args, ["start_event", "return_event"])
    body = {"start_event": args.start_event, "return_event": args.return_event}
    body |= {"period": args.period, "periods": args.periods, "timezone": args.timezone}
    return body | time_range(args, args.period, args.timezone)


def retention_table(answer: Mapping[str, Any]) -> str:
    cohorts = answer.get("cohorts") or []
    width = max((len(c["returned"]) for c in cohorts), default=0)
    headers = ["COHORT", "SIZE", *(f"+{k}" for k in range(width))]
    zone = answer.get("timezone") or "UTC"
    rows = [
        [
            _local(c["t"], zone),
            str(c["size"]),
            *(f"{n / c['size']:.0%}" if c["size"] else "-" for n in c["returned"]),
        ]
        for c in cohorts
    ]
    return render_table(headers, rows, right=frozenset(range(1, len(headers))))


# -- durations -------------------------------------------------------------------------------------
_STATS = ("count", "avg_seconds", "p50_seconds", "p95_seconds", "p99_seconds")


def _durations_body(args: argparse.Namespace) -> dict[str, Any]:
    check_required(args, ["start_event", "end_event", "correlate_by"])
    body = {"start_event": args.start_event, "end_event": args.end_event, "correlate_by": args.correlate_by}
    body |= {"interval": args.interval, "timezone": args.timezone}
    return body | time_range(args, args.interval, args.timezone)


def durations_table(answer: Mapping[str, Any]) -> str:
    headers = ["T", "COUNT", "AVG S", "P50 S", "P95 S", "P99 S"]
    zone = answer.get("timezone") or "UTC"
    rows = [[_local(p["t"], zone), *(_num(p[k]) for k in _STATS)] for p in answer.get("points") or []]
    rows.append(["all", *(_num(answer.get(k)) for k in _STATS)])
    return render_table(headers, rows, right=frozenset(range(1, 6)))


# -- summary ---------------------------------------------------------------------------------------
def cmd_summary(args: argparse.Namespace) -> int:
    api = api_base(args)
    params = list(_summary_params(args).items())
    try:
        if args.csv:
            sys.stdout.write(
                call(api, "/api/events/summary", [*params, ("format", "csv")]).decode("utf-8", "replace")
            )
            return 0
        answer = fetch_json(api, "/api/events/summary", params)
    except ApiError as exc:
        raise exc.cli_error() from None
    if args.json:
        print_json(answer)
        return 0
    rows = [
        ["unique_users", str(answer["unique_users"])],
        *([k, str(v)] for k, v in answer["events"].items()),
    ]
    print(printable(f"{answer['from']} .. {answer['to']}"))
    print(render_table(["NAME", "VALUE"], rows, right=frozenset({1})))
    return 0


def _summary_params(args: argparse.Namespace) -> dict[str, str]:
    if args.start is None and args.since is None and args.end is None:
        return {}  # the server's default: the last hour
    if args.start is None and args.since is None:
        args.since = "1h"
    return time_range(args)


# -- argparse --------------------------------------------------------------------------------------
def _output_and_range(request_fields: bool) -> argparse.ArgumentParser:
    """``--api``, ``--json`` or ``--csv``, and the range; with ``request_fields`` also ``--timezone``
    and ``--request``. ``summary`` has neither: its route takes no zone and no body."""
    p = argparse.ArgumentParser(add_help=False)
    add_api_option(p)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    output.add_argument("--csv", action="store_true", help="print the API's CSV instead of a table")
    window = p.add_mutually_exclusive_group()
    window.add_argument(
        "--since",
        type=argtypes.day_window,
        metavar="DURATION",
        help=f"range ending now (default {DEFAULT_SINCE}), from the start of its first bucket",
    )
    window.add_argument(
        "--from", dest="start", type=argtypes.time_ns, metavar="TIME", help="start (RFC 3339 or Unix s)"
    )
    p.add_argument(
        "--to", dest="end", type=argtypes.time_ns, metavar="TIME", help="end, exclusive (default now)"
    )
    if request_fields:
        p.add_argument(
            "--timezone",
            type=argtypes.timezone,
            metavar="TZ",
            help="IANA zone of the calendar buckets (default UTC)",
        )
        p.add_argument(
            "--request", metavar="FILE", help="send this JSON request as it is ('-': stdin); no field flags"
        )
    return p


class _Fields:
    """The flags that set request fields, with their defaults: argparse leaves them None, so that a
    flag given alongside ``--request`` (which it would not change) is refused, not ignored."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.fields: dict[str, tuple[str, Any]] = {
            "since": ("--since", None),
            "start": ("--from", None),
            "end": ("--to", None),
            "timezone": ("--timezone", "UTC"),
        }
        parser.set_defaults(fields=self.fields)

    def add(self, flag: str, default: Any = None, **kwargs: Any) -> None:
        action = self.parser.add_argument(flag, **kwargs)
        self.fields[action.dest] = (flag, default)


def add_analytics_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the analytics commands under ``sidecar events``."""
    common = _output_and_range(request_fields=True)
    intervals = ("minute", "hour", "day", "week", "month", "total")

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> _Fields:
        parser = commands.add_parser(name, parents=[common], help=help_text, description=help_text + ".")
        parser.set_defaults(handler=handler)
        return _Fields(parser)

    t = command(
        "trends",
        "counts, distinct users, DAU/WAU/MAU or a property's sum/avg/percentiles per bucket",
        lambda a: _run(a, "/api/events/trends", _trends_body, trends_table),
    )
    t.add("--event", metavar="NAME", help="event name (default: every event)")
    t.add(
        "--measure",
        "count",
        type=argtypes.measure,
        metavar="M",
        help=", ".join(argtypes.MEASURES) + " (default count)",
    )
    t.add("--property", metavar="P", help="the numeric property of sum/avg/min/max/pNN")
    t.add(
        "--filter",
        dest="filters",
        action="append",
        type=argtypes.analytics_filter,
        metavar="F",
        help="KEY=VALUE, KEY!=VALUE, KEY>N, KEY<=N, KEY~REGEX, KEY? or !KEY; repeatable",
    )
    t.add("--interval", "day", choices=intervals, help="default day")
    t.add("--breakdown", action="append", metavar="P", help="split by this property (up to 3)")
    t.add("--breakdown-limit", 10, type=argtypes.limit, metavar="N", help="default 10")

    f = command(
        "funnel",
        "users per level of a funnel of steps",
        lambda a: _run(a, "/api/events/funnels", _funnel_body, funnel_table),
    )
    f.add("--step", [], action="append", metavar="EVENT", help="a step, in order (2 or more)")
    f.add(
        "--window",
        "1d",
        type=argtypes.funnel_window,
        metavar="D",
        help="time from step 1 to the last step: 1h, 90m, 7d, 1d12h or seconds (default 1d)",
    )
    f.add("--mode", "ordered", choices=("ordered", "strict", "unordered"), help="default ordered")
    f.add("--interval", "total", choices=intervals, help="default total")
    f.add("--breakdown", metavar="P", help="split users by this property of their step-1 event")

    r = command(
        "retention",
        "cohorts by first start event and their return per period",
        lambda a: _run(a, "/api/events/retention", _retention_body, retention_table),
    )
    r.add("--start-event", metavar="NAME")
    r.add("--return-event", metavar="NAME")
    r.add("--period", "week", choices=("day", "week", "month"), help="default week")
    r.add("--periods", 8, type=argtypes.limit, metavar="N", help="default 8")

    d = command(
        "durations",
        "seconds from a start event to the next end event of the same thing",
        lambda a: _run(a, "/api/events/durations", _durations_body, durations_table),
    )
    d.add("--start-event", metavar="NAME")
    d.add("--end-event", metavar="NAME")
    d.add("--correlate-by", metavar="P", help="property shared by the pair (or user_id)")
    d.add("--interval", "day", choices=intervals, help="default day")

    help_text = "events per name and distinct users (default: the last hour)"
    summary = commands.add_parser(
        "summary",
        parents=[_output_and_range(request_fields=False)],
        help=help_text,
        description=help_text + ".",
    )
    summary.set_defaults(handler=cmd_summary)


def check_required(args: argparse.Namespace, needed: Sequence[str]) -> None:
    """Flags a command needs when ``--request`` does not give the whole body."""
    missing = [f"--{name.replace('_', '-')}" for name in needed if not getattr(args, name, None)]
    if missing:
        raise CliError(f"missing {', '.join(missing)} (or give the whole body with --request)", code=2)
