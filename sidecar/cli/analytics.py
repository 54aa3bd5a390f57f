"""``sidecar events trends|funnel|retention|durations|summary``: the analytics routes from a shell.

Each command builds the route's JSON request from flags (or takes a whole request with
``--request FILE``, ``-`` for stdin), posts it and prints a table on a terminal, the API's JSON
with ``--json`` or its CSV with ``--csv``. Times: ``--since 30d`` (until now) or ``--from``/``--to``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sidecar.cli import argtypes
from sidecar.cli.client import ApiError, CliError, api_base, call, fetch_json, print_json, query_options
from sidecar.cli.output import printable, render_table

DEFAULT_SINCE = "7d"
_OPS = (">=", "<=", "!=", ">", "<", "~", "=")  # longest first: '>=' before '>'
_OP_NAMES = {"~": "regex"}


def filter_arg(text: str) -> dict[str, Any]:
    """``KEY=VALUE``, ``KEY!=VALUE``, ``KEY>N`` (``>=``, ``<``, ``<=``), ``KEY~REGEX``, ``KEY?``
    (exists) or ``!KEY`` (does not exist), as an API filter; numbers in VALUE stay text (the server
    compares a numeric text with numbers by value)."""
    if text.endswith("?") and len(text) > 1:
        return {"property": text[:-1], "op": "exists"}
    if text.startswith("!") and len(text) > 1 and not any(op in text for op in _OPS):
        return {"property": text[1:], "op": "not_exists"}
    for op in _OPS:
        key, sep, value = text.partition(op)
        if sep and key:
            return {"property": key, "op": _OP_NAMES.get(op, op), "value": value}
    raise argparse.ArgumentTypeError(
        f"expected KEY=VALUE, KEY!=VALUE, KEY>N, KEY~REGEX, KEY? or !KEY, got {text!r}"
    )


def _time(ns: int) -> str:
    seconds, rest = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (f".{rest:09d}Z" if rest else "Z")


def time_range(args: argparse.Namespace) -> dict[str, str]:
    """``from``/``to`` of the request: ``--from``/``--to``, else ``--since`` (default 7d) until now."""
    now = time.time_ns()
    end = args.end if args.end is not None else now
    if args.start is not None:
        start = args.start
    else:
        start = end - argtypes.day_window_ns(args.since or DEFAULT_SINCE)
    if start >= end:
        raise CliError("--from must be before --to", code=2)
    return {"from": _time(start), "to": _time(end)}


def _request(
    args: argparse.Namespace, build: Callable[[argparse.Namespace], dict[str, Any]]
) -> dict[str, Any]:
    if args.request is None:
        return build(args)
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
    series = {"event": args.event, "measure": args.measure, "filters": args.filters or []}
    if args.property:
        series["property"] = args.property
    body: dict[str, Any] = {"series": [series], "interval": args.interval, "timezone": args.timezone}
    if args.breakdown:
        body["breakdown"] = args.breakdown
        body["breakdown_limit"] = args.breakdown_limit
    return body | time_range(args)


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
            label += " " + ",".join(f"{k}={v}" for k, v in s["breakdown"].items())
        headers.append(label)
    rows = [
        [p["t"], *(_num(s["points"][i]["value"]) for s in series)] for i, p in enumerate(series[0]["points"])
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
    return body | time_range(args)


def funnel_table(answer: Mapping[str, Any]) -> str:
    entries = answer.get("buckets") or []
    if not entries:
        return "no buckets"
    steps = entries[0]["steps"]
    headers = ["T", *(["BREAKDOWN"] if "breakdown" in entries[0] else []), "LEVEL 0"]
    for k, step in enumerate(steps, 1):
        headers += [f"{k}:{step['event'] or 'any'}", "CONV", "MEDIAN S"]
    rows = []
    for e in entries:
        row = [e["t"]]
        if "breakdown" in e:
            row.append(",".join(f"{k}={v}" for k, v in e["breakdown"].items()))
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
    return body | time_range(args)


def retention_table(answer: Mapping[str, Any]) -> str:
    cohorts = answer.get("cohorts") or []
    width = max((len(c["returned"]) for c in cohorts), default=0)
    headers = ["COHORT", "SIZE", *(f"+{k}" for k in range(width))]
    rows = [
        [c["t"], str(c["size"]), *(f"{n / c['size']:.0%}" if c["size"] else "-" for n in c["returned"])]
        for c in cohorts
    ]
    return render_table(headers, rows, right=frozenset(range(1, len(headers))))


# -- durations -------------------------------------------------------------------------------------
_STATS = ("count", "avg_seconds", "p50_seconds", "p95_seconds", "p99_seconds")


def _durations_body(args: argparse.Namespace) -> dict[str, Any]:
    check_required(args, ["start_event", "end_event", "correlate_by"])
    body = {"start_event": args.start_event, "end_event": args.end_event, "correlate_by": args.correlate_by}
    body |= {"interval": args.interval, "timezone": args.timezone}
    return body | time_range(args)


def durations_table(answer: Mapping[str, Any]) -> str:
    headers = ["T", "COUNT", "AVG S", "P50 S", "P95 S", "P99 S"]
    rows = [[p["t"], *(_num(p[k]) for k in _STATS)] for p in answer.get("points") or []]
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
def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, parents=[query_options()])
    p.add_argument("--csv", action="store_true", help="print the API's CSV instead of a table")
    window = p.add_mutually_exclusive_group()
    window.add_argument(
        "--since",
        type=argtypes.day_window,
        metavar="DURATION",
        help=f"range ending now (default {DEFAULT_SINCE})",
    )
    window.add_argument(
        "--from", dest="start", type=argtypes.time_ns, metavar="TIME", help="start (RFC 3339 or Unix s)"
    )
    p.add_argument(
        "--to", dest="end", type=argtypes.time_ns, metavar="TIME", help="end, exclusive (default now)"
    )
    p.add_argument(
        "--timezone", default="UTC", metavar="TZ", help="IANA zone of the calendar buckets (default UTC)"
    )
    p.add_argument("--request", metavar="FILE", help="send this JSON request as it is ('-': stdin)")
    return p


def add_analytics_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the analytics commands under ``sidecar events``."""
    common = _common()
    intervals = ("minute", "hour", "day", "week", "month", "total")

    def command(
        name: str, help_text: str, handler: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[common], help=help_text, description=help_text + ".")
        parser.set_defaults(handler=handler)
        return parser

    t = command(
        "trends",
        "counts, distinct users, DAU/WAU/MAU or a property's sum/avg/percentiles per bucket",
        lambda a: _run(a, "/api/events/trends", _trends_body, trends_table),
    )
    t.add_argument("--event", metavar="NAME", help="event name (default: every event)")
    t.add_argument(
        "--measure",
        default="count",
        metavar="M",
        help="count, unique_users, dau, wau, mau, sum, avg, min, max, p50, p90, p95, p99, "
        "per_user_avg, per_user_p50, per_user_p90 (default count)",
    )
    t.add_argument("--property", metavar="P", help="the numeric property of sum/avg/min/max/pNN")
    t.add_argument(
        "--filter",
        dest="filters",
        action="append",
        type=filter_arg,
        metavar="F",
        help="KEY=VALUE, KEY!=VALUE, KEY>N, KEY<=N, KEY~REGEX, KEY? or !KEY; repeatable",
    )
    t.add_argument("--interval", default="day", choices=intervals)
    t.add_argument("--breakdown", action="append", metavar="P", help="split by this property (up to 3)")
    t.add_argument("--breakdown-limit", type=argtypes.limit, default=10, metavar="N")

    f = command(
        "funnel",
        "users per level of a funnel of steps",
        lambda a: _run(a, "/api/events/funnels", _funnel_body, funnel_table),
    )
    f.add_argument(
        "--step",
        action="append",
        required=False,
        default=[],
        metavar="EVENT",
        help="a step, in order (2 or more)",
    )
    f.add_argument(
        "--window", default="1d", metavar="D", help="time from step 1 to the last step (default 1d)"
    )
    f.add_argument("--mode", default="ordered", choices=("ordered", "strict", "unordered"))
    f.add_argument("--interval", default="total", choices=intervals)
    f.add_argument("--breakdown", metavar="P", help="split users by this property of their step-1 event")

    r = command(
        "retention",
        "cohorts by first start event and their return per period",
        lambda a: _run(a, "/api/events/retention", _retention_body, retention_table),
    )
    r.add_argument("--start-event", required=False, metavar="NAME")
    r.add_argument("--return-event", required=False, metavar="NAME")
    r.add_argument("--period", default="week", choices=("day", "week", "month"))
    r.add_argument("--periods", type=argtypes.limit, default=8, metavar="N")

    d = command(
        "durations",
        "seconds from a start event to the next end event of the same thing",
        lambda a: _run(a, "/api/events/durations", _durations_body, durations_table),
    )
    d.add_argument("--start-event", required=False, metavar="NAME")
    d.add_argument("--end-event", required=False, metavar="NAME")
    d.add_argument(
        "--correlate-by", required=False, metavar="P", help="property shared by the pair (or user_id)"
    )
    d.add_argument("--interval", default="day", choices=intervals)

    s = command("summary", "events per name and distinct users (default: the last hour)", cmd_summary)
    del s


def check_required(args: argparse.Namespace, needed: Sequence[str]) -> None:
    """Flags a command needs when ``--request`` does not give the whole body."""
    missing = [f"--{name.replace('_', '-')}" for name in needed if not getattr(args, name, None)]
    if missing:
        raise CliError(f"missing {', '.join(missing)} (or give the whole body with --request)", code=2)
