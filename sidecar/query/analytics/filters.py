"""Property filters of analytics requests, and how one is judged against a stored value.

``{"property": "screen", "op": "=", "value": "main"}``; the reserved names ``event``, ``user_id``,
``session_id`` and ``service`` mean the event's own fields, any other name a property. An event
without the property matches ``!=``, ``not_in`` and ``not_exists`` and nothing else. Numbers
compare by value (``1`` equals ``1.0``, and a numeric text in the filter equals the number);
strings and bools compare exactly; ``contains`` and ``regex`` (RE2) read the value as text
(bools as ``true``/``false``); ``>`` and friends hold only between numbers.

A filter is judged once per distinct value (a block's dictionary, a registry's codes), never once
per event: :meth:`Filter.matches` is the one definition both the scan and the tests' brute force use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.query.regex import Pattern, compile_regex

OPS = ("=", "!=", "in", "not_in", "contains", "regex", ">", ">=", "<", "<=", "exists", "not_exists")
RESERVED = ("event", "user_id", "session_id", "service")
_ABSENT_MATCHES = frozenset({"!=", "not_in", "not_exists"})
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": float.__gt__,
    ">=": float.__ge__,
    "<": float.__lt__,
    "<=": float.__le__,
}


class BadFilter(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _number(value: Any) -> float | None:
    """The value as a number if it is one (not a bool), or numeric text; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _equal(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return type(stored) is type(wanted) and stored == wanted
    if isinstance(stored, int | float):
        number = _number(wanted)
        return number is not None and float(stored) == number
    if isinstance(wanted, int | float):
        number = _number(stored)
        return number is not None and number == float(wanted)
    return bool(stored == wanted)


@dataclass(frozen=True, slots=True)
class Filter:
    prop: str  # the request's ``property``
    op: str
    value: Any = None
    pattern: Pattern | None = None

    @property
    def column(self) -> str:
        """The stored column it reads: an own field's, or ``p.<property>``."""
        return {"event": "name", "user_id": "user", "session_id": "session", "service": "service"}.get(
            self.prop, "p." + self.prop
        )

    def matches(self, stored: Any) -> bool:
        """Whether an event whose property holds ``stored`` (None: it has none) passes."""
        op = self.op
        if stored is None:
            return op in _ABSENT_MATCHES
        if op == "exists":
            return True
        if op == "not_exists":
            return False
        if op == "=":
            return _equal(stored, self.value)
        if op == "!=":
            return not _equal(stored, self.value)
        if op == "in":
            return any(_equal(stored, v) for v in self.value)
        if op == "not_in":
            return not any(_equal(stored, v) for v in self.value)
        if op == "contains":
            return text_of(self.value) in text_of(stored)
        if op == "regex":
            assert self.pattern is not None
            return self.pattern.search(text_of(stored)) is not None
        number = _number(stored) if not isinstance(stored, str) else None
        if number is None:
            return False
        return _COMPARE[op](number, float(self.value))


def parse_filters(raw: Any, field: str) -> list[Filter]:
    """The ``filters`` list of a request; BadFilter names the item and key at fault."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadFilter(field, "must be a list of {property, op, value} objects")
    return [_one(item, f"{field}[{i}]") for i, item in enumerate(raw)]


def _one(item: Any, field: str) -> Filter:
    if not isinstance(item, dict):
        raise BadFilter(field, "must be an object {property, op, value}")
    unknown = sorted(set(item) - {"property", "op", "value"})
    if unknown:
        raise BadFilter(f"{field}.{unknown[0]}", "unknown key; a filter has property, op and value")
    name = item.get("property")
    if not isinstance(name, str) or not name:
        raise BadFilter(f"{field}.property", "required: a property, or event, user_id, session_id, service")
    op = item.get("op", "=")
    if op not in OPS:
        raise BadFilter(f"{field}.op", f"must be one of {', '.join(OPS)}, got {json.dumps(op)[:40]}")
    value = item.get("value")
    pattern = None
    if op in ("exists", "not_exists"):
        value = None
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not all(_scalar(v) for v in value):
            raise BadFilter(f"{field}.value", f"'{op}' needs a list of strings, numbers or bools")
    elif not _scalar(value):
        raise BadFilter(f"{field}.value", f"'{op}' needs a string, number or bool")
    elif op in _COMPARE:
        number = _number(value)
        if number is None:
            raise BadFilter(f"{field}.value", f"'{op}' compares numbers; got {json.dumps(value)[:40]}")
        value = number
    elif op == "regex":
        try:
            pattern = compile_regex(text_of(value))
        except ValueError as exc:
            raise BadFilter(f"{field}.value", str(exc)) from None
    return Filter(name, op, value, pattern)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value))
