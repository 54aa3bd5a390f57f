"""POST /v1/events on a live sidecar: every format, every validation error, the exact answers, limits,
CORS, id dedupe (also across a restart), and a SIGKILL during ingest. What was stored is read back
after the sidecar stops, with the store and the events reader (GET /api/events comes later).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.events.reader import EventReader, StoredEvent
from sidecar.storage.rocks.events.registry import EventRegistry
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import Sidecar, http_request

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}
DAY = 86_400
NOW = int(time.time())
T0 = NOW - 3 * DAY  # 3 days ago, whole seconds
T0_RFC = dt.datetime.fromtimestamp(T0, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post(
    sidecar: Sidecar, body: bytes | str | Any, headers: dict[str, str] | None = None, query: str = ""
) -> tuple[int, dict[str, str], Any]:
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    url = f"{sidecar.http_url}/v1/events" + (f"?{query}" if query else "")
    status, answer_headers, raw = http_request("POST", url, data, JSON if headers is None else headers)
    return status, answer_headers, json.loads(raw) if raw else None


def ok(
    accepted: int, rejected: int = 0, duplicates: int = 0, errors: list[Any] | None = None
) -> dict[str, Any]:
    return {"accepted": accepted, "rejected": rejected, "duplicates": duplicates, "errors": errors or []}


@contextmanager
def stored(sidecar: Sidecar) -> Iterator[EventReader]:
    """The sidecar stopped, its store opened: read what it acknowledged."""
    if sidecar.running:
        sidecar.stop()
    store = RocksStore(str(sidecar.data_dir), StoreOptions())
    try:
        yield EventReader(store, EventRegistry(store.db))
    finally:
        store.close()


def everything(reader: EventReader, **filters: Any) -> list[StoredEvent]:
    """Every matching event, by following the cursors a page of 3 at a time."""
    out: list[StoredEvent] = []
    cursor = None
    while True:
        page = reader.list_events(limit=3, after_cursor=cursor, **filters)
        out += page.events
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


@pytest.fixture(scope="module")
def events_sidecar(module_sidecar_factory: SidecarFactory) -> Sidecar:
    return module_sidecar_factory(
        "events",
        env={
            "SIDECAR_INGEST__EVENTS__CORS_ALLOWED_ORIGINS": "https://app.example.com",
            "SIDECAR_INGEST__EVENTS__MAX_EVENTS_PER_REQUEST": "50",
            "SIDECAR_INGEST__EVENTS__MAX_PROPERTIES": "5",
            "SIDECAR_INGEST__EVENTS__MAX_VALUE_BYTES": "64",
            "SIDECAR_INGEST__EVENTS__MAX_NAME_LENGTH": "20",
            "SIDECAR_INGEST__EVENTS__MAX_PAST_DAYS": "30",
            "SIDECAR_RECEIVERS__OTLP__HTTP__MAX_REQUEST_BODY_SIZE_MIB": "1",
        },
    )


def test_every_format_is_stored_with_its_fields(sidecar_factory: SidecarFactory) -> None:
    sidecar = sidecar_factory("formats")
    doc = {"dt": T0_RFC, "event": "view", "userid": "1", "screen": "course", "elem": "screen", "amount": 100}
    assert post(sidecar, doc)[::2] == (200, ok(1))
    array = [
        {"name": "click", "timestamp": T0 + 1, "user_id": 2, "properties": {"btn": {"color": "red"}}},
        {"name": "click", "ts": str((T0 + 2) * 1000), "user": "2", "session_id": "s1", "service": "web"},
    ]
    assert post(sidecar, array)[::2] == (200, ok(2))
    lines = "\n".join(
        json.dumps({"event": "pay", "ts": T0 + 3 + i, "user": "3", "amount": 9.5}) for i in range(2)
    )
    assert post(sidecar, lines + "\n", NDJSON)[::2] == (200, ok(2))
    form = f"event=signup&user=4&timestamp={T0 + 10}&plan=pro&seats=3&ratio=0.5"
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    assert post(sidecar, form, form_type)[::2] == (200, ok(1))
    boundary = "xYzZY"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in (("event", "upload"), ("user_id", "5"), ("ts", str(T0 + 20)), ("size", "2048"))
    )
    multipart = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert post(sidecar, parts + f"--{boundary}--\r\n", multipart)[::2] == (200, ok(1))
    query = f"event=click&user=3&timestamp={T0 + 30}"
    assert post(sidecar, b"", {}, query)[::2] == (200, ok(1))
    gz = {**JSON, "Content-Encoding": "gzip"}
    assert post(sidecar, gzip.compress(json.dumps({"event": "zipped", "ts": T0 + 40}).encode()), gz)[::2] == (
        200,
        ok(1),
    )

    with stored(sidecar) as reader:
        events = everything(reader, order="asc")
        assert [e.name for e in events] == [
            "view",
            "click",
            "click",
            "pay",
            "pay",
            "signup",
            "upload",
            "click",
            "zipped",
        ]
        view, click1, click2, pay, _, signup, upload, qclick, _ = events
        assert view.ts_ns == T0 * 10**9 and view.user_id == "1"
        assert view.properties == {"screen": "course", "elem": "screen", "amount": 100}
        assert click1.user_id == "2" and click1.properties == {"btn.color": "red"}
        assert click2.ts_ns == (T0 + 2) * 10**9 and click2.session_id == "s1" and click2.service == "web"
        assert pay.properties == {"amount": 9.5}
        assert signup.properties == {"plan": "pro", "seats": 3, "ratio": 0.5} and signup.user_id == "4"
        assert upload.properties == {"size": 2048} and upload.ts_ns == (T0 + 20) * 10**9
        assert qclick.user_id == "3" and qclick.ts_ns == (T0 + 30) * 10**9
        # A user's timeline and a name's events come from their indexes, in both orders.
        assert [e.name for e in everything(reader, user_id="3", order="asc")] == ["pay", "pay", "click"]
        assert [e.name for e in everything(reader, user_id="3")] == ["click", "pay", "pay"]
        assert [e.ts_ns for e in everything(reader, name="click")] == [(T0 + s) * 10**9 for s in (30, 2, 1)]
        assert [e.name for e in everything(reader, service="web")] == ["click"]
        assert [e.name for e in everything(reader, session_id="s1")] == ["click"]
        window = everything(reader, from_ns=(T0 + 2) * 10**9, to_ns=(T0 + 20) * 10**9, order="asc")
        assert [e.name for e in window] == ["click", "pay", "pay", "signup"]
        assert reader.list_events(user_id="nobody").events == []


def test_an_event_without_a_timestamp_gets_the_receive_time(events_sidecar: Sidecar) -> None:
    before = time.time_ns()
    assert post(events_sidecar, {"event": "now-ish", "id": "receive-time"})[::2] == (200, ok(1))
    assert before > 0  # read back in test_stored_after_all below


@pytest.mark.parametrize(
    ("event", "field", "reason"),
    [
        ({"user": "1"}, "name", "required (also accepted as 'event'), and not blank"),
        ({"name": "  "}, "name", "required (also accepted as 'event'), and not blank"),
        ({"name": "a", "x": 1, "properties": {"x": 2}}, "properties.x", "property 'x' given twice"),
        ({"name": "a", "tags": [1, {"k": float("nan")}]}, "tags", "a list must hold finite numbers only"),
        ({"name": 5}, "name", "must be a string, got a number"),
        ({"name": "x" * 21}, "name", "longer than 20 characters"),
        ({"name": "a", "event": "b"}, "event", "given twice, as 'name' and 'event'"),
        (
            {"name": "a", "ts": "2020-01-01T10:00:00"},
            "ts",
            "RFC 3339 needs a date, a time and a zone (Z or +hh:mm)",
        ),
        (
            {"name": "a", "ts": "yesterday"},
            "ts",
            "not RFC 3339 nor Unix seconds or milliseconds: 'yesterday'",
        ),
        ({"name": "a", "ts": True}, "ts", "must be RFC 3339 text or a Unix time number, got a bool"),
        ({"name": "a", "ts": -5}, "ts", "Unix time out of range (seconds or milliseconds since 1970)"),
        ({"name": "a", "ts": NOW + 3600}, "ts", "more than 600 s in the future"),
        ({"name": "a", "ts": NOW - 31 * DAY}, "ts", "more than 30 days in the past"),
        ({"name": "a", "user_id": [1]}, "user_id", "must be a string, got an array"),
        ({"name": "a", "id": "i" * 129}, "id", "longer than 128 bytes"),
        ({"name": "a", "properties": [1]}, "properties", "must be an object, got an array"),
        ({"name": "a", "properties": {"k": "v" * 65}}, "properties.k", "value longer than 64 bytes"),
        ({"name": "a", **{f"p{i}": i for i in range(6)}}, "properties", "6 properties, the limit is 5"),
        ({"name": "a", "k" * 21: 1}, "k" * 21, "property name longer than 20 characters"),
        ("click", None, "expected an object, got a string"),
    ],
)
def test_each_validation_error_is_named(events_sidecar: Sidecar, event: Any, field: str, reason: str) -> None:
    error = {"index": 1, "field": field, "reason": reason}
    status, _, body = post(events_sidecar, [{"name": "fine", "id": str(uuid.uuid4())}, event])
    assert (status, body) == (200, ok(1, 1, errors=[error]))
    status, _, body = post(events_sidecar, [event])
    assert (status, body) == (400, ok(0, 1, errors=[{**error, "index": 0}]))


def test_lists_numbers_beacons_and_ambiguous_requests(events_sidecar: Sidecar) -> None:
    """Lists become their JSON text (as OTLP array attributes do), a numeric user id its text,
    sendBeacon's text/plain is JSON, and what cannot be read one way is refused, not guessed."""
    name = f"lists-{uuid.uuid4().hex[:6]}"
    status, _, body = post(events_sidecar, [{"name": name, "tags": ["a", 2], "user_id": 4.0}])
    assert (status, body["accepted"]) == (200, 1), body
    status, got = events_sidecar.get_json("/api/events", {"name": name})
    (event,) = got["data"]
    assert event["properties"] == {"tags": '["a",2]'} and event["user_id"] == "4.0"
    status, _, body = post(events_sidecar, json.dumps({"name": name}), {"Content-Type": "text/plain"})
    assert (status, body["accepted"]) == (200, 1)
    status, _, body = post(
        events_sidecar, "name=a&name=b", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (status, body["rejected"]) == (400, 1)  # the form's one event, at index 0 as in JSON
    assert body["errors"] == [{"index": 0, "field": "name", "reason": "given twice"}]
    url = f"{events_sidecar.http_url}/v1/events?event=click&user=3"
    status, _, raw = http_request("POST", url, json.dumps({"name": "other"}).encode(), JSON)
    reason = "an event goes in the body or in the query string, not both"
    assert status == 400 and json.loads(raw)["errors"] == [
        {"index": None, "field": "event", "reason": reason}
    ]


def test_bodies_that_do_not_parse_get_400(events_sidecar: Sidecar) -> None:
    status, _, body = post(events_sidecar, "{not json")
    assert status == 400
    assert body == ok(0, errors=[{"index": None, "field": None, "reason": body["errors"][0]["reason"]}])
    assert (
        body["errors"][0]["reason"].startswith("invalid JSON: ") and "line 1" in body["errors"][0]["reason"]
    )
    assert post(events_sidecar, "42")[::2] == (
        400,
        ok(
            0,
            errors=[
                {"index": None, "field": None, "reason": "expected a JSON object or an array of objects"}
            ],
        ),
    )
    lines = '{"event":"a"}\n\n{oops\n{"user":"1"}\n'
    status, _, body = post(events_sidecar, lines, NDJSON)
    assert (status, body["accepted"], body["rejected"]) == (200, 1, 2)
    assert body["errors"] == [
        {
            "index": 1,
            "field": None,
            "reason": "invalid JSON: Expecting property name enclosed in double quotes at column 2",
            "line": 3,
        },
        {
            "index": 2,
            "field": "name",
            "reason": "required (also accepted as 'event'), and not blank",
            "line": 4,
        },
    ]
    assert post(events_sidecar, "[]")[::2] == (
        400,
        ok(0, errors=[{"index": None, "field": None, "reason": "no events in the body"}]),
    )
    assert post(events_sidecar, b"", {})[::2] == (
        400,
        ok(0, errors=[{"index": None, "field": None, "reason": "empty body and no query string: no event"}]),
    )


def test_limits_types_and_methods(events_sidecar: Sidecar) -> None:
    status, _, body = post(events_sidecar, [{"event": "a"}] * 51)
    assert (status, body) == (
        413,
        ok(
            0,
            51,
            errors=[{"index": None, "field": None, "reason": "51 events in one request, the limit is 50"}],
        ),
    )
    status, _, body = post(events_sidecar, json.dumps({"event": "big", "pad": "x" * (2 << 20)}))
    assert status == 413 and body["errors"][0]["reason"].startswith("request body too large")
    bomb = gzip.compress(json.dumps({"event": "bomb", "pad": "x" * (2 << 20)}).encode())
    status, _, body = post(events_sidecar, bomb, {**JSON, "Content-Encoding": "gzip"})
    assert status == 413
    status, _, body = post(events_sidecar, "event=a", {"Content-Type": "text/csv"})
    assert status == 415 and body["errors"][0]["reason"].startswith("unsupported media type: 'text/csv'")
    status, headers, body = http_request("GET", f"{events_sidecar.http_url}/v1/events")
    assert status == 405 and headers["allow"] == "POST, OPTIONS"


def test_cors_preflight_and_answer_headers(events_sidecar: Sidecar, sidecar_factory: SidecarFactory) -> None:
    url = f"{events_sidecar.http_url}/v1/events"
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, headers, _ = http_request("OPTIONS", url, None, preflight)
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert headers["access-control-allow-headers"] == "content-type"
    status, headers, _ = post(
        events_sidecar, {"event": "cors"}, {**JSON, "Origin": "https://app.example.com"}
    )
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example.com"
    status, headers, _ = http_request("OPTIONS", url, None, {**preflight, "Origin": "https://evil.example"})
    assert status == 403 and "access-control-allow-origin" not in headers
    # A page of another origin posting a form needs no preflight: the POST itself is refused.
    status, headers, body = post(
        events_sidecar, {"event": "cors"}, {**JSON, "Origin": "https://evil.example"}
    )
    assert status == 403 and "access-control-allow-origin" not in headers
    assert body["accepted"] == 0 and "not allowed" in body["errors"][0]["reason"]
    plain = sidecar_factory("no-cors")  # default: no origin allowed
    status, headers, _ = http_request("OPTIONS", f"{plain.http_url}/v1/events", None, preflight)
    assert status == 403 and "access-control-allow-origin" not in headers
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}
    status, _, _ = http_request("POST", f"{plain.http_url}/v1/events", b"name=csrf&user=victim", form)
    assert status == 403
    no_origin = {"Content-Type": form["Content-Type"]}
    status, _, raw = http_request("POST", f"{plain.http_url}/v1/events", b"name=server-side", no_origin)
    assert status == 200, raw  # no Origin (curl, a back end): not a browser, nothing to refuse
    assert "POST /v1/events refused, 403 Forbidden" in plain.stderr_text()


def test_ids_dedupe_within_a_batch_on_retry_and_after_a_restart(sidecar_factory: SidecarFactory) -> None:
    sidecar = sidecar_factory("dedupe")
    batch = [{"event": "pay", "id": f"order-{i}", "ts": T0 + i, "user": "7"} for i in range(10)]
    assert post(sidecar, batch + batch[:2])[::2] == (200, ok(12, duplicates=2))
    assert post(sidecar, batch)[::2] == (200, ok(10, duplicates=10))
    sidecar.restart()
    fresh = {"event": "pay", "id": "order-new", "ts": T0 + 99, "user": "7"}
    assert post(sidecar, [*batch, fresh])[::2] == (200, ok(11, duplicates=10))
    with stored(sidecar) as reader:
        events = everything(reader, user_id="7", order="asc")
        assert [e.id for e in events] == [f"order-{i}" for i in range(10)] + ["order-new"]


def test_sigkill_during_ingest_keeps_every_acknowledged_event_once(sidecar_factory: SidecarFactory) -> None:
    sidecar = sidecar_factory("kill")
    acked: list[str] = []
    stop = threading.Event()

    def sender(worker: int) -> None:
        n = 0
        while not stop.is_set():
            ids = [f"w{worker}-{n + i}" for i in range(50)]
            body = "\n".join(json.dumps({"event": "tick", "id": i, "user": str(worker)}) for i in ids)
            n += 50
            try:
                status, _, _ = post(sidecar, body, NDJSON)
            except OSError:
                return
            if status == 200:
                acked.extend(ids)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 2000 and time.monotonic() < deadline:
        time.sleep(0.02)
    sidecar.kill()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 2000
    sidecar.start()
    resent = [{"event": "tick", "id": i} for i in acked[:50]]  # a retry of what was acknowledged
    assert post(sidecar, resent)[::2] == (200, ok(50, duplicates=50))
    with stored(sidecar) as reader:
        ids = [e.id for e in reader.list_events(name="tick", limit=1_000_000).events]
    assert len(ids) == len(set(ids))
    assert set(acked) <= set(ids)


def test_what_json_allows_but_no_store_can_hold_is_named_not_500(events_sidecar: Sidecar) -> None:
    """A lone surrogate escape, an integer past float64 or of 5000 digits, nesting past the limit
    or past Python's recursion: each was a 500 (or failed the whole write, other requests' events
    with it) and is now that event's error, its neighbour stored."""
    lines = [
        '{"event":"ok-neighbour","user_id":"n1"}',
        '{"event":"bad-\\ud800"}',
        '{"event":"v","plan":"x\\udc00"}',
        '{"event":"k","\\ud83d":1}',
        '{"event":"u","user_id":"\\ud800"}',
        '{"event":"big","user_id":' + "9" * 400 + "}",
        '{"event":"t","ts":' + "9" * 400 + "}",
        '{"event":"digits","n":' + "1" * 5000 + "}",
        '{"event":"deep","properties":' + '{"a":' * 70 + "1" + "}" * 70 + "}",
        '{"event":"deeper","p":' + "[" * 5000 + "]" * 5000 + "}",
    ]
    status, _, body = post(events_sidecar, "\n".join(lines), NDJSON)
    assert (status, body["accepted"], body["rejected"]) == (200, 1, 9), body["errors"]
    errors = {e["line"]: (e["field"], e["reason"]) for e in body["errors"]}
    assert errors[2] == ("event", "not Unicode text: a lone surrogate \\ud800")
    assert errors[3] == ("plan", "not Unicode text: a lone surrogate \\udc00")
    assert errors[4] == ("\ud83d", "not Unicode text: a lone surrogate \\ud83d")
    assert errors[5] == ("user_id", "not Unicode text: a lone surrogate \\ud800")
    assert errors[6] == ("user_id", "longer than 64 bytes")  # its text (this sidecar's limit)
    assert errors[7] == ("ts", "Unix time out of range (seconds or milliseconds since 1970)")
    assert errors[8][0] is None and "4300" in errors[8][1]
    assert errors[9] == ("properties" + ".a" * 64, "objects nested deeper than 64")
    assert errors[10] == (None, "invalid JSON: nested too deeply")
    status, _, body = post(events_sidecar, "[" * 5000 + "]" * 5000)
    assert (status, body["errors"][0]["reason"]) == (400, "invalid JSON: nested too deeply")
    with stored(events_sidecar) as reader:
        assert [e.user_id for e in reader.list_events(name="ok-neighbour").events] == ["n1"]


def test_stored_after_all(events_sidecar: Sidecar) -> None:
    """Last in this module: the receive time was used where no timestamp was given."""
    with stored(events_sidecar) as reader:
        (event,) = reader.list_events(name="now-ish").events
    assert abs(event.ts_ns - time.time_ns()) < 600 * 10**9


def test_a_full_queue_answers_503_with_retry_after(sidecar_factory: SidecarFactory) -> None:
    """With room for one queued request, concurrent senders find the queue full: 503, Retry-After,
    nothing stored from the refused request, and every acknowledged event stored once."""
    sidecar = sidecar_factory(
        "backpressure",
        env={
            "SIDECAR_INGEST__EVENTS__MAX_BATCH_EVENTS": "1",
            "SIDECAR_INGEST__EVENTS__MAX_QUEUE_EVENTS": "1",
        },
    )
    refused: list[tuple[dict[str, str], Any]] = []
    acked: list[str] = []
    lock = threading.Lock()

    def sender(worker: int) -> None:
        for n in range(40):
            ids = [f"b{worker}-{n}-{i}" for i in range(500)]
            body = "\n".join(json.dumps({"event": "load", "id": i}) for i in ids)
            status, headers, answer = post(sidecar, body, NDJSON)
            with lock:
                if status == 503:
                    refused.append((headers, answer))
                else:
                    assert status == 200, answer
                    acked.extend(ids)
            if refused:
                return

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused, "no request found the queue full"
    headers, answer = refused[0]
    assert headers["retry-after"] == "1"
    assert answer["accepted"] == 0 and answer["errors"][0]["reason"].startswith(
        "try again later: write queue holds"
    )
    with stored(sidecar) as reader:
        ids = [e.id for e in reader.list_events(name="load", limit=1_000_000).events]
    assert sorted(ids) == sorted(acked)


def test_get_api_events_pages_with_cursors_while_events_arrive(sidecar_factory: SidecarFactory) -> None:
    sidecar = sidecar_factory("api")
    first = [
        {"event": "step", "id": f"s{i}", "ts": T0 + i, "user": "u1" if i % 2 else "u2"} for i in range(23)
    ]
    assert post(sidecar, first)[::2] == (200, ok(23))
    seen: list[str] = []
    cursor: str | None = None
    extra = 0
    while True:
        query = {"name": "step", "order": "asc", "limit": 5, **({"cursor": cursor} if cursor else {})}
        status, body = sidecar.get_json("/api/events", query)
        assert status == 200, body
        seen += [e["id"] for e in body["data"]]
        # New events keep arriving between pages: later ones join the walk, none repeats.
        if extra < 3:
            late = {"event": "step", "id": f"late{extra}", "ts": T0 + 100 + extra}
            assert post(sidecar, late)[::2] == (200, ok(1))
            extra += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"s{i}" for i in range(23)] + ["late0", "late1", "late2"]
    status, body = sidecar.get_json("/api/events", {"user_id": "u1", "order": "asc", "limit": 3})
    assert [e["id"] for e in body["data"]] == ["s1", "s3", "s5"] and body["next_cursor"]
    (event,) = body["data"][:1]
    assert event == {
        "name": "step",
        "timestamp_ns": (T0 + 1) * 10**9,
        "user_id": "u1",
        "session_id": None,
        "service": None,
        "id": "s1",
        "properties": {},
    }
    window = {"from": T0_RFC, "to": str((T0 + 3) * 10**9), "order": "asc"}
    assert [e["id"] for e in sidecar.get_json("/api/events", window)[1]["data"]] == ["s0", "s1", "s2"]
    shop = [
        {"event": "pay", "ts": T0 + 200, "screen": "main", "amount": 100},
        {"event": "pay", "ts": T0 + 201, "screen": "main", "amount": 100.5},
        {"event": "pay", "ts": T0 + 202, "screen": "cart", "amount": 100.0, "vip": True},
    ]
    assert post(sidecar, shop)[::2] == (200, ok(3))
    found = sidecar.get_json("/api/events", {"prop.amount": "100", "order": "asc"})[1]["data"]
    assert [e["timestamp_ns"] for e in found] == [(T0 + 200) * 10**9, (T0 + 202) * 10**9]
    found = sidecar.get_json("/api/events", {"prop.amount": "100", "prop.screen": "main"})[1]["data"]
    assert [e["properties"] for e in found] == [{"screen": "main", "amount": 100}]
    assert [
        e["properties"]["vip"] for e in sidecar.get_json("/api/events", {"prop.vip": "true"})[1]["data"]
    ] == [True]
    for bad in (
        {"order": "up"},
        {"prop.": "x"},
        {"limit": "0"},
        {"from": "yesterday"},
        {"cursor": "zz"},
        {"cursor": "abcd"},
        {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"user": "42"},  # user_id's ingest alias: refused here, not silently ignored
        {"event": "pay"},
    ):
        status, body = sidecar.get_json("/api/events", bad)
        name = next(iter(bad))
        assert status == 400 and f"'{name}'" in body["error"]["message"], (bad, body)


def test_get_api_events_as_csv_and_ndjson(sidecar_factory: SidecarFactory) -> None:
    """CSV: a header from the keys the name's events carried, RFC 4180 quoting, formula cells defused."""
    sidecar = sidecar_factory("csv")
    rows = [
        {"event": "note", "ts": T0, "user": "=cmd|' /C calc'!A0", "text": 'say "hi", then\nleave', "n": -3},
        {"event": "note", "ts": T0 + 1, "user": "2", "extra": "@SUM(A1)", "ok": True},
        {"event": "other", "ts": T0 + 2, "secret": "x"},
        {"event": "clash", "ts": T0 + 3, "properties": {"service": "billing", "id": "-7"}, "id": "c1"},
    ]
    assert post(sidecar, rows)[::2] == (200, ok(4))
    status, headers, raw = http_request(
        "GET", f"{sidecar.api_url}/api/events?name=note&order=asc&format=csv&limit=1"
    )
    assert status == 200 and headers["content-type"].startswith("text/csv")
    cursor = headers["x-next-cursor"]
    first = dt.datetime.fromtimestamp(T0, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    assert raw.decode() == (
        "timestamp,name,user_id,session_id,service,id,extra,n,ok,text\r\n"
        f'{first},note,\'=cmd|\' /C calc\'!A0,,,,,-3,,"say ""hi"", then\nleave"\r\n'
    )  # a negative number stays a number; text starting with '=' is defused
    status, headers, raw = http_request(
        "GET", f"{sidecar.api_url}/api/events?name=note&order=asc&format=csv&cursor={cursor}"
    )
    assert raw.decode().splitlines()[1].endswith(",note,2,,,,'@SUM(A1),,true,")
    assert "x-next-cursor" not in headers
    status, headers, raw = http_request("GET", f"{sidecar.api_url}/api/events?format=ndjson&order=asc")
    assert headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["name"] for line in raw.decode().splitlines()] == [
        "note",
        "note",
        "other",
        "clash",
    ]
    # Properties named like a fixed column get a prefix, so no two columns share a name.
    status, _, raw = http_request("GET", f"{sidecar.api_url}/api/events?name=clash&format=csv")
    header, row = raw.decode().splitlines()
    assert header == "timestamp,name,user_id,session_id,service,id,properties.id,properties.service"
    assert row.endswith(",clash,,,,c1,'-7,billing")  # the text "-7" is defused, the number above not
    status, _, raw = http_request("GET", f"{sidecar.api_url}/api/events?format=xml")
    assert status == 400 and "'format'" in json.loads(raw)["error"]["message"]
