"""``sidecar traces get|search``: a thin client of the Jaeger-compatible query API.

Stdlib only (``urllib``), so the CLI works in a minimal container next to the sidecar. Parameters
are passed through to the server, which owns their semantics; the client only rejects input that
could never be valid, so typos fail fast with exit status 2 instead of a round trip.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

DEFAULT_API_URL = "http://127.0.0.1:16686"
API_URL_ENV = "SIDECAR_API_URL"
HTTP_TIMEOUT_S = 30.0
_GO_DURATION = re.compile(r"[+-]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)")
_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")


class CliError(Exception):
    """A failure to report as ``sidecar: <message>`` with exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class ApiError(Exception):
    """The API answered with an HTTP error status; ``message`` is the server's own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------- HTTP


def envelope_message(doc: object) -> str:
    """The explanation in a Jaeger (``errors[].msg``) or generic (``error.message``) envelope, or ``""``."""
    if not isinstance(doc, Mapping):
        return ""
    errors = doc.get("errors")
    if isinstance(errors, list):
        msgs = [str(e.get("msg") or e.get("message") or e) for e in errors if isinstance(e, Mapping)]
        if msgs:
            return "; ".join(msgs)
    error = doc.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])
    return error if isinstance(error, str) else ""


def error_message(body: bytes, fallback: str) -> str:
    """The server's explanation of an HTTP error: envelope message, else raw text, else ``fallback``."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        message = envelope_message(json.loads(text))
    except ValueError:
        message = ""
    return message or text or fallback


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def fetch_json(api: str, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
    """GET ``api + path`` and decode JSON; raises ``ApiError`` on HTTP errors, ``CliError`` otherwise."""
    url = api + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "sidecar-cli"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            raise ApiError(exc.code, error_message(exc.read(), str(exc.reason))) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise CliError(f"cannot reach the API at {api}: {_reason(exc)}") from None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise CliError(f"the API at {api} returned invalid JSON for {path}: {exc}") from None


def _api_error(exc: ApiError) -> CliError:
    return CliError(f"API error (HTTP {exc.status}): {exc.message}")


# ------------------------------------------------------------------------------------------ formatting


def human_duration(us: float) -> str:
    """Compact duration for tables: ``850µs``, ``12.3ms``, ``1.20s``, ``2m05s``, ``1h02m``."""
    if us < 999.5:
        return f"{us:.0f}µs"
    if us < 999_950:
        return f"{us / 1e3:.1f}ms"
    if us < 59_995_000:
        return f"{us / 1e6:.2f}s"
    seconds = round(us / 1e6)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def local_time(us: int) -> str:
    """Local wall-clock ISO time at seconds precision, which is what a human correlates with logs."""
    return datetime.fromtimestamp(us / 1e6).isoformat(timespec="seconds")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int]) -> str:
    """Aligned plain-text table; columns in ``right`` are right-aligned (numbers)."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    lines = []
    for row in [headers, *rows]:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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


def format_trace(trace: Mapping[str, Any]) -> str:
    """Summary line plus the span tree: id, service, indented operation, start offset, duration, ERROR."""
    spans = trace.get("spans") or []
    processes = trace.get("processes") or {}
    if not spans:
        return f"Trace {trace.get('traceID', '?')}: no spans"
    start = min(span.get("startTime") or 0 for span in spans)
    end = max((span.get("startTime") or 0) + (span.get("duration") or 0) for span in spans)
    rows: list[list[str]] = []
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
    counts = f"{_count(len(spans), 'span')}, {_count(len(services), 'service')}, {_count(errors, 'error')}"
    summary = (
        f"Trace {trace.get('traceID', '?')}: {counts}, "
        f"duration {human_duration(end - start)}, started {local_time(start)}"
    )
    headers = ["SPAN ID", "SERVICE", "OPERATION", "START (ms)", "DURATION (ms)", ""]
    return summary + "\n\n" + render_table(headers, rows, right=frozenset({3, 4}))


def format_summaries(summaries: Sequence[Mapping[str, Any]]) -> str:
    """One row per trace: id, local start time, human duration, span/error counts and root span."""
    rows = [
        [
            str(s.get("traceID", "?")),
            local_time(s.get("startTime") or 0),
            human_duration(s.get("duration") or 0),
            str(s.get("spanCount", 0)),
            str(s.get("errorCount", 0)),
            f"{s.get('rootServiceName') or '?'}: {s.get('rootOperationName') or '?'}",
        ]
        for s in summaries
    ]
    headers = ["TRACE ID", "START", "DURATION", "SPANS", "ERRORS", "ROOT"]
    return render_table(headers, rows, right=frozenset({2, 3, 4}))


# ------------------------------------------------------------------------------------------- commands


def _print_json(doc: object) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False))


def _api_base(args: argparse.Namespace) -> str:
    if args.api is not None:
        return str(args.api)
    from_env = os.environ.get(API_URL_ENV)
    if not from_env:
        return DEFAULT_API_URL
    try:
        return api_url(from_env)
    except argparse.ArgumentTypeError as exc:
        raise CliError(f"{API_URL_ENV}: {exc}", code=2) from None


def cmd_get(args: argparse.Namespace) -> int:
    """Fetch one trace and print it as a span tree (or JSON)."""
    api = _api_base(args)
    try:
        doc = fetch_json(api, f"/api/traces/{urllib.parse.quote(args.trace_id)}")
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"trace {args.trace_id} not found") from None
        raise _api_error(exc) from None
    data = doc.get("data") if isinstance(doc, Mapping) else None
    problems = envelope_message(doc)
    if not isinstance(data, list) or not data:
        raise CliError(f"API error: {problems}" if problems else f"trace {args.trace_id} not found")
    if problems:
        print(f"sidecar: warning: {problems}", file=sys.stderr)
    trace = data[0]
    if args.json:
        _print_json(trace)
    else:
        print(format_trace(trace))
    return 0


def search_params(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Query parameters for /api/trace-summaries, only for the options given."""
    params: list[tuple[str, str]] = []
    for name, value in (("service", args.service), ("operation", args.operation)):
        if value is not None:
            params.append((name, value))
    params.extend(("tag", tag) for tag in args.tags or ())
    for name, value in (
        ("minDuration", args.min_duration),
        ("maxDuration", args.max_duration),
        ("since", args.since),
        ("limit", None if args.limit is None else str(args.limit)),
    ):
        if value is not None:
            params.append((name, value))
    return params


def cmd_search(args: argparse.Namespace) -> int:
    """Search trace summaries and print them as a table (or JSON)."""
    api = _api_base(args)
    try:
        doc = fetch_json(api, "/api/trace-summaries", search_params(args))
    except ApiError as exc:
        raise _api_error(exc) from None
    data = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(data, list):
        raise CliError(f"unexpected response from {api}/api/trace-summaries: no 'data' list")
    if args.json:
        _print_json(data)
        return 0
    if not data:
        print("no traces found", file=sys.stderr)
        return 0
    print(format_summaries(data))
    limit = doc.get("limit")
    if isinstance(limit, int) and len(data) >= limit:
        print(f"sidecar: showing the first {limit} traces; use --limit for more", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------- argparse


def api_url(text: str) -> str:
    """An http(s) base URL without trailing slash, so paths can be appended."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"expected an http(s) URL such as {DEFAULT_API_URL}, got {text!r}")
    return text.rstrip("/")


def _tag(text: str) -> str:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return f"{key}:{value}"


def _duration(text: str) -> str:
    if not _GO_DURATION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a duration such as 100ms, 1.5s or 2m, got {text!r}")
    return text


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _trace_id(text: str) -> str:
    if not _TRACE_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a hex trace ID of up to 32 digits, got {text!r}")
    return text.lower()


def add_traces_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``traces get`` and ``traces search``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        type=api_url,
        metavar="URL",
        help=f"query API base URL (default: ${API_URL_ENV}, else {DEFAULT_API_URL})",
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")

    traces = subparsers.add_parser("traces", help="look up stored traces", description="Query stored traces.")
    commands = traces.add_subparsers(dest="traces_command", required=True, metavar="COMMAND")

    get = commands.add_parser("get", parents=[common], help="show one trace as a span tree")
    get.add_argument("trace_id", type=_trace_id, metavar="TRACE_ID", help="hex trace ID")
    get.set_defaults(handler=cmd_get)

    search = commands.add_parser(
        "search", parents=[common], help="find traces", description="Find traces matching all given filters."
    )
    search.add_argument("--service", metavar="S", help="service name")
    search.add_argument("--operation", metavar="O", help="operation name")
    search.add_argument(
        "--tag", dest="tags", action="append", type=_tag, metavar="KEY=VALUE", help="span tag; repeatable"
    )
    search.add_argument("--min-duration", type=_duration, metavar="DURATION", help="e.g. 100ms")
    search.add_argument("--max-duration", type=_duration, metavar="DURATION", help="e.g. 2s")
    search.add_argument("--since", metavar="DURATION", help="only traces started within this window, e.g. 1h")
    search.add_argument("--limit", type=_limit, metavar="N", help="most traces to return (default: server's)")
    search.set_defaults(handler=cmd_search)
