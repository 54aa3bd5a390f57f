"""Event timestamps and form values as ingest reads them (HTTP answers: tests/e2e/test_events.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.config.model import EventsIngestConfig
from sidecar.ingest.events import Invalid, Limits, parse_request, validate_event

NOW = 1_700_000_000 * 10**9
LIMITS = Limits.from_config(EventsIngestConfig(), 400)


@pytest.mark.parametrize(
    ("ts", "ns"),
    [
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T22:13:19.123456789Z", NOW - 10**9 + 123_456_789),
        ("2023-11-15T00:13:20+02:00", NOW),
        (1_700_000_000, NOW),
        (1_700_000_000.5, NOW + 500_000_000),
        ("1700000000", NOW),
        (1_700_000_000_000, NOW),
        ("1700000000123", NOW + 123_000_000),
        (1_699_999_999_999.5, NOW - 500_000),
    ],
)
def test_timestamps_are_rfc3339_or_unix_seconds_or_milliseconds_by_magnitude(ts: Any, ns: int) -> None:
    assert validate_event({"event": "e", "ts": ts}, LIMITS, NOW).ts_ns == ns


def test_the_receive_time_is_the_default_and_windows_are_inclusive() -> None:
    assert validate_event({"event": "e"}, LIMITS, NOW).ts_ns == NOW
    assert validate_event({"event": "e", "ts": (NOW + 600 * 10**9) // 10**9}, LIMITS, NOW)
    with pytest.raises(Invalid, match="in the future"):
        validate_event({"event": "e", "ts": (NOW + 601 * 10**9) // 10**9}, LIMITS, NOW)


def test_form_values_that_read_as_numbers_are_numbers_and_fields_stay_text() -> None:
    body = b"event=e&user=007&n=42&x=-1.5&big=1e3&word=12abc&zero=0&flag=true"
    (event,) = parse_request("application/x-www-form-urlencoded", body, [], LIMITS, NOW).events
    assert event.user_id == "007"
    assert event.properties == {"n": 42, "x": -1.5, "big": 1000.0, "word": "12abc", "zero": 0, "flag": "true"}


def test_ndjson_lines_end_only_at_newlines_not_at_unicode_line_separators() -> None:
    """JSON strings may hold U+2028, U+2029 and U+0085 unescaped; str.splitlines would cut there."""
    text = "a\u2028b\u0085c\u2029d"
    first = json.dumps({"event": "e", "note": text}, ensure_ascii=False)
    body = (first + '\r\n\n{"event": "f"}').encode()
    parsed = parse_request("application/x-ndjson", body, [], LIMITS, NOW)
    assert parsed.errors == []
    assert [(e.name, e.properties) for e in parsed.events] == [("e", {"note": text}), ("f", {})]


def test_an_integer_no_float64_holds_is_refused_as_forms_refuse_it() -> None:
    """Stored, such a property broke every sum and filter over it (OverflowError in analytics)."""
    huge = 10**400
    with pytest.raises(Invalid, match="must be a finite number") as caught:
        validate_event({"event": "e", "properties": {"n": huge}}, LIMITS, NOW)
    assert caught.value.field == "properties.n"
    form = parse_request("application/x-www-form-urlencoded", f"event=e&n={huge}".encode(), (), LIMITS, NOW)
    assert [(e.field, e.reason) for e in form.errors] == [("n", "must be a finite number")]
    biggest = int(1.7976931348623157e308)
    assert validate_event({"event": "e", "n": biggest}, LIMITS, NOW).properties == {"n": biggest}
    body = json.dumps({"event": "e", "n": 1}).replace("1}", "1" * 5000 + "}").encode()
    (error,) = parse_request("application/x-ndjson", body, (), LIMITS, NOW).errors
    assert error.reason == "invalid JSON: an integer of more than 4300 digits"


def test_null_properties_are_none_and_a_field_twice_in_a_form_is_that_events_error() -> None:
    assert validate_event({"event": "e", "properties": None, "a": 1}, LIMITS, NOW).properties == {"a": 1}
    form = parse_request("application/x-www-form-urlencoded", b"event=e&x=1&x=2", (), LIMITS, NOW)
    assert (form.total, [(e.index, e.field, e.reason) for e in form.errors]) == (1, [(0, "x", "given twice")])
    query = parse_request("application/json", b"", [("event", "e"), ("event", "f")], LIMITS, NOW)
    assert [(e.index, e.field, e.reason) for e in query.errors] == [(0, "event", "given twice")]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_a_byte_order_mark_before_the_body_is_not_part_of_it(content_type: str) -> None:
    body = b"\xef\xbb\xbf" + json.dumps({"event": "e", "user": "1"}).encode()
    parsed = parse_request(content_type, body, (), LIMITS, NOW)
    assert (parsed.errors, [e.name for e in parsed.events]) == ([], ["e"])
