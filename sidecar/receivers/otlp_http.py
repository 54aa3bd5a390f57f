"""OTLP/HTTP receiver (POST /v1/traces on :4318), protobuf and OTLP-JSON.

aiohttp's own body inflation is turned off: it would answer unknown or corrupt encodings with
its own plain-text 400 and an error traceback in our log, before our handler runs. We inflate
here instead, stopping as soon as the output passes the limit (413), so the limit is on the
decompressed size the spec asks for and a small "zip bomb" never expands in memory.
Errors carry a google.rpc.Status in the request's own encoding, as the Collector does.
"""

from __future__ import annotations

import json
import logging
import zlib

from aiohttp import web
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sidecar.otlp.json_codec import OtlpJsonError, decode_json_request, encode_json
from sidecar.receivers.export import RETRY_AFTER_S, Outcome, TraceExporter

log = logging.getLogger(__name__)
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyTooLarge(ValueError):
    pass


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Decompress gzip / zlib-deflate (raw deflate too, as browsers send it) up to ``limit`` bytes."""
    wbits = _WBITS[encoding]
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        if encoding != "deflate":
            raise
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"decompressed body exceeds {limit} bytes")
    return out


_STATUS_FOR = {
    Outcome.BAD_REQUEST: (400, code_pb2.INVALID_ARGUMENT),
    Outcome.UNAVAILABLE: (503, code_pb2.UNAVAILABLE),
    Outcome.INTERNAL: (500, code_pb2.INTERNAL),
}


def status_response(http_status: int, code: int, message: str, content_type: str) -> web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if http_status in (429, 503) else None
    if content_type == JSON:
        body = json.dumps({"code": code, "message": message}).encode()
    else:
        body = status_pb2.Status(code=code, message=message).SerializeToString()
        content_type = PROTOBUF
    return web.Response(status=http_status, body=body, content_type=content_type, headers=headers)


class OtlpHttpReceiver:
    def __init__(
        self, endpoint: str, max_body_mib: int, exporter: TraceExporter, shutdown_timeout: float = 4.0
    ) -> None:
        self._endpoint = endpoint
        self._exporter = exporter
        self._limit = max_body_mib << 20
        self._shutdown_timeout = shutdown_timeout
        self.app = web.Application(client_max_size=self._limit)
        self.app.router.add_route("*", "/v1/traces", self.traces)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        host, _, port = self._endpoint.rpartition(":")
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            auto_decompress=False,
            shutdown_timeout=self._shutdown_timeout,
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

    async def traces(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(
                status=405,
                text=f"405 method not allowed, supported: [POST], got {request.method}",
                headers={"Allow": "POST"},
            )
        content_type = request.content_type
        if content_type not in (PROTOBUF, JSON):
            return web.Response(
                status=415,
                text=f"415 unsupported media type {content_type!r}, supported: [{JSON}, {PROTOBUF}]",
            )
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in _WBITS and encoding not in ("", "identity"):
            return status_response(
                415,
                code_pb2.INVALID_ARGUMENT,
                f"unsupported Content-Encoding {encoding!r}, supported: gzip, deflate",
                content_type,
            )
        try:
            body = await request.read()
            if encoding in _WBITS:
                body = inflate(body, encoding, self._limit)
        except BodyTooLarge as exc:
            return status_response(
                413, code_pb2.INVALID_ARGUMENT, f"request body too large: {exc}", content_type
            )
        except zlib.error as exc:
            return status_response(
                400, code_pb2.INVALID_ARGUMENT, f"cannot decompress {encoding} body: {exc}", content_type
            )
        except web.HTTPRequestEntityTooLarge as exc:
            return status_response(
                413, code_pb2.INVALID_ARGUMENT, f"request body too large: {exc.text}", content_type
            )
        except Exception as exc:  # corrupt gzip/deflate stream and the like
            return status_response(
                400, code_pb2.INVALID_ARGUMENT, f"cannot read request body: {exc}", content_type
            )
        if content_type == JSON:
            try:
                body = decode_json_request(body, ExportTraceServiceRequest).SerializeToString()
            except OtlpJsonError as exc:
                return status_response(
                    400, code_pb2.INVALID_ARGUMENT, f"invalid OTLP-JSON: {exc}", content_type
                )
        result = await self._exporter.export(body, well_formed=content_type == JSON)
        if result.outcome is not Outcome.OK:
            http_status, code = _STATUS_FOR[result.outcome]
            return status_response(http_status, code, result.message, content_type)
        assert result.response is not None
        if content_type == JSON:
            return web.Response(body=json.dumps(encode_json(result.response)).encode(), content_type=JSON)
        return web.Response(body=result.response.SerializeToString(), content_type=PROTOBUF)
