"""Both OTLP receivers started in-process, over real sockets, in front of a consumer a test chooses.

For the generic machinery (the pipeline's fan-out, the signal table): the receivers, exporter and
status mapping are the shipped ones; only what sits behind them, where the store would be, is the
test's. The product path with the real store is covered by the live ``sidecar serve`` tests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sidecar.receivers.export import TraceExporter
from sidecar.receivers.otlp_grpc import OtlpGrpcReceiver
from sidecar.receivers.otlp_http import OtlpHttpReceiver
from sidecar.receivers.rejections import rejection_log
from sidecar.storage.api import Overloaded
from tests.e2e.harness import HOST, free_ports, make_request, make_span, new_span_id, new_trace_id

MS = 1_000_000


@dataclass
class Receivers:
    http_url: str
    grpc_target: str


@contextlib.asynccontextmanager
async def receivers(consumer: Any) -> AsyncIterator[Receivers]:
    """gRPC and HTTP receivers on free ports, feeding ``consumer``; stopped on exit."""
    grpc_port, http_port = free_ports(2)
    rejections = rejection_log()
    exporter = TraceExporter(consumer)
    grpc_receiver = OtlpGrpcReceiver(f"{HOST}:{grpc_port}", 4, exporter, rejections=rejections)
    http_receiver = OtlpHttpReceiver(
        f"{HOST}:{http_port}", 4, exporter, shutdown_timeout=1.0, rejections=rejections
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
