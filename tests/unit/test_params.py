"""Query parameter parsers: Go durations, Jaeger trace IDs, RFC3339Nano, booleans."""

from __future__ import annotations

import base64

import pytest

from sidecar.query.params import (
    format_trace_id_full,
    format_trace_id_jaeger,
    parse_bool,
    parse_go_duration,
    parse_rfc3339_nano,
    parse_trace_id,
)

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("-0", 0),
        ("300ms", 300_000_000),
        ("1.5h", 5400 * S),
        ("1h15m30.5s", 4530 * S + 500_000_000),
        ("100ns", 100),
        ("2us", 2_000),
        ("2\u00b5s", 2_000),
        ("2\u03bcs", 2_000),
        ("1.2s", 1_200_000_000),
        (".5s", 500_000_000),
        ("5.s", 5 * S),
        ("-1.5m", -90 * S),
        ("+10s", 10 * S),
        ("1.0000000001s", S),  # sub-nanosecond fraction truncated
        ("9223372036854775807ns", 2**63 - 1),
        ("-9223372036854775808ns", -(2**63)),
    ],
)
def test_parse_go_duration_valid(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "invalid duration"),
        ("10", "missing unit"),
        ("1.5", "missing unit"),
        ("1h30", "missing unit"),
        ("3d", "unknown unit"),
        ("1 s", "unknown unit"),
        (".s", "invalid duration"),
        ("ms", "invalid duration"),
        ("-", "invalid duration"),
        ("9223372036854775808ns", "out of range"),
        ("3000000h", "out of range"),
    ],
)
def test_parse_go_duration_invalid(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_go_duration(text)


def test_parse_trace_id_hex_left_padded() -> None:
    assert parse_trace_id("1") == bytes(15) + b"\x01"
    assert parse_trace_id("ABCDEF") == bytes(13) + b"\xab\xcd\xef"
    full = "83a9efd15c1c98a977e0711cc93ee28b"
    assert parse_trace_id(full) == bytes.fromhex(full)
    assert parse_trace_id(full.upper()) == bytes.fromhex(full)
    assert parse_trace_id("77e0711cc93ee28b") == bytes(8) + bytes.fromhex("77e0711cc93ee28b")


def test_parse_trace_id_base64() -> None:
    raw = bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert parse_trace_id(base64.b64encode(raw).decode()) == raw
    assert parse_trace_id(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "0" * 32,
        "1" * 33,
        "xyz",
        "0x1234",
        base64.b64encode(b"12345678").decode(),
        "AAAAAAAAAAAAAAAAAAAAAA==",
    ],
)
def test_parse_trace_id_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_trace_id(text)


def test_format_trace_id() -> None:
    low_only = bytes(8) + bytes.fromhex("77e0711cc93ee28b")
    assert format_trace_id_jaeger(low_only) == "77e0711cc93ee28b"
    assert format_trace_id_full(low_only) == "000000000000000077e0711cc93ee28b"
    full = bytes.fromhex("83a9efd15c1c98a977e0711cc93ee28b")
    assert format_trace_id_jaeger(full) == "83a9efd15c1c98a977e0711cc93ee28b"
    assert format_trace_id_full(full) == "83a9efd15c1c98a977e0711cc93ee28b"
    high_set = bytes.fromhex("00000000000000010000000000000000")
    assert format_trace_id_jaeger(high_set) == "00000000000000010000000000000000"
    assert parse_trace_id(format_trace_id_jaeger(low_only)) == low_only
    with pytest.raises(ValueError):
        format_trace_id_full(b"\x01" * 8)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("2024-01-02T03:04:05.123456789Z", 1704164645123456789),
        ("2024-01-02T03:04:05.123Z", 1704164645123000000),
        ("2024-01-02T05:04:05.123456789+02:00", 1704164645123456789),
        ("2024-01-02T05:04:05.123456789 02:00", 1704164645123456789),  # '+' decoded as space
        ("2024-01-01T23:04:05-04:00", 1704164645000000000),
        ("2024-01-02t03:04:05z", 1704164645000000000),
        ("2024-01-02T03:04:05.1234567891Z", 1704164645123456789),  # beyond ns: truncated
        ("1969-12-31T23:59:59Z", -S),
    ],
)
def test_parse_rfc3339_nano(text: str, ns: int) -> None:
    assert parse_rfc3339_nano(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-01-02",
        "2024-01-02T03:04:05",
        "2024-01-02 03:04:05Z",
        "2024-02-30T00:00:00Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T03:04:05.Z",
        "2024-01-02T03:04:05+25:00",
        "1704164645",
    ],
)
def test_parse_rfc3339_nano_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="RFC3339"):
        parse_rfc3339_nano(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("false", False),
        ("FaLsE", False),
        ("0", False),
    ],
)
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["", "yes", "2", "on"])
def test_parse_bool_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_bool(text)
