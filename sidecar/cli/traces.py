"""``sidecar traces get|search``: a thin client of the query API.

Parameters are passed through to the server, which owns their semantics; the client only rejects
input that could never be valid (see :mod:`sidecar.cli.argtypes`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sidecar.cli import argtypes
from sidecar.cli.client import (
    ApiError,
    CliError,
    api_base,
    envelope_message,
    fetch_json,
    print_json,
    query_options,
)
from sidecar.cli.output import (
    column_widths,
    count,
    fit,
    human_duration,
    printable,
    render_table,
    table_lines,
    terminal_width,
    utc_time,
)

# Tags the server derives from span fields and the instrumentation scope; shown only with --full
# (status and error have their own place: the "status:" line and the ERROR column).
DERIVED_TAGS = frozenset(
    {
        "otel.scope.name",
        "otel.scope.version",
        "span.kind",
        "otel.status_code",
        "otel.status_description",
        "error",
        "w3c.tracestate",
    }
)

# ------------------------------------------------------------------------------------------ formatting


def _is_error(span: Mapping[str, Any]) -> bool:
    for tag in span.get("tags") or ():
        if tag.get("key") == "error":
            value = tag.get("value")
            return value is True or (isinstance(value, str) and value.lower() == "true")
    return False


def span_tree(spans: Sequence[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """Spans in depth-first order with their depth, children sorted by start time.

    Parents come from CHILD_OF references; a span whose parent is absent (partial trace) becomes a
    root, and spans caught in a reference cycle are still shown rather than dropped.
    """
    ids = {span.get("spanID") for span in spans}
    children: dict[object, list[int]] = defaultdict(list)
    for index, span in enumerate(spans):
        parents = [
            ref.get("spanID")
            for ref in span.get("references") or ()
            if ref.get("refType") == "CHILD_OF" and ref.get("spanID") in ids
        ]
        parents = [p for p in parents if p != span.get("spanID")]
        children[parents[0] if parents else None].append(index)

    def order(index: int) -> tuple[int, str]:
        return (spans[index].get("startTime") or 0, str(spans[index].get("spanID")))

    visited: set[int] = set()
    out: list[tuple[int, Mapping[str, Any]]] = []
    for root in sorted(children[None], key=order) + sorted(range(len(spans)), key=order):
        stack = [(root, 0)]
        while stack:
            index, depth = stack.pop()
            if index in visited:
                continue
            visited.add(index)
            out.append((depth, spans[index]))
            kids = sorted(children.get(spans[index].get("spanID"), ()), key=order)
            stack.extend((kid, depth + 1) for kid in reversed(kids))
    return out


def tag_value(value: object) -> str:
    """A tag value as one shell-like word: quoted (JSON) when empty or holding spaces, newlines or quotes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if not text or any(c.isspace() or c == '"' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def compact_tags(tags: Sequence[Mapping[str, Any]]) -> str:
    return " ".join(f"{tag.get('key')}={tag_value(tag.get('value'))}" for tag in tags)


def span_details(span: Mapping[str, Any], trace_start: int, full: bool) -> list[str]:
    """The lines under a span: why it failed (status), what it was about (tags), what happened (events)."""
    tags = span.get("tags") or []
    lines = []
    status = next((t.get("value") for t in tags if t.get("key") == "otel.status_description"), None)
    if status:
        lines.append("status: " + printable(str(status)))
    shown = tags if full else [t for t in tags if t.get("key") not in DERIVED_TAGS]
    if shown:
        lines.append("tags: " + compact_tags(shown))
    for log in span.get("logs") or ():
        fields = log.get("fields") or []
        name = next((str(f.get("value")) for f in fields if f.get("key") == "event"), "")
        at = f"at {((log.get('timestamp') or 0) - trace_start) / 1e3:.3f}ms"
        rest = compact_tags([f for f in fields if f.get("key") != "event"])
        lines.append(" ".join(filter(None, ["event", name, at])) + (f": {rest}" if rest else ""))
    if full:
        lines.extend(
            f"reference: {ref.get('refType')} {ref.get('traceID')}/{ref.get('spanID')}"
            for ref in span.get("references") or ()
        )
    return lines


def format_trace(trace: Mapping[str, Any], full: bool = False, width: int | None = None) -> str:
    """Summary line plus the span tree; under each span its status, tags and events, cut at ``width``."""
    spans = trace.get("spans") or []
    processes = trace.get("processes") or {}
    if not spans:
        return f"Trace {printable(str(trace.get('traceID', '?')))}: no spans"
    start = min(span.get("startTime") or 0 for span in spans)
    end = max((span.get("startTime") or 0) + (span.get("duration") or 0) for span in spans)
    rows: list[list[str]] = []
    details: list[tuple[int, list[str]]] = []
    services: set[str] = set()
    errors = 0
    for depth, span in span_tree(spans):
        process = span.get("process") or processes.get(span.get("processID")) or {}
        service = str(process.get("serviceName") or "?")
        services.add(service)
        failed = _is_error(span)
        errors += failed
        rows.append(
            [
                str(span.get("spanID", "?")),
                service,
                "  " * depth + str(span.get("operationName", "")),
                f"{((span.get('startTime') or 0) - start) / 1e3:.3f}",
                f"{(span.get('duration') or 0) / 1e3:.3f}",
                "ERROR" if failed else "",
            ]
        )
        details.append((depth, span_details(span, start, full)))
    counts = f"{count(len(spans), 'span')}, {count(len(services), 'service')}, {count(errors, 'error')}"
    summary = (
        f"Trace {printable(str(trace.get('traceID', '?')))}: {counts}, "
        f"duration {human_duration(end - start)}, started {utc_time(start)}"
    )
    headers = ["SPAN ID", "SERVICE", "OPERATION", "START (ms)", "DURATION (ms)", ""]
    header, *table = table_lines(headers, rows, right=frozenset({3, 4}))
    widths = column_widths(headers, rows)
    operation_column = widths[0] + widths[1] + 4
    out = [summary, "", header]
    for line, (depth, notes) in zip(table, details, strict=True):
        out.append(line)
        # A note holds a log body, an event name, tag keys: one line each, whatever they contain.
        indent = " " * (operation_column + 2 * depth)
        out.extend(fit(f"{indent}| {printable(note)}", width) for note in notes)
    if full:
        out += ["", "Process tags:"]
        out += [
            printable(f"  {p.get('serviceName')}: {compact_tags(p.get('tags') or [])}".rstrip())
            for p in processes.values()
        ]
    return "\n".join(out)


def format_summaries(summaries: Sequence[Mapping[str, Any]]) -> str:
    """One row per trace: id, UTC start time, human duration, span/error counts and root span."""
    rows = [
        [
            str(s.get("traceID", "?")),
            utc_time(s.get("startTime") or 0),
            human_duration(s.get("duration") or 0),
            str(s.get("spanCount", 0)),
            str(s.get("errorCount", 0)),
            f"{s.get('rootServiceName') or '?'}: {s.get('rootOperationName') or '?'}",
        ]
        for s in summaries
    ]
    headers = ["TRACE ID", "START (UTC)", "DURATION", "SPANS", "ERRORS", "ROOT"]
    return render_table(headers, rows, right=frozenset({2, 3, 4}))


def _newest(n: int) -> str:
    return "the newest trace" if n == 1 else f"the newest {n} traces"


def limit_note(found: int, asked: int | None, applied: object) -> str | None:
    """What the user should know about traces left out; ``applied`` is the limit the server used.

    With ``--limit N`` the client asks for N + 1, so "more match" is a fact, not a guess; only a
    result that fills the server's own default or maximum leaves it open.
    """
    if asked is not None and found > asked:
        return f"showing {_newest(asked)}; more match, raise --limit to see them"
    if not isinstance(applied, int) or found < applied:
        return None
    if asked is None:
        return f"showing {_newest(applied)}, the server's default limit; more may match, use --limit N"
    return f"showing {_newest(applied)}, the server's maximum (api.max_search_limit); more may match"


# ------------------------------------------------------------------------------------------- commands


def cmd_get(args: argparse.Namespace) -> int:
    """Fetch one trace and print it as a span tree (or JSON)."""
    api = api_base(args)
    try:
        doc = fetch_json(api, f"/api/traces/{urllib.parse.quote(args.trace_id)}")
    except ApiError as exc:
        if exc.status == 404 and exc.message == "trace not found":  # not any 404: a wrong --api is one too
            raise CliError(f"trace {args.trace_id} not found") from None
        raise exc.cli_error() from None
    data = doc.get("data") if isinstance(doc, Mapping) else None
    problems = envelope_message(doc)
    if not isinstance(data, list) or not data:
        raise CliError(f"API error: {problems}" if problems else f"trace {args.trace_id} not found")
    if problems:
        print(f"sidecar: warning: {printable(problems)}", file=sys.stderr)
    trace = data[0]
    if args.json:
        print_json(trace)
    else:
        print(format_trace(trace, full=args.full, width=None if args.full else terminal_width()))
    return 0


def search_params(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Query parameters for /api/trace-summaries, only for the options given."""
    params: list[tuple[str, str]] = []
    for name, value in (("service", args.service), ("operation", args.operation)):
        if value is not None:
            params.append((name, value))
    # As Jaeger's `tags` JSON: the legacy `tag=key:value` form cannot carry a key with a colon.
    params.extend(("tags", json.dumps({key: value}, ensure_ascii=False)) for key, value in args.tags or ())
    for name, value in (("minDuration", args.min_duration), ("maxDuration", args.max_duration)):
        if value is not None:
            params.append((name, value))
    start, end = args.start, args.end
    if args.since is not None:
        if end is None:
            params.append(("since", args.since))  # the server's clock decides what "now" is
        else:
            start = end - argtypes.duration_ns(args.since) // 1000
    if start is not None and end is not None and start > end:
        raise CliError(f"--start ({utc_time(start)}) is after --end ({utc_time(end)})", code=2)
    if start is not None and end is None and start > time.time_ns() // 1000:
        raise CliError(
            f"--start ({utc_time(start)}) is in the future, and without --end the window ends now", code=2
        )
    params.extend((name, str(us)) for name, us in (("start", start), ("end", end)) if us is not None)
    return params


def fetch_summaries(api: str, params: list[tuple[str, str]], limit: int | None) -> Any:
    """The summaries document for up to ``limit + 1`` traces: one more than shown tells whether more
    match. A server that refuses that (``limit`` is its maximum) is asked again for ``limit``."""
    attempts = [str(limit + 1), str(limit)] if limit is not None else [None]
    for attempt, value in enumerate(attempts, 1):
        try:
            return fetch_json(api, "/api/trace-summaries", params + ([("limit", value)] if value else []))
        except ApiError as exc:
            if attempt == len(attempts) or exc.status != 400 or "'limit'" not in exc.message:
                raise exc.cli_error() from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def cmd_search(args: argparse.Namespace) -> int:
    """Search trace summaries and print them as a table (or JSON)."""
    api = api_base(args)
    doc = fetch_summaries(api, search_params(args), args.limit)
    data = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(data, list):
        raise CliError(f"unexpected response from {api}/api/trace-summaries: no 'data' list")
    note = limit_note(len(data), args.limit, doc.get("limit"))
    shown = data[: args.limit] if args.limit is not None else data
    if args.json:
        print_json(shown)
    elif not shown:
        print("no traces found", file=sys.stderr)
    else:
        print(format_summaries(shown))
    if note:
        print(f"sidecar: {note}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------- argparse

TIME_HELP = "RFC 3339 (2024-01-02T15:04:05Z, 2024-01-02T16:04:05+01:00) or Unix seconds"


def add_traces_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``traces get`` and ``traces search``."""
    common = query_options()
    traces = subparsers.add_parser("traces", help="look up stored traces", description="Query stored traces.")
    commands = traces.add_subparsers(dest="traces_command", required=True, metavar="COMMAND")

    get = commands.add_parser(
        "get",
        parents=[common],
        help="show one trace as a span tree",
        description="Show one trace as a span tree; under each span its status message, its tags "
        "(without the ones derived from span kind, status and scope) and its events, one line each, "
        "cut at the terminal's width.",
    )
    get.add_argument("trace_id", type=argtypes.trace_id, metavar="TRACE_ID", help="hex trace ID")
    get.add_argument(
        "--full",
        action="store_true",
        help="show every tag, reference and process tag, and never cut lines",
    )
    get.set_defaults(handler=cmd_get)

    search = commands.add_parser(
        "search",
        parents=[common],
        help="find traces",
        description=f"Find traces matching all given filters. Times: {TIME_HELP}. "
        "Durations: Go syntax, e.g. 100ms, 30m, 1h, 1.5h.",
    )
    search.add_argument("--service", metavar="S", help="service name")
    search.add_argument("--operation", metavar="O", help="operation name")
    search.add_argument(
        "--tag",
        dest="tags",
        action="append",
        type=argtypes.tag,
        metavar="KEY=VALUE",
        help="span tag; repeatable",
    )
    search.add_argument("--min-duration", type=argtypes.duration, metavar="DURATION", help="e.g. 100ms")
    search.add_argument("--max-duration", type=argtypes.duration, metavar="DURATION", help="e.g. 2s")
    window = search.add_mutually_exclusive_group()
    window.add_argument(
        "--since",
        type=argtypes.window,
        metavar="DURATION",
        help="only traces within this window before --end (default end: now), e.g. 1h",
    )
    window.add_argument("--start", type=argtypes.time_us, metavar="TIME", help="start of the time window")
    search.add_argument(
        "--end", type=argtypes.time_us, metavar="TIME", help="end of the time window (default: now)"
    )
    search.add_argument(
        "--limit", type=argtypes.limit, metavar="N", help="most traces to show (default: server's)"
    )
    search.set_defaults(handler=cmd_search)
