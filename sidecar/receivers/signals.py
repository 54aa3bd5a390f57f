"""The table of signals the OTLP receivers serve: one row each, read by both transports.

A row names everything that differs between signals: the gRPC service, the HTTP path, the request
and response messages, the partial-success counter, the words for the warning log, and the ingest
function that decodes a request into a batch (the hot path; it lives in ``sidecar.ingest``). The
gRPC and HTTP receivers register every row the same way, so serving a new signal (logs) is a new
row here, its ingest function, and a consumer for it in ``server.py``, with no change to either
receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sidecar.ingest.logs import prepare_logs
from sidecar.ingest.metrics import prepare_metrics
from sidecar.ingest.traces import prepare_traces


class Batch(Protocol):
    """What ingest hands on: the items kept and refused, for the answer and the warning log."""

    accepted: int
    rejected: int

    def error_message(self) -> str:
        """Why items were rejected, for ``partial_success.error_message``; "" when none were."""
        ...


B_co = TypeVar("B_co", bound=Batch, covariant=True)
B = TypeVar("B", bound=Batch)


class Prepare(Protocol[B_co]):
    def __call__(self, body: bytes, *, well_formed: bool = ...) -> B_co:
        """Decode and validate protobuf ``body``; raise ``RequestDecodeError`` when it is not one.

        ``well_formed``: the bytes were serialised by us (from OTLP-JSON), no need to re-check.
        """
        ...


@dataclass(frozen=True, slots=True)
class Signal(Generic[B]):
    """One OTLP signal as both transports serve it."""

    name: str  # plural, as in "traces go to POST /v1/traces"
    grpc_service: str  # its one method is Export
    http_path: str
    request_type: type[Message]  # for OTLP-JSON, which is decoded into it
    response_type: type[Message]  # Export<Signal>ServiceResponse
    rejected_field: str  # partial_success counter: rejected_spans, _log_records, _data_points
    item_noun: str  # singular, for counts in the warning log: span, log record, data point
    partial_reason: str  # the warning logged for a partial success (fixed text, no payload)
    queue_setting: str  # the config key whose limit a refusal under backpressure names
    prepare: Prepare[B]

    @property
    def grpc_method(self) -> str:
        return f"/{self.grpc_service}/Export"

    @property
    def request_name(self) -> str:
        return str(self.request_type.DESCRIPTOR.name)


TRACES: Signal[Any] = Signal(
    name="traces",
    grpc_service="opentelemetry.proto.collector.trace.v1.TraceService",
    http_path="/v1/traces",
    request_type=ExportTraceServiceRequest,
    response_type=ExportTraceServiceResponse,
    rejected_field="rejected_spans",
    item_noun="span",
    partial_reason="invalid spans dropped (bad IDs or timestamps), the response names them",
    queue_setting="ingest.max_queue_spans",
    prepare=prepare_traces,
)

LOGS: Signal[Any] = Signal(
    name="logs",
    grpc_service="opentelemetry.proto.collector.logs.v1.LogsService",
    http_path="/v1/logs",
    request_type=ExportLogsServiceRequest,
    response_type=ExportLogsServiceResponse,
    rejected_field="rejected_log_records",
    item_noun="log record",
    partial_reason="invalid log records dropped (bad IDs or severity), the response names them",
    queue_setting="ingest.max_queue_log_records",
    prepare=prepare_logs,
)

METRICS: Signal[Any] = Signal(
    name="metrics",
    grpc_service="opentelemetry.proto.collector.metrics.v1.MetricsService",
    http_path="/v1/metrics",
    request_type=ExportMetricsServiceRequest,
    response_type=ExportMetricsServiceResponse,
    rejected_field="rejected_data_points",
    item_noun="data point",
    partial_reason="invalid or conflicting data points dropped, the response names them",
    # Metrics are applied in memory, never queued: nothing refuses them under backpressure.
    queue_setting="none: metrics are not queued",
    prepare=prepare_metrics,
)

SIGNALS: tuple[Signal[Any], ...] = (TRACES, LOGS, METRICS)
