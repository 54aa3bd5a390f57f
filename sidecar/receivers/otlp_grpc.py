"""OTLP/gRPC receiver (on :4317): ``<Signal>Service/Export`` for every row of the signal table.

Requests arrive as raw bytes (no deserializer) so the ingest path parses them once, its own way.

Export is registered as a client-streaming method although clients call it unary (on the wire the
two are the same): with a unary handler, a request over ``grpc.max_receive_message_length`` is
refused by gRPC's core before any of our code runs, so it could not be logged. As a streaming
handler we are called first and see the message that never came.

``grpc.so_reuseport`` is off: with gRPC's default a second sidecar binds the same port and the
kernel splits exports between the two processes; without it the second start fails, as on the
HTTP ports.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from sidecar.receivers.export import Exporter
from sidecar.receivers.listen import probe_bind
from sidecar.receivers.rejections import RateLimitedLog, rejection_log
from sidecar.receivers.status import STATUS, Outcome, grpc_error

log = logging.getLogger(__name__)
GrpcHandler = Callable[[Any, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]


class OtlpGrpcReceiver:
    def __init__(
        self,
        endpoint: str,
        max_recv_mib: int,
        exporters: Sequence[Exporter[Any]],
        rejections: RateLimitedLog | None = None,
    ) -> None:
        """``exporters``: one per signal served, each registered as its row's service's Export."""
        self._endpoint = endpoint
        self._rejections = rejections or rejection_log()
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_recv_mib << 20),
                ("grpc.max_send_message_length", 4 << 20),
                ("grpc.so_reuseport", 0),
            ]
        )
        self._server.add_generic_rpc_handlers(
            tuple(
                grpc.method_handlers_generic_handler(
                    exporter.signal.grpc_service,
                    # raw bytes in and out: no (de)serializers
                    {"Export": grpc.stream_unary_rpc_method_handler(self._handler(exporter))},
                )
                for exporter in exporters
            )
        )
        self.port = 0
        self._started = False

    async def start(self) -> None:
        """Bind or raise ``OSError``; the probe first, so that the error can say why."""
        probe_bind(self._endpoint)
        try:
            self.port = self._server.add_insecure_port(self._endpoint)
        except RuntimeError:  # newer grpcio raises where older ones returned 0
            self.port = 0
        if not self.port:  # taken since the probe: gRPC has written its reason to stderr
            raise OSError("gRPC could not bind it (its reason is in the line from gRPC above)")
        await self._server.start()
        self._started = True
        log.info("OTLP/gRPC receiver listening on %s", self._endpoint)

    async def stop(self, grace: float) -> None:
        """Stop accepting and let in-flight calls finish within ``grace``; safe to call twice."""
        if self._started:
            self._started = False
            await self._server.stop(grace)

    def _handler(self, exporter: Exporter[Any]) -> GrpcHandler:
        async def export(_requests: Any, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            return await self._export(exporter, context)

        return export

    async def _export(
        self, exporter: Exporter[Any], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        body = await context.read()
        if body is grpc.aio.EOF:
            # gRPC's core has already answered RESOURCE_EXHAUSTED (over the limit) or the message
            # could not be decompressed; only a broken client sends none. Our abort reaches the
            # latter only.
            self._rejections.event(
                "OTLP/gRPC export rejected, RESOURCE_EXHAUSTED: request over "
                "receivers.otlp.grpc.max_recv_msg_size_mib (or no readable request message)"
            )
            code, details, _ = grpc_error(Outcome.BAD_REQUEST, "no request message received")
            await context.abort(code, details)
        result = await exporter.export(body)
        signal = exporter.signal
        if result.outcome is Outcome.OK:
            assert result.response is not None
            if result.rejected:
                reason = f"OTLP/gRPC export partly rejected: {signal.partial_reason}"
                self._rejections.event(reason, result.rejected, signal.item_noun)
            return result.response.SerializeToString()
        if result.outcome is not Outcome.INTERNAL:  # the exporter logged that one as an error
            status = STATUS[result.outcome]
            reason = f"OTLP/gRPC export {status.verb}, {status.grpc.name}: {result.reason}"
            self._rejections.event(reason, result.refused, signal.item_noun)
        code, details, trailers = grpc_error(result.outcome, result.message)
        await context.abort(code, details, trailing_metadata=trailers)
        raise AssertionError("unreachable")
