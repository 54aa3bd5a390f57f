"""EventClient: business events to a sidecar's ``POST /v1/events`` without slowing the caller.

Shaped like the OpenTelemetry SDK's BatchProcessor: ``track`` appends to a bounded deque (a full
queue drops the oldest event and counts it) and one daemon thread sends NDJSON batches. Every event
carries a client-made ``id`` (uuid4 hex), and the sidecar stores an id once, so resending a batch
after a timeout or a 503 never counts an event twice. Standard library only, so that importing the
client adds no dependency to an application.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import email.utils
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from collections import deque
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
PATH = "/v1/events"
RETRY_STATUSES = frozenset({429, 502, 503, 504})  # the sidecar says "later"; a proxy may say 502/504
_FIRST_BACKOFF_S = 0.5
EXIT_TIMEOUT_S = 5.0  # what close() gets at interpreter exit: a down sidecar must not hang the exit


class EventClient:
    """Queue events in memory and send them in batches from one background thread.

    Args:
        endpoint: the sidecar's OTLP/HTTP address, an http(s) URL with a host (events go to
            ``{endpoint}/v1/events``); anything else raises ValueError here, not in the sender thread.
        batch_size: events per request; a batch leaves as soon as this many are queued.
        flush_interval: seconds a partial batch may wait before it is sent.
        max_queue: events held in memory; beyond it the oldest are dropped (``dropped``).
        service: stored as each event's ``service`` when given.
        timeout: seconds for one HTTP request.
        max_backoff: cap in seconds on the wait between retries (and on ``Retry-After``).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        batch_size: int = 100,
        flush_interval: float = 10.0,
        max_queue: int = 10_000,
        service: str | None = None,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval <= 0:
            raise ValueError("batch_size and max_queue must be >= 1 and flush_interval > 0")
        self.url = _endpoint_url(endpoint) + PATH
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.service = service
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._tracked = 0  # events ever queued; with _done it tells flush() when its events are out
        self._done = 0  # events sent, refused or dropped
        self._in_flight = 0  # events of the batch the thread is sending; close() counts them if it gives up
        self._flush_to = 0
        self._closing = False
        self._abandon = False
        self._dropped = 0
        self._rejected = 0
        self._sent = 0
        self._retries = 0
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="sidecar-events", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)
        # A forked child (gunicorn, multiprocessing) has no sender thread: start its own.
        reinit = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (method := reinit()) and method())

    # -- counters --------------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Events lost on the client: pushed out of a full queue, tracked after close(), not encodable
        as JSON, or not delivered when close() (or the interpreter's exit) gave up: those still queued
        and those of the request in flight then. Should that request still be acknowledged later,
        its events move from ``dropped`` to ``sent``."""
        return self._dropped

    @property
    def rejected(self) -> int:
        """Events the sidecar refused for good: whole batches (400, 413, 415, other 4xx) or some of a 200."""
        return self._rejected

    @property
    def sent(self) -> int:
        """Events in batches the sidecar acknowledged (duplicates included)."""
        return self._sent

    @property
    def retries(self) -> int:
        """Requests repeated after a 429/503, another retryable status or a connection error."""
        return self._retries

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- caller side -----------------------------------------------------------------------
    def track(self, name: str, user_id: str | None = None, timestamp: Any = None, **properties: Any) -> None:
        """Queue one event; never blocks on the network and never raises.

        ``timestamp`` is a datetime (naive means local time), Unix seconds, or RFC 3339 text; the
        default is now, taken here rather than when the batch reaches the sidecar.
        """
        try:
            event: dict[str, Any] = {"name": name, "id": uuid.uuid4().hex, "timestamp": _stamp(timestamp)}
            if user_id is not None:
                event["user_id"] = str(user_id)
            if self.service is not None:
                event["service"] = self.service
            if properties:
                event["properties"] = properties  # nested, so a property named "service" stays one
            line = json.dumps(event, default=str, separators=(",", ":")).encode()
            with self._cond:
                if self._closing:
                    self._dropped += 1
                    return
                if len(self._queue) >= self.max_queue:
                    self._queue.popleft()
                    self._dropped += 1
                    self._done += 1
                self._queue.append(line)
                self._tracked += 1
                if len(self._queue) >= self.batch_size:
                    self._cond.notify()
        except Exception:  # a bad argument must not break the application that tracks
            log.debug("track(%r) failed", name, exc_info=True)
            with self._cond:
                self._dropped += 1

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything tracked so far; True once it is sent (or refused), False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._tracked
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            while self._done < target:
                if not self._thread.is_alive():
                    return False
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return False
                self._cond.wait(wait)
            return True

    def close(self, timeout: float | None = 30.0) -> None:
        """Send what is queued (for up to ``timeout`` s), then stop the thread; safe to call twice.

        Runs at interpreter exit with ``EXIT_TIMEOUT_S``. Events not delivered when the timeout passes
        (still queued, or in a request that has not been answered) are counted in ``dropped`` before
        this returns, and a warning says how many.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        lost = 0
        with self._cond:
            if self._thread.is_alive() and not self._abandon:
                self._abandon = True
                lost = len(self._queue) + self._in_flight
                self._queue.clear()
                self._dropped += lost
                self._done += lost
                self._cond.notify_all()
        if lost:
            log.warning(
                "gave up on %s after %ss: %s did not take them (counted in dropped)",
                _events(lost),
                timeout,
                self.url,
            )
        atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        self.close(EXIT_TIMEOUT_S)

    def _after_fork(self) -> None:
        """In the child: fresh lock and thread; the parent's queued events stay the parent's to send."""
        self._cond = threading.Condition()
        self._queue.clear()
        self._tracked = self._done = self._flush_to = self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name="sidecar-events", daemon=True)
        if not self._closing:
            self._thread.start()

    def __enter__(self) -> EventClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- worker thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.flush_interval
                while (
                    not self._closing and len(self._queue) < self.batch_size and self._flush_to <= self._done
                ):
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if not self._queue:
                    if self._closing:
                        return
                    continue
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            refused = 0
            try:
                outcome, refused = self._deliver(batch)
            except Exception:
                log.exception("sending %d events failed", len(batch))
                outcome = "dropped"
            with self._cond:
                self._in_flight = 0
                if self._abandon:
                    # close() gave up while this batch was out and counted it (and the queue) as
                    # dropped and done; an answer that came after all corrects the counts.
                    if outcome == "sent":
                        self._dropped -= len(batch)
                        self._sent += len(batch) - refused
                        self._rejected += refused
                    elif outcome == "rejected":
                        self._dropped -= len(batch)
                        self._rejected += len(batch)
                    self._cond.notify_all()
                    return
                if outcome == "sent":
                    self._sent += len(batch) - refused
                    self._rejected += refused
                elif outcome == "rejected":
                    self._rejected += len(batch)
                else:
                    self._dropped += len(batch)
                self._done += len(batch)
                self._cond.notify_all()

    def _deliver(self, batch: list[bytes]) -> tuple[str, int]:
        """POST one batch until it is acknowledged or refused; 'dropped' only when close() gave up.

        Returns the outcome and, for an acknowledged batch, how many of its events the sidecar
        refused (a 200 keeps the valid events of a batch and lists the others).
        """
        body = b"\n".join(batch) + b"\n"
        attempt = 0
        while True:
            status, wait, refused = self._post(body)
            if status is not None and 200 <= status < 300:
                return "sent", refused
            if status is not None and wait is None:
                return "rejected", 0
            backoff = min(self.max_backoff, _FIRST_BACKOFF_S * 2**attempt) * random.uniform(0.5, 1.0)
            attempt = min(attempt + 1, 30)
            with self._cond:
                self._retries += 1
                end = time.monotonic() + max(backoff, wait or 0.0)
                while not self._abandon and (left := end - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._abandon:
                    return "dropped", 0

    def _post(self, body: bytes) -> tuple[int | None, float | None, int]:
        """(status, seconds to wait before a retry or None when not to retry, events refused in a 200).

        Status None: no answer (connection refused, reset, timed out).
        """
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/x-ndjson"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read()
            refused = _refused(answer)
            if refused:
                self._warn_once(
                    "partial", f"sidecar refused {_events(refused)} of a batch: {_answer_message(answer)}"
                )
            return response.status, None, refused
        except urllib.error.HTTPError as exc:
            status = exc.code
            if status in RETRY_STATUSES:
                return status, min(self.max_backoff, _retry_after(exc.headers.get("Retry-After"))), 0
            count = body.count(b"\n")
            detail = _answer_message(exc.read(64 * 1024))
            self._warn_once(str(status), f"sidecar refused {_events(count)} ({status}), dropped: {detail}")
            return status, None, 0
        except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL
            self._warn_once("connect", f"cannot reach {self.url}, will retry: {exc}")
            return None, 0.0, 0

    def _warn_once(self, key: str, message: str) -> None:
        """One warning per kind of failure, so a long outage does not flood the application's log."""
        if key in self._warned:
            log.debug(message)
        else:
            self._warned.add(key)
            log.warning(message)


def _events(n: int) -> str:
    return "1 event" if n == 1 else f"{n} events"


def _endpoint_url(endpoint: object) -> str:
    """``endpoint`` without trailing slashes, once it is an http(s) URL with a host; else ValueError."""
    problem = f"endpoint: expected an http(s) URL with a host, such as {DEFAULT_ENDPOINT}, got {endpoint!r}"
    if not isinstance(endpoint, str) or not endpoint.isprintable() or " " in endpoint:
        raise ValueError(problem)
    try:
        parts = urllib.parse.urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError(problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(problem)
    return endpoint.rstrip("/")


def _answer_message(answer: bytes) -> str:
    """The sidecar's reasons from an events answer (``errors``: index/line, field, reason) as text,
    the first three; another body as its decoded text, cut at 500 characters."""
    text = answer.decode("utf-8", errors="replace").strip()
    try:
        errors = json.loads(text).get("errors")
    except (ValueError, AttributeError):
        errors = None
    if not isinstance(errors, list) or not errors:
        return text[:500] + ("..." if len(text) > 500 else "") or "(no reason given)"
    reasons = []
    for error in errors[:3]:
        if not isinstance(error, dict):
            reasons.append(str(error))
            continue
        where = (
            f"line {error['line']}"
            if error.get("line") is not None
            else f"event {error['index']}"
            if error.get("index") is not None
            else "body"
        )
        field = f"{error['field']}: " if error.get("field") else ""
        reasons.append(f"{where}: {field}{error.get('reason', '?')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(reasons) + more


def _refused(answer: bytes) -> int:
    """The ``rejected`` count of a 200 events answer; 0 when the body is not that answer."""
    try:
        value = json.loads(answer).get("rejected", 0)
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and value > 0 else 0


def _stamp(timestamp: Any) -> Any:
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, _dt.datetime):
        if timestamp.tzinfo is None:
            timestamp = timestamp.astimezone()
        return timestamp.isoformat()
    return timestamp


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header: delay-seconds or an HTTP-date; 0 when absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return max(0.0, (when - _dt.datetime.now(_dt.UTC)).total_seconds())
