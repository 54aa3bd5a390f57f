"""sidecar.client against a live sidecar: delivery once, a stopped sidecar, drops, 503 retries, close.

Events are read back through ``GET /api/events``. The stopped-sidecar test fixes the sidecar's
OTLP/HTTP and API ports before it starts, so the client points at an address that will come alive.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.client import EventClient, configure_opentelemetry
from sidecar.client.events import _retry_after
from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import HOST, Sidecar, free_ports, subprocess_env

# A program that tracks and exits without close(): the atexit hook must send (or give up in time).
TRACK_AND_EXIT = """
import sys
from sidecar.client import EventClient
client = EventClient(sys.argv[1], flush_interval=60)
for i in range(20):
    client.track("client.atexit", seq=i)
"""


def _events(sidecar: Sidecar, name: str) -> list[dict[str, Any]]:
    """Every event of ``name``, oldest first, following the cursors."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"name": name, "order": "asc", "limit": 5000}
    while True:
        status, body = sidecar.get_json("/api/events", params)
        assert status == 200, body
        events += body["data"]
        if not body["next_cursor"] or not body["data"]:
            return events
        params["cursor"] = body["next_cursor"]


def _client(url: str, **kw: Any) -> EventClient:
    options: dict[str, Any] = {"flush_interval": 0.05, "max_backoff": 0.3, "timeout": 5.0} | kw
    return EventClient(url, **options)


def test_tracked_events_arrive_once_with_their_fields(sidecar: Sidecar) -> None:
    client = _client(sidecar.http_url, batch_size=7, service="shop")
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    for i in range(50):
        client.track("client.once", user_id=f"u{i % 3}", seq=i, plan="pro", cart={"items": 2})
    client.track("client.once.dated", timestamp=when)
    assert client.flush(20)
    events = _events(sidecar, "client.once")
    assert sorted(e["properties"]["seq"] for e in events) == list(range(50))
    assert len({e["id"] for e in events}) == 50 and all(len(e["id"]) == 32 for e in events)
    assert events[0]["properties"] == {"seq": events[0]["properties"]["seq"], "plan": "pro", "cart.items": 2}
    assert {e["user_id"] for e in events} == {"u0", "u1", "u2"} and {e["service"] for e in events} == {"shop"}
    (dated,) = _events(sidecar, "client.once.dated")
    assert dated["timestamp_ns"] == int(when.timestamp()) * 10**9
    assert (client.sent, client.dropped, client.rejected) == (51, 0, 0)
    client.close(5)


def test_track_never_blocks_on_a_stopped_sidecar_and_delivers_after_it_starts(
    sidecar_factory: SidecarFactory,
) -> None:
    http_port, api_port = free_ports(2)
    sidecar = sidecar_factory(
        "late", start=False, api_port=api_port, extra_args=["--otlp-http", f"{HOST}:{http_port}"]
    )
    client = _client(f"http://{HOST}:{http_port}", batch_size=500, max_queue=20_000)
    loop: list[Any] = []
    loop.append(loop)
    started = time.perf_counter()
    for i in range(10_000):
        client.track("client.late", user_id="7", seq=i)
    elapsed = time.perf_counter() - started
    client.track("client.late", cyclic=loop)  # cannot be encoded: swallowed, never raised, counted
    assert elapsed < 1.0, f"10k track() calls took {elapsed:.2f}s with the sidecar down"
    assert not client.flush(0.5)  # nobody listens yet
    assert client.retries > 0 and client.sent == 0 and client.dropped == 1

    sidecar.start()
    assert client.flush(30)
    events = _events(sidecar, "client.late")
    assert sorted(e["properties"]["seq"] for e in events) == list(range(10_000))
    assert len({e["id"] for e in events}) == 10_000
    assert (client.sent, client.dropped) == (10_000, 1)
    client.close(5)


def test_a_full_queue_drops_the_oldest_and_counts_them(sidecar: Sidecar) -> None:
    # batch_size above max_queue and a long interval: nothing leaves before flush().
    client = _client(sidecar.http_url, batch_size=100, max_queue=10, flush_interval=60)
    for i in range(25):
        client.track("client.full", seq=i)
    assert client.dropped == 15 and client.queued == 10
    assert client.flush(20)
    assert [e["properties"]["seq"] for e in _events(sidecar, "client.full")] == list(range(15, 25))
    client.close(5)


def test_backpressure_503_is_retried_until_every_event_is_stored(sidecar_factory: SidecarFactory) -> None:
    env = {"SIDECAR_INGEST__EVENTS__MAX_QUEUE_EVENTS": "1", "SIDECAR_INGEST__EVENTS__MAX_BATCH_EVENTS": "1"}
    sidecar = sidecar_factory("tiny", env=env)
    clients = [_client(sidecar.http_url, batch_size=1, max_backoff=0.05) for _ in range(6)]

    def send(index: int, client: EventClient) -> None:
        for i in range(100):
            client.track("client.busy", seq=index * 1000 + i)

    threads = [threading.Thread(target=send, args=(n, c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c.flush(60) for c in clients)
    events = _events(sidecar, "client.busy")
    expected = sorted(n * 1000 + i for n in range(6) for i in range(100))
    assert sorted(e["properties"]["seq"] for e in events) == expected
    assert sum(c.retries for c in clients) > 0, "no 503 seen: the queue limit did not bite"
    assert sum(c.dropped + c.rejected for c in clients) == 0
    for c in clients:
        c.close(5)


def test_a_refused_batch_is_dropped_and_counted_not_retried(
    sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sidecar.client.events")
    client = _client(sidecar.http_url, batch_size=1)
    client.track("")  # no name: 400
    client.track("client.after-refusal")
    assert client.flush(20)
    assert (client.rejected, client.sent, client.retries) == (1, 1, 0)
    assert len(_events(sidecar, "client.after-refusal")) == 1
    client.close(5)
    # One bad event in a batch: the sidecar keeps the others (200) and the client counts the one.
    client = _client(sidecar.http_url, batch_size=3, flush_interval=60)
    client.track("client.partial", seq=1)
    client.track("", seq=2)
    client.track("client.partial", seq=3)
    assert client.flush(20)
    assert (client.rejected, client.sent, client.retries) == (1, 2, 0)
    assert [e["properties"]["seq"] for e in _events(sidecar, "client.partial")] == [1, 3]
    client.close(5)
    # Both warnings give the sidecar's reason as text, neither a bytes repr nor raw JSON.
    whole, partial = [r.getMessage() for r in caplog.records]
    assert whole.startswith("sidecar refused 1 event (400), dropped: line 1: name: ")
    assert partial.startswith("sidecar refused 1 event of a batch: line 2: name: ")
    for message in (whole, partial):
        assert "b'" not in message and "{" not in message and '"reason"' not in message


def test_the_endpoint_is_checked_in_the_constructor() -> None:
    threads = threading.active_count()
    for bad in ["not a url", "localhost:4318", "ftp://127.0.0.1:4318", "http://", "http://h:99999", ""]:
        with pytest.raises(ValueError, match=r"^endpoint: expected an http\(s\) URL with a host"):
            EventClient(bad)
    assert threading.active_count() == threads  # no sender thread left behind to log a traceback
    EventClient("https://sidecar.example:4318/", flush_interval=60).close(0)


def _hanging_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a request stays in flight until it times out."""
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_close_counts_every_undelivered_event_as_dropped_before_it_returns() -> None:
    (dead_port,) = free_ports(1)
    client = EventClient(f"http://{HOST}:{dead_port}")
    client.track("x")
    client.close(1.0)
    assert (client.dropped, client.sent, client.queued) == (1, 0, 0)

    # One batch in a request nobody answers, two more queued behind it: all three are lost.
    for port in _hanging_port():
        client = _client(f"http://{HOST}:{port}", batch_size=1, timeout=1.0)
        for i in range(3):
            client.track("client.hang", seq=i)
        time.sleep(0.2)  # the first batch is out
        client.close(0.2)
        assert (client.dropped, client.sent, client.queued) == (3, 0, 0)
        client._thread.join(5)  # the request times out; nothing is counted twice
        assert not client._thread.is_alive()
        assert (client.dropped, client.sent, client.rejected) == (3, 0, 0)


class _SlowEvents(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(1.0)
        answer = json.dumps({"accepted": 1, "rejected": 0, "duplicates": 0, "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_batch_acknowledged_after_close_gave_up_moves_from_dropped_to_sent() -> None:
    server = http.server.ThreadingHTTPServer((HOST, 0), _SlowEvents)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = _client(f"http://{HOST}:{server.server_address[1]}", batch_size=1)
        client.track("client.slow")
        time.sleep(0.2)
        client.close(0.2)
        assert (client.dropped, client.sent) == (1, 0)  # not known to be delivered when close() returned
        client._thread.join(5)
        assert (client.dropped, client.sent) == (0, 1)
    finally:
        server.shutdown()
        server.server_close()


def test_close_sends_what_is_queued_and_is_idempotent(sidecar: Sidecar) -> None:
    client = _client(sidecar.http_url, batch_size=100, flush_interval=60)
    for i in range(5):
        client.track("client.close", seq=i)
    client.close(10)
    assert len(_events(sidecar, "client.close")) == 5
    client.close(1)
    client.track("client.close", seq=99)  # after close: counted as dropped, not raised
    assert client.dropped == 1 and client.sent == 5


def test_interpreter_exit_sends_the_queue_and_gives_up_in_time_when_nobody_listens(sidecar: Sidecar) -> None:
    run = [sys.executable, "-c", TRACK_AND_EXIT]
    done = subprocess.run([*run, sidecar.http_url], env=subprocess_env(), capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert [e["properties"]["seq"] for e in _events(sidecar, "client.atexit")] == list(range(20))
    (dead_port,) = free_ports(1)
    started = time.monotonic()
    done = subprocess.run(
        [*run, f"http://{HOST}:{dead_port}"], env=subprocess_env(), capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 9.0  # EXIT_TIMEOUT_S (5 s) plus interpreter start-up
    assert b"gave up on 20 events after 5.0s" in done.stderr  # the loss is said, not silent


FORK = """
import os, sys
from sidecar.client import EventClient
client = EventClient(sys.argv[1], flush_interval=60)
client.track("client.fork", who="parent-before")
pid = os.fork()
client.track("client.fork", who="child" if pid == 0 else "parent-after")
if pid == 0:
    os._exit(0 if client.flush(10) else 1)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) or (0 if client.flush(10) else 1))
"""


def test_a_forked_child_sends_its_own_events(sidecar: Sidecar) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK, sidecar.http_url], env=subprocess_env(), capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    who = sorted(e["properties"]["who"] for e in _events(sidecar, "client.fork"))
    assert who == ["child", "parent-after", "parent-before"]


def test_the_client_imports_nothing_server_side_and_names_a_missing_sdk() -> None:
    program = """
import sys
import sidecar.client
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"aiohttp", "grpc", "rocksdict", "opentelemetry"})
print("loaded:", heavy)
sys.modules["opentelemetry.sdk"] = None  # as if opentelemetry-sdk were not installed
sidecar.client.configure_opentelemetry("x")
"""
    done = subprocess.run(
        [sys.executable, "-c", program], env=subprocess_env(), capture_output=True, timeout=30
    )
    assert done.stdout.decode().strip() == "loaded: []"
    last = done.stderr.decode().strip().splitlines()[-1]
    assert last == (
        "ImportError: sidecar.client.configure_opentelemetry needs the opentelemetry-sdk package: "
        "pip install opentelemetry-sdk"
    )


def test_retry_after_reads_seconds_and_http_dates() -> None:
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True)
    assert _retry_after("3") == 3.0
    assert 25 < _retry_after(later) <= 30
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _retry_after(None) == _retry_after("soon") == 0.0


def test_configure_opentelemetry_sends_traces_and_event_logs(sidecar: Sidecar) -> None:
    providers = configure_opentelemetry("client-otel", endpoint=sidecar.http_url, set_global=False)
    tracer = providers.tracer_provider.get_tracer("e2e.client")
    logger = providers.logger_provider.get_logger("e2e.client")
    with tracer.start_as_current_span("checkout") as span:
        logger.emit(event_name="client.otel.paid", attributes={"user.id": "9", "amount": 12})
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert providers.force_flush(10_000)
    providers.shutdown()
    trace = sidecar.jaeger_trace(trace_id)
    assert [s["operationName"] for s in trace["spans"]] == ["checkout"]
    (paid,) = _events(sidecar, "client.otel.paid")
    assert paid["user_id"] == "9" and paid["service"] == "client-otel"
    assert paid["properties"] == {"amount": 12}
