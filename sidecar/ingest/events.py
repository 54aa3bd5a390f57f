"""Business events in: every body format of ``POST /v1/events`` into a list of validated events.

Product code posts events from browsers, shell scripts and back ends, so the receiver takes what
each of them finds easiest (JSON, NDJSON, a form, a bare query string) and forgives the usual
spellings (``event``, ``dt``, ``userid``...). What it cannot take is named per event (index, NDJSON
line, field, reason) so the sender can fix it; the valid events of a batch are kept regardless.
"""

from __future__ import annotations

import datetime as _dt
import email.parser
import email.policy
import json
import math
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sidecar.config.model import EventsIngestConfig
from sidecar.core._ndjson import read_ndjson
from sidecar.query.params import parse_rfc3339_nano

Value = str | int | float | bool
JSON_TYPES = ("application/json", "text/plain")  # text/plain: what navigator.sendBeacon sends
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
CONTENT_TYPES = (*JSON_TYPES, *NDJSON_TYPES, FORM, MULTIPART)
MAX_ID_BYTES = 128
_SECONDS_BELOW = 1e11  # 1e11 s is the year 5138, 1e11 ms is 1973: magnitude tells the unit apart
_MS_BELOW = 1e14
# The event's own fields and their accepted spellings, canonical name first.
FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("name", "event"),
    "timestamp": ("timestamp", "dt", "ts"),
    "user_id": ("user_id", "userid", "user"),
    "session_id": ("session_id",),
    "service": ("service",),
    "id": ("id",),
    "properties": ("properties",),
}
_ALIAS = {alias: canonical for canonical, aliases in FIELDS.items() for alias in aliases}
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_FLOAT_MAX = int(sys.float_info.max)  # larger integers have no float64: analytics could not sum them
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DEPTH = 64  # nested objects in an event: deeper is refused, not flattened into a long key
_JSON_TEXT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@dataclass(slots=True)
class Event:
    """One valid event; ``ts_ns`` is Unix nanoseconds, ``properties`` flat (nested keys joined by ``.``)."""

    name: str
    ts_ns: int
    user_id: str | None = None
    session_id: str | None = None
    service: str | None = None
    id: str | None = None
    properties: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventError:
    """Why the event at ``index`` (or the whole body, index None) was rejected."""

    index: int | None
    field: str | None
    reason: str
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "field": self.field, "reason": self.reason}
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass(slots=True)
class Parsed:
    """What a request held: valid events, per-event errors, and how many events it held in all."""

    events: list[Event] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)
    total: int = 0
    too_many: bool = False  # over max_events_per_request: refused whole


class Invalid(ValueError):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured limits, with the past window in nanoseconds resolved against retention."""

    max_name_length: int
    max_properties: int
    max_value_bytes: int
    max_events: int
    max_past_ns: int
    max_future_ns: int

    @classmethod
    def from_config(cls, cfg: EventsIngestConfig, retention_days: int) -> Limits:
        past_days = cfg.max_past_days or retention_days
        return cls(
            cfg.max_name_length,
            cfg.max_properties,
            cfg.max_value_bytes,
            cfg.max_events_per_request,
            past_days * 86_400 * 10**9,
            cfg.max_future_s * 10**9,
        )


# -- body formats ------------------------------------------------------------------------------
def parse_request(
    content_type: str, body: bytes, query: Iterable[tuple[str, str]], limits: Limits, now_ns: int
) -> Parsed:
    """All events of one request; ``content_type`` must be one of CONTENT_TYPES unless the body is empty.

    A body that cannot be read at all gives one error with index None.
    """
    pairs = list(query)
    body = body.removeprefix(_BOM)  # Windows tools (PowerShell's UTF-8) start text with one
    if not body.strip():
        if pairs:
            try:
                return _validate_all([_from_strings(pairs)], limits, now_ns)
            except Invalid as exc:
                return Parsed(errors=[EventError(None, exc.field, exc.reason)])
        return Parsed(errors=[EventError(None, None, "empty body and no query string: no event")])
    if pairs:
        reason = "an event goes in the body or in the query string, not both"
        return Parsed(errors=[EventError(None, pairs[0][0], reason)])
    try:
        if content_type in JSON_TYPES:
            return _validate_all(_json_objects(body), limits, now_ns)
        if content_type in NDJSON_TYPES:
            return _ndjson(body, limits, now_ns)
        if content_type == FORM:
            text = _text(body)
            return _validate_all(
                [_from_strings(urllib.parse.parse_qsl(text, keep_blank_values=True))], limits, now_ns
            )
        if content_type.startswith(MULTIPART):
            return _validate_all([_from_strings(_multipart(content_type, body))], limits, now_ns)
    except Invalid as exc:
        return Parsed(errors=[EventError(None, exc.field, exc.reason)])
    raise ValueError(f"unsupported content type {content_type!r}")


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(None, f"body is not UTF-8 (byte {exc.start})") from None


def _json_objects(body: bytes) -> list[Any]:
    try:
        data = _loads(_text(body))
    except json.JSONDecodeError as exc:
        raise Invalid(None, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise Invalid(None, _unreadable(exc)) from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return [data]
    raise Invalid(None, "expected a JSON object or an array of objects")


class _Repeated(dict[str, Any]):
    """A JSON object in which ``key`` was given twice: json.loads would keep the last value
    silently, and a field given twice is an error here, as in a form."""

    key: str = ""

    @classmethod
    def of(cls, fields: dict[str, Any], key: str) -> _Repeated:
        repeated = cls(fields)
        repeated.key = key
        return repeated


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                return _Repeated.of(out, key)
            seen.add(key)
    return out


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_pairs)


def _unreadable(exc: ValueError | RecursionError) -> str:
    """What json.loads raised besides a syntax error: an integer of over 4300 digits (Python's
    limit), or nesting deeper than the interpreter's recursion limit."""
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    if "digits" in str(exc):
        return "invalid JSON: an integer of more than 4300 digits"
    return f"invalid JSON: {exc}"


def _text_of(key: str, text: str) -> str:
    """``text``, unless it holds a lone UTF-16 surrogate (JSON can escape one, ``"\\ud800"``): that
    is no Unicode text, and could be neither stored nor answered as UTF-8."""
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found is not None:
            raise Invalid(key, f"not Unicode text: a lone surrogate \\u{ord(found.group()):04x}")
    return text


def fast_lane(body: bytes, limits: Limits, now_ns: int) -> Sequence[Event | tuple[int, str]] | None:
    """The compiled reader's entries for ``body``: an Event per line it proved valid, ``(line
    number, text)`` per line left to Python; None when it decided nothing (see _ndjson.pyx)."""
    return read_ndjson(
        body,
        limits.max_name_length,
        limits.max_properties,
        limits.max_value_bytes,
        now_ns - limits.max_past_ns,
        now_ns + limits.max_future_ns,
        now_ns,
        Event,
    )


def _ndjson(body: bytes, limits: Limits, now_ns: int) -> Parsed:
    """One event per line. The compiled reader builds the Event of every line that is certainly
    valid and hands back the others as ``(line number, text)``, which are read here as they always
    were (json.loads, validate_event), so errors and their texts stay this module's alone."""
    entries = fast_lane(body, limits, now_ns)
    if entries is None:  # it decided nothing: the body is not UTF-8 (_text says where), or no clock
        entries = list(enumerate(_text(body).split("\n"), 1))
    items: list[Any] = []
    lines: list[int] = []
    bad: dict[int, str] = {}
    for entry in entries:
        if type(entry) is not tuple:  # an Event, validated by the reader
            items.append(entry)
            lines.append(0)  # never looked up: only lines read here can have errors
            continue
        number, line = entry
        if not line.strip():
            continue
        try:
            item = _loads(line)
        except json.JSONDecodeError as exc:
            bad[len(items)] = f"invalid JSON: {exc.msg} at column {exc.colno}"
            item = None
        except (ValueError, RecursionError) as exc:
            bad[len(items)] = _unreadable(exc)
            item = None
        items.append(item)
        lines.append(number)
    parsed = _validate_all(items, limits, now_ns, bad)
    parsed.errors = [
        EventError(e.index, e.field, e.reason, lines[e.index] if e.index is not None else None)
        for e in parsed.errors
    ]
    return parsed


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    if not message.is_multipart():
        raise Invalid(None, "multipart body without a boundary")
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise Invalid(None, "multipart part without a name")
        if part.get_filename() is not None:
            raise Invalid(name, "file parts are not event fields")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        try:
            pairs.append((name, payload.decode(part.get_content_charset() or "utf-8")))
        except (UnicodeDecodeError, LookupError):
            raise Invalid(name, "value is not UTF-8") from None
    return pairs


def _from_strings(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form and query fields as one event: property values that read as numbers become numbers.
    A field given twice is that event's error: which of ``name=a&name=b`` was meant cannot be known."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            return _Repeated.of(out, key)
        if _ALIAS.get(key) in FIELDS and _ALIAS[key] != "properties":
            out[key] = value
        elif _NUMBER.fullmatch(value):
            number = float(value)
            out[key] = (
                int(value)
                if number.is_integer() and "." not in value and "e" not in value.lower()
                else number
            )
        else:
            out[key] = value
    return out


# -- one event ------------------------------------------------------------------------------------
def _validate_all(
    items: list[Any], limits: Limits, now_ns: int, bad: Mapping[int, str] | None = None
) -> Parsed:
    parsed = Parsed(total=len(items))
    if not items:
        parsed.errors.append(EventError(None, None, "no events in the body"))
        return parsed
    if len(items) > limits.max_events:
        parsed.too_many = True
        reason = f"{len(items)} events in one request, the limit is {limits.max_events}"
        parsed.errors.append(EventError(None, None, reason))
        return parsed
    for index, item in enumerate(items):
        if bad and index in bad:
            parsed.errors.append(EventError(index, None, bad[index]))
            continue
        if type(item) is Event:  # validated already (the compiled NDJSON reader made it)
            parsed.events.append(item)
            continue
        try:
            parsed.events.append(validate_event(item, limits, now_ns))
        except Invalid as exc:
            parsed.errors.append(EventError(index, exc.field, exc.reason))
    return parsed


def validate_event(item: Any, limits: Limits, now_ns: int) -> Event:
    """One event from a decoded object, or Invalid naming the first field at fault."""
    if not isinstance(item, dict):
        raise Invalid(None, f"expected an object, got {_type(item)}")
    if isinstance(item, _Repeated):
        raise Invalid(item.key, "given twice")
    own: dict[str, tuple[str, Any]] = {}
    extra: dict[str, Any] = {}
    for key, value in item.items():
        canonical = _ALIAS.get(key)
        if canonical is None:
            extra[key] = value
        elif canonical in own:
            raise Invalid(key, f"given twice, as {own[canonical][0]!r} and {key!r}")
        else:
            own[canonical] = (key, value)
    name_key, name = own.get("name", ("name", None))
    if name is None or (isinstance(name, str) and not name.strip()):
        raise Invalid("name", "required (also accepted as 'event'), and not blank")
    if not isinstance(name, str):
        raise Invalid(name_key, f"must be a string, got {_type(name)}")
    if len(name) > limits.max_name_length:
        raise Invalid(name_key, f"longer than {limits.max_name_length} characters")
    event = Event(_text_of(name_key, name), now_ns)
    if "timestamp" in own:
        key, value = own["timestamp"]
        event.ts_ns = _timestamp(key, value)
        if event.ts_ns < now_ns - limits.max_past_ns:
            raise Invalid(key, f"more than {limits.max_past_ns // (86_400 * 10**9)} days in the past")
        if event.ts_ns > now_ns + limits.max_future_ns:
            raise Invalid(key, f"more than {limits.max_future_ns // 10**9} s in the future")
    for canonical in ("user_id", "session_id", "service", "id"):
        if canonical in own:
            key, value = own[canonical]
            setattr(event, canonical, _identifier(key, value, limits, canonical == "id"))
    flat: dict[str, Value] = {}
    _flatten("", extra, flat, limits)
    if "properties" in own and own["properties"][1] is not None:  # null: none, as nulls are left out
        key, value = own["properties"]
        if not isinstance(value, dict):
            raise Invalid(key, f"must be an object, got {_type(value)}")
        _flatten(key + ".", value, flat, limits, strip=len(key) + 1)
    if len(flat) > limits.max_properties:
        raise Invalid("properties", f"{len(flat)} properties, the limit is {limits.max_properties}")
    event.properties = flat
    return event


def _flatten(
    prefix: str, data: dict[str, Any], out: dict[str, Value], limits: Limits, strip: int = 0, depth: int = 1
) -> None:
    """Nested objects joined with ``.``; nulls left out; ``strip`` drops ``properties.`` from keys."""
    if isinstance(data, _Repeated):
        raise Invalid(prefix + data.key, "given twice")
    for key, value in data.items():
        path = _text_of(prefix + key, prefix + key)
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                raise Invalid(path, f"objects nested deeper than {MAX_DEPTH}")
            _flatten(path + ".", value, out, limits, strip, depth + 1)
            continue
        name = path[strip:]
        if len(name) > limits.max_name_length:
            raise Invalid(path, f"property name longer than {limits.max_name_length} characters")
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(path, "must be a finite number")
        if type(value) is int and not -_FLOAT_MAX <= value <= _FLOAT_MAX:
            raise Invalid(path, "must be a finite number")  # as float64 holds it, and as forms say
        if isinstance(value, list):
            try:
                value = _JSON_TEXT(value)  # as an OTLP array attribute is kept: its JSON text
            except ValueError:
                raise Invalid(path, "a list must hold finite numbers only") from None
        if isinstance(value, str):
            if len(_text_of(path, value).encode()) > limits.max_value_bytes:
                raise Invalid(path, f"value longer than {limits.max_value_bytes} bytes")
        elif not isinstance(value, bool | int | float):
            raise Invalid(path, f"must be a string, number, bool or list, got {_type(value)}")
        if name in out:
            raise Invalid(path, f"property {name!r} given twice")
        out[name] = value


def _identifier(key: str, value: Any, limits: Limits, is_id: bool) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a number is taken as its text
    elif isinstance(value, float):
        value = str(value) if math.isfinite(value) else value
    if not isinstance(value, str):
        raise Invalid(key, f"must be a string, got {_type(value)}")
    cap = MAX_ID_BYTES if is_id else limits.max_value_bytes
    if len(_text_of(key, value).encode()) > cap:
        raise Invalid(key, f"longer than {cap} bytes")
    return value


def _timestamp(key: str, value: Any) -> int:
    """RFC 3339 with a zone, or Unix seconds / milliseconds (number or numeric string) by magnitude."""
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return _unix(key, float(text), text)
        try:
            return parse_rfc3339_nano(text)  # nanoseconds kept, unlike datetime's microseconds
        except ValueError:
            pass
        try:
            _dt.datetime.fromisoformat(text)
        except ValueError:
            raise Invalid(key, f"not RFC 3339 nor Unix seconds or milliseconds: {value[:64]!r}") from None
        raise Invalid(key, "RFC 3339 needs a date, a time and a zone (Z or +hh:mm)")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer past float64: no time
            number = math.inf
        return _unix(key, number, value)
    raise Invalid(key, f"must be RFC 3339 text or a Unix time number, got {_type(value)}")


def _unix(key: str, number: float, exact: Any) -> int:
    if not math.isfinite(number) or number < 0 or number >= _MS_BELOW:
        raise Invalid(key, "Unix time out of range (seconds or milliseconds since 1970)")
    # Decimal of the shortest text of the number: 1699999999999.5 ms is ...999500000 ns, not ...500032.
    value = Decimal(exact if isinstance(exact, int | str) else repr(exact))
    return int(value * (10**9 if number < _SECONDS_BELOW else 10**6))


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
