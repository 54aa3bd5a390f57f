"""The one Export entry point both OTLP transports call (the Collector's internal/trace/otlp.go idea).

It decodes a request (``prepare_traces``, the hot path), hands the batch to the pipeline and maps
what happened to a transport-neutral :class:`Outcome`; the gRPC and HTTP receivers translate that
into their status codes through ``status.py``. The pipeline's consumer decides the acknowledgement:
it returns once the store has the batch in the WAL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sidecar.ingest.traces import RequestDecodeError, prepare_traces
from sidecar.pipeline.consumer import TracesConsumer
from sidecar.receivers.status import Outcome
from sidecar.storage.api import Overloaded, StoreClosed

log = logging.getLogger(__name__)
NOT_A_REQUEST = "body is not a valid ExportTraceServiceRequest"
PARTIAL = "invalid spans dropped (bad IDs or timestamps), the response names them"


@dataclass(frozen=True, slots=True)
class ExportResult:
    outcome: Outcome
    message: str = ""
    response: ExportTraceServiceResponse | None = None
    accepted: int = 0
    rejected: int = 0
    # Why, as a fixed payload-free text for the warning log (``message`` may quote the payload).
    reason: str = ""
    refused_spans: int = 0  # decoded spans refused as a whole (backpressure), for the log


class TraceExporter:
    """Decode, validate, hand to the pipeline, answer by what its consumer did."""

    def __init__(self, consumer: TracesConsumer) -> None:
        self._consumer = consumer

    async def export(self, body: bytes, *, well_formed: bool = False) -> ExportResult:
        """``well_formed``: the bytes were serialised by us (from OTLP-JSON), no need to re-check."""
        try:
            prepared = prepare_traces(body, well_formed=well_formed)
        except RequestDecodeError as exc:
            return ExportResult(Outcome.BAD_REQUEST, str(exc), reason=NOT_A_REQUEST)
        try:
            await self._consumer.consume(prepared)
        except Overloaded as exc:
            return ExportResult(
                Outcome.UNAVAILABLE,
                f"sidecar overloaded, retry later: {exc}",
                reason="write queue full, backpressure (ingest.max_queue_spans)",
                refused_spans=prepared.accepted,
            )
        except StoreClosed as exc:
            return ExportResult(
                Outcome.UNAVAILABLE,
                str(exc),
                reason="store is shutting down",
                refused_spans=prepared.accepted,
            )
        except Exception as exc:
            log.error("storing %d spans failed: %s", prepared.accepted, exc)
            return ExportResult(Outcome.INTERNAL, f"storage failure: {exc}", reason="storage failure")
        response = ExportTraceServiceResponse()
        if prepared.rejected:
            response.partial_success.rejected_spans = prepared.rejected
            response.partial_success.error_message = prepared.error_message()
        return ExportResult(
            Outcome.OK, response=response, accepted=prepared.accepted, rejected=prepared.rejected
        )
