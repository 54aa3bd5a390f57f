"""What every analytics request shares: its range, buckets, breakdown, and how a field is refused.

A refused request names the field by its JSON path (``steps[1].filters[0].op``) so a dashboard
author can find it; nothing is read from the store before the whole request has been checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sidecar.query.analytics.filters import BadFilter, Filter, parse_filters
from sidecar.query.analytics.timebuckets import BadBuckets, Buckets, make_buckets, parse_time
from sidecar.query.params import parse_go_duration

MAX_BREAKDOWN = 3


class BadRequest(ValueError):
    """A request field (a path such as ``series[0].measure``) and why it is refused."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_object(body: Any, path: str, known: Iterable[str], shape: str) -> dict[str, Any]:
    """``body`` as a dict whose keys are all ``known``; BadRequest naming the first stranger."""
    if not isinstance(body, dict):
        raise BadRequest(path, f"must be an object {shape}")
    allowed = set(known)
    unknown = sorted(set(body) - allowed)
    if unknown:
        where = f"{path}.{unknown[0]}" if path != "body" else unknown[0]
        raise BadRequest(where, f"unknown field; known: {', '.join(sorted(allowed))}")
    return body


def buckets_of(body: dict[str, Any], default_interval: str = "day") -> Buckets:
    """``interval``, ``from``, ``to`` and ``timezone`` as the buckets they make."""
    try:
        from_ns = parse_time("from", body.get("from"))
        to_ns = parse_time("to", body.get("to"))
        timezone = body.get("timezone")
        if timezone is not None and not isinstance(timezone, str):
            raise BadBuckets("timezone", "must be an IANA time zone name such as Europe/Warsaw")
        interval = body.get("interval", default_interval)
        return make_buckets(
            interval if isinstance(interval, str) else repr(interval), from_ns, to_ns, timezone
        )
    except BadBuckets as exc:
        raise BadRequest(exc.field, exc.reason) from None


def filters_of(raw: Any, path: str) -> list[Filter]:
    try:
        return parse_filters(raw, path)
    except BadFilter as exc:
        raise BadRequest(exc.field, exc.reason) from None


def event_of(raw: Any, path: str) -> str | None:
    if raw is not None and (not isinstance(raw, str) or not raw):
        raise BadRequest(path, "must be an event name, or null for every event")
    return raw


def breakdown_of(body: dict[str, Any]) -> tuple[list[str], int]:
    """(``breakdown`` names, ``breakdown_limit``): a name or a list of up to 3, and 1..1000 (10)."""
    breakdown = body.get("breakdown")
    if breakdown is None:
        names: list[str] = []
    elif isinstance(breakdown, str) and breakdown:
        names = [breakdown]
    elif isinstance(breakdown, list) and all(isinstance(b, str) and b for b in breakdown):
        names = list(breakdown)
    else:
        raise BadRequest("breakdown", "must be a property name or a list of up to 3 of them")
    if len(names) > MAX_BREAKDOWN:
        raise BadRequest("breakdown", f"{len(names)} names; the limit is {MAX_BREAKDOWN}")
    if len(set(names)) < len(names):
        raise BadRequest("breakdown", "names a property twice")
    limit = body.get("breakdown_limit", 10)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise BadRequest("breakdown_limit", "must be an integer from 1 to 1000")
    return names, limit


def seconds_of(raw: Any, path: str) -> int:
    """A positive duration in nanoseconds: a Go duration (``1h``, ``90m``; ``d`` for days too) or
    a number of seconds."""
    if isinstance(raw, bool) or raw is None:
        raise BadRequest(path, "required: a duration such as 1h, 30m or 7d, or seconds")
    if isinstance(raw, int | float):
        ns = round(raw * 10**9)
    elif isinstance(raw, str):
        text = raw.strip()
        days = 0
        if "d" in text:
            head, _, text = text.partition("d")
            try:
                days = int(head)
            except ValueError:
                raise BadRequest(path, f"not a duration: {raw[:40]!r}") from None
        try:
            ns = days * 86_400 * 10**9 + (parse_go_duration(text) if text else 0)
        except ValueError as exc:
            raise BadRequest(path, str(exc)) from None
    else:
        raise BadRequest(path, "must be a duration text or a number of seconds")
    if ns <= 0:
        raise BadRequest(path, "must be longer than zero")
    return ns
