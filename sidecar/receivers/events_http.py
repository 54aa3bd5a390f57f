"""``POST /v1/events`` on the OTLP/HTTP address: business events from browsers, scripts and back ends.

Not an OTLP signal (no protobuf, no google.rpc.Status): every answer, errors included, is the
events answer ``{"accepted", "rejected", "duplicates", "errors": [{"index", "field", "reason"}]}``
in JSON, which is what a product engineer with curl or fetch() reads. The receiver's app keeps
aiohttp's decompression off, so a gzip or deflate body is inflated here, once, under the same
after-decompression limit as OTLP bodies. CORS is off unless origins are configured, so a page on
another site cannot post events into a sidecar that did not ask for it. Each answered request is
reported to the export observer (the sidecar's own metrics) as signal ``events``, transport ``http``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import hdrs, web

from sidecar.config.model import EventsIngestConfig
from sidecar.ingest.events import CONTENT_TYPES, MULTIPART, EventError, Limits, Parsed, parse_request
from sidecar.pipeline.consumer import Consumer
from sidecar.receivers.export import ExportObserver
from sidecar.receivers.http_body import SUPPORTED, WBITS, BodyTooLarge, CorruptBody, inflate
from sidecar.receivers.rejections import RateLimitedLog
from sidecar.receivers.status import RETRY_AFTER_S
from sidecar.storage.api import Overloaded, StoreClosed
from sidecar.storage.rocks.events.merge import EventBatch

log = logging.getLogger(__name__)
PATH = "/v1/events"
# An answer's status as the outcome the OTLP receivers report (status.py's Outcome values).
_OUTCOMES = {
    200: "ok",
    204: "ok",
    400: "bad_request",
    403: "forbidden",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    500: "internal",
    503: "unavailable",
}


@dataclass(slots=True)
class _Tally:
    """A request's events by fate, for the observer."""

    accepted: int = 0
    rejected: int = 0
    refused: int = 0


def answer(
    status: int,
    accepted: int = 0,
    rejected: int = 0,
    duplicates: int = 0,
    errors: list[EventError] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {
        "accepted": accepted,
        "rejected": rejected,
        "duplicates": duplicates,
        "errors": [e.to_json() for e in errors or []],
    }
    return web.json_response(body, status=status, headers=headers)


def _refusal(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return answer(status, errors=[EventError(None, None, reason)], headers=headers)


class EventsReceiver:
    """The route's handler: parse, validate, hand valid events to the store's consumer, answer."""

    def __init__(
        self,
        consumer: Consumer[EventBatch],
        config: EventsIngestConfig,
        retention_days: int,
        max_body_bytes: int,
        clock: Callable[[], int] = time.time_ns,
        rejections: RateLimitedLog | None = None,
        observer: ExportObserver | None = None,
    ) -> None:
        self._consumer = consumer
        self._observer = observer
        self._limits = Limits.from_config(config, retention_days)
        self._origins = config.origins()
        self._limit = max_body_bytes
        self._clock = clock
        self._rejections = rejections or RateLimitedLog(log, event_noun="request", item_noun="event")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", PATH, self.handle)

    def _cors(self, request: web.Request) -> dict[str, str] | None:
        """CORS headers for an allowed Origin; None for a disallowed one; {} without an Origin."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return {}
        if "*" in self._origins:
            return {"Access-Control-Allow-Origin": "*"}
        if origin.rstrip("/") in self._origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._observer is None:
            return await self._handle(request, _Tally())
        started = time.perf_counter()
        tally = _Tally()
        response = await self._handle(request, tally)
        outcome = _OUTCOMES.get(response.status, str(response.status))
        seconds = time.perf_counter() - started
        self._observer.request(
            "events", "http", outcome, seconds, tally.accepted, tally.rejected, tally.refused
        )
        return response

    async def _handle(self, request: web.Request, tally: _Tally) -> web.StreamResponse:
        cors = self._cors(request)
        if request.method == "OPTIONS":
            if cors is None or not request.headers.get(hdrs.ORIGIN):
                return _refusal(403, f"origin {request.headers.get(hdrs.ORIGIN)!r} is not allowed")
            wanted = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "Content-Type")
            cors |= {
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": wanted,
                "Access-Control-Max-Age": "600",
            }
            return web.Response(status=204, headers=cors)
        if cors is None:
            # A form or multipart POST needs no preflight, so refusing only the preflight would let
            # any web page post events through a visitor's browser.
            response = _refusal(403, f"origin {request.headers.get(hdrs.ORIGIN)!r} is not allowed")
        else:
            response = await self._post(request, tally)
        if cors:
            response.headers.update(cors)
        if response.status >= 400:  # a fixed text per status: never the payload
            self._rejections.event(f"{request.method} {PATH} refused, {response.status} {response.reason}")
        return response

    async def _post(self, request: web.Request, tally: _Tally) -> web.Response:
        if request.method != "POST":
            return _refusal(
                405, f"method {request.method} not allowed; POST events", {"Allow": "POST, OPTIONS"}
            )
        content_type = request.content_type
        has_type = bool(request.headers.get(hdrs.CONTENT_TYPE, "").strip())
        encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
        if encoding not in WBITS and encoding not in ("", "identity"):
            return _refusal(415, f"unsupported Content-Encoding {encoding!r}; use {SUPPORTED}")
        try:
            body = await request.read()
            if encoding in WBITS and body:
                body = inflate(body, encoding, self._limit)
        except (BodyTooLarge, web.HTTPRequestEntityTooLarge) as exc:
            detail = exc.text if isinstance(exc, web.HTTPRequestEntityTooLarge) else str(exc)
            return _refusal(413, f"request body too large: {detail}")
        except CorruptBody as exc:
            return _refusal(400, str(exc))
        if body.strip() and not (content_type in CONTENT_TYPES or content_type == MULTIPART):
            supported = ", ".join(CONTENT_TYPES)
            got = repr(content_type) if has_type else "no Content-Type"
            return _refusal(415, f"unsupported media type: {got}; supported: {supported}")
        if content_type == MULTIPART:
            content_type = request.headers[hdrs.CONTENT_TYPE]
        parsed = parse_request(content_type, body, request.query.items(), self._limits, self._clock())
        return await self._store(parsed, tally)

    async def _store(self, parsed: Parsed, tally: _Tally) -> web.Response:
        rejected = parsed.total - len(parsed.events)
        if parsed.too_many:
            tally.rejected = parsed.total
            return answer(413, rejected=parsed.total, errors=parsed.errors)
        tally.rejected = rejected
        if not parsed.events:
            return answer(400, rejected=rejected, errors=parsed.errors)
        batch = EventBatch(parsed.events)
        try:
            await self._consumer.consume(batch)
        except (Overloaded, StoreClosed) as exc:
            tally.refused = len(parsed.events)
            return _refusal(503, f"try again later: {exc}", {"Retry-After": str(RETRY_AFTER_S)})
        except asyncio.CancelledError:
            raise
        except Exception:
            tally.refused = len(parsed.events)
            log.exception("storing %d events failed", len(parsed.events))
            return _refusal(500, "storing the events failed; see the sidecar's log")
        tally.accepted = len(parsed.events)
        if rejected:
            self._rejections.event(f"POST {PATH} partly refused (invalid events)", rejected)
        return answer(200, len(parsed.events), rejected, batch.duplicates, parsed.errors)
