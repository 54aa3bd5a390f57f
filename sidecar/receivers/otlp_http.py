"""OTLP/HTTP receiver (on :4318): ``POST`` to the path of every row of the signal table (``/v1/traces``),
protobuf and OTLP-JSON.

aiohttp's own body inflation is turned off: it would answer unknown or corrupt encodings with
its own plain-text 400 and an error traceback in our log, before our handler runs, and it took a
gzip body cut short for a whole one. We inflate here instead (http_body.py): a truncated or corrupt
stream is a 400 naming the encoding, and output stops as soon as it passes the limit (413), so the
limit is on the decompressed size the spec asks for and a small "zip bomb" never expands in memory.
Every error, 404/405/415 included, carries a google.rpc.Status in the request's own encoding, as
the Collector does for 400s (CONTRACTS §1.5); a request in neither OTLP encoding gets JSON, the
Collector's fallback, since that is what a person with curl can read. Refusals are logged through
the rate-limited warning log, and so are connections the HTTP/1.1 parser cannot read (an OTLP/gRPC
exporter given this port), which aiohttp would log as errors with tracebacks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import hdrs, web

from sidecar.config.model import split_endpoint
from sidecar.otlp.json_codec import OtlpJsonError, decode_json_request, encode_json
from sidecar.receivers.export import Exporter
from sidecar.receivers.http_body import SUPPORTED, WBITS, BodyTooLarge, CorruptBody, inflate
from sidecar.receivers.http_log import HttpServerLog
from sidecar.receivers.rejections import RateLimitedLog, rejection_log
from sidecar.receivers.status import JSON, PROTOBUF, STATUS, Outcome, http_error

log = logging.getLogger(__name__)


class OtlpHttpReceiver:
    def __init__(
        self,
        endpoint: str,
        max_body_mib: int,
        exporters: Sequence[Exporter[Any]],
        *,
        shutdown_timeout: float,  # the server's share of shutdown_timeout_s, from the config
        rejections: RateLimitedLog | None = None,
        grpc_endpoint: str | None = None,
        extra_routes: Callable[[web.Application], None] | None = None,
    ) -> None:
        """``exporters``: one per signal, each served at its row's path.

        ``extra_routes`` adds routes that are not OTLP signals (``POST /v1/events``) to the same app.

        ``grpc_endpoint`` (None when that receiver is off) is named to a gRPC client on this port.
        """
        self._endpoint = endpoint
        self._limit = max_body_mib << 20
        self._shutdown_timeout = shutdown_timeout
        self._rejections = rejections or rejection_log()
        self.app = web.Application(client_max_size=self._limit)
        for exporter in exporters:
            self.app.router.add_route("*", exporter.signal.http_path, self._handler(exporter))
        if extra_routes is not None:
            extra_routes(self.app)
        # Anything else gets our 404 (a Status), not aiohttp's plain text; plain paths resolve first.
        self.app.router.add_route("*", "/{path:.*}", self.not_found)
        self._runner: web.AppRunner | None = None
        signals = [exporter.signal for exporter in exporters]
        self._routes = ", ".join(f"{s.name} go to POST {s.http_path}" for s in signals)
        self._paths = ", ".join(f"the {s.name} path is {s.http_path}" for s in signals)
        hint = f"use {split_endpoint(grpc_endpoint)[1]}" if grpc_endpoint else "the gRPC receiver is off"
        self._not_http1 = (
            "OTLP/HTTP port got a request that is not HTTP/1.1 "
            f"(an OTLP/gRPC client on the HTTP port? {hint})"
        )

    async def start(self) -> None:
        host, _, port = self._endpoint.rpartition(":")
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            auto_decompress=False,
            shutdown_timeout=self._shutdown_timeout,
            logger=HttpServerLog(self._rejections, self._not_http1),
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), int(port), reuse_address=True)
        await site.start()
        log.info("OTLP/HTTP receiver listening on %s", self._endpoint)

    async def stop(self, grace: float) -> None:
        """Stop accepting, finish in-flight requests; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.shutdown()
            await runner.cleanup()

    def _refuse(
        self,
        outcome: Outcome,
        message: str,
        content_type: str,
        reason: str,
        items: int = 0,
        item_noun: str | None = None,
    ) -> web.Response:
        """The error answer, plus a (rate-limited) warning that says why without quoting the body."""
        status = STATUS[outcome]
        self._rejections.event(f"OTLP/HTTP export {status.verb}, {status.http} {reason}", items, item_noun)
        return http_error(outcome, message, content_type)

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """A POST here is an exporter with a wrong URL (often the base URL without /v1/traces): log it."""
        message = f"no OTLP endpoint at {request.path!r}; {self._routes}"
        if request.method != "POST":
            return http_error(Outcome.NOT_FOUND, message, request.content_type)
        reason = f"POST to an unknown path ({self._paths})"
        return self._refuse(Outcome.NOT_FOUND, message, request.content_type, reason)

    def _handler(self, exporter: Exporter[Any]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def export(request: web.Request) -> web.StreamResponse:
            return await self._export(exporter, request)

        return export

    async def _export(self, exporter: Exporter[Any], request: web.Request) -> web.StreamResponse:
        content_type = request.content_type
        if request.method != "POST":
            # Not an export (a probe or a browser): answered, not logged.
            return http_error(
                Outcome.METHOD_NOT_ALLOWED,
                f"405 method not allowed, supported: [POST], got {request.method}",
                content_type,
                headers={"Allow": "POST"},
            )
        if content_type not in (PROTOBUF, JSON):
            if not request.headers.get(hdrs.CONTENT_TYPE, "").strip():
                # aiohttp reports a missing header as application/octet-stream, which nobody sent.
                return self._refuse(
                    Outcome.UNSUPPORTED_MEDIA_TYPE,
                    f"missing Content-Type; use {PROTOBUF} or {JSON}",
                    content_type,
                    f"missing Content-Type (use {PROTOBUF} or {JSON})",
                )
            return self._refuse(
                Outcome.UNSUPPORTED_MEDIA_TYPE,
                f"415 unsupported media type {content_type!r}, supported: [{JSON}, {PROTOBUF}]",
                content_type,
                f"unsupported Content-Type (use {PROTOBUF} or {JSON})",
            )
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in WBITS and encoding not in ("", "identity"):
            return self._refuse(
                Outcome.UNSUPPORTED_MEDIA_TYPE,
                f"unsupported Content-Encoding {encoding!r}, supported: {SUPPORTED}",
                content_type,
                "unsupported Content-Encoding (use gzip or deflate)",
            )
        try:
            body = await request.read()
            if encoding in WBITS and body:  # no body is an empty request, whatever its encoding
                body = inflate(body, encoding, self._limit)
        except (BodyTooLarge, web.HTTPRequestEntityTooLarge) as exc:
            detail = exc.text if isinstance(exc, web.HTTPRequestEntityTooLarge) else str(exc)
            return self._refuse(
                Outcome.TOO_LARGE,
                f"request body too large: {detail}",
                content_type,
                "body over receivers.otlp.http.max_request_body_size_mib (after decompression)",
            )
        except CorruptBody as exc:
            return self._refuse(
                Outcome.BAD_REQUEST,
                str(exc),
                content_type,
                f"corrupt {encoding} body",
            )
        except Exception as exc:  # the connection broke mid-body and the like
            return self._refuse(
                Outcome.BAD_REQUEST,
                f"cannot read request body: {exc}",
                content_type,
                "unreadable body",
            )
        if content_type == JSON:
            try:
                body = decode_json_request(body, exporter.signal.request_type).SerializeToString()
            except OtlpJsonError as exc:
                return self._refuse(
                    Outcome.BAD_REQUEST,
                    f"invalid OTLP-JSON: {exc}",
                    content_type,
                    "body is not valid OTLP-JSON",
                )
        result = await exporter.export(body, well_formed=content_type == JSON)
        noun = exporter.signal.item_noun
        if result.outcome is not Outcome.OK:
            if result.outcome is Outcome.INTERNAL:  # the exporter logged it as an error already
                return http_error(result.outcome, result.message, content_type)
            return self._refuse(
                result.outcome, result.message, content_type, result.reason, result.refused, noun
            )
        assert result.response is not None
        if result.rejected:
            reason = f"OTLP/HTTP export partly rejected: {exporter.signal.partial_reason}"
            self._rejections.event(reason, result.rejected, noun)
        if content_type == JSON:
            return web.Response(body=json.dumps(encode_json(result.response)).encode(), content_type=JSON)
        return web.Response(body=result.response.SerializeToString(), content_type=PROTOBUF)
