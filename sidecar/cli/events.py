"""``sidecar events list|export``: business events from ``GET /api/events`` without curl.

``list`` shows one page as a table (or JSON); ``export`` follows the cursors to the end and copies
each page into a file row by row as it arrives, so a million events never sit in memory at once.
Stdlib only, like the rest of the CLI: the progress line is a ``\\r``-rewritten line on stderr,
drawn only on a terminal.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sidecar.cli import argtypes
from sidecar.cli.analytics import add_analytics_commands
from sidecar.cli.client import (
    API_URL_ENV,
    DEFAULT_API_URL,
    HTTP_TIMEOUT_S,
    ApiError,
    CliError,
    _reason,
    api_base,
    api_url,
    error_message,
    fetch_page,
    print_json,
    query_options,
)
from sidecar.cli.output import count, fit, render_table, terminal_width
from sidecar.cli.rollups import add_rebuild_command
from sidecar.cli.traces import tag_value

PATH = "/api/events"
DEFAULT_PAGE_SIZE = 1000
FORMATS = ("csv", "ndjson")


# ------------------------------------------------------------------------------------------- helpers


def event_time(ns: object) -> str:
    """RFC 3339 UTC to the millisecond: events a few ms apart stay apart, and it pastes into --from."""
    if not isinstance(ns, int):
        return "?"
    seconds, rest = divmod(ns, 10**9)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 10**6:03d}Z"


def compact_properties(props: object) -> str:
    """``key=value`` pairs sorted by key, values quoted only when they need it (as span tags are)."""
    if not isinstance(props, Mapping):
        return ""
    return " ".join(f"{key}={tag_value(props[key])}" for key in sorted(props))


def format_events(events: list[Mapping[str, Any]], width: int | None) -> str:
    rows = [
        [
            event_time(e.get("timestamp_ns")),
            str(e.get("name") or ""),
            str(e.get("user_id") or ""),
            str(e.get("service") or ""),
            compact_properties(e.get("properties")),
        ]
        for e in events
    ]
    table = render_table(["TIME (UTC)", "NAME", "USER", "SERVICE", "PROPERTIES"], rows, right=frozenset())
    return "\n".join(fit(line, width) for line in table.splitlines())


def query_params(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The filters as ``/api/events`` parameters; a window that cannot hold anything exits 2 here."""
    params: list[tuple[str, str]] = []
    for name, value in (
        ("name", args.name),
        ("user_id", args.user),
        ("session_id", args.session),
        ("service", args.service),
        ("order", args.order),
    ):
        if value is not None:
            params.append((name, value))
    params.extend((f"prop.{key}", value) for key, value in args.props or ())
    start, end = args.start, args.end
    if args.since is not None:  # the client's clock ends the window: the API has no "since"
        start = max((end if end is not None else time.time_ns()) - argtypes.day_window_ns(args.since), 0)
    if start is not None and end is not None and start >= end:
        raise CliError(f"--from ({event_time(start)}) must be before --to ({event_time(end)})", code=2)
    params.extend((name, str(ns)) for name, ns in (("from", start), ("to", end)) if ns is not None)
    return params


@contextmanager
def open_page(api: str, params: list[tuple[str, str]]) -> Iterator[tuple[IO[str], str | None]]:
    """One csv/ndjson page as a text stream (read as it arrives, never whole) and the
    ``X-Next-Cursor`` header; HTTP errors carry the server's message, a lost connection says so."""
    url = f"{api}{PATH}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"User-Agent": "sidecar-cli"})
    try:
        response = urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        with exc:
            raise ApiError(exc.code, error_message(exc.read(), str(exc.reason))).cli_error() from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise CliError(f"cannot reach the API at {api}: {_reason(exc)}") from None
    with response:
        stream = io.TextIOWrapper(io.BufferedReader(_Body(response, api)), encoding="utf-8", newline="")
        yield stream, response.headers.get("X-Next-Cursor") or None


class _Body(io.RawIOBase):
    """A response body whose read failures say the API was lost, so a full disk (a write error in
    the same loop) is not blamed on the network."""

    def __init__(self, response: http.client.HTTPResponse, api: str) -> None:
        self.response = response
        self.api = api

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self.response.readinto(buffer)
        except (http.client.HTTPException, OSError) as exc:
            raise CliError(f"lost the API at {self.api} while reading a page: {_reason(exc)}") from None


class CsvPages:
    """Joins CSV pages into one file with one header: the first page's. A key first seen mid-export
    would widen later pages' headers; their rows are mapped onto the first header's columns."""

    def __init__(self, out: IO[str]) -> None:
        self.writer = csv.writer(out, lineterminator="\r\n")  # as the server writes: same bytes back
        self.header: list[str] | None = None

    def write(self, page: IO[str]) -> int:
        """Copy one page (a text stream opened with ``newline=""``) row by row; returns its rows."""
        rows = csv.reader(page)
        header = next(rows, None)
        if header is None:
            return 0
        if self.header is None:
            self.header = header
            self.writer.writerow(header)
        written = 0
        if header == self.header:
            for row in rows:
                self.writer.writerow(row)
                written += 1
            return written
        index = {key: i for i, key in enumerate(header)}
        for row in rows:
            self.writer.writerow(
                [row[index[k]] if k in index and index[k] < len(row) else "" for k in self.header]
            )
            written += 1
        return written


class Progress:
    """``exported N events (P pages)`` rewritten in place on a terminal; silent otherwise. Counts are
    spelled with ``count``: ``1 event``, ``1 page``."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.on = stream.isatty()
        self.events = 0
        self.pages = 0

    def update(self, events: int) -> None:
        self.events += events
        self.pages += 1
        if self.on:
            self.stream.write(f"\rexported {count(self.events, 'event')} ({count(self.pages, 'page')})")
            self.stream.flush()

    def done(self) -> None:
        if self.on:
            self.stream.write("\n")
            self.stream.flush()


# ------------------------------------------------------------------------------------------ commands


def cmd_list(args: argparse.Namespace) -> int:
    """One page of events, newest first unless --order asc, as a table (or the API's JSON)."""
    api = api_base(args)
    params = query_params(args)
    if args.limit is not None:
        params.append(("limit", str(args.limit)))
    doc, data = fetch_page(api, PATH, params)
    if args.json:
        print_json(doc)
    elif not data:
        print("no events found", file=sys.stderr)
    else:
        print(format_events(data, terminal_width()))
    if doc.get("next_cursor") and not args.json:
        print(
            f"sidecar: showing {len(data)} events; more may match, raise --limit "
            "or use 'sidecar events export'",
            file=sys.stderr,
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Every matching event into --output: pages fetched one at a time and appended as they come.

    The file is written as ``FILE.part`` and renamed when the last page is in, so a failed export
    never leaves a file that looks complete.
    """
    api = api_base(args)
    output = Path(args.output)
    if not output.parent.is_dir():
        raise CliError(f"--output: directory {str(output.parent)!r} does not exist", code=2)
    if output.is_dir():
        raise CliError(f"--output: {str(output)!r} is a directory", code=2)
    params = [*query_params(args), ("format", args.format), ("limit", str(args.page_size))]
    part = output.with_name(output.name + ".part")
    progress = Progress(sys.stderr)
    try:
        with open(part, "w", encoding="utf-8", newline="") as out:
            pages = CsvPages(out) if args.format == "csv" else None
            cursor: str | None = None
            while True:
                with open_page(api, params + ([("cursor", cursor)] if cursor else [])) as (page, cursor):
                    if pages is not None:
                        rows = pages.write(page)
                    else:
                        rows = 0
                        for line in page:  # one event per line
                            out.write(line)
                            rows += 1
                out.flush()  # a page at a time: the file grows as the progress line says
                progress.update(rows)
                if not cursor:
                    break
        os.replace(part, output)
    except (UnicodeDecodeError, csv.Error) as exc:  # whatever answered is not the sidecar's API
        part.unlink(missing_ok=True)
        raise CliError(f"the API at {api} sent a page that is not {args.format} in UTF-8: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        progress.done()
    if progress.on:
        print(f"sidecar: exported {count(progress.events, 'event')} to {output}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------ argparse

TIME_HELP = "RFC 3339 with a zone (2024-01-02T15:04:05Z) or Unix seconds"


def _filters() -> argparse.ArgumentParser:
    """The filters ``list`` and ``export`` share, as an argparse parent."""
    f = argparse.ArgumentParser(add_help=False)
    f.add_argument("--name", metavar="N", help="event name")
    f.add_argument("--user", metavar="U", help="user ID (reads that user's index)")
    f.add_argument("--session", metavar="S", help="session ID")
    f.add_argument("--service", metavar="S", help="service name")
    f.add_argument(
        "--prop",
        dest="props",
        action="append",
        type=argtypes.tag,
        metavar="KEY=VALUE",
        help="property equal to VALUE (numbers compare by value); repeatable, all must match",
    )
    window = f.add_mutually_exclusive_group()
    window.add_argument(
        "--since",
        type=argtypes.day_window,
        metavar="DURATION",
        help="only events within this window before --to (default: now), e.g. 7d, 36h, 1d12h, 30m; "
        "d = 24h, the rest is Go duration syntax",
    )
    window.add_argument(
        "--from", dest="start", type=argtypes.time_ns, metavar="TIME", help=f"start: {TIME_HELP}"
    )
    f.add_argument(
        "--to", dest="end", type=argtypes.time_ns, metavar="TIME", help="end (exclusive; default: none)"
    )
    f.add_argument(
        "--order", choices=("asc", "desc"), help="by time: desc (newest first, the default) or asc"
    )
    return f


def add_events_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``events list``, ``events export`` and the analytics commands."""
    common = query_options()
    filters = _filters()
    events = subparsers.add_parser(
        "events",
        help="list, export and analyse business events",
        description="Query stored business events: list and export them, or ask for trends, "
        "funnels, retention, paired durations and a summary.",
    )
    commands = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        parents=[common, filters],
        help="show one page of events",
        description="Show events matching all given filters as a table: time (UTC), name, user, "
        "service and properties. A note on stderr says when more match.",
    )
    listing.add_argument(
        "--limit", type=argtypes.limit, metavar="N", help="most events to show (default: the server's, 100)"
    )
    listing.set_defaults(handler=cmd_list)

    export = commands.add_parser(
        "export",
        parents=[filters],
        help="write every matching event to a file",
        description="Follow the API's cursors to the end and write every matching event to FILE as "
        "CSV (one header) or NDJSON, a page at a time. A progress line is drawn when stderr is a "
        "terminal.",
    )
    export.add_argument(
        "--api",
        type=api_url,
        metavar="URL",
        help=f"query API base URL (default: ${API_URL_ENV}, else {DEFAULT_API_URL})",
    )
    export.add_argument("--format", required=True, choices=FORMATS, help="csv or ndjson")
    export.add_argument("--output", required=True, metavar="FILE", help="file to write (replaced when done)")
    export.add_argument(
        "--page-size",
        type=argtypes.page_size,
        default=DEFAULT_PAGE_SIZE,
        metavar="N",
        help=f"events per request, 1 to {argtypes.MAX_EVENTS_PAGE} (default {DEFAULT_PAGE_SIZE})",
    )
    export.set_defaults(handler=cmd_export)
    add_analytics_commands(commands)
    add_rebuild_command(commands)
