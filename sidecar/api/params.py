"""Request parameters -> TraceQuery, shared by the Jaeger v1, api_v3 and native routes.

Every failure is a :class:`BadParam` that names the parameter as the client spelled it (an alias such
as ``query.start_time_min`` stays that alias) and the real reason; each API wraps it in its own error
shape. Values are read as Jaeger's Go code reads them, so what Grafana and Jaeger UI send still passes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from decimal import Decimal

from multidict import MultiMapping

from sidecar.config.model import ApiConfig
from sidecar.query.params import (
    MAX_NS,
    parse_decimal,
    parse_go_duration,
    parse_rfc3339_nano,
    parse_trace_id,
    shown,
)
from sidecar.storage.api import TraceQuery

# A limit above the maximum is refused (400 naming the maximum), never clamped silently. The maximum
# is api.max_search_limit; these are its and api.default_search_limit's defaults, read from the config.
DEFAULT_MAX_LIMIT: int = ApiConfig.max_search_limit
DEFAULT_NATIVE_LIMIT: int = ApiConfig.default_search_limit
# Jaeger's defaultQueryLimit: v1 `limit` (0 or absent) and api_v3 `query.searchDepth` (absent).
JAEGER_DEFAULT_LIMIT = 100
# Values of `spanKind` (v1 /api/operations, /api/v3/operations); empty means every kind.
SPAN_KINDS = ("server", "client", "producer", "consumer", "internal")

_DAY_NS = 86_400 * 1_000_000_000
_MIN_NS = -(2**63)
# A parameter's name as sent and its value (nanoseconds for times and durations).
Named = tuple[str, int]


class BadParam(ValueError):
    def __init__(self, name: str, reason: str, *, message: str | None = None) -> None:
        super().__init__(message or f"parameter '{name}': {reason}")
        self.name = name

    @classmethod
    def required(cls, name: str, hint: str = "") -> BadParam:
        """Jaeger's own wording (``parameter 'service' is required``), which clients may match."""
        return cls(name, "is required", message=f"parameter '{name}' is required{hint}")


def first(params: MultiMapping[str], *names: str) -> tuple[str, str] | None:
    """The first non-empty value among aliases (Grafana and Jaeger UI spell names differently)."""
    for name in names:
        for value in params.getall(name, ()):
            if value != "":
                return name, value
    return None


def text(params: MultiMapping[str], *names: str) -> str | None:
    """A free-text value (service, operation) under any of its aliases; None when absent or empty."""
    found = first(params, *names)
    return found[1] if found else None


def _convert(
    params: MultiMapping[str], names: tuple[str, ...], convert: Callable[[str], int]
) -> Named | None:
    found = first(params, *names)
    if found is None:
        return None
    name, value = found
    try:
        return name, convert(value)
    except ValueError as exc:
        raise BadParam(name, str(exc)) from None  # the parsers quote the value already


def duration(params: MultiMapping[str], *names: str, positive: bool = False) -> Named | None:
    """A Go duration (``150ms``). Durations bound how long something lasts, so none is negative;
    ``positive`` also refuses 0, for a look-back that would open an empty window."""
    found = first(params, *names)
    if found is None:
        return None
    name, value = found
    try:
        ns = parse_go_duration(value)
    except ValueError as exc:
        raise BadParam(name, str(exc)) from None
    if positive and ns <= 0:
        raise BadParam(name, f"must be a positive duration such as 1h, got {shown(value)}")
    if ns < 0:
        raise BadParam(name, f"must not be negative, got {shown(value)}")
    return name, ns


def _epoch(unit_ns: int, unit: str, *, signed: bool = True) -> Callable[[str], int]:
    """Integer ``unit``s since the epoch -> ns; refuses times int64 nanoseconds cannot hold."""
    lowest, highest = (-(-_MIN_NS // unit_ns) if signed else 0), MAX_NS // unit_ns

    def convert(value: str) -> int:
        try:
            number = parse_decimal(value)
        except ValueError:
            raise ValueError(f"expected an integer ({unit} since the epoch), got {shown(value)}") from None
        if not lowest <= number <= highest:
            raise ValueError(
                f"{shown(value)} is out of range: {unit} since the epoch must lie between "
                f"{lowest} and {highest} ({1970 if lowest == 0 else 1677} to 2262)"
            )
        return number * unit_ns

    return convert


_micros = _epoch(1_000, "µs")
_millis = _epoch(1_000_000, "ms", signed=False)


def micros(params: MultiMapping[str], *names: str) -> Named | None:
    """Microseconds since the epoch -> ns (Jaeger v1 and native ``start``/``end``)."""
    return _convert(params, names, _micros)


def millis(params: MultiMapping[str], *names: str) -> Named | None:
    """Milliseconds since the epoch, not before it -> ns (``/api/dependencies`` ``endTs``)."""
    return _convert(params, names, _millis)


def _rfc3339_ns(value: str) -> int:
    ns = parse_rfc3339_nano(value)
    if not _MIN_NS <= ns <= MAX_NS:
        raise ValueError(f"{shown(value)} is out of range: times must lie between 1677-09-21 and 2262-04-11")
    return ns


def rfc3339(params: MultiMapping[str], *names: str) -> Named | None:
    return _convert(params, names, _rfc3339_ns)


def integer(
    params: MultiMapping[str],
    *names: str,
    default: int,
    low: int,
    high: int | None = None,
    high_is: str = "",
    unit: str = "",
) -> int:
    """An integer in ``[low, high]``; ``high_is`` says where the maximum comes from."""
    found = first(params, *names)
    if found is None:
        return default
    name, value = found
    try:
        number = parse_decimal(value)
    except ValueError as exc:
        raise BadParam(name, str(exc)) from None
    if number < low:
        raise BadParam(name, f"must be at least {low}{unit}, got {shown(value)}")
    if high is not None and number > high:
        where = f" ({high_is})" if high_is else ""
        raise BadParam(name, f"must be at most {high}{unit}{where}, got {shown(value)}")
    return number


def search_limit(params: MultiMapping[str], *names: str, default: int, low: int, maximum: int) -> int:
    """A search's trace count: at most ``maximum`` (``api.max_search_limit``), never clamped silently.

    ``low`` 0 keeps Jaeger v1's reading of ``limit=0`` as "the default".
    """
    default = min(default, maximum)
    number = integer(
        params, *names, default=default, low=low, high=maximum, high_is="the server's api.max_search_limit"
    )
    return number or default


def span_kind(params: MultiMapping[str], *names: str) -> str | None:
    """``spanKind`` filter: one of :data:`SPAN_KINDS` (as Jaeger names them), or None for all kinds."""
    found = first(params, *names)
    if found is None:
        return None
    name, value = found
    if value not in SPAN_KINDS:
        raise BadParam(name, f"must be one of {', '.join(SPAN_KINDS)} (or empty for all), got {shown(value)}")
    return value


def trace_id(value: str, name: str = "traceID") -> bytes:
    try:
        return parse_trace_id(value)
    except ValueError as exc:
        raise BadParam(name, str(exc)) from None


def tags(
    params: MultiMapping[str], json_names: tuple[str, ...], pair_name: str | None
) -> list[tuple[str, str]]:
    """Tags from JSON objects (``tags={"k":"v"}``) and ``tag=k:v`` / ``tag=k=v`` pairs.

    JSON values must be strings, as Jaeger decodes them into ``map[string]string``; Grafana and
    Jaeger UI stringify every value before sending, so a number here is a client bug worth a 400.
    Every tag passes :func:`checked_tag`, so ``error`` arrives as ``true`` or ``false``.
    """
    result: list[tuple[str, str]] = []
    for name in json_names:
        for raw in params.getall(name, []):
            if not raw:
                continue
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                raise BadParam(name, f"not a JSON object: {exc}") from None
            if not isinstance(parsed, dict):
                raise BadParam(
                    name, 'must be a JSON object of string values, e.g. {"http.status_code":"500"}'
                )
            for key, value in parsed.items():
                if not isinstance(value, str):
                    raise BadParam(
                        name,
                        f"values must be strings: {shown(key)} is {json.dumps(value)[:40]}, "
                        f"write it as {json.dumps({key: _as_text(value)})[:80]}",
                    )
                result.append(checked_tag(name, key, value))
    if pair_name:
        for raw in params.getall(pair_name, []):
            sep = ":" if ":" in raw else "="
            key, found, value = raw.partition(sep)
            if not found or not key:
                raise BadParam(pair_name, f"expected key:value, got {shown(raw)}")
            result.append(checked_tag(pair_name, key, value))
    return result


def checked_tag(name: str, key: str, value: str) -> tuple[str, str]:
    """One tag filter, with ``error`` held to true/false (any case, spaces around allowed).

    The store reads any other ``error`` value as "false", so ``error:junk`` or a typo like
    ``error=ture`` would quietly return every non-error trace; the user gets a 400 instead.
    ``span.status`` and ``span.kind`` are left alone: Jaeger's reference store refuses no value for
    them (unknown ones map to UNSET / UNSPECIFIED), and here an unknown one matches no span.
    """
    if key != "error":
        return key, value
    wanted = value.strip().lower()
    if wanted not in ("true", "false"):
        raise BadParam(name, f"tag 'error' must be true or false, got {shown(value)}")
    return key, wanted


def _as_text(value: object) -> str:
    """What the client most likely meant, for the hint in the error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def build_query(
    *,
    service: str | None,
    operation: str | None,
    tag_list: list[tuple[str, str]],
    start: Named | None,
    end: Named | None,
    min_duration: Named | None,
    max_duration: Named | None,
    limit: int,
    default_lookback_ns: int = 2 * _DAY_NS,
    min_trace_duration: Named | None = None,
    max_trace_duration: Named | None = None,
) -> TraceQuery:
    """The search; a reversed window or reversed bounds name the parameters as the client sent them."""
    end_ns = end[1] if end is not None else time.time_ns()
    start_ns = start[1] if start is not None else max(end_ns - default_lookback_ns, _MIN_NS)
    if start is not None and start_ns > end_ns:
        after = f"'{end[0]}'" if end is not None else "now (the default when no end is given)"
        raise BadParam(start[0], f"must not be after {after}")
    _ordered(min_duration, max_duration)
    _ordered(min_trace_duration, max_trace_duration)
    return TraceQuery(
        service=service or None,
        operation=operation or None,
        tags=tuple(tag_list),
        start_ns=start_ns,
        end_ns=end_ns,
        min_duration_ns=min_duration[1] if min_duration else None,
        max_duration_ns=max_duration[1] if max_duration else None,
        min_trace_duration_ns=min_trace_duration[1] if min_trace_duration else None,
        max_trace_duration_ns=max_trace_duration[1] if max_trace_duration else None,
        limit=limit,
    )


def _ordered(low: Named | None, high: Named | None) -> None:
    if low is not None and high is not None and high[1] < low[1]:
        raise BadParam(high[0], f"must not be smaller than '{low[0]}'")


def bad_cursor() -> BadParam:
    """The refusal of a ``cursor`` the paging routes (events, logs) did not hand out."""
    return BadParam("cursor", "not a cursor this API gave (use next_cursor)")


def known_only(q: MultiMapping[str], names: Collection[str], prefixes: Collection[str] = ()) -> None:
    """BadParam for the first parameter that is none of ``names`` and has none of ``prefixes``.

    The logs and events routes refuse what they do not know: ``severity=error`` for
    ``severity_min=error`` would otherwise answer every record, a silently changed query.
    """
    for name in q:
        if name not in names and not name.startswith(tuple(prefixes)):
            known = ", ".join([*sorted(names), *(f"{p}KEY" for p in prefixes)])
            raise BadParam(name, f"unknown parameter; this route takes {known}")


# Unix time by magnitude, as Loki reads an integer: below 1e11 seconds (until the year 5138), then
# milliseconds, microseconds, and nanoseconds from 1e17 on (after 1973).
_UNIX_UNITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3))


def unix_time_ns(value: str) -> int:
    """Unix seconds (a fraction allowed), or an integer of milliseconds, microseconds or
    nanoseconds told apart by magnitude; ValueError otherwise."""
    if value.isascii() and value.isdigit():
        number = parse_decimal(value)
        for below, scale in _UNIX_UNITS:
            if number < below:
                return number * scale
        return number
    seconds = Decimal(value)  # ValueError-like InvalidOperation for anything else
    if not seconds.is_finite():
        raise ValueError("not a finite number")
    return int(seconds * 10**9)


def unix_ns_or_rfc3339(q: MultiMapping[str], name: str) -> int | None:
    """A time given as RFC 3339 or a Unix time (seconds, or ms/µs/ns by magnitude), for the events
    and logs routes."""
    found = first(q, name)
    if found is None:
        return None
    value = found[1]
    try:
        if value[:1].isdigit() and all(c.isdigit() or c == "." for c in value):
            ns = unix_time_ns(value)
        else:
            ns = parse_rfc3339_nano(value)
    except (ValueError, ArithmeticError) as exc:
        raise BadParam(name, f"expected RFC 3339 or a Unix time: {exc}") from None
    if not 0 <= ns <= MAX_NS:
        raise BadParam(name, f"{shown(value)} is out of range (1970 to 2262)")
    return ns
