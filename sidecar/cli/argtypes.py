"""Argument types for the query commands.

Each rejects, before any request, input the server could never accept, so a typo exits 2 with the
flag's name instead of a round trip. Durations and RFC 3339 times use the server's own parsers, so
the client accepts exactly what the server does.
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal

from sidecar.query.params import parse_go_duration, parse_rfc3339_nano
from sidecar.query.regex import compile_regex

_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")
_UNIX_SECONDS = re.compile(r"\d+(\.\d+)?")
_TIME_RANGE_US = (-(2**63) // 1000 + 1, (2**63 - 1) // 1000)  # what int64 nanoseconds can hold


def duration_ns(text: str) -> int:
    """A Go duration (``100ms``, ``1.5h``, ``1h30m``) in nanoseconds; nothing lasts a negative time."""
    try:
        ns = parse_go_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if ns < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return ns


def duration(text: str) -> str:
    """A valid Go duration, passed on as typed: the server owns its meaning."""
    duration_ns(text)
    return text


def window(text: str) -> str:
    """A look-back window: a Go duration greater than zero."""
    if duration_ns(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than zero, got {text!r}")
    return text


def time_us(text: str) -> int:
    """An RFC 3339 time or Unix seconds, as the microseconds the API takes."""
    try:
        if _UNIX_SECONDS.fullmatch(text):
            us = int(Decimal(text) * 1_000_000)
        else:
            us = parse_rfc3339_nano(text) // 1000
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time such as 2024-01-02T15:04:05Z, or Unix seconds, got {text!r}"
        ) from None
    low, high = _TIME_RANGE_US
    if not low <= us <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: times must lie between 1677 and 2262")
    return us


def limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# The most events ``GET /api/events`` gives per page (sidecar.api.events.MAX_LIMIT; a test keeps them
# equal). Not imported: that module pulls in the server's web framework.
MAX_EVENTS_PAGE = 10_000


def page_size(text: str) -> int:
    """Events per ``/api/events`` request: 1 to ``MAX_EVENTS_PAGE``, which the server refuses above."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_EVENTS_PAGE:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_EVENTS_PAGE}, got {text!r}")
    return value


def trace_id(text: str) -> str:
    if not _TRACE_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a hex trace ID of up to 32 digits, got {text!r}")
    if not int(text, 16):
        raise argparse.ArgumentTypeError(f"a trace ID is never all zeros, got {text!r}")
    return text.lower()


def tag(text: str) -> tuple[str, str]:
    """``KEY=VALUE``; only the first ``=`` splits, so keys and values may hold ``:`` and values ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


_DAYS = re.compile(r"(\d+(?:\.\d+)?)d(.*)")
_NS_PER_DAY = 86_400 * 10**9
_UNIX_NS_MAX = 2**63 - 1  # the API's time range: int64 nanoseconds from 1970


def day_window(text: str) -> str:
    """A look-back window greater than zero: a Go duration, optionally led by days (``7d``, ``1d12h``),
    where ``d`` = 24h. Event questions span weeks, and Go durations stop at hours. Returned as typed;
    ``day_window_ns`` gives its length."""
    day_window_ns(text)
    return text


def day_window_ns(text: str) -> int:
    """Nanoseconds of a ``day_window``; ``ArgumentTypeError`` for anything else."""
    match = _DAYS.fullmatch(text)
    days_ns = int(Decimal(match.group(1)) * _NS_PER_DAY) if match else 0
    rest = match.group(2) if match else text
    try:
        ns = days_ns + (duration_ns(rest) if rest else 0)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 7d, 1d12h, 36h or 30m (d = 24h), got {text!r}"
        ) from None
    if ns <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than zero, got {text!r}")
    if ns > _UNIX_NS_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return ns


def time_ns(text: str) -> int:
    """An RFC 3339 time or Unix seconds, as the nanoseconds ``/api/events`` takes (1970 to 2262)."""
    try:
        ns = int(Decimal(text) * 1000000000) if _UNIX_SECONDS.fullmatch(text) else parse_rfc3339_nano(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time such as 2024-01-02T15:04:05Z, or Unix seconds, got {text!r}"
        ) from None
    if not 0 <= ns <= _UNIX_NS_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: times must lie between 1970 and 2262")
    return ns


def severity(text: str) -> str:
    """A log severity as ``/api/logs`` takes it: a name (trace, debug, info, warn, error, fatal) or 1-24.

    ``warning`` (any case) is taken as ``warn`` and sent as ``warn``, which every server version
    accepts.
    """
    from sidecar.query.logs import parse_severity

    if text.strip().lower() == "warning":
        return "warn"
    try:
        parse_severity(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def regex(text: str) -> str:
    """A regular expression RE2 accepts, as the server compiles it."""
    try:
        compile_regex(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# -- event analytics -------------------------------------------------------------------------------
# sidecar.query.analytics.measures.MEASURES and VALUE_MEASURES (a unit test keeps them equal); not
# imported, as that module pulls in numpy.
MEASURES = (
    *("count", "unique_users", "dau", "wau", "mau"),
    *("sum", "avg", "min", "max", "p50", "p90", "p95", "p99"),
    *("per_user_avg", "per_user_p50", "per_user_p90"),
)
VALUE_MEASURES = ("sum", "avg", "min", "max", "p50", "p90", "p95", "p99")
_WHOLE_DAYS = re.compile(r"\s*(\d+)d(.*)")


def measure(text: str) -> str:
    if text not in MEASURES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(MEASURES)}, got {text!r}")
    return text


def timezone(text: str) -> str:
    """An IANA zone name, as the server's ``zoneinfo`` knows it."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected an IANA time zone name such as UTC or Europe/Warsaw, got {text!r}"
        ) from None
    return text


def funnel_window(text: str) -> str | int | float:
    """A funnel's window as ``sidecar.query.analytics.request.seconds_of`` takes it: whole days then
    a Go duration (``7d``, ``1d12h``, ``90m``), or seconds (sent as a number)."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not 0 < seconds < float("inf"):
            raise argparse.ArgumentTypeError(f"must be longer than zero, got {text!r}")
        return int(seconds) if seconds.is_integer() else seconds
    match = _WHOLE_DAYS.fullmatch(text)
    rest = match.group(2).strip() if match else text.strip()
    try:
        ns = (int(match.group(1)) * _NS_PER_DAY if match else 0) + (parse_go_duration(rest) if rest else 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected a duration such as 1h, 90m, 7d or 1d12h (units ns, us, ms, s, m, h, and whole "
            f"days d = 24h first) or seconds, got {text!r}"
        ) from None
    if ns <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than zero, got {text!r}")
    return text


_FILTER_OPS = (">=", "<=", "!=", ">", "<", "~", "=")  # longest first: '>=' before '>'
_OP_NAMES = {"~": "regex"}


def analytics_filter(text: str) -> dict[str, str]:
    """``KEY=VALUE``, ``KEY!=VALUE``, ``KEY>N`` (``>=``, ``<``, ``<=``), ``KEY~REGEX``, ``KEY?``
    (exists) or ``!KEY`` (does not exist), as an API filter. Values stay text (the server compares a
    numeric text with numbers by value), but a comparison needs a number and a regex must compile,
    as the server would refuse them."""
    if text.endswith("?") and len(text) > 1:
        return {"property": text[:-1], "op": "exists"}
    if text.startswith("!") and len(text) > 1 and not any(op in text for op in _FILTER_OPS):
        return {"property": text[1:], "op": "not_exists"}
    for op in _FILTER_OPS:
        key, sep, value = text.partition(op)
        if not sep or not key:
            continue
        if op in (">=", "<=", ">", "<"):
            try:
                float(value)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{key}{op} compares numbers; expected a number after {op!r}, got {value!r}"
                ) from None
        if op == "~":
            regex(value)
        return {"property": key, "op": _OP_NAMES.get(op, op), "value": value}
    raise argparse.ArgumentTypeError(
        f"expected KEY=VALUE, KEY!=VALUE, KEY>N, KEY~REGEX, KEY? or !KEY, got {text!r}"
    )
