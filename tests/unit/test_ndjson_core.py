"""The compiled NDJSON reader against the all-Python path it speeds up: the same answer on any body.

``oracle`` is ``parse_request``'s NDJSON answer as the module computed it before the compiled
reader (decode, split lines, strip-blank, ``json.loads``, ``validate_event`` per item), written out
here so that it does not move with the module. Answers are compared with the types of values
(True, 1 and 1.0 are three answers), the order of properties, every error (index, field, reason,
line), the total and the too-many flag; an exception (today's path raises on a few inputs, e.g.
a lone surrogate in a value) must be the same exception. ``fuzz/fuzz_ndjson.py`` reuses all this.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.ingest.events import (
    FIELDS,
    Event,
    EventError,
    Invalid,
    Limits,
    Parsed,
    _loads,
    fast_lane,
    parse_request,
    validate_event,
)

NDJSON = "application/x-ndjson"
NOW = 1_700_000_000 * 10**9 + 123_456_789
DAY = 86_400 * 10**9
DEFAULT = Limits(256, 100, 4096, 10_000, 400 * DAY, 600 * 10**9)
SMALL = Limits(5, 2, 6, 3, DAY, 10**9)  # every limit within reach of short lines

# Deterministic in CI and locally (no example database); the fuzz target explores beyond. A
# drawn body costs ~2 ms, so 1500 of each kind keep the file at ~10 s.
FAST = settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the oracle -------------------------------------------------------------------------------------
def oracle(body: bytes, limits: Limits, now_ns: int) -> Parsed:
    """``parse_request(NDJSON, body, (), limits, now_ns)`` as the all-Python module answered it."""
    body = body.removeprefix(b"\xef\xbb\xbf")  # a byte order mark is not part of the body
    if not body.strip():
        return Parsed(errors=[EventError(None, None, "empty body and no query string: no event")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Parsed(errors=[EventError(None, None, f"body is not UTF-8 (byte {exc.start})")])
    items: list[Any] = []
    lines: list[int] = []
    bad: dict[int, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = _loads(line)  # json.loads, with a key given twice kept as an error
        except json.JSONDecodeError as exc:
            bad[len(items)] = f"invalid JSON: {exc.msg} at column {exc.colno}"
            item = None
        items.append(item)
        lines.append(number)
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
        if index in bad:
            parsed.errors.append(EventError(index, None, bad[index], lines[index]))
            continue
        try:
            parsed.events.append(validate_event(item, limits, now_ns))
        except Invalid as exc:
            parsed.errors.append(EventError(index, exc.field, exc.reason, lines[index]))
    return parsed


def typed(value: Any) -> tuple[str, str]:
    """A value with its type: True, 1 and 1.0 (and 0.0 and -0.0) compare unequal."""
    return type(value).__name__, repr(value)


def answer(parse: Callable[[], Parsed]) -> tuple[Any, ...]:
    """Everything a client could see of a parse, or the exception it raised."""
    try:
        parsed = parse()
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))
    events = [
        (
            *map(typed, (e.name, e.ts_ns, e.user_id, e.session_id, e.service, e.id)),
            [(typed(k), typed(v)) for k, v in e.properties.items()],
        )
        for e in parsed.events
    ]
    return ("parsed", events, parsed.errors, parsed.total, parsed.too_many)


def check(body: bytes, limits: Limits = DEFAULT, now_ns: int = NOW) -> Counter[str]:
    """parse_request and the oracle agree on ``body``; returns how the reader took its lines."""
    expected = answer(lambda: oracle(body, limits, now_ns))
    got = answer(lambda: parse_request(NDJSON, body, (), limits, now_ns))
    assert got == expected, body
    return lanes(body, limits, now_ns)


Entries = Sequence[Event | tuple[int, str]] | None


def read(body: bytes, limits: Limits = DEFAULT, now_ns: int = NOW) -> Entries:
    return fast_lane(body, limits, now_ns)


def lanes(body: bytes, limits: Limits = DEFAULT, now_ns: int = NOW) -> Counter[str]:
    """How many lines the reader decided ("fast") and left to Python ("slow"), or "not-utf8"."""
    entries = read(body, limits, now_ns)
    if entries is None:
        return Counter({"not-utf8": 1})
    return Counter("slow" if isinstance(entry, tuple) else "fast" for entry in entries)


# -- event-like lines ----------------------------------------------------------------------------
# Bodies are drawn with a seeded random.Random (hypothesis hands it over, the fuzz target seeds it
# from its input): far quicker than composing strategies, and each field's value is drawn valid
# most of the time, so most lines are events and the fast lane is what gets compared.
class Raw(str):
    """JSON text written as it is (numbers of every shape, literals, garbage)."""


ALIASES = [alias for aliases in FIELDS.values() for alias in aliases]
# One to four UTF-8 bytes, whitespace of both kinds, characters JSON must escape, line separators.
PLAIN = "abcxyz_.-0"
CHARS = 'aZ0 ._-é日😀\t\n"\\/\x00\x1f\x7f\xa0\u2003\u2028\u0085\U0010ffff'
INTS = [
    "0",
    "-0",
    "7",
    "-42",
    "999999999999999999",
    "-999999999999999999",
    "1000000000000000000",
    "12345678901234567890123",
]
FLOATS = [
    "1.0",
    "-0.0",
    "0.5",
    "1e5",
    "1E+2",
    "2.5e-3",
    "1e-400",
    "123456789.123456789123456789",
    "0.1000000000000000055511",
    "1.7976931348623157e308",
]
SIGNS = ["", "+", "-"]
BAD_NUMBERS = ["1e400", "-1e400", "1.", ".5", "1e", "1.5e", "01", "-", "+1", "NaN", "Infinity", "-Infinity"]
BAD_LITERALS = ["nul", "truex", "True", "[]", "[1,2]", '["a",true,null]', "[1e400]", "[[]]"]
BAD_TIMES = [
    "2023-02-29T00:00:00Z",
    "2023-13-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2023-11-14T24:00:00Z",
    "2023-11-14T22:13:60Z",
    "2023-11-14T22:13:20+24:00",
    "2023-11-14T22:13:20+23:60",
    "2023-11-14T22:13:20",
    "2023-11-14T22:13:20.Z",
    "2023-11-14",
    " 1700000000",
    "1700000000 ",
    "01700000000",
    "-1700000000",
    "+1700000000",
    "1700000000.5",
    "1.7e9",
    "",
    "100000000000000",
    "99999999999999",
    "99999999999",
    "100000000000",
    "0",
    "2024-02-29T00:00:00Z",
    "1969-12-31T23:59:59.999999999Z",
]
BLANKS = ["", " ", "\t", "\r", "\x0b\x0c", "\x1c\x1f", "\xa0", "\u2003 ", "\u2028", "\x85"]
INSERTS = [
    b'"',
    b"\\",
    b",",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"\x00",
    b"\x1f",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"\xa0",
    b"\xc2\xa0",
    b"\r",
    b"\n",
    b" ",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b'\\ud83d\\ude00"',
    b"\\u00e9",
    b"0",
    b"-",
    b"e",
    b".",
    b"null",
    b"true",
]


def text(rng: random.Random, size: int, chars: str = CHARS) -> str:
    return "".join(rng.choice(chars) for _ in range(rng.randint(0, size)))


def fit(value: str, cp: int | None = None, size: int | None = None) -> str:
    """``value`` cut to at most ``cp`` code points and ``size`` UTF-8 bytes."""
    if cp is not None:
        value = value[: max(cp, 0)]
    if size is not None:
        while len(value.encode("utf-8", "surrogatepass")) > size:
            value = value[:-1]
    return value


def sized(rng: random.Random, limit: int, unit: str, over: bool = False) -> str:
    """Text right at ``limit`` (or one under; ``over``: one past) in ``unit`` (``cp``: code points,
    ``bytes``: UTF-8 bytes), mixing one- to four-byte characters; it starts with an ASCII letter."""
    want = limit + 1 if over else max(0, limit - rng.choice((0, 0, 1)))
    out, size = ["a"][:want], min(want, 1)
    while size < want:
        c = rng.choice("aé日😀")
        step = 1 if unit == "cp" else len(c.encode())
        if size + step > want:
            c, step = "a", 1
        out.append(c)
        size += step
    return "".join(out)


def number(rng: random.Random, valid: bool) -> Raw:
    if not valid:
        return Raw(rng.choice(BAD_NUMBERS))
    return Raw(
        rng.choice(
            [
                lambda: rng.choice(INTS),
                lambda: rng.choice(FLOATS),
                lambda: str(rng.randint(-(10**18) + 1, 10**18 - 1)),
                lambda: str(rng.randint(-1000, 1000)),
                lambda: str(rng.randint(-1000, 1000)),
                lambda: repr(rng.uniform(-1e6, 1e6)),
                lambda: repr(rng.random() * 10 ** rng.randint(-30, 30)),
                lambda: f"{rng.randint(0, 99)}.{rng.randint(0, 999)}e{rng.choice(SIGNS)}{rng.randint(0, 20)}",
            ]
        )()
    )


def scalar(rng: random.Random, limits: Limits, valid: bool) -> Any:
    """A property's value: valid under ``limits``, or (not ``valid``) one that is not."""
    if not valid:
        return rng.choice(
            [
                lambda: number(rng, False),
                lambda: Raw(rng.choice(BAD_LITERALS)),
                lambda: sized(rng, limits.max_value_bytes, "bytes", over=True),
            ]
        )()
    return rng.choice(
        [
            lambda: fit(text(rng, 6), size=limits.max_value_bytes),
            lambda: fit(text(rng, 6, PLAIN), size=limits.max_value_bytes),
            lambda: sized(rng, limits.max_value_bytes, "bytes"),
            lambda: number(rng, True),
            lambda: number(rng, True),
            lambda: Raw(rng.choice(["true", "false", "null"])),
        ]
    )()


def key(rng: random.Random, room: int | None, aliases: bool) -> str:
    """A member's key of at most ``room`` code points (None: any length, one past the limit too)."""
    fixed = ["a", "b", "a.b", "x", "", "é", "😀", "properties.a", "Name", "ok"] + (ALIASES if aliases else [])
    value = rng.choice(
        [
            lambda: rng.choice(PLAIN) + text(rng, 3, PLAIN),
            lambda: rng.choice(PLAIN) + text(rng, 3, PLAIN),
            lambda: text(rng, 4),
            lambda: rng.choice(fixed),
            lambda: sized(rng, max(room or 0, 0), "cp", over=room is None),
        ]
    )()
    return value if room is None else fit(value, cp=room)


def members(
    rng: random.Random,
    limits: Limits,
    bias: float,
    budget: list[int],
    room: int,
    depth: int = 0,
    top: bool = False,
) -> list[tuple[str, Any]]:
    """An object's members, valid each with probability ``bias``: mostly scalars, some nested
    objects; ``budget`` counts the properties left, ``room`` the code points left for a name."""
    pairs: list[tuple[str, Any]] = []
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
        valid = rng.random() < bias
        k = key(rng, room if valid else None, aliases=not (top and valid))
        if depth < 3 and rng.random() < 0.15 and (room - len(k) - 1 >= 0 or not valid):
            pairs.append((k, members(rng, limits, bias, budget, room - len(k) - 1, depth + 1)))
        elif valid and budget[0] <= 0:
            pairs.append((k, Raw("null")))  # a null is no property (its name's length still counts)
        else:
            budget[0] -= 1
            pairs.append((k, scalar(rng, limits, valid)))
    if pairs and rng.random() > bias:  # json.loads keeps the last value, in the first key's place
        pairs.insert(rng.randint(0, len(pairs)), (rng.choice(pairs)[0], scalar(rng, limits, True)))
    return pairs


def timestamp(rng: random.Random, limits: Limits, valid: bool) -> Any:
    """A time in the window in any spelling, or (not ``valid``) around and past its ends, or no time."""
    lo, hi = NOW - limits.max_past_ns, NOW + limits.max_future_ns
    if valid:
        ns = rng.choice([NOW, rng.randint(max(lo, 0), hi), max(lo, 0), hi])
    else:
        edge = rng.choice([lo, hi])
        ns = rng.choice(
            [edge - 1, edge + 1, edge + rng.randint(-(10**10), 10**10), rng.randint(-(2**64), 2**66)]
        )
        if rng.random() < 0.3:
            return rng.choice(
                [
                    lambda: Raw(rng.choice(BAD_TIMES)),
                    lambda: rng.choice(BAD_TIMES),
                    lambda: scalar(rng, limits, True),
                ]
            )()
    spelling = rng.choice(
        ["s", "ms", "s-text", "ms-text", "rfc3339", "rfc3339", "float"]
        if not valid
        else ["s", "ms", "s-text", "ms-text", "rfc3339", "rfc3339"]
    )
    if spelling == "rfc3339":
        return rfc3339(rng, ns)
    if spelling == "float":
        return Raw(repr(ns / rng.choice([10**9, 10**6])))
    unit = 10**9 if spelling.startswith("s") else 10**6
    value = ns // unit + (valid and ns // unit * unit < lo)  # inside the window when meant to be
    return str(value) if spelling.endswith("text") else Raw(str(value))


def rfc3339(rng: random.Random, ns: int) -> str:
    """``ns`` as RFC 3339 text, any separator, zone spelling, offset and number of digits."""
    seconds, nanos = divmod(ns, 10**9)
    offset = rng.choice([0, 0, 60, -90, 23 * 60 + 59, -(23 * 60 + 59), rng.randint(-1440, 1440)])
    try:
        when = dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(minutes=offset)
    except (OverflowError, OSError, ValueError):
        return str(ns)
    digits = rng.choice([0, 0, 3, 6, 9, 9, rng.randint(1, 14)])
    fraction = f".{nanos:09d}{'7' * max(0, digits - 9)}"[: digits + 1] if digits else ""
    if offset == 0 and rng.random() < 0.7:
        zone = rng.choice("Zz")
    else:
        sign = rng.choice("+ ") if offset >= 0 else "-"
        zone = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return f"{when:%Y-%m-%d}{rng.choice('Tt ')}{when:%H:%M:%S}{fraction}{zone}"


def identifier(rng: random.Random, cap: int, valid: bool, limits: Limits) -> Any:
    """user_id, session_id, service or id: valid (at most ``cap`` bytes), or (not ``valid``) not."""
    if valid:
        return rng.choice(
            [
                lambda: fit(text(rng, 6), size=cap),
                lambda: fit(str(rng.randint(0, 10**6)), size=cap),
                lambda: "",
                lambda: Raw("null"),
                lambda: Raw(str(rng.randint(-(10 ** min(cap - 1, 18)) + 1, 10 ** min(cap, 18) - 1))),
                lambda: sized(rng, cap, "bytes"),
            ]
        )()
    return rng.choice(
        [
            lambda: number(rng, True),
            lambda: Raw(rng.choice(["true", "false"])),
            lambda: sized(rng, cap, "bytes", over=True),
            lambda: Raw("9" * (cap + 1)),
            lambda: members(rng, limits, 0.9, [9], 9),
        ]
    )()


def event(rng: random.Random, limits: Limits, bias: float) -> list[tuple[str, Any]]:
    """One event object as (key, value) pairs: own fields under any spelling, extras, properties;
    each value valid under ``limits`` with probability ``bias``."""

    def valid() -> bool:
        return rng.random() < bias

    pairs: list[tuple[str, Any]] = []
    longest = limits.max_name_length
    if valid():
        name = rng.choice(
            [
                lambda: fit(rng.choice(["page_view", "a", "x y", "é1", "a😀", "checkout.paid"]), cp=longest),
                lambda: "e" + fit(text(rng, 5), cp=longest - 1),
                lambda: sized(rng, longest, "cp"),
            ]
        )()
        pairs.append((rng.choice(FIELDS["name"]), name))
    elif rng.random() < 0.7:
        name = rng.choice(
            [
                lambda: rng.choice(["日本", "\u2003", " ", "", "\xa0x\xa0", "\x1c"]),
                lambda: text(rng, 5),
                lambda: sized(rng, longest, "cp", over=True),
                lambda: scalar(rng, limits, True),
            ]
        )()
        pairs.append((rng.choice(FIELDS["name"]), name))
    if rng.random() < 0.7:
        pairs.append((rng.choice(FIELDS["timestamp"]), timestamp(rng, limits, valid())))
    for field in ("user_id", "session_id", "service", "id"):
        if rng.random() < 0.6:
            cap = 128 if field == "id" else limits.max_value_bytes
            pairs.append((rng.choice(FIELDS[field]), identifier(rng, cap, valid(), limits)))
    budget = [limits.max_properties]
    if rng.random() < 0.8:
        properties = members(rng, limits, bias, budget, longest) if valid() else scalar(rng, limits, True)
        pairs.append(("properties", properties))
    if rng.random() < 0.5:
        pairs += members(rng, limits, bias, budget, longest, top=True)
    rng.shuffle(pairs)
    if pairs and not valid():  # one field under two spellings, or a key given twice
        pairs.insert(rng.randint(0, len(pairs)), (rng.choice(ALIASES), scalar(rng, limits, True)))
    return pairs


def dumps(rng: random.Random, value: Any) -> str:
    """JSON text of ``value``, whitespace and escaping (ensure_ascii or not) drawn per token."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=rng.random() < 0.3)
    ws = ["", "", "", "", " ", "\t", "\r"]
    return (
        "{"
        + ",".join(
            f"{rng.choice(ws)}{dumps(rng, k)}{rng.choice(ws)}:{rng.choice(ws)}{dumps(rng, v)}{rng.choice(ws)}"
            for k, v in value
        )
        + "}"
    )


def make_body(rng: random.Random, limits: Limits) -> bytes:
    """One to six lines: events (each drawn with its own bias towards valid values) and blank lines."""
    lines = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.85:
            bias = rng.choice([1.0, 1.0, 1.0, 0.98, 0.9, 0.7])
            pad = rng.choice(["", "", "", "", "", " ", "\t", "\r", "\x0c", "\xa0"])
            lines.append(rng.choice(["", "", " "]) + dumps(rng, event(rng, limits, bias)) + pad)
        else:
            lines.append(rng.choice(BLANKS))
    return ("\n".join(lines) + rng.choice(["", "\n", "\r\n"])).encode("utf-8", "surrogatepass")


def mutate(rng: random.Random, body: bytes) -> bytes:
    """Truncations, insertions of JSON's and UTF-8's sharp edges, deletions and duplicated runs."""
    out = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["truncate", "insert", "insert", "insert", "delete", "duplicate"])
        at = rng.randint(0, len(out))
        if op == "truncate":
            del out[at:]
        elif op == "insert":
            out[at:at] = rng.choice(INSERTS)
        elif op == "delete":
            del out[at : at + rng.randint(1, 4)]
        else:
            out[at:at] = out[at : at + rng.randint(1, 30)]
    return bytes(out)


def make_limits(rng: random.Random) -> Limits:
    """The defaults, small limits every line can reach, or random ones (windows up to absurd)."""
    return rng.choice(
        [
            lambda: DEFAULT,
            lambda: SMALL,
            lambda: Limits(
                rng.randint(1, 12),
                rng.randint(0, 5),
                rng.randint(1, 16),
                rng.randint(1, 6),
                rng.choice([0, 10**9, DAY, 400 * DAY, 10**30]),
                rng.choice([0, 10**9, 600 * 10**9, 10**30]),
            ),
        ]
    )()


def case(seed: int, mutated: bool) -> tuple[bytes, Limits]:
    rng = random.Random(seed)
    limits = make_limits(rng)
    body = make_body(rng, limits)
    return (mutate(rng, body) if mutated else body), limits


seeds = st.integers(0, 2**64)


@FAST
@given(seeds)
def test_event_bodies_same_answer(seed: int) -> None:
    check(*case(seed, mutated=False))


@FAST
@given(seeds)
def test_mutated_bodies_same_answer(seed: int) -> None:
    check(*case(seed, mutated=True))


@FAST
@given(st.binary(max_size=48))
def test_random_bytes_same_answer(body: bytes) -> None:
    check(body, SMALL)


def outcomes(body: bytes, limits: Limits) -> set[str]:
    """The lanes the reader took and, for the lines it left, what Python made of them."""
    seen = set(check(body, limits))
    for entry in read(body, limits) or []:
        if isinstance(entry, tuple) and entry[1].strip():
            try:
                validate_event(_loads(entry[1]), limits, NOW)
                seen.add("valid-slow")
            except json.JSONDecodeError:
                seen.add("bad-json")
            except Invalid:
                seen.add("error")
            except Exception:
                seen.add("raised")
    return seen


def test_generated_bodies_reach_both_lanes_and_every_outcome() -> None:
    """The differential tests mean something only if the drawn lines take both lanes, and Python's
    verdicts on the rest include valid events, invalid ones and invalid JSON; and most lines are
    events taken fast."""
    seen: Counter[str] = Counter()
    for seed in range(400):
        seen.update(outcomes(*case(seed, mutated=seed % 2 == 1)))
    assert {"fast", "slow", "valid-slow", "error", "bad-json", "not-utf8"} <= set(seen), seen
    fast = sum(lanes(*case(seed, mutated=False))["fast"] for seed in range(200))
    slow = sum(lanes(*case(seed, mutated=False))["slow"] for seed in range(200))
    assert fast > slow, (fast, slow)


# -- the bench's lines take the fast lane ------------------------------------------------------------
def test_bench_lines_are_all_fast_and_equal_to_python() -> None:
    from bench.events import EVENTS_PER_REQUEST, EventStream, build_batches

    body = EventStream(build_batches(1), seed=1).body(3)
    now = (int(body.split(b'"timestamp":"')[1][:10]) + 1) * 10**9
    assert lanes(body, DEFAULT, now) == Counter({"fast": EVENTS_PER_REQUEST})
    check(body, DEFAULT, now)


# -- tricky cases, one by one --------------------------------------------------------------------
def one(line: str, limits: Limits = DEFAULT) -> tuple[Counter[str], Parsed | None]:
    """The lanes of a one-line body, after checking it against the oracle; and the parse (None if
    it raised, as the oracle did)."""
    body = line.encode("utf-8", "surrogatepass")
    counts = check(body, limits)
    try:
        return counts, parse_request(NDJSON, body, (), limits, NOW)
    except Exception:
        return counts, None


def test_flat_events_are_fast_with_every_field() -> None:
    line = (
        '{"event":"pay","dt":1700000000,"userid":42,"session_id":"s","service":"web","id":"e1",'
        '"amount":12.5,"n":3,"ok":true,"no":false,"gone":null,"properties":{"currency":"EUR","cart":{"n":-0}}}'
    )
    counts, parsed = one(line)
    assert counts == Counter({"fast": 1})
    (event,) = parsed.events
    assert event == Event(
        "pay",
        1_700_000_000 * 10**9,
        "42",
        "s",
        "web",
        "e1",
        {"amount": 12.5, "n": 3, "ok": True, "no": False, "currency": "EUR", "cart.n": 0},
    )
    assert [type(v) for v in event.properties.values()] == [float, int, bool, bool, str, int]


def test_properties_come_after_the_extras_and_nested_keys_join_with_dots() -> None:
    counts, parsed = one('{"properties":{"z":1,"a":{"b":{"c":2}}},"name":"e","y":{"x":"1"},"w":3}')
    assert counts == Counter({"fast": 1})
    assert list(parsed.events[0].properties.items()) == [("y.x", "1"), ("w", 3), ("z", 1), ("a.b.c", 2)]


# Lines the reader must leave to Python: what json.loads does with them, or whether they are
# valid, takes more than this reader knows (the fuzz target seeds with them too).
TRICKY = [
    '{"name":"a","name":"b"}',  # json.loads keeps the last value
    '{"name":"e","x":1,"x":2,"y":3}',  # ... in the first key's place
    '{"name":"e","p":{"q":1,"q":null}}',
    '{"name":"e","a.b":1,"a":{"b":2}}',  # a property twice after flattening
    '{"name":"e","x":1,"properties":{"x":2}}',
    '{"name":"e","event":"f"}',  # one field under two spellings
    '{"name":"e","x":[1,2.5,"s"]}',  # a list is kept as its JSON text
    '{"name":"e","x":NaN}',
    '{"name":"e","x":1e400}',
    '{"name":"e","x":12345678901234567890123}',  # more than 18 digits: Python's int
    '{"name":"e","user_id":1.5}',
    '{"name":"e","user_id":true}',
    '{"name":"e","ts":"1700000000.5"}',
    '{"name":"e","ts":" 1700000000"}',  # stripped by Python
    '{"name":"e","ts":1700000000.0}',
    '{"name":"日本"}',  # blank or not is Unicode's question
    '{"name":"\u2003"}',
    '{"name":"e","x":"\\ud800"}',  # a lone surrogate: today's path raises on it
    '{"name":"e","x":"a\tb"}',  # a raw control character: invalid JSON
    '{"name":"e"} x',
    '[{"name":"e"}]',
    '"e"',
    "{}",
    '{"name":"e","properties":[]}',
    '{"name":"e","properties":null}',
    "\ufeff" + '{"name":"e"}',
    '{"name":"e","deep":' + '{"a":' * 20 + "1" + "}" * 20 + "}",
]


@pytest.mark.parametrize("line", TRICKY)
def test_unusual_lines_are_left_to_python(line: str) -> None:
    counts, _ = one(line)
    assert counts == Counter({"slow": 1})


def test_escapes_are_decoded_as_json_does() -> None:
    counts, parsed = one('{"n\\u0061me":"e\\ud83d\\ude00","x":"\\u00e9\\n\\"\\\\\\/\\b\\f\\r\\t\\u0000"}')
    assert counts == Counter({"fast": 1})
    assert parsed.events[0].name == "e\U0001f600"
    assert parsed.events[0].properties == {"x": 'é\n"\\/\b\f\r\t\x00'}


def test_integers_and_identifiers_as_python_writes_them() -> None:
    line = '{"name":"e","user_id":-0,"session_id":"","service":null,"id":-999999999999999999,"x":-0}'
    _, parsed = one(line)
    assert parsed is not None
    (event,) = parsed.events
    ids = (event.user_id, event.session_id, event.service, event.id)
    assert ids == ("0", None, None, "-999999999999999999")
    assert typed(event.properties["x"]) == ("int", "0")


def test_limits_count_code_points_for_names_and_bytes_for_values() -> None:
    limits = Limits(3, 2, 4, 10, DAY, 10**9)
    assert one('{"name":"a😀😀","x":"éé"}', limits)[0] == Counter({"fast": 1})
    assert one('{"name":"a😀😀😀"}', limits)[1].errors[0].field == "name"
    assert one('{"name":"e","x":"ééa"}', limits)[1].errors[0].field == "x"
    # the length of a property's name is of the name kept (no "properties."), and a null's counts
    assert one('{"name":"e","properties":{"abc":1}}', limits)[0] == Counter({"fast": 1})
    assert one('{"name":"e","properties":{"abcd":null}}', limits)[1].errors[0].field == "properties.abcd"
    assert one('{"name":"e","a":{"bc":null}}', limits)[1].errors[0].field == "a.bc"
    assert one('{"name":"e","a":1,"b":2,"properties":{"c":3}}', limits)[1].errors[0].field == "properties"
    assert one('{"name":"e","a":1,"b":2,"c":null}', limits)[0] == Counter({"fast": 1})
    assert one('{"name":"e","user":"12345"}', limits)[1].errors[0].field == "user"
    assert one('{"name":"e","user":12345}', limits)[1].errors[0].field == "user"
    assert one('{"name":"e","id":"' + "é" * 64 + '"}', limits)[0] == Counter({"fast": 1})
    assert one('{"name":"e","id":"' + "é" * 64 + 'a"}', limits)[1].errors[0].field == "id"


@pytest.mark.parametrize(
    ("ts", "ns"),
    [
        ('"2023-11-14T22:13:20.123456789999Z"', 1_700_000_000 * 10**9 + 123_456_789),
        ('"2023-11-15 00:13:20.5 02:00"', 1_700_000_000 * 10**9 + 500_000_000),
        ('"2023-11-14t20:13:20-02:00"', 1_700_000_000 * 10**9),
        ('"1700000000"', 1_700_000_000 * 10**9),
        ("1700000000123", 1_700_000_000_123 * 10**6),
        ('"99999999999"', None),  # seconds: far in the future
        ("100000000000", 100_000_000_000 * 10**6),  # 1e11 is milliseconds: 1973
    ],
)
def test_timestamps_in_c_as_in_python(ts: str, ns: int | None) -> None:
    limits = Limits(256, 100, 4096, 10, 10**30, 600 * 10**9)
    counts, parsed = one(f'{{"name":"e","ts":{ts}}}', limits)
    if ns is None:
        assert counts == Counter({"slow": 1}) and parsed.errors
    else:
        assert counts == Counter({"fast": 1}) and parsed.events[0].ts_ns == ns


def test_the_time_window_is_inclusive_at_both_ends() -> None:
    limits = Limits(256, 100, 4096, 10, 2 * 10**9 + 123_456_789, 10**9 - 123_456_789)
    lo, hi = NOW - limits.max_past_ns, NOW + limits.max_future_ns  # whole seconds
    for ns, lane in [(lo, "fast"), (hi, "fast"), (lo - 1, "slow"), (hi + 1, "slow")]:
        when = dt.datetime.fromtimestamp(ns // 10**9, dt.UTC)
        line = f'{{"name":"e","ts":"{when:%Y-%m-%dT%H:%M:%S}.{ns % 10**9:09d}Z"}}'
        assert one(line, limits)[0] == Counter({lane: 1})
    assert one(f'{{"name":"e","ts":{lo // 10**9}}}', limits)[0] == Counter({"fast": 1})
    assert one(f'{{"name":"e","ts":{lo // 10**9 - 1}}}', limits)[0] == Counter({"slow": 1})


def test_blank_lines_and_line_numbers() -> None:
    body = ' \t\n{"name":"a"}\r\n\xa0\n\u2003\n{"name":"b","ts":"x"}\n\x1c\x0b\n{"name":"c"}\n'.encode()
    assert lanes(body) == Counter({"fast": 2, "slow": 3})  # the non-ASCII blank lines go to Python
    parsed = parse_request(NDJSON, body, (), DEFAULT, NOW)
    check(body)
    assert parsed.total == 3 and [e.name for e in parsed.events] == ["a", "c"]
    assert [(e.index, e.line) for e in parsed.errors] == [(1, 5)]


def test_a_body_that_is_not_utf8_is_python_s_to_report() -> None:
    for bad in (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xf0\x9f\x98"):
        body = b'{"name":"a"}\n{"name":"' + bad + b'"}\n'
        assert read(body) is None
        check(body)
    assert read('{"name":"\U0010ffff\ud7ff\ue000"}'.encode()) is not None


def test_too_many_events_are_refused_whole() -> None:
    body = b'{"name":"a"}\n{"name":"b"}\n{"name":""}\n{"name":"c"}'
    parsed = parse_request(NDJSON, body, (), SMALL, NOW)
    check(body, SMALL)
    assert parsed.too_many and parsed.total == 4 and parsed.events == []


def test_long_bodies_keep_every_line_in_order() -> None:
    """The reader works through a body CHUNK (1024) lines at a time: order and numbers run on."""
    lines = [
        f'{{"name":"e{i}","ts":"x"}}' if i % 337 == 0 else "" if i % 5 == 0 else f'{{"name":"e{i}","n":{i}}}'
        for i in range(3000)
    ]
    body = "\n".join(lines).encode()
    assert lanes(body) == Counter({"fast": 2393, "slow": 9})
    check(body)
    parsed = parse_request(NDJSON, body, (), DEFAULT, NOW)
    assert [e.line for e in parsed.errors] == [i + 1 for i in range(0, 3000, 337)]
    assert [e.properties["n"] for e in parsed.events[:3]] == [1, 2, 3]


@pytest.mark.parametrize(
    "limits",
    [
        Limits(-5, -5, -5, 10, DAY, 10**9),  # nothing can be valid: even no property is too many
        Limits(10**30, 10**30, 10**30, 10**30, 10**40, 10**40),  # beyond int64: clamped
        Limits(256, 100, 4096, 10, -(10**9), -(10**9)),  # an empty window
    ],
)
def test_limits_past_any_sane_value(limits: Limits) -> None:
    for body in (b'{"name":"e"}', b'{"name":"e","a":1}', b'{"name":"e","ts":1700000000,"id":"x"}'):
        check(body, limits)


def test_a_clock_past_int64_leaves_every_line_to_python() -> None:
    body = b'{"name":"e"}\n{"name":"f","ts":1}'
    assert read(body, DEFAULT, 2**63) is None
    check(body, DEFAULT, 2**63)
    check(body, Limits(256, 100, 4096, 10, 2**64, 0), 2**63 - 1)
