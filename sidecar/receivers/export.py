"""The one Export entry point both OTLP transports call (the Collector's internal/trace/otlp.go idea).

An :class:`Exporter` serves one row of the signal table: it decodes a request with the row's ingest
function (the hot path), hands the batch to the signal's pipeline and maps what happened to a
transport-neutral :class:`Outcome`; the gRPC and HTTP receivers translate that into their status
codes through ``status.py``. The pipeline's consumer decides the acknowledgement: it returns once
the store has the batch in the WAL.

This is also where every export request is counted for the sidecar's own metrics: an
:class:`ExportObserver` (injected by the server; receivers import no metrics code) hears each
request's outcome, latency and item counts once, as it is answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol

from google.protobuf.message import Message

from sidecar.ingest.traces import RequestDecodeError
from sidecar.pipeline.consumer import Consumer
from sidecar.receivers.signals import SIGNALS, B, Signal
from sidecar.receivers.status import Outcome
from sidecar.storage.api import Overloaded, StoreClosed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportResult:
    outcome: Outcome
    message: str = ""
    response: Message | None = None  # the signal's Export<Signal>ServiceResponse when OK
    accepted: int = 0
    rejected: int = 0
    # Why, as a fixed payload-free text for the warning log (``message`` may quote the payload).
    reason: str = ""
    refused: int = 0  # decoded items refused as a whole (backpressure), for the log


class ExportObserver(Protocol):
    """Hears every answered request (``sidecar.metrics.self_receivers.ReceiverMetrics``)."""

    def request(
        self,
        signal: str,
        transport: str,
        outcome: str,
        seconds: float,
        accepted: int = 0,
        rejected: int = 0,
        refused: int = 0,
    ) -> None: ...


class Exporter(Generic[B]):
    """Decode, validate, hand to the pipeline, answer by what its consumer did."""

    def __init__(
        self,
        signal: Signal[B],
        consumer: Consumer[B],
        transport: str = "",
        observer: ExportObserver | None = None,
    ) -> None:
        """``transport`` ("grpc", "http") labels what ``observer`` hears."""
        self.signal = signal
        self._prepare = signal.prepare
        self._consumer = consumer
        self._transport = transport
        self._observer = observer
        self._not_a_request = f"body is not a valid {signal.request_name}"
        self._backpressure = f"write queue full, backpressure ({signal.queue_setting})"

    async def export(self, body: bytes, *, well_formed: bool = False) -> ExportResult:
        """``well_formed``: the bytes were serialised by us (from OTLP-JSON), no need to re-check."""
        if self._observer is None:
            return await self._export(body, well_formed)
        started = time.perf_counter()
        result = await self._export(body, well_formed)
        self._observer.request(
            self.signal.name,
            self._transport,
            result.outcome.value,
            time.perf_counter() - started,
            result.accepted,
            result.rejected,
            result.refused,
        )
        return result

    async def _export(self, body: bytes, well_formed: bool) -> ExportResult:
        try:
            batch = self._prepare(body, well_formed=well_formed)
        except RequestDecodeError as exc:
            return ExportResult(Outcome.BAD_REQUEST, str(exc), reason=self._not_a_request)
        try:
            await self._consumer.consume(batch)
        except Overloaded as exc:
            return ExportResult(
                Outcome.UNAVAILABLE,
                f"sidecar overloaded, retry later: {exc}",
                reason=self._backpressure,
                refused=batch.accepted,
            )
        except StoreClosed as exc:
            return ExportResult(
                Outcome.UNAVAILABLE, str(exc), reason="store is shutting down", refused=batch.accepted
            )
        except Exception as exc:
            log.error("storing %d %ss failed: %s", batch.accepted, self.signal.item_noun, exc)
            return ExportResult(
                Outcome.INTERNAL, f"storage failure: {exc}", reason="storage failure", refused=batch.accepted
            )
        response = self.signal.response_type()
        if batch.rejected:
            partial = getattr(response, "partial_success")  # noqa: B009 (each signal's own message type)
            setattr(partial, self.signal.rejected_field, batch.rejected)
            partial.error_message = batch.error_message()
        return ExportResult(Outcome.OK, response=response, accepted=batch.accepted, rejected=batch.rejected)


def exporters(
    consumers: Mapping[str, Consumer[Any]], transport: str = "", observer: ExportObserver | None = None
) -> list[Exporter[Any]]:
    """One exporter per row of the signal table, feeding the pipeline named after its signal.

    A row without a pipeline is a wiring mistake, found at start-up (``KeyError``). ``transport``
    and ``observer``: see :class:`Exporter` (one list per transport, so requests are told apart).
    """
    return [Exporter(signal, consumers[signal.name], transport, observer) for signal in SIGNALS]
