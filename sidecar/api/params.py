"""Request parameters -> TraceQuery, shared by the Jaeger v1, api_v3 and native routes.

Every failure names the parameter and the reason; each API wraps it in its own error shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from multidict import MultiMapping

from sidecar.query.params import parse_go_duration, parse_rfc3339_nano, parse_trace_id
from sidecar.storage.api import TraceQuery

_DAY_NS = 86_400 * 1_000_000_000


class BadParam(ValueError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"parameter '{name}': {reason}")
        self.name = name


def first(params: MultiMapping[str], *names: str) -> tuple[str, str] | None:
    """The first non-empty value among aliases (Grafana and Jaeger UI spell names differently)."""
    for name in names:
        value = params.get(name)
        if value is not None and value != "":
            return name, value
    return None


def _convert(params: MultiMapping[str], names: tuple[str, ...], convert: Callable[[str], int]) -> int | None:
    found = first(params, *names)
    if found is None:
        return None
    name, value = found
    try:
        return convert(value)
    except ValueError as exc:
        raise BadParam(name, f"{exc} (got {value!r})") from None


def duration(params: MultiMapping[str], *names: str) -> int | None:
    return _convert(params, names, parse_go_duration)


def micros(params: MultiMapping[str], *names: str) -> int | None:
    """Microseconds since the epoch -> ns."""
    return _convert(params, names, lambda v: int(v) * 1000)


def rfc3339(params: MultiMapping[str], *names: str) -> int | None:
    return _convert(params, names, parse_rfc3339_nano)


def integer(params: MultiMapping[str], name: str, default: int, low: int = 0, high: int | None = None) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadParam(name, f"not an integer: {value!r}") from None
    if number < low:
        raise BadParam(name, f"must be >= {low}, got {number}")
    return min(number, high) if high is not None else number


def trace_id(value: str, name: str = "traceID") -> bytes:
    try:
        return parse_trace_id(value)
    except ValueError as exc:
        raise BadParam(name, f"{exc} (got {value!r})") from None


def tags(
    params: MultiMapping[str], json_names: tuple[str, ...], pair_name: str | None
) -> list[tuple[str, str]]:
    """Tags from JSON objects (``tags={"k":"v"}``) and ``tag=k:v`` / ``tag=k=v`` pairs."""
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
                raise BadParam(name, "must be a JSON object of string values")
            for key, value in parsed.items():
                if not isinstance(value, str | int | float | bool):
                    raise BadParam(name, f"value of {key!r} must be a string")
                text = ("true" if value else "false") if isinstance(value, bool) else str(value)
                result.append((str(key), text))
    if pair_name:
        for raw in params.getall(pair_name, []):
            sep = ":" if ":" in raw else "="
            key, found, value = raw.partition(sep)
            if not found or not key:
                raise BadParam(pair_name, f"expected key:value, got {raw!r}")
            result.append((key, value))
    return result


def build_query(
    *,
    service: str | None,
    operation: str | None,
    tag_list: list[tuple[str, str]],
    start_ns: int | None,
    end_ns: int | None,
    min_duration: tuple[str, int | None],
    max_duration: tuple[str, int | None],
    limit: int,
    default_lookback_ns: int = 2 * _DAY_NS,
    min_trace_duration: int | None = None,
    max_trace_duration: int | None = None,
) -> TraceQuery:
    now = time.time_ns()
    end = end_ns if end_ns is not None else now
    start = start_ns if start_ns is not None else end - default_lookback_ns
    if start > end:
        raise BadParam("start", "must not be after end")
    lo_name, lo = min_duration
    hi_name, hi = max_duration
    if lo is not None and hi is not None and hi < lo:
        raise BadParam(hi_name, f"must not be smaller than {lo_name}")
    if (
        min_trace_duration is not None
        and max_trace_duration is not None
        and max_trace_duration < min_trace_duration
    ):
        raise BadParam("maxTraceDuration", "must not be smaller than minTraceDuration")
    return TraceQuery(
        service=service or None,
        operation=operation or None,
        tags=tuple(tag_list),
        start_ns=start,
        end_ns=end,
        min_duration_ns=lo,
        max_duration_ns=hi,
        min_trace_duration_ns=min_trace_duration,
        max_trace_duration_ns=max_trace_duration,
        limit=limit,
    )
