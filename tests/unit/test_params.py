"""Query parameter parsers (Go durations, Jaeger trace IDs, RFC3339Nano, booleans, integers) and the
request-parameter layer above them, whose errors name the parameter as the client sent it."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest
from multidict import MultiDict

from sidecar.api import params as api_params
from sidecar.query.params import (
    format_trace_id_full,
    format_trace_id_jaeger,
    parse_bool,
    parse_decimal,
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


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("42", 42), ("+7", 7), ("-15", -15), ("007", 7)])
def test_parse_decimal(text: str, value: int) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not an integer"),
        ("1_000", "not an integer"),  # int() would take these four
        (" 5", "not an integer"),
        ("\u0665", "not an integer"),  # ARABIC-INDIC DIGIT FIVE
        ("5\n", "not an integer"),
        ("1e3", "not an integer"),
        ("9" * 5000, "out of range"),  # int() would raise its own digit-limit error
    ],
)
def test_parse_decimal_invalid(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_decimal(text)


@pytest.mark.parametrize(
    "parse",
    [parse_go_duration, parse_rfc3339_nano, parse_trace_id, parse_bool, parse_decimal],
)
@pytest.mark.parametrize("text", ["xyz", "x" * 100_000])
def test_parser_messages_quote_the_value_once_and_briefly(parse: Callable[[str], object], text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(text)
    message = str(info.value)
    assert message.count(text[:40]) == 1, message
    assert len(message) < 200, message


def test_go_duration_huge_fraction_or_digits_do_not_escape_as_other_errors() -> None:
    assert parse_go_duration("1." + "0" * 10_000 + "1s") == S
    with pytest.raises(ValueError, match="out of range"):
        parse_go_duration("9" * 10_000 + "s")


def test_trace_id_all_zeros_names_the_value() -> None:
    with pytest.raises(ValueError, match="'000': all zeros"):
        parse_trace_id("000")


# ---------------------------------------------------------------------------------------------
# sidecar.api.params: request parameters -> BadParam naming the parameter as sent


def q(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def bad(call: Callable[[], object]) -> str:
    with pytest.raises(api_params.BadParam) as info:
        call()
    return str(info.value)


def test_duration_refuses_negative_and_names_the_alias_sent() -> None:
    assert api_params.duration(q(("query.duration_min", "0")), "query.durationMin", "query.duration_min") == (
        "query.duration_min",
        0,
    )
    msg = bad(lambda: api_params.duration(q(("minDuration", "-5ms")), "minDuration"))
    assert msg == "parameter 'minDuration': must not be negative, got '-5ms'"
    msg = bad(lambda: api_params.duration(q(("query.durationMax", "-1s")), "query.durationMax", "x"))
    assert msg.startswith("parameter 'query.durationMax': must not be negative")


@pytest.mark.parametrize("since", ["0", "-1h", "-0.5s"])
def test_positive_duration_refuses_zero_and_negative(since: str) -> None:
    msg = bad(lambda: api_params.duration(q(("since", since)), "since", positive=True))
    assert msg == f"parameter 'since': must be a positive duration such as 1h, got {since!r}"


def test_duration_message_does_not_repeat_the_value() -> None:
    msg = bad(lambda: api_params.duration(q(("minDuration", "abc")), "minDuration"))
    assert msg.count("'abc'") == 1, msg
    assert "150ms" in msg  # says what a valid value looks like


def test_first_skips_empty_values_of_repeated_and_aliased_names() -> None:
    params = q(("limit", ""), ("limit", "5"), ("other", "7"))
    assert api_params.first(params, "limit") == ("limit", "5")
    assert api_params.first(q(("a", ""), ("b", "x")), "a", "b") == ("b", "x")
    assert api_params.first(q(("a", "")), "a") is None
    assert api_params.text(q(("service", ""), ("service", "shop")), "service") == "shop"
    assert api_params.text(q(("service", "")), "service") is None


def test_span_kind() -> None:
    for kind in api_params.SPAN_KINDS:
        assert api_params.span_kind(q(("spanKind", kind)), "spanKind") == kind
    assert api_params.span_kind(q(("spanKind", "")), "spanKind") is None
    msg = bad(lambda: api_params.span_kind(q(("span_kind", "SERVER")), "spanKind", "span_kind"))
    assert msg.startswith(
        "parameter 'span_kind': must be one of server, client, producer, consumer, internal"
    )
    assert msg.endswith("got 'SERVER'")


@pytest.mark.parametrize("value", ["1", "1.5", "true", "false", "null", '{"x": "y"}', '["a"]'])
def test_tags_values_must_be_strings(value: str) -> None:
    msg = bad(lambda: api_params.tags(q(("tags", f'{{"a": {value}}}')), ("tags",), None))
    assert msg.startswith("parameter 'tags': values must be strings: 'a' is "), msg


def test_tags_string_values_and_pairs_pass() -> None:
    params = q(("tags", '{"http.status_code": "500", "error": "true"}'), ("tag", "k:v"), ("tag", "a=b"))
    assert api_params.tags(params, ("tags",), "tag") == [
        ("http.status_code", "500"),
        ("error", "true"),
        ("k", "v"),
        ("a", "b"),
    ]


@pytest.mark.parametrize("value", ["junk", "0", "1", "", "ture", "yes", "t"])
@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("tag", "error:{}"),
        ("tag", "error={}"),
        ("tags", '{{"error": "{}"}}'),
        ("query.attributes", '{{"error": "{}"}}'),
    ],
)
def test_error_tag_must_be_true_or_false(name: str, raw: str, value: str) -> None:
    params = q((name, raw.format(value)))
    msg = bad(lambda: api_params.tags(params, ("tags", "query.attributes"), "tag"))
    assert msg == f"parameter '{name}': tag 'error' must be true or false, got {value!r}"


@pytest.mark.parametrize(("value", "read"), [("TRUE", "true"), (" True ", "true"), ("False\t", "false")])
def test_error_tag_any_case_and_spaces_pass_as_lowercase(value: str, read: str) -> None:
    params = q(("tag", f"error:{value}"), ("tags", f'{{"error": "{value.strip()}"}}'))
    assert api_params.tags(params, ("tags",), "tag") == [("error", read), ("error", read)]


def test_span_status_and_kind_values_are_not_checked() -> None:
    """Jaeger refuses none of them; an unknown value is passed on and matches no span."""
    params = q(("tag", "span.status:junk"), ("tag", "span.kind:JUNK"), ("tag", "http.error:junk"))
    assert api_params.tags(params, (), "tag") == [
        ("span.status", "junk"),
        ("span.kind", "JUNK"),
        ("http.error", "junk"),
    ]


def test_search_limit_refuses_above_the_maximum_and_says_it() -> None:
    msg = bad(lambda: api_params.search_limit(q(("limit", "1501")), "limit", default=20, low=1, maximum=1500))
    assert msg == "parameter 'limit': must be at most 1500 (the server's api.max_search_limit), got '1501'"
    huge = "9" * 30
    msg = bad(lambda: api_params.search_limit(q(("limit", huge)), "limit", default=20, low=1, maximum=1500))
    assert "at most 1500" in msg
    assert api_params.search_limit(q(("limit", "1500")), "limit", default=20, low=1, maximum=1500) == 1500


def test_search_limit_zero_and_default_respect_the_maximum() -> None:
    """Jaeger v1 reads limit=0 as the default; a default above a configured maximum is cut to it."""
    v1 = {"default": api_params.JAEGER_DEFAULT_LIMIT, "low": 0}
    assert api_params.search_limit(q(("limit", "0")), "limit", maximum=1500, **v1) == 100
    assert api_params.search_limit(q(), "limit", maximum=1500, **v1) == 100
    assert api_params.search_limit(q(), "limit", maximum=5, **v1) == 5
    assert api_params.search_limit(q(("limit", "0")), "limit", maximum=5, **v1) == 5
    assert api_params.DEFAULT_MAX_LIMIT == 1500


@pytest.mark.parametrize(
    "value", ["99999999999999999999999999", "-99999999999999999999999999", "9223372036854776"]
)
def test_micros_out_of_range(value: str) -> None:
    msg = bad(lambda: api_params.micros(q(("start", value)), "start"))
    assert msg.startswith(f"parameter 'start': '{value}' is out of range"), msg
    assert "after" not in msg


def test_micros_bounds_and_syntax() -> None:
    assert api_params.micros(q(("end", "9223372036854775")), "end") == ("end", 9223372036854775000)
    assert api_params.micros(q(("start", "-5")), "start") == ("start", -5000)
    msg = bad(lambda: api_params.micros(q(("start", "yesterday")), "start"))
    assert msg == "parameter 'start': expected an integer (µs since the epoch), got 'yesterday'"


def test_millis_refuses_before_the_epoch() -> None:
    assert api_params.millis(q(("endTs", "1000")), "endTs") == ("endTs", 1_000_000_000)
    assert "out of range" in bad(lambda: api_params.millis(q(("endTs", "-1")), "endTs"))


def test_rfc3339_beyond_int64_nanoseconds() -> None:
    names = ("query.startTimeMax", "query.start_time_max")
    msg = bad(lambda: api_params.rfc3339(q(("query.start_time_max", "9999-01-01T00:00:00Z")), *names))
    assert msg.startswith("parameter 'query.start_time_max': '9999-01-01T00:00:00Z' is out of range")


def _query(**kw: object) -> object:
    args: dict[str, object] = {
        "service": "s",
        "operation": None,
        "tag_list": [],
        "start": None,
        "end": None,
        "min_duration": None,
        "max_duration": None,
        "limit": 10,
    }
    return api_params.build_query(**{**args, **kw})  # type: ignore[arg-type]


def test_build_query_reversed_window_names_the_parameters_as_sent() -> None:
    msg = bad(lambda: _query(start=("query.start_time_min", 2 * S), end=("query.startTimeMax", S)))
    assert msg == "parameter 'query.start_time_min': must not be after 'query.startTimeMax'"
    msg = bad(lambda: _query(start=("start", time.time_ns() + 3600 * S)))
    assert msg == "parameter 'start': must not be after now (the default when no end is given)"


def test_build_query_reversed_bounds_name_both_parameters() -> None:
    msg = bad(
        lambda: _query(min_duration=("query.durationMin", 2 * S), max_duration=("query.duration_max", S))
    )
    assert msg == "parameter 'query.duration_max': must not be smaller than 'query.durationMin'"
    msg = bad(
        lambda: _query(
            min_trace_duration=("minTraceDuration", 2 * S), max_trace_duration=("maxTraceDuration", S)
        )
    )
    assert msg == "parameter 'maxTraceDuration': must not be smaller than 'minTraceDuration'"


def test_build_query_default_window() -> None:
    end = 10 * 86_400 * S
    query = _query(end=("end", end))
    assert (query.start_ns, query.end_ns) == (end - 2 * 86_400 * S, end)  # type: ignore[attr-defined]


def test_rfc3339_allows_a_space_between_date_and_time() -> None:
    """RFC 3339 section 5.6 lets applications put a space for the T, as SQL tools print times."""
    assert parse_rfc3339_nano("2024-01-02 03:04:05Z") == parse_rfc3339_nano("2024-01-02T03:04:05Z")
