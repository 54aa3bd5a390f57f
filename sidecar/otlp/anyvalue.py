"""OTLP AnyValue and KeyValue lists as Python values: for log bodies, attributes and event properties."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def python_value(value: AnyValue) -> Any:
    """str, bool, int, float, hex for bytes, list or dict; None for an empty value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "array_value":
        return [python_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: python_value(kv.value) for kv in attributes}


def body_text(value: AnyValue) -> str:
    """A log body as text: a string as it is, anything else as compact JSON (what a search matches)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return ""
    result = python_value(value)
    return result if isinstance(result, str) else json.dumps(result, separators=(",", ":"), default=str)


def string_body(body: bytes) -> str | None:
    """The text of an encoded AnyValue that is one ``string_value`` (its bytes are then verbatim in
    the record's bytes), else None. Read in place: no AnyValue is built."""
    if not body or body[0] != 0x0A:
        return None
    size = shift = 0
    at = 1
    while at < len(body) and at < 6:
        byte = body[at]
        size |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return body[at:].decode("utf-8", "replace") if len(body) == at + size else None
        shift += 7
    return None


def encoded_body_text(body: bytes) -> str:
    """body_text of an encoded AnyValue; a plain string body (the common case) skips the full decode."""
    if not body:
        return ""
    text = string_body(body)
    return text if text is not None else body_text(AnyValue.FromString(body))
