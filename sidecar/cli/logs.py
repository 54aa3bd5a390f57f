"""``sidecar logs search|tail``: log records from ``GET /api/logs`` and ``GET /api/logs/tail``.

``search`` prints one page, newest first; ``tail`` follows the Server-Sent Events stream and prints
records as they arrive until interrupted. One line per record: time (UTC), severity, service, body
and a shortened trace ID; or, with ``--json``, the API's JSON (one object per line for ``tail``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from sidecar.cli import argtypes
from sidecar.cli.client import (
    ApiError,
    CliError,
    _reason,
    api_base,
    error_message,
    fetch_page,
    print_json,
    query_options,
)
from sidecar.cli.events import event_time
from sidecar.cli.output import fit, printable, terminal_width

PATH = "/api/logs"
TAIL_PATH = "/api/logs/tail"
TAIL_TIMEOUT_S = 120.0  # the server writes a keepalive comment about every 15 s
# The first SeverityNumber of each OTLP range, highest first.
_SEVERITY_NAMES = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"), (1, "TRACE"))


def severity_name(record: Mapping[str, Any]) -> str:
    """The record's severity text, else the name of its number's range, else ``-``."""
    text = record.get("severity_text")
    if isinstance(text, str) and text:
        return text.upper()
    number = record.get("severity_number")
    if isinstance(number, int):
        for low, name in _SEVERITY_NAMES:
            if number >= low:
                return name
    return "-"


def body_text(body: object) -> str:
    """The body on one line: text as it is, a map or list as JSON; control characters (a newline
    too) escaped by ``printable``."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=str)
    return printable(text)


def format_record(record: Mapping[str, Any], width: int | None) -> str:
    """``TIME  SEVERITY  SERVICE  BODY  trace=12345678`` (the trace ID's first 8 digits)."""
    parts = [
        event_time(record.get("time_unix_nano")),
        printable(severity_name(record)).ljust(5),
        printable(str(record.get("service") or "-")),
        body_text(record.get("body")),
    ]
    trace = record.get("trace_id")
    if isinstance(trace, str) and trace:
        parts.append(f"trace={printable(trace[:8])}")
    return fit("  ".join(parts), width)


def query_params(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The filters as ``/api/logs`` parameters (``tail`` takes the same)."""
    params: list[tuple[str, str]] = []
    for name, value in (
        ("service", args.service),
        ("severity_min", args.severity),
        ("q", args.grep),
        ("regex", args.regex),
        ("trace_id", args.trace_id.zfill(32) if args.trace_id else None),
    ):
        if value is not None:
            params.append((name, value))
    if getattr(args, "since", None) is not None:
        params.append(("from", str(max(time.time_ns() - argtypes.day_window_ns(args.since), 0))))
    return params


def cmd_search(args: argparse.Namespace) -> int:
    """One page of matching records, newest first."""
    api = api_base(args)
    params = query_params(args)
    if args.limit is not None:
        params.append(("limit", str(args.limit)))
    doc, data = fetch_page(api, PATH, params)
    if args.json:
        print_json(doc)
        return 0
    if not data:
        print("no log records found", file=sys.stderr)
    width = terminal_width()
    for record in data:
        if isinstance(record, Mapping):
            print(format_record(record, width))
    if doc.get("next_cursor"):
        print(f"sidecar: showing {len(data)} records; more may match, raise --limit", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """Follow ``/api/logs/tail`` and print each record as it arrives, until Ctrl-C or the server ends."""
    api = api_base(args)
    url = f"{api}{TAIL_PATH}?{urllib.parse.urlencode(query_params(args))}"
    request = urllib.request.Request(
        url, headers={"Accept": "text/event-stream", "User-Agent": "sidecar-cli"}
    )
    try:
        response = urllib.request.urlopen(request, timeout=TAIL_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        with exc:
            raise ApiError(exc.code, error_message(exc.read(), str(exc.reason))).cli_error() from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise CliError(f"cannot reach the API at {api}: {_reason(exc)}") from None
    width = terminal_width()
    with response:
        try:
            for raw in response:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line.startswith("data:"):
                    continue  # comments (": keepalive"), blank separators
                try:
                    record = json.loads(line[5:])
                except ValueError:
                    raise CliError(
                        f"the API at {api} sent an event that is not JSON: {line[:80]!r}"
                    ) from None
                if args.json:
                    print(json.dumps(record, ensure_ascii=False), flush=True)
                elif isinstance(record, Mapping):
                    print(format_record(record, width), flush=True)
        except (http.client.HTTPException, OSError) as exc:
            raise CliError(f"lost the API at {api} while tailing: {_reason(exc)}") from None
    return 0


class _NotForTail(argparse.Action):
    """``--since``/``--limit`` given to ``tail``: exit 2 with its usage and what to use instead,
    rather than argparse's bare "unrecognized arguments"."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"{option_string}: 'logs tail' follows new records from now and takes no --since or "
            "--limit; for past records use 'sidecar logs search --since DURATION [--limit N]'"
        )


def _filters() -> argparse.ArgumentParser:
    f = argparse.ArgumentParser(add_help=False)
    f.add_argument("--service", metavar="S", help="service name")
    f.add_argument(
        "--severity",
        type=argtypes.severity,
        metavar="LEVEL",
        help="at least this severity: trace, debug, info, warn (or warning), error, fatal, or a number 1-24",
    )
    f.add_argument("--grep", metavar="TEXT", help="body contains TEXT (case-insensitive)")
    f.add_argument("--regex", type=argtypes.regex, metavar="RE", help="body matches this regular expression")
    f.add_argument(
        "--trace-id",
        type=argtypes.trace_id,
        metavar="ID",
        help="records of this trace (hex, up to 32 digits)",
    )
    return f


def add_logs_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``logs search`` and ``logs tail``."""
    common = query_options()
    filters = _filters()
    logs = subparsers.add_parser(
        "logs", help="search or tail log records", description="Query stored log records."
    )
    commands = logs.add_subparsers(dest="logs_command", required=True, metavar="COMMAND")

    search = commands.add_parser(
        "search",
        parents=[common, filters],
        help="show one page of log records, newest first",
        description="Show log records matching all given filters, newest first, one per line: time "
        "(UTC), severity, service, body and the trace ID's first 8 digits. A note on stderr says when "
        "more match.",
    )
    search.add_argument(
        "--since",
        type=argtypes.day_window,
        metavar="DURATION",
        help="only records within this window before now, e.g. 1h, 30m, 7d (d = 24h)",
    )
    search.add_argument(
        "--limit", type=argtypes.limit, metavar="N", help="most records to show (default: the server's, 100)"
    )
    search.set_defaults(handler=cmd_search)

    tail = commands.add_parser(
        "tail",
        parents=[common, filters],
        help="print new log records as they arrive",
        description="Follow new log records matching all given filters and print each as it arrives "
        "(with --json, one JSON object per line), until Ctrl-C.",
    )
    for flag in ("--since", "--limit"):  # search's flags, refused with a hint; hidden from --help
        tail.add_argument(flag, action=_NotForTail, nargs="?", help=argparse.SUPPRESS)
    tail.set_defaults(handler=cmd_tail)
