"""Both OTLP receivers started in-process, over real sockets, in front of consumers a test chooses.

For the generic machinery (the pipeline's fan-out, the signal table): the receivers, exporters and
status mapping are the shipped ones; only what sits behind them, where the store would be, is the
test's, and a test may add a row of its own to the signal table. The product path with the real
store is covered by the live ``sidecar serve`` tests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sidecar.receivers.export import Exporter
from sidecar.receivers.otlp_grpc import OtlpGrpcReceiver
from sidecar.receivers.otlp_http import OtlpHttpReceiver
from sidecar.receivers.rejections import rejection_log
from sidecar.receivers.signals import TRACES
from sidecar.storage.api import Overloaded
from tests.e2e.harness import (
    EXPORT_PATH,
    HOST,
    PROTOBUF,
    free_ports,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
)

MS = 1_000_000


@dataclass
class Receivers:
    http_url: str
    grpc_target: str


@contextlib.asynccontextmanager
async def receivers(traces: Any, more: Sequence[Exporter[Any]] = ()) -> AsyncIterator[Receivers]:
    """Both receivers on free ports: traces feed ``traces``, and ``more`` rows are served too."""
    grpc_port, http_port = free_ports(2)
    rejections = rejection_log()
    exports = [Exporter(TRACES, traces), *more]
    grpc_receiver = OtlpGrpcReceiver(f"{HOST}:{grpc_port}", 4, exports, rejections=rejections)
    http_receiver = OtlpHttpReceiver(
        f"{HOST}:{http_port}", 4, exports, shutdown_timeout=1.0, rejections=rejections
    )
    await grpc_receiver.start()
    try:
        await http_receiver.start()
        try:
            yield Receivers(f"http://{HOST}:{http_port}", f"{HOST}:{grpc_port}")
        finally:
            await http_receiver.stop(1.0)
    finally:
        await grpc_receiver.stop(1.0)


@dataclass
class Sink:
    """A store stand-in that keeps what it is given (the Collector's consumertest.Sink).

    ``refuse`` makes it answer like a full write queue, so a test can see a refused batch.
    """

    batches: list[Any] = field(default_factory=list)
    refuse: bool = False

    async def consume(self, batch: Any) -> None:
        if self.refuse:
            raise Overloaded("write queue holds 1 spans (limit 1)")
        self.batches.append(batch)


def mixed_request(service: str) -> bytes:
    """Two valid spans and one with a zero span ID: a partial success with one span rejected."""
    trace_id, root = new_trace_id(), new_span_id()
    t0 = time.time_ns() - 5_000 * MS
    spans = [
        make_span(trace_id, "root", t0, 20 * MS, span_id=root, kind=Span.SPAN_KIND_SERVER),
        make_span(trace_id, "child", t0 + MS, 5 * MS, parent=root),
        make_span(trace_id, "zero-span-id", t0, MS, span_id=bytes(8), parent=root),
    ]
    return make_request(service, spans).SerializeToString()


async def http_post(
    url: str, body: bytes, content_type: str = PROTOBUF
) -> tuple[int, str | None, str, bytes]:
    """(status, Retry-After, Content-Type, body) of one POST, with a real aiohttp client."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={"Content-Type": content_type}) as resp,
    ):
        return resp.status, resp.headers.get("Retry-After"), resp.content_type, await resp.read()


async def grpc_call(target: str, body: bytes, method: str = EXPORT_PATH) -> tuple[grpc.StatusCode, Any, Any]:
    """(OK, response bytes, None) or (code, details, whether RetryInfo is in the trailers)."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method)  # raw bytes in and out
        try:
            return grpc.StatusCode.OK, await call(body, timeout=10), None
        except grpc.aio.AioRpcError as err:
            trailers = dict(err.trailing_metadata() or ())
            return err.code(), err.details(), "google.rpc.retryinfo-bin" in trailers
