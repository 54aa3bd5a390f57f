"""Parsers for the query parameters Jaeger, Grafana and the Jaeger UI send.

Each mirrors the Go behaviour the clients were written against (``time.ParseDuration``, Jaeger's
``TraceIDFromString``, RFC3339Nano) and raises ``ValueError`` with a reason fit for a 400 response.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re

__all__ = [
    "MAX_NS",
    "format_trace_id_full",
    "format_trace_id_jaeger",
    "parse_bool",
    "parse_decimal",
    "parse_go_duration",
    "parse_rfc3339_nano",
    "parse_trace_id",
    "shown",
]

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # µ MICRO SIGN
    "\u03bcs": 1_000,  # μ GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# One "<number><unit>" segment; Go reads the unit as everything up to the next digit or dot.
_DURATION_SEGMENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_MAX_NS = 2**63  # Go durations are int64 nanoseconds
MAX_NS = 2**63 - 1  # the largest time or duration int64 nanoseconds can hold (2262-04-11 as a time)
_DURATION_HINT = "expected a number and a unit, e.g. 150ms, 1.5s or 1h30m"
_DECIMAL_RE = re.compile(r"[+-]?[0-9]+")
_MAX_DECIMAL_DIGITS = 40  # far beyond int64; keeps int() off megabyte-long digit strings

_HEX_RE = re.compile(r"[0-9a-fA-F]{1,32}")

_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+\- ])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_BOOLS = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}


def shown(value: str, width: int = 40) -> str:
    """``value`` quoted for an error message, cut short so a megabyte of garbage is not echoed back."""
    if len(value) <= width:
        return repr(value)
    return f"{value[:width]!r}... ({len(value)} characters)"


def parse_go_duration(s: str) -> int:
    """Go duration string (``1.5h``, ``300ms``, ``1h15m30.5s``, ``-2s``) -> nanoseconds.

    Like ``time.ParseDuration``: a bare ``0`` is valid, any other number needs a unit, fractions
    are truncated to whole nanoseconds, and the result must fit in int64.
    """
    orig = s
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {shown(orig)}: {_DURATION_HINT}")
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_SEGMENT.match(s, pos)
        assert m is not None  # the pattern can match the empty string
        whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
        if not whole and not frac:
            raise ValueError(f"invalid duration {shown(orig)}: {_DURATION_HINT}")
        if not unit:
            raise ValueError(f"missing unit in duration {shown(orig)}: {_DURATION_HINT}")
        scale = _NS_PER_UNIT.get(unit)
        if scale is None:
            raise ValueError(
                f"unknown unit {shown(unit)} in duration {shown(orig)} (use ns, us, ms, s, m or h)"
            )
        if len(whole) > _MAX_DECIMAL_DIGITS:
            raise ValueError(_duration_out_of_range(orig))
        total += int(whole or "0") * scale
        if frac:
            frac = frac[:_MAX_DECIMAL_DIGITS]  # digits this far down are below a nanosecond
            total += int(frac) * scale // 10 ** len(frac)
        if total > _MAX_NS:
            raise ValueError(_duration_out_of_range(orig))
        pos = m.end()
    if not neg and total == _MAX_NS:
        raise ValueError(_duration_out_of_range(orig))
    return -total if neg else total


def _duration_out_of_range(orig: str) -> str:
    return f"duration {shown(orig)} out of range (at most 2562047h47m16.854775807s)"


def parse_trace_id(s: str) -> bytes:
    """Trace ID from a URL -> 16 bytes.

    Hex of 1-32 characters, left-padded with zeros (Jaeger accepts IDs printed without leading
    zeros); otherwise base64 of exactly 16 bytes, as current Jaeger also accepts. All-zero is invalid.
    """
    tid = bytes.fromhex(s.rjust(32, "0")) if _HEX_RE.fullmatch(s) else _b64_trace_id(s)
    if tid is None:
        raise ValueError(f"invalid trace ID {shown(s)}: expected 1-32 hex characters or base64 of 16 bytes")
    if not any(tid):
        raise ValueError(f"invalid trace ID {shown(s)}: all zeros")
    return tid


def _b64_trace_id(s: str) -> bytes | None:
    # Standard or URL-safe alphabet, padding optional.
    t = s.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        raw = base64.b64decode(t + "=" * (-len(t) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 16 else None


def format_trace_id_jaeger(b: bytes) -> str:
    """Jaeger v1 form: 16 hex chars when the high 64 bits are zero, else 32 (``TraceID.String``)."""
    _check_trace_id(b)
    return b[8:].hex() if not any(b[:8]) else b.hex()


def format_trace_id_full(b: bytes) -> str:
    """Always 32 lowercase hex chars (OTLP, api_v3 and Tempo clients require the full width)."""
    _check_trace_id(b)
    return b.hex()


def _check_trace_id(b: bytes) -> None:
    if len(b) != 16:
        raise ValueError(f"trace ID must be 16 bytes, got {len(b)}")


def parse_rfc3339_nano(s: str) -> int:
    """RFC3339 timestamp with optional fraction (``2024-01-02T03:04:05.123456789Z``, ``+02:00``) -> ns.

    Digits beyond nanoseconds are truncated, as Go does. A space in place of the ``+`` sign is read as
    ``+``, because Grafana appends these times to URLs unencoded and ``+`` arrives as a space.
    """
    m = _RFC3339_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"invalid RFC3339 time {shown(s)}: expected e.g. 2024-01-02T03:04:05.123Z")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    frac, sign, off_h, off_m = m.group(7), m.group(8), m.group(9), m.group(10)
    offset_s = 0
    if sign is not None:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            raise ValueError(f"invalid RFC3339 time {shown(s)}: bad UTC offset")
        offset_s = (oh * 3600 + om * 60) * (-1 if sign == "-" else 1)
    try:
        # datetime validates the calendar fields (rejects Feb 30, hour 24, second 60)
        when = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as exc:
        raise ValueError(f"invalid RFC3339 time {shown(s)}: {exc}") from None
    delta = when - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds - offset_s
    nanos = int(frac[:9].ljust(9, "0")) if frac else 0
    return seconds * 1_000_000_000 + nanos


def parse_decimal(s: str) -> int:
    """Base-10 integer as Go's ``strconv.ParseInt`` reads it: ASCII digits with an optional sign.

    Stricter than ``int()``, which would also take ``1_000``, spaces and non-ASCII digits.
    """
    if not _DECIMAL_RE.fullmatch(s):
        raise ValueError(f"not an integer: {shown(s)}")
    if len(s.lstrip("+-")) > _MAX_DECIMAL_DIGITS:
        raise ValueError(f"integer out of range: {shown(s)}")
    return int(s)


def parse_bool(s: str) -> bool:
    """``true``/``false``/``1``/``0`` in any case (and Go's ``t``/``f``)."""
    value = _BOOLS.get(s.strip().lower())
    if value is None:
        raise ValueError(f"invalid boolean {shown(s)}: expected true or false")
    return value
