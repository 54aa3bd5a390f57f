"""OTLP-JSON <-> protobuf for the three OTLP signals, without the ``json_format`` traps.

``json_format.ParseDict`` reads the hex ``traceId``/``spanId`` of OTLP-JSON as base64 (silently yielding
garbage bytes), rejects unknown fields and enum short names, and reports errors without a usable path.
So decoding walks the dict with per-message field tables built once from the descriptors and fills the
protobuf messages directly: one pass, exact OTLP-JSON rules, and errors that name the offending field
(``resourceSpans[0].scopeSpans[0].spans[3].startTimeUnixNano: expected integer``).

Encoding reuses ``MessageToDict`` (integer enums, int64 as strings) and then rewrites only the ID fields
as lowercase hex, visiting just the branches of the message tree that can contain IDs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ["OtlpJsonError", "decode_json_request", "encode_json"]

M = TypeVar("M", bound=Message)

# Bytes fields with these names carry trace/span IDs (Span, Span.Link, LogRecord, Exemplar, profiles'
# Link); OTLP-JSON encodes all of them as hex, every other bytes field as base64.
_ID_FIELD_NAMES = frozenset({"trace_id", "span_id", "parent_span_id"})  # sizes: _ID_FIELDS

_INT_RE = re.compile(r"-?[0-9]+")
_FLOAT_RE = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_FLOAT_SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class OtlpJsonError(ValueError):
    """The body is not valid OTLP-JSON; the message names the field path and the reason (→ HTTP 400)."""


class _Bad(Exception):
    """Internal: raised deep in the walk; each frame adds its path segment while the error unwinds,
    so the happy path never builds path strings."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []

    def render(self) -> str:
        out = ""
        for seg in reversed(self.path):
            out += seg if seg.startswith("[") or not out else "." + seg
        return f"{out}: {self.reason}" if out else self.reason


# ---------------------------------------------------------------------------------------------------
# Scalar converters: JSON value -> Python value accepted by the protobuf field.


def _int_converter(lo: int, hi: int) -> Callable[[Any], int]:
    def conv(v: Any) -> int:
        t = type(v)
        if t is int:
            n = v
        elif (t is str and _INT_RE.fullmatch(v)) or (t is float and v.is_integer()):
            n = int(v)
        else:
            raise _Bad("expected integer")
        if not lo <= n <= hi:
            raise _Bad(f"integer {n} out of range")
        return n

    return conv


def _to_float(v: Any) -> float:
    t = type(v)
    if t is float or t is int:
        return float(v)
    if t is str:
        special = _FLOAT_SPECIAL.get(v)
        if special is not None:
            return special
        if _FLOAT_RE.fullmatch(v):
            return float(v)
    raise _Bad("expected number")


def _to_bool(v: Any) -> bool:
    if type(v) is bool:
        return v
    raise _Bad("expected boolean")


def _to_str(v: Any) -> str:
    if type(v) is str:
        return v
    raise _Bad("expected string")


def _to_b64_bytes(v: Any) -> bytes:
    if type(v) is not str:
        raise _Bad("expected base64 string")
    # proto3 JSON allows the standard and the URL-safe alphabet, with or without padding.
    s = v.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Bad("invalid base64") from None


def _hex_id_converter(size: int, what: str) -> Callable[[Any], bytes]:
    """Hex ID -> bytes, as the Collector reads OTLP-JSON: an empty string is an absent ID (item
    validation decides), anything but exactly ``2 * size`` hex digits fails the request (400)."""
    digits = 2 * size

    def conv(v: Any) -> bytes:
        if type(v) is not str:
            raise _Bad(f"expected a {what} as a string of {digits} hex digits")
        if not v:
            return b""
        shown = repr(v if len(v) <= 40 else v[:40] + "...")
        if len(v) != digits:
            raise _Bad(f"{shown} has {len(v)} characters; a {what} is {digits} hex digits")
        try:
            b = bytes.fromhex(v)
        except ValueError:
            b = b""
        if len(b) != size:  # not hex (fromhex() also skips spaces, which IDs never have)
            raise _Bad(f"{shown} is not hex; a {what} is {digits} hex digits")
        return b

    return conv


# ID field name -> (bytes, what the error calls it); every OTLP message uses these sizes.
_ID_FIELDS = {"trace_id": (16, "trace ID"), "span_id": (8, "span ID"), "parent_span_id": (8, "span ID")}


def _enum_converter(enum: Any) -> Callable[[Any], int | None]:
    """Integers (the OTLP-JSON form), full names, and case-insensitive short names such as "server"."""
    names: dict[str, int] = {}
    values = enum.values
    prefix = _common_prefix([ev.name for ev in values]) if len(values) > 1 else ""
    for ev in values:
        names[ev.name] = ev.number
        names[ev.name.lower()] = ev.number
        if prefix and ev.name.startswith(prefix):
            names[ev.name[len(prefix) :].lower()] = ev.number
    to_int = _int_converter(-(2**31), 2**31 - 1)

    def conv(v: Any) -> int | None:
        if type(v) is str and not _INT_RE.fullmatch(v):
            # Unknown names are ignored (field left at its default), like ParseDict with
            # ignore_unknown_fields=True, so one odd producer value does not lose the batch.
            return names.get(v, names.get(v.lower()))
        return to_int(v)

    return conv


def _common_prefix(names: list[str]) -> str:
    """Shared ``FOO_BAR_`` prefix of enum value names, cut at the last underscore."""
    first, last = min(names), max(names)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[: first.rfind("_", 0, n) + 1]


_I32 = _int_converter(-(2**31), 2**31 - 1)
_I64 = _int_converter(-(2**63), 2**63 - 1)
_U32 = _int_converter(0, 2**32 - 1)
_U64 = _int_converter(0, 2**64 - 1)

_SCALAR_CONVERTERS: dict[int, Callable[[Any], Any]] = {
    FieldDescriptor.TYPE_INT32: _I32,
    FieldDescriptor.TYPE_SINT32: _I32,
    FieldDescriptor.TYPE_SFIXED32: _I32,
    FieldDescriptor.TYPE_INT64: _I64,
    FieldDescriptor.TYPE_SINT64: _I64,
    FieldDescriptor.TYPE_SFIXED64: _I64,
    FieldDescriptor.TYPE_UINT32: _U32,
    FieldDescriptor.TYPE_FIXED32: _U32,
    FieldDescriptor.TYPE_UINT64: _U64,
    FieldDescriptor.TYPE_FIXED64: _U64,
    FieldDescriptor.TYPE_DOUBLE: _to_float,
    FieldDescriptor.TYPE_FLOAT: _to_float,
    FieldDescriptor.TYPE_BOOL: _to_bool,
    FieldDescriptor.TYPE_STRING: _to_str,
    FieldDescriptor.TYPE_BYTES: _to_b64_bytes,
}

# ---------------------------------------------------------------------------------------------------
# Decoding: per-message tables of JSON key -> setter, built once per descriptor.

_Setter = Callable[[Message, Any], None]
_Table = dict[str, _Setter]
_tables: dict[str, _Table] = {}


def _table_for(desc: Any) -> _Table:  # Any: upb's descriptors are not the stubs' Descriptor
    table = _tables.get(desc.full_name)
    if table is None:
        # Register before filling so recursive types (AnyValue -> ArrayValue -> AnyValue) terminate.
        table = _tables[desc.full_name] = {}
        for field in desc.fields:
            setter = _make_setter(field)
            table[field.json_name] = setter
            table[field.name] = setter
    return table


def _make_setter(field: FieldDescriptor) -> _Setter:
    name = field.name
    repeated = field.is_repeated
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        sub = _table_for(field.message_type)
        return _repeated_message_setter(name, sub) if repeated else _message_setter(name, sub)
    if field.type == FieldDescriptor.TYPE_ENUM:
        conv: Callable[[Any], Any] = _enum_converter(field.enum_type)
    elif field.type == FieldDescriptor.TYPE_BYTES and name in _ID_FIELD_NAMES:
        conv = _hex_id_converter(*_ID_FIELDS[name])
    else:
        conv = _SCALAR_CONVERTERS[field.type]
    return _repeated_scalar_setter(name, conv) if repeated else _scalar_setter(name, conv)


def _message_setter(name: str, sub: _Table) -> _Setter:
    def set_message(msg: Message, value: Any) -> None:
        child = getattr(msg, name)
        child.SetInParent()  # "resource": {} must still mark the field present
        _fill(child, value, sub)

    return set_message


def _repeated_message_setter(name: str, sub: _Table) -> _Setter:
    def set_messages(msg: Message, value: Any) -> None:
        if type(value) is not list:
            raise _Bad("expected array")
        add = getattr(msg, name).add
        for i, item in enumerate(value):
            try:  # free unless raised (zero-cost exceptions since 3.11)
                _fill(add(), item, sub)
            except _Bad as exc:
                exc.path.append(f"[{i}]")
                raise

    return set_messages


def _scalar_setter(name: str, conv: Callable[[Any], Any]) -> _Setter:
    def set_scalar(msg: Message, value: Any) -> None:
        converted = conv(value)
        if converted is None:
            return
        try:
            setattr(msg, name, converted)
        except (ValueError, TypeError) as exc:  # e.g. a lone surrogate in a string
            raise _Bad(f"invalid value ({exc})") from None

    return set_scalar


def _repeated_scalar_setter(name: str, conv: Callable[[Any], Any]) -> _Setter:
    def set_scalars(msg: Message, value: Any) -> None:
        if type(value) is not list:
            raise _Bad("expected array")
        converted = []
        for i, item in enumerate(value):
            try:
                converted.append(conv(item))
            except _Bad as exc:
                exc.path.append(f"[{i}]")
                raise
        try:
            getattr(msg, name).extend(c for c in converted if c is not None)
        except (ValueError, TypeError) as exc:
            raise _Bad(f"invalid value ({exc})") from None

    return set_scalars


def _fill(msg: Message, obj: Any, table: _Table) -> None:
    if type(obj) is not dict:
        raise _Bad("expected object")
    key = ""
    try:
        for key, value in obj.items():
            if value is None:  # proto3 JSON: null means "field not set"
                continue
            setter = table.get(key)
            if setter is not None:  # unknown fields MUST be ignored
                setter(msg, value)
    except _Bad as exc:
        exc.path.append(key)
        raise


def decode_json_request(body: bytes, message_cls: type[M]) -> M:
    """Parse an OTLP-JSON body into ``message_cls`` (e.g. ``ExportTraceServiceRequest``).

    Raises:
        OtlpJsonError: invalid JSON, a non-object top level, or a value of the wrong type; the
            message names the field path. So does an ID that is not exactly 32 (trace) or 16
            (span) hex digits; an empty ID decodes to ``b""`` for item validation to reject.
    """
    if isinstance(body, memoryview):
        body = body.tobytes()
    try:
        obj = json.loads(body)
    except RecursionError:
        raise OtlpJsonError("invalid JSON: nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise OtlpJsonError(f"invalid JSON: {exc}") from None
    if type(obj) is not dict:
        raise OtlpJsonError(f"request body: expected a JSON object, got {type(obj).__name__}")
    message = message_cls()
    try:
        _fill(message, obj, _table_for(message.DESCRIPTOR))
    except _Bad as exc:
        raise OtlpJsonError(exc.render()) from None
    except RecursionError:
        raise OtlpJsonError("request body: values nested too deeply") from None
    return message


# ---------------------------------------------------------------------------------------------------
# Encoding.

# (ID fields as (proto name, json name), children that lead to IDs as (proto, json, repeated, plan))
_Plan = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, bool, "_Plan"], ...]]
_plans: dict[str, _Plan | None] = {}


def _plan_for(desc: Any) -> _Plan | None:
    """Which fields of ``desc`` hold IDs or lead to messages that do; None when no branch does."""
    if desc.full_name in _plans:
        return _plans[desc.full_name]
    _plans[desc.full_name] = None  # cycle guard: the recursive OTLP types (AnyValue...) hold no IDs
    ids: list[tuple[str, str]] = []
    children: list[tuple[str, str, bool, _Plan]] = []
    for field in desc.fields:
        if field.type == FieldDescriptor.TYPE_BYTES and field.name in _ID_FIELD_NAMES:
            ids.append((field.name, field.json_name))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = _plan_for(field.message_type)
            if sub is not None:
                repeated = field.is_repeated
                children.append((field.name, field.json_name, repeated, sub))
    plan: _Plan | None = (tuple(ids), tuple(children)) if ids or children else None
    _plans[desc.full_name] = plan
    return plan


def _hexify(msg: Message, out: dict[str, Any], plan: _Plan) -> None:
    ids, children = plan
    for name, json_name in ids:
        if json_name in out:
            out[json_name] = getattr(msg, name).hex()
    for name, json_name, repeated, sub in children:
        value = out.get(json_name)
        if value is None:
            continue
        if repeated:
            # MessageToDict keeps every element, so list positions match the repeated field.
            for child, child_out in zip(getattr(msg, name), value, strict=True):
                _hexify(child, child_out, sub)
        else:
            _hexify(getattr(msg, name), value, sub)


def encode_json(message: Message) -> dict[str, Any]:
    """OTLP-JSON dict: camelCase keys, integer enums, 64-bit ints as decimal strings, hex IDs."""
    out = json_format.MessageToDict(message, use_integers_for_enums=True)
    plan = _plan_for(message.DESCRIPTOR)
    if plan is not None:
        _hexify(message, out, plan)
    return out
