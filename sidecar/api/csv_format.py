"""CSV answers shared by the events and logs routes: RFC 4180 quoting and formula-injection safety."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence

from multidict import MultiMapping

from sidecar.api import params
from sidecar.query.params import shown

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


FORMATS = ("json", "ndjson", "csv")  # the answer formats of the listing routes (events, logs)


def output_format(q: MultiMapping[str]) -> str:
    """The ``format`` parameter; 400 naming it when it is none of FORMATS."""
    fmt = params.text(q, "format") or "json"
    if fmt not in FORMATS:
        raise params.BadParam("format", f"must be json, ndjson or csv, got {shown(fmt)}")
    return fmt


def rfc3339(ns: int) -> str:
    """Nanosecond UTC time, so no digit of the stored time is lost in a spreadsheet."""
    seconds, nanos = divmod(ns, 10**9)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def cell(value: object) -> str:
    """Text of one CSV cell; text a spreadsheet would run as a formula gets a leading ``'``.
    Numbers stay numbers: a refund of -3.5 is no formula, and a ``'`` would make it text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def columns(fixed: Sequence[str], keys: Sequence[str], prefix: str) -> list[str]:
    """The header: the fixed fields, then one column per key; a key that is also a fixed field's
    name is written ``prefix + key`` so no two columns share a name."""
    taken = set(fixed)
    return [*fixed, *(prefix + key if key in taken else key for key in keys)]


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """RFC 4180 CSV (CRLF line ends, quotes where needed), every cell made safe by :func:`cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()
